"""Records → pandas tables for the admin and results pages (pure functions, no Streamlit, no store access).

The export is the vote table of DESIGN.md: ``model_a, model_b, winner`` plus ``annotator, prompt, protocol, left``
(the system shown on the left), and the optional columns `eval_protocols.human.votes` reads: ``expected`` (the
correct ``winner`` of an attention check, empty otherwise) and ``latency_ms``. ``study``, ``item``, ``choice`` (screen
space) and ``created_at`` follow for traceability, and ``simulated`` (the annotator is a simulated one, named
``sim-…``: `harness.storage.records.SIMULATED_PREFIX`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from eval_protocols.human.headline import reading_order
from eval_protocols.human.labels import Labeller, protocol_key, protocol_title
from eval_protocols.human.winrates import WinRate
from harness.storage.records import AnnotatorRecord, ItemRecord, StudyProgress, StudyRecord, VoteRecord

VOTE_COLUMNS: tuple[str, ...] = (
    "model_a", "model_b", "winner", "annotator", "prompt", "protocol", "left",
    "expected", "latency_ms", "study", "item", "choice", "created_at", "simulated",
)


def expected_winner(item: ItemRecord) -> str | None:
    """The ``winner`` (model space) an attention check expects, or ``None`` for an ordinary item.

    ``item.expected`` is a screen side; the system on that side is ``system_a`` when ``left == "a"`` and the side is
    ``left`` (or ``left == "b"`` and the side is ``right``), else ``system_b``.
    """
    if not item.is_attention_check or item.expected is None:
        return None
    a_on_expected_side = (item.left == "a") == (item.expected == "left")
    return "model_a" if a_on_expected_side else "model_b"


def vote_table(
    votes: Sequence[VoteRecord],
    items: Mapping[int, ItemRecord],
    studies: Mapping[int, StudyRecord],
    annotators: Mapping[int, AnnotatorRecord] | None = None,
) -> pd.DataFrame:
    """The DESIGN.md vote table of ``votes`` (one row per vote, in stored order; `VOTE_COLUMNS`).

    Args:
        votes: votes from `Repository.load_votes`.
        items: item id → item, covering every vote's item (for attention-check answers).
        studies: study id → study (its name goes into ``study``).
        annotators: annotator id → annotator, for ``simulated`` (without it, or for an unknown annotator: False).
    """
    annotators = annotators or {}
    rows = []
    for v in votes:
        item = items.get(v.item_id)
        study = studies.get(v.study_id)
        rows.append(
            {
                "model_a": v.model_a,
                "model_b": v.model_b,
                "winner": v.winner,
                "annotator": f"annotator-{v.annotator_id}",
                "prompt": v.prompt,
                "protocol": v.protocol,
                "left": v.left_model,
                "expected": None if item is None else expected_winner(item),
                "latency_ms": int(v.response_ms),
                "study": study.name if study is not None else str(v.study_id),
                "item": v.item_id,
                "choice": v.choice,
                "created_at": v.created_at.isoformat(),
                "simulated": bool(v.annotator_id in annotators and annotators[v.annotator_id].simulated),
            }
        )
    return pd.DataFrame(rows, columns=list(VOTE_COLUMNS))


def ordinary_vote_table(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a vote table that are not attention checks (what win rates are computed from)."""
    return table[table["expected"].isna()].reset_index(drop=True)


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    """UTF-8 CSV without the index."""
    return table.to_csv(index=False).encode("utf-8")


def to_parquet_bytes(table: pd.DataFrame) -> bytes:
    """Parquet (pyarrow) without the index."""
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    return buf.getvalue()


def study_table(studies: Iterable[StudyRecord], progress: Mapping[int, StudyProgress]) -> pd.DataFrame:
    """One row per study: id, name, protocol, status, items, votes / target, annotators."""
    rows = []
    for s in studies:
        p = progress[s.study_id]
        rows.append({"id": s.study_id, "name": s.name, "protocol": s.protocol_name, "status": s.status,
                     "items": p.items, "votes": p.votes, "target": p.votes_target, "annotators": len(p.annotators)})
    return pd.DataFrame(rows, columns=["id", "name", "protocol", "status", "items", "votes", "target", "annotators"])


def annotator_table(progress: StudyProgress) -> pd.DataFrame:
    """Per annotator: counts and the attention-check pass rate (empty when they met no check yet)."""
    rows = []
    for a in progress.annotators:
        rate = a.attention_passed / a.attention_checks if a.attention_checks else math.nan
        rows.append({"annotator": f"annotator-{a.annotator_id}", "name": a.name, "completed": a.completed,
                     "skipped": a.skipped, "broken": a.broken, "pending": a.pending, "remaining": a.remaining,
                     "attention checks": a.attention_checks, "passed": a.attention_passed, "pass rate": rate})
    return pd.DataFrame(rows, columns=["annotator", "name", "completed", "skipped", "broken", "pending", "remaining",
                                       "attention checks", "passed", "pass rate"])


def item_table(progress: StudyProgress, items: Mapping[int, ItemRecord]) -> pd.DataFrame:
    """Per item: position, whether it is an attention check, completed votes against the target, other counts."""
    rows = []
    for p in progress.per_item:
        item = items.get(p.item_id)
        rows.append({"item": p.item_id, "position": p.position,
                     "check": bool(item.is_attention_check) if item is not None else False,
                     "completed": p.completed, "target": p.votes_target, "pending": p.pending,
                     "skipped": p.skipped, "broken": p.broken})
    return pd.DataFrame(rows, columns=["item", "position", "check", "completed", "target", "pending", "skipped",
                                       "broken"])


def win_rate_table(rates: Sequence[WinRate], labeller: Labeller | None = None) -> pd.DataFrame:
    """One row per protocol and pair: W/L/T, n, P(A beats B) and its interval, as percentages; with a ``labeller``
    systems by their readable labels, each pair read in `reading_order` (unCLIP first), else by id as stored."""
    name = labeller.label if labeller is not None else str
    if labeller is not None:
        rates = reading_order(rates, labeller)
    rows = [
        {"protocol": protocol_title(r.protocol), "system A": name(r.system_a), "system B": name(r.system_b),
         "A wins": r.wins, "B wins": r.losses, "not sure": r.ties, "n": r.n, "P(A beats B) %": 100 * r.win_rate,
         f"{r.level:.0%} CI low %": 100 * r.ci_low, f"{r.level:.0%} CI high %": 100 * r.ci_high,
         "p (sign test)": r.p_value}
        for r in (rates if labeller is not None else sorted(rates, key=lambda r: protocol_key(r.protocol)))
    ]
    return pd.DataFrame(rows)
