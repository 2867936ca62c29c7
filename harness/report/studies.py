"""The human-evaluation part of the report: every number from the votes in the store, one analysis per report.

All studies of a report are analysed together by `eval_protocols.human.analysis.analyze_votes` (ties count as half a
win, normal-approximation intervals as in unCLIP App. B, the default annotator exclusion policy applied first), so
the Holm correction runs over every comparison the report shows. Sections:

* Table 1 style: P(A beats B) ± 95% half-width, with n, per protocol (photorealism, caption similarity, diversity);
* the full table: wins / losses / ties, interval, sign-test p and Holm-adjusted p;
* win rate vs guidance scale (paper Fig. 10 style) when a system is swept as ``<system>@g=...``;
* Bradley–Terry ratings with bootstrap intervals, position bias per protocol;
* annotators: attention checks, leave-one-out agreement, response times, exclusions with reasons; α and κ.

Votes of simulated annotators (`harness.simulate.votes`) are labelled as such in every heading that shows them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from eval_protocols.human.analysis import AnalysisOptions, AnalysisResult, analyze_votes
from eval_protocols.human.quality import ExclusionPolicy, agreement, annotator_quality
from harness.analyze.vote_table import vote_source, votes_of_studies
from harness.report.document import Figure, Section, Table, rows
from harness.report.figures import win_rate_vs_guidance

if TYPE_CHECKING:
    from harness.storage.repository import Repository

PROTOCOL_ORDER: tuple[str, ...] = ("photorealism", "caption_similarity", "diversity")
PROTOCOL_TITLES: dict[str, str] = {
    "photorealism": "Photorealism",
    "caption_similarity": "Caption similarity",
    "diversity": "Diversity",
}


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


def table1(result: AnalysisResult) -> Table:
    """Rows: system pairs; columns: protocols; cells ``p ± half-width (n = N)`` (unCLIP Table 1 layout)."""
    protocols = sorted((p.protocol for p in result.protocols), key=_protocol_key)
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for p in result.protocols:
        for w in p.win_rates:
            half = (w.ci_high - w.ci_low) / 2
            cells.setdefault((w.system_a, w.system_b), {})[p.protocol] = f"{_pct(w.win_rate)} ± {_pct(half)} (n = {w.n})"
    body = [(f"P({a} beats {b})", *(cells[(a, b)].get(p, "—") for p in protocols)) for a, b in sorted(cells)]
    return Table(
        ("comparison", *(PROTOCOL_TITLES.get(p, p) for p in protocols)),
        rows(body),
        caption=f"Win rates with {result.options.level:.0%} normal-approximation intervals (unCLIP Table 1 layout); "
        "ties count as half a win for each side; n = votes behind each cell after exclusions.",
    )


def _protocol_key(name: str) -> tuple[int, str]:
    return (PROTOCOL_ORDER.index(name) if name in PROTOCOL_ORDER else len(PROTOCOL_ORDER), name)


def pair_table(result: AnalysisResult) -> Table:
    """Every comparison: counts, win rate with interval, raw and Holm-adjusted two-sided sign-test p-values."""
    body = []
    for p in sorted(result.protocols, key=lambda p: _protocol_key(p.protocol)):
        for w in p.win_rates:
            body.append(
                (p.protocol, w.system_a, w.system_b, w.wins, w.losses, w.ties,
                 f"{_pct(w.win_rate)} [{_pct(w.ci_low)}, {_pct(w.ci_high)}]", f"{w.p_value:.3g}", f"{w.p_value_holm:.3g}")
            )
    n = sum(len(p.win_rates) for p in result.protocols)
    return Table(
        ("protocol", "A", "B", "A wins", "B wins", "ties", "P(A beats B) [95% CI]", "p", "p (Holm)"),
        rows(body),
        caption=f"Two-sided exact binomial (sign) test on decisive votes; Holm correction over the {n} comparisons "
        "of this report.",
    )


def ratings_table(result: AnalysisResult) -> Table:
    """Bradley–Terry ratings (Elo scale) with bootstrap intervals, per protocol."""
    body = []
    for p in sorted(result.protocols, key=lambda p: _protocol_key(p.protocol)):
        r = p.ratings
        order = sorted(range(len(r.systems)), key=lambda i: -r.ratings[i])
        for rank, i in enumerate(order, 1):
            ci = f"[{r.ci_low[i]:.0f}, {r.ci_high[i]:.0f}]" if r.ci_low and r.ci_high else "—"
            note = "" if r.converged else "no finite MLE (a system never lost)"
            body.append((p.protocol, rank, r.systems[i], f"{r.ratings[i]:.0f}", ci, note))
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
    for p in sorted(result.protocols, key=lambda p: _protocol_key(p.protocol)):
        b = p.position_bias
        if b is None:
            continue
        rate = f"{_pct(b.left_win_rate)} [{_pct(b.ci_low)}, {_pct(b.ci_high)}]"
        body.append((p.protocol, b.left_wins, b.decisive, rate, f"{b.p_value:.3g}"))
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
        (a.protocol, f"{a.krippendorff_alpha:.3f}", f"{a.fleiss_kappa:.3f}", a.n_units, a.n_votes)
        for a in agreement(votes)
    ]
    return Table(
        ("protocol", "Krippendorff α", "Fleiss κ", "units with ≥ 2 votes", "votes"),
        rows(body),
        caption="Inter-annotator agreement over (caption, pair) units, before exclusions.",
    )


def human_sections(
    repo: Repository,
    study_ids: Sequence[int],
    report_dir: Path,
    *,
    baseline: str | None = None,
    seed: int = 0,
    n_bootstrap: int = 200,
) -> tuple[list[Section], StudyAnalysis]:
    """The human-evaluation sections of a report (design, Table 1, details, figures, annotators)."""
    analysis = analyze_studies(repo, study_ids, baseline=baseline, n_bootstrap=n_bootstrap, seed=seed)
    label = analysis.source
    sim_note = (
        " These votes come from **simulated annotators** (`sim-…`, harness.simulate.votes), not people: they show "
        "the pipeline works and what the measurements imply, and are replaced by human votes once people vote."
        if analysis.source != "human annotators" and len(analysis.votes) else ""
    )
    sections = [Section("Human evaluation", (_design_paragraph(repo, study_ids, analysis) + sim_note,))]
    result = analysis.result
    if result is None:
        text = (f"The votes cannot be analysed: {analysis.problem}." if analysis.problem
                else "No votes yet: win rates appear here once annotators have voted.")
        sections.append(Section("Win rates", (text,), level=3))
        return sections, analysis
    votes = analysis.votes
    sections.append(Section(f"Table 1: P(A beats B), {label}", (), (table1(result), pair_table(result)), level=3))
    all_rates = [w for p in result.protocols for w in p.win_rates]
    fig = win_rate_vs_guidance(all_rates, report_dir / "winrate_vs_guidance.png")
    if fig is not None:
        sections.append(Section(f"Win rate vs guidance scale, {label}", (), (), (
            Figure(fig, "P(swept system beats opponent) with 95% intervals against the guidance scale (Fig. 10 "
                        "style)."),), level=3))
    sections.append(Section(f"Ratings and position bias, {label}", (), (ratings_table(result), bias_table(result)),
                            level=3))
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
    return sections, analysis


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
