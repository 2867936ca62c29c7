"""The report's opening: the answer to the paper's question, then Table 1 and the unCLIP prior comparison.

From the report's one analysis (`harness.report.studies.analyze_studies`) `eval_protocols.human.headline` picks the
unCLIP-vs-GLIDE comparisons at matched guidance, whatever the study design. This module writes them as

* one headline paragraph per protocol: the pooled P(unCLIP beats GLIDE), its 95% interval, n, who voted
  (simulated annotators are named so), the estimate per prior, and what the interval says;
* the Fig. 10 style plot (`eval_protocols.human.figures.headline_figure`, ``headline.png``);
* Table 1: a row per unCLIP system and guidance scale against GLIDE at that scale, a ``xx.x% ± y.y%`` cell per
  protocol with its n; the diffusion prior against the AR prior in a small table of its own;
* ``table1.csv`` beside the report: one line per cell, with counts and bounds.

A run without an unCLIP-vs-GLIDE pair (and without a baseline) gets one line saying so instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from eval_protocols.human.figures import headline_figure, png_bytes
from eval_protocols.human.headline import (
    Headline,
    Matchup,
    Row,
    headline,
    protocol_sentence,
    rate_cell,
    row_title,
    vote_kinds,
    votes_note,
)
from eval_protocols.human.labels import Labeller, protocol_title
from harness.report.document import Figure, Section, Table
from harness.report.studies import StudyAnalysis
from harness.rundir import atomic_write_bytes

TABLE1_COLUMNS: tuple[str, ...] = (
    "protocol", "challenger", "opponent", "challenger_label", "opponent_label", "challenger_model", "guidance_scale",
    "wins", "losses", "ties", "n", "win_rate", "ci_low", "ci_high", "half_width", "votes",
)
"""Columns of ``table1.csv``: one row per Table 1 cell; wins are the challenger's (unCLIP's)."""


def answer_sections(
    analysis: StudyAnalysis, labeller: Labeller, report_dir: Path, *, baseline: str | None = None
) -> tuple[list[Section], Headline | None]:
    """The opening sections of the report and the headline they show (``None``: no unCLIP-vs-GLIDE pair, or no
    votes); writes ``headline.png`` and ``table1.csv`` into ``report_dir``."""
    result = analysis.result
    head = None
    if result is not None:
        rates = [w for p in result.protocols for w in p.win_rates]
        head = headline(rates, labeller, baseline=baseline)
    kinds = vote_kinds(analysis.votes)
    _write_table1_csv(head, labeller, kinds, report_dir / "table1.csv")
    title = "The answer: P(unCLIP beats GLIDE)"
    if result is None:
        why = f"the votes cannot be analysed: {analysis.problem}" if analysis.problem else "there are no votes yet"
        return [Section(title, (f"No estimate yet: {why}.",))], None
    if head is None:
        names = ", ".join(sorted({labeller.model_name(s) for w in rates for s in (w.system_a, w.system_b)}))
        line = (f"No Table 1: this run compares no unCLIP system with a GLIDE system (systems: {names}); the win "
                "rate of every pair is in the appendix.")
        return [Section(title, (line,))], None
    title = f"The answer: P({head.challenger_name} beats {head.opponent_name})"
    paragraphs = [protocol_sentence(head, p, kinds.get(p, "human")) for p in head.protocols]
    sections = [Section(title, tuple(paragraphs), (), _headline_figure(head, labeller, kinds, report_dir))]
    note = ", " + votes_note(kinds, head.protocols)
    sections.append(Section(f"Table 1: P({head.challenger_name} beats {head.opponent_name}){note}", (),
                            (table1(head, labeller),), level=3))
    if head.priors:
        sections.append(Section(f"unCLIP priors: P(diffusion prior beats AR prior){note}", (),
                                (priors_table(head, labeller),), level=3))
    return sections, head


def _headline_figure(
    head: Headline, labeller: Labeller, kinds: dict[str, str], report_dir: Path
) -> tuple[Figure, ...]:
    fig = headline_figure(head, labeller, note=votes_note(kinds, head.protocols))
    if fig is None:
        return ()
    path = report_dir / "headline.png"
    atomic_write_bytes(path, png_bytes(fig))
    return (Figure(path, f"P({head.challenger_name} beats {head.opponent_name}) against the decoder guidance scale "
                         "(unCLIP Fig. 10 style): each point compares the two systems at the same scale; bars are 95% "
                         "normal-approximation intervals, ties count half; colour: protocol, line style: model."),)


def _rows_table(rows: Sequence[Row], protocols: Sequence[str], labeller: Labeller, caption: str) -> Table:
    body, notes = [], []
    for r in rows:
        body.append((row_title(r, labeller), *(rate_cell(r.cells[p]) if p in r.cells else "—" for p in protocols)))
        notes.append(("", *(_note(r.cells[p]) if p in r.cells else "" for p in protocols)))
    header = ("comparison", *(protocol_title(p) for p in protocols))
    return Table(header, tuple(body), caption, tuple(notes))


def _note(m: Matchup) -> str:
    return f"n = {m.n}"


def table1(head: Headline, labeller: Labeller) -> Table:
    """Table 1: one row per challenger system (prior × guidance scale) against the opponent at the same scale."""
    return _rows_table(
        head.rows, head.protocols, labeller,
        f"P({head.challenger_name} beats {head.opponent_name}) at the same decoder guidance scale, with 95% "
        "normal-approximation intervals; ties (\"Not sure\") count as half a win for each side, as in unCLIP "
        "Table 1; n = votes behind the cell after attention checks and excluded annotators.",
    )


def priors_table(head: Headline, labeller: Labeller) -> Table:
    """unCLIP (diffusion prior) against unCLIP (AR prior), one row per guidance scale."""
    return _rows_table(
        head.priors, head.prior_protocols, labeller,
        "P(diffusion prior beats AR prior), same decoder guidance scale; 95% normal-approximation intervals, ties "
        "half a win.",
    )


def _write_table1_csv(head: Headline | None, labeller: Labeller, kinds: dict[str, str], path: Path) -> None:
    """``table1.csv``: one line per Table 1 cell (header only when there is no Table 1)."""
    records = []
    for r in head.rows if head is not None else ():
        for p, m in r.cells.items():
            records.append({
                "protocol": p, "challenger": m.challenger, "opponent": m.opponent,
                "challenger_label": labeller.label(m.challenger), "opponent_label": labeller.label(m.opponent),
                "challenger_model": labeller.model_name(m.challenger), "guidance_scale": m.guidance,
                "wins": m.wins, "losses": m.losses, "ties": m.ties, "n": m.n, "win_rate": m.win_rate,
                "ci_low": m.ci_low, "ci_high": m.ci_high, "half_width": m.half_width,
                "votes": kinds.get(p, "human"),
            })
    frame = pd.DataFrame.from_records(records, columns=list(TABLE1_COLUMNS))
    atomic_write_bytes(path, frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
