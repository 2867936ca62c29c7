"""The human-evaluation part of the report: every number from the votes in the store, one analysis per report.

All studies of a report are analysed together by `eval_protocols.human.analysis.analyze_votes` (ties count as half a
win, normal-approximation intervals as in unCLIP App. B, the default annotator exclusion policy applied first), so
the Holm correction runs over every comparison the report shows. Sections:

* the studies and who voted; Bradley–Terry ratings as a chart with bootstrap intervals; position bias per protocol;
* annotators: attention checks, leave-one-out agreement, response times, exclusions with reasons; α and κ;
* the appendix: every pair's win rate (P(A beats B) ± 95% half-width, n in a note), the sign tests (W / L / T,
  raw and Holm-adjusted p) and the ratings in numbers, also written beside the report as ``win_rates.csv`` and
  ``sign_tests.csv``.

The answer to the paper's question (Table 1, Fig. 10) is `harness.report.headline`, from the same analysis. Every
system is named by one `eval_protocols.human.labels.Labeller`; votes of simulated annotators
(`harness.simulate.votes`) are labelled as such in every heading that shows them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from eval_protocols.human.analysis import AnalysisOptions, AnalysisResult, ProtocolAnalysis, analyze_votes
from eval_protocols.human.figures import png_bytes, ratings_figure
from eval_protocols.human.headline import reading_order
from eval_protocols.human.labels import Labeller, protocol_key, protocol_title
from eval_protocols.human.quality import ExclusionPolicy, agreement, annotator_quality
from eval_protocols.human.winrates import WinRate
from harness.analyze.vote_table import vote_source, votes_of_studies
from harness.report.document import Figure, Section, Table, rows
from harness.rundir import atomic_write_bytes

if TYPE_CHECKING:
    from harness.storage.repository import Repository

WIN_RATE_COLUMNS: tuple[str, ...] = (
    "protocol", "system_a", "system_b", "label_a", "label_b", "wins", "losses", "ties", "n", "win_rate", "ci_low",
    "ci_high", "ci_method", "level",
)
"""Columns of ``win_rates.csv``: one row per protocol and pair, P(A beats B) with ties as half."""
SIGN_TEST_COLUMNS: tuple[str, ...] = (
    "protocol", "system_a", "system_b", "label_a", "label_b", "wins", "losses", "ties", "decisive", "p_value",
    "p_value_holm",
)
"""Columns of ``sign_tests.csv``: the two-sided sign test on the decisive votes, raw and Holm-adjusted p."""


@dataclass(frozen=True)
class StudyAnalysis:
    """The votes of a report's studies and their analysis (``result`` is None without votes)."""

    votes: pd.DataFrame
    result: AnalysisResult | None
    source: str
    """`harness.analyze.vote_table.vote_source`: simulated, human or mixed."""
    problem: str = ""
    """Why votes exist but could not be analysed (e.g. every annotator excluded)."""


def analyze_studies(
    repo: Repository, study_ids: Sequence[int], *, baseline: str | None = None, n_bootstrap: int = 200, seed: int = 0
) -> StudyAnalysis:
    """Load the votes of ``study_ids`` and analyse them as one family (see the module docstring)."""
    votes = votes_of_studies(repo, study_ids)
    if len(votes) == 0 or votes["expected"].isna().sum() == 0:
        return StudyAnalysis(votes, None, vote_source(votes))
    options = AnalysisOptions(
        ties="half", ci="normal", n_bootstrap=n_bootstrap, seed=seed, baseline=baseline, exclusion=ExclusionPolicy()
    )
    try:
        result = analyze_votes(votes, options)
    except ValueError as exc:  # e.g. every annotator excluded: the report says so instead of failing
        return StudyAnalysis(votes, None, vote_source(votes), str(exc))
    return StudyAnalysis(votes, result, vote_source(votes))


def _pct(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _by_protocol(result: AnalysisResult) -> list[ProtocolAnalysis]:
    return sorted(result.protocols, key=lambda p: protocol_key(p.protocol))


def _rates(result: AnalysisResult, labeller: Labeller) -> list[WinRate]:
    """Every pair of every protocol, read as P(A beats B) with A the system the labeller lists first."""
    return reading_order((w for p in result.protocols for w in p.win_rates), labeller)


def all_pairs_table(result: AnalysisResult, labeller: Labeller) -> Table:
    """Every pair: rows P(A beats B), a column per protocol, cells ``p ± half-width`` with n in a note."""
    protocols = [p.protocol for p in _by_protocol(result)]
    cells: dict[tuple[str, str], dict[str, WinRate]] = {}
    for w in _rates(result, labeller):
        cells.setdefault((w.system_a, w.system_b), {})[w.protocol] = w
    pairs = sorted(cells, key=lambda ab: (labeller.sort_key(ab[0]), labeller.sort_key(ab[1])))
    body, notes = [], []
    for a, b in pairs:
        row = cells[(a, b)]
        body.append((f"P({labeller.label(a)} beats {labeller.label(b)})",
                     *(f"{_pct(row[p].win_rate)} ± {_pct((row[p].ci_high - row[p].ci_low) / 2)}" if p in row else "—"
                       for p in protocols)))
        notes.append(("", *(f"n = {row[p].n}" if p in row else "" for p in protocols)))
    return Table(
        ("comparison", *(protocol_title(p) for p in protocols)),
        rows(body),
        caption=f"Every pair the studies compared: win rates with {result.options.level:.0%} normal-approximation "
        "intervals, ties half a win; n = votes behind each cell after exclusions (also in win_rates.csv).",
        notes=tuple(notes),
    )


def sign_test_table(result: AnalysisResult, labeller: Labeller) -> Table:
    """Every comparison: counts, win rate with interval, raw and Holm-adjusted two-sided sign-test p-values."""
    body = [
        (protocol_title(w.protocol), labeller.label(w.system_a), labeller.label(w.system_b), w.wins, w.losses, w.ties,
         f"{_pct(w.win_rate)} [{_pct(w.ci_low)}, {_pct(w.ci_high)}]", f"{w.p_value:.3g}", f"{w.p_value_holm:.3g}")
        for w in _rates(result, labeller)
    ]
    n = sum(len(p.win_rates) for p in result.protocols)
    return Table(
        ("protocol", "A", "B", "A wins", "B wins", "not sure", "P(A beats B) [95% CI]", "p", "p (Holm)"),
        rows(body),
        caption=f"Two-sided exact binomial (sign) test on decisive votes; Holm correction over the {n} comparisons "
        "of this report (also in sign_tests.csv).",
    )


def ratings_table(result: AnalysisResult, labeller: Labeller) -> Table:
    """Bradley–Terry ratings (Elo scale) with bootstrap intervals, per protocol."""
    body = []
    for p in _by_protocol(result):
        r = p.ratings
        order = sorted(range(len(r.systems)), key=lambda i: -r.ratings[i])
        for rank, i in enumerate(order, 1):
            ci = f"[{r.ci_low[i]:.0f}, {r.ci_high[i]:.0f}]" if r.ci_low and r.ci_high else "—"
            note = "" if r.converged else "no finite MLE (a system never lost)"
            body.append((protocol_title(p.protocol), rank, labeller.label(r.systems[i]), f"{r.ratings[i]:.0f}", ci,
                         note))
    boot = result.options.n_bootstrap
    return Table(
        ("protocol", "rank", "system", "rating", "95% CI", "note"),
        rows(body),
        caption=f"Bradley–Terry maximum likelihood on the Elo scale (400, base 1000), ties as half; {boot} bootstrap "
        f"replicates (seed {result.options.seed}).",
    )


def bias_table(result: AnalysisResult) -> Table:
    """Left-win rate over decisive votes per protocol, Wilson interval and binomial test."""
    body = []
    for p in _by_protocol(result):
        b = p.position_bias
        if b is None:
            continue
        rate = f"{_pct(b.left_win_rate)} [{_pct(b.ci_low)}, {_pct(b.ci_high)}]"
        body.append((protocol_title(p.protocol), b.left_wins, b.decisive, rate, f"{b.p_value:.3g}"))
    return Table(
        ("protocol", "left wins", "decisive votes", "left-win rate [95% Wilson]", "p (vs 50%)"),
        rows(body),
        caption="Position bias: how often the image shown on the left won (50% = none).",
    )


def annotator_table(votes: pd.DataFrame, result: AnalysisResult) -> Table:
    """Per annotator: votes, attention checks, agreement, response time, and why they were excluded."""
    reasons = {e.annotator: "; ".join(e.reasons) for e in result.excluded}
    simulated = votes.groupby("annotator")["simulated"].first().to_dict() if "simulated" in votes else {}
    body = []
    for q in annotator_quality(votes):
        checks = f"{q.attention_passed}/{q.attention_checks}" if q.attention_checks else "—"
        body.append(
            (q.annotator, "simulated" if simulated.get(q.annotator) else "human", q.n_votes, checks,
             _pct(q.majority_agreement), f"{q.median_latency_ms / 1000:.1f} s", _pct(q.fast_share),
             f"excluded: {reasons[q.annotator]}" if q.annotator in reasons else "kept")
        )
    return Table(
        ("annotator", "kind", "votes", "attention checks passed", "agrees with majority", "median time",
         "fast votes", "status"),
        rows(body),
        caption="Exclusion policy: attention-check pass rate ≥ 80% (with ≥ 3 checks) and at most 50% of votes faster "
        "than a quarter of the median time. Attention-check votes count only here, never in win rates.",
    )


def agreement_table(votes: pd.DataFrame) -> Table:
    """Krippendorff's α and Fleiss' κ per protocol (outcomes coded by system)."""
    body = [
        (protocol_title(a.protocol), f"{a.krippendorff_alpha:.3f}", f"{a.fleiss_kappa:.3f}", a.n_units, a.n_votes)
        for a in agreement(votes)
    ]
    return Table(
        ("protocol", "Krippendorff α", "Fleiss κ", "units with ≥ 2 votes", "votes"),
        rows(body),
        caption="Inter-annotator agreement over (caption, pair) units, before exclusions.",
    )


def write_pair_csvs(result: AnalysisResult | None, labeller: Labeller, report_dir: Path) -> None:
    """``win_rates.csv`` and ``sign_tests.csv`` beside the report (header only without an analysis)."""
    rates = _rates(result, labeller) if result is not None else []
    win_rows = [
        {"protocol": w.protocol, "system_a": w.system_a, "system_b": w.system_b, "label_a": labeller.label(w.system_a),
         "label_b": labeller.label(w.system_b), "wins": w.wins, "losses": w.losses, "ties": w.ties, "n": w.n,
         "win_rate": w.win_rate, "ci_low": w.ci_low, "ci_high": w.ci_high, "ci_method": w.ci_method, "level": w.level}
        for w in rates
    ]
    sign_rows = [
        {"protocol": w.protocol, "system_a": w.system_a, "system_b": w.system_b, "label_a": labeller.label(w.system_a),
         "label_b": labeller.label(w.system_b), "wins": w.wins, "losses": w.losses, "ties": w.ties,
         "decisive": w.wins + w.losses, "p_value": w.p_value, "p_value_holm": w.p_value_holm}
        for w in rates
    ]
    for name, records, columns in (("win_rates.csv", win_rows, WIN_RATE_COLUMNS),
                                   ("sign_tests.csv", sign_rows, SIGN_TEST_COLUMNS)):
        frame = pd.DataFrame.from_records(records, columns=list(columns))
        atomic_write_bytes(report_dir / name, frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))


def human_sections(
    repo: Repository,
    study_ids: Sequence[int],
    analysis: StudyAnalysis,
    labeller: Labeller,
    report_dir: Path,
) -> tuple[list[Section], list[Section]]:
    """The human-evaluation sections of a report (studies, ratings chart, position bias, annotators) and its
    appendix sections (every pair, sign tests, ratings); writes ``ratings.png`` and the pair CSVs."""
    label = analysis.source
    sim_note = (
        " These votes come from **simulated annotators** (`sim-…`, harness.simulate.votes), not people: they show "
        "the pipeline works and what the measurements imply, and are replaced by human votes once people vote."
        if analysis.source != "human annotators" and len(analysis.votes) else ""
    )
    sections = [Section("Human evaluation", (_design_paragraph(repo, study_ids, analysis) + sim_note,))]
    result = analysis.result
    write_pair_csvs(result, labeller, report_dir)
    if result is None:
        text = (f"The votes cannot be analysed: {analysis.problem}." if analysis.problem
                else "No votes yet: win rates appear here once annotators have voted.")
        sections.append(Section("Win rates", (text,), level=3))
        return sections, []
    votes = analysis.votes
    note = "simulated votes" if label == "simulated annotators" else ("" if label == "human annotators" else label)
    fig = ratings_figure({p.protocol: p.ratings for p in result.protocols}, labeller, note=note)
    figures: tuple[Figure, ...] = ()
    if fig is not None:
        atomic_write_bytes(report_dir / "ratings.png", png_bytes(fig))
        figures = (Figure(report_dir / "ratings.png", "Bradley–Terry ratings per protocol (Elo scale, 1000 = the "
                          "average system) with 95% bootstrap intervals; numbers in the appendix."),)
    sections.append(Section(f"Ratings and position bias, {label}", (), (bias_table(result),), figures, level=3))
    excluded = ", ".join(e.annotator for e in result.excluded) or "nobody"
    summary = (
        f"{votes['annotator'].nunique()} annotators; {int(votes['expected'].notna().sum())} attention-check votes; "
        f"excluded: {excluded}."
    )
    sections.append(Section(
        f"Annotators, {label}",
        (summary,),
        (annotator_table(votes, result), agreement_table(votes)),
        level=3,
    ))
    appendix = [
        Section(f"Appendix A: every pair, {label}", (), (all_pairs_table(result, labeller),)),
        Section(f"Appendix B: sign tests, {label}", (), (sign_test_table(result, labeller),)),
        Section(f"Appendix C: Bradley–Terry ratings, {label}", (), (ratings_table(result, labeller),)),
    ]
    return sections, appendix


def _design_paragraph(repo: Repository, study_ids: Sequence[int], analysis: StudyAnalysis) -> str:
    parts = []
    for sid in study_ids:
        study = repo.get_study(sid)
        if study is None:
            continue
        p = repo.progress(sid)
        parts.append(
            f"study {sid} `{study.name}` ({study.protocol_name}, \"{study.protocol.get('question', '')}\", "
            f"{study.status}): {p.items} items, {p.votes}/{p.votes_target} votes"
        )
    return (f"Votes: {analysis.source}. " + "; ".join(parts) + ".") if parts else "No studies yet."
