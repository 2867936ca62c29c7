"""The Results page (behind the admin secret): the paper's answer per run, live from the store.

Studies are grouped by run (a study named ``<run id>/<protocol>``, as `harness study create` names them; any other
name is its own group). Per run the page shows what the report leads with, from the same shared code
(`eval_protocols.human.headline`, `eval_protocols.human.figures`, `eval_protocols.human.labels`):

* a warning when any vote comes from a simulated annotator (``sim-…``), and who voted per protocol;
* the headline per protocol: P(unCLIP beats GLIDE) pooled over matched guidance scales, interval, n;
* the Fig. 10 style plot (P(unCLIP beats GLIDE) against the guidance scale, colour = protocol, line = prior);
* Table 1 (unCLIP vs GLIDE at matched guidance) and the diffusion-vs-AR-prior table;
* every pair's win rate in an expander.

Systems are named from the run's stored config (its generators), as in the report. The interval method, the tie rule
and the exclusion policy are the page's controls; their defaults are the report's (normal approximation, ties half a
win, `ExclusionPolicy()`), so by default the page shows the report's numbers. Votes are read fresh on every rerun;
attention checks never count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from dashboards import tables
from eval_protocols.human.figures import headline_figure, png_bytes
from eval_protocols.human.headline import (
    Headline,
    Row,
    headline,
    protocol_sentence,
    rate_cell,
    row_title,
    vote_kinds,
    votes_note,
)
from eval_protocols.human.intervals import CI_METHODS
from eval_protocols.human.labels import Labeller, protocol_key, protocol_title
from eval_protocols.human.quality import Exclusion, ExclusionPolicy, apply_exclusion_policy
from eval_protocols.human.votes import normalize_votes
from eval_protocols.human.winrates import WinRate, win_rates
from harness.storage.records import StudyRecord
from harness.storage.repository import Repository


@dataclass(frozen=True)
class RunResults:
    """What the page shows for one run: its votes (attention checks removed), rates, labels and headline."""

    run_id: str
    studies: tuple[StudyRecord, ...]
    votes: pd.DataFrame
    rates: tuple[WinRate, ...]
    labeller: Labeller
    head: Headline | None
    kinds: Mapping[str, str]
    """Who voted per protocol (`vote_kinds`)."""
    excluded: tuple[Exclusion, ...] = ()
    """Annotators the exclusion policy removed, with reasons."""


def run_of(study: StudyRecord) -> str:
    """The set of studies a study belongs to: ``toy-1a2b/photorealism`` → ``toy-1a2b``, a named set
    ``toy-1a2b/pilot/photorealism`` → ``toy-1a2b/pilot``; a name without ``/`` is its own group."""
    return study.name.rpartition("/")[0] or study.name


def studies_by_run(studies: Sequence[StudyRecord]) -> dict[str, list[StudyRecord]]:
    """Studies grouped by `run_of`, runs in order of their first study."""
    groups: dict[str, list[StudyRecord]] = {}
    for s in studies:
        groups.setdefault(run_of(s), []).append(s)
    return groups


def run_results(
    repo: Repository,
    run_id: str,
    studies: Sequence[StudyRecord],
    *,
    ci: str = "normal",
    ties: str = "half",
    exclude: bool = True,
) -> RunResults:
    """Votes, win rates and the headline of one run's studies, read from the store now.

    With ``exclude`` the report's default annotator exclusion policy runs first (`ExclusionPolicy()`, annotators
    named as the report names them: by name, ``#id`` only when two in one study share one), so with the paper's
    interval (``normal``) and ties as half the page shows the report's numbers.
    """
    frames = []
    for study in studies:
        items = {i.item_id: i for i in repo.list_items(study.study_id)}
        annotators = {a.annotator_id: a for a in repo.list_annotators(study.study_id)}
        frame = tables.vote_table(repo.load_votes(study.study_id), items, {study.study_id: study}, annotators)
        counts = Counter(a.name for a in annotators.values())
        names = {f"annotator-{i}": a.name if counts[a.name] == 1 else f"{a.name}#{i}" for i, a in annotators.items()}
        frames.append(frame.assign(annotator=frame["annotator"].map(names).fillna(frame["annotator"])))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(tables.VOTE_COLUMNS))
    excluded: tuple[Exclusion, ...] = ()
    if exclude and len(table):
        kept = apply_exclusion_policy(normalize_votes(table), ExclusionPolicy())
        votes, excluded = kept.votes.reset_index(drop=True), kept.excluded
    else:
        votes = tables.ordinary_vote_table(table)
    run = repo.get_run(run_id.split("/", 1)[0])  # a named set of studies: <run id>/<name>
    config = run.config if run is not None else {}
    systems = set(votes["model_a"].astype(str)) | set(votes["model_b"].astype(str)) if len(votes) else set()
    labeller = Labeller.from_config(config, systems)
    if votes.empty:
        return RunResults(run_id, tuple(studies), votes, (), labeller, None, {}, excluded)
    rates = win_rates(votes, ties_mode=ties, ci=ci, level=0.95)  # type: ignore[arg-type]
    study_cfg = config.get("study")
    baseline = str(study_cfg.get("baseline") or "") if isinstance(study_cfg, Mapping) else ""
    head = headline(rates, labeller, baseline=baseline or None)
    return RunResults(run_id, tuple(studies), votes, rates, labeller, head, vote_kinds(votes), excluded)


def rows_frame(rows: Sequence[Row], protocols: Sequence[str], labeller: Labeller) -> pd.DataFrame:
    """Table 1 (or the prior table) as a frame: ``comparison`` and a ``xx.x% ± y.y% (n = N)`` cell per protocol."""
    records = []
    for r in rows:
        record = {"comparison": row_title(r, labeller)}
        for p in protocols:
            m = r.cells.get(p)
            record[protocol_title(p)] = "—" if m is None else f"{rate_cell(m)} (n = {m.n})"
        records.append(record)
    return pd.DataFrame(records, columns=["comparison", *(protocol_title(p) for p in protocols)])


def render_results(repo: Repository) -> None:
    """The page: controls, then one block per run (see the module docstring)."""
    st.title("Results")
    methods = [m for m in CI_METHODS if m != "bootstrap"]
    cols = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
    ci = cols[0].selectbox("Interval", methods, index=methods.index("normal"), key="results_ci",
                           help="normal: the paper's normal approximation (as the report)")
    ties = cols[1].selectbox("Ties (Not sure)", ["half", "drop"], key="results_ties")
    exclude = cols[2].checkbox("Exclude annotators as the report does", value=True, key="results_exclude",
                               help="attention checks passed < 80% (with ≥ 3 checks), or > 50% implausibly fast votes")
    cols[3].button("Refresh", key="results_refresh")
    studies = repo.list_studies()
    if not studies:
        st.info("No studies yet.")
        return
    for k, (run_id, group) in enumerate(studies_by_run(studies).items()):
        _render_run(repo, run_results(repo, run_id, group, ci=ci, ties=ties, exclude=exclude), k, ci, ties)


def _render_run(repo: Repository, res: RunResults, k: int, ci: str, ties: str) -> None:
    st.header(f"Run {res.run_id}")
    progress = []
    for s in res.studies:
        p = repo.progress(s.study_id)
        progress.append(f"{s.name} ({protocol_title(s.protocol_name)}, {s.status}): {p.votes}/{p.votes_target} votes")
    st.caption("; ".join(progress))
    if res.excluded:
        st.caption("Excluded: " + "; ".join(f"{e.annotator} ({', '.join(e.reasons)})" for e in res.excluded))
    if res.votes.empty:
        st.caption("No votes yet (attention checks are not counted).")
        return
    simulated = int(res.votes["simulated"].sum())
    if simulated:
        st.warning(f"**Simulated votes**: {simulated} of {len(res.votes)} votes come from simulated annotators "
                   "(`sim-…`), not people (" + votes_note(res.kinds, sorted(res.kinds, key=protocol_key)) + ").")
    rule = "ties count half a win" if ties == "half" else "ties dropped"
    if res.head is None:
        st.info("No Table 1: this run compares no unCLIP system with a GLIDE system; every pair is below.")
    else:
        _render_headline(res, res.head, k, f"95% {ci} intervals, {rule}")
    with st.expander("Every pair", expanded=res.head is None):
        st.caption(f"P(A beats B) with {rule}, 95% {ci} interval, two-sided sign-test p.")
        st.dataframe(tables.win_rate_table(res.rates, res.labeller).round(3), hide_index=True)


def _render_headline(res: RunResults, head: Headline, k: int, how: str) -> None:
    st.subheader(f"P({head.challenger_name} beats {head.opponent_name})")
    for p in head.protocols:
        st.markdown(protocol_sentence(head, p, res.kinds.get(p, "human")))
    fig = headline_figure(head, res.labeller, note=votes_note(res.kinds, head.protocols))
    if fig is not None:
        with st.container(key=f"headline-plot-{k}"):
            st.image(png_bytes(fig), alt=f"P({head.challenger_name} beats {head.opponent_name}) against the "
                                         "guidance scale")
    st.subheader(f"Table 1: P({head.challenger_name} beats {head.opponent_name})")
    st.caption(f"Same decoder guidance scale on both sides; {how}; n = votes behind the cell.")
    st.table(rows_frame(head.rows, head.protocols, res.labeller), hide_index=True)
    if head.priors:
        st.subheader("unCLIP priors: P(diffusion prior beats AR prior)")
        st.table(rows_frame(head.priors, head.prior_protocols, res.labeller), hide_index=True)
