"""From votes in the store to the vote table of DESIGN.md, the input of every statistic.

`study_vote_table(repo, study_id)` turns `Repository.load_votes` into a `pandas.DataFrame` with the contract columns
``model_a, model_b, winner, annotator, prompt, protocol, left`` plus

* ``expected``: for votes on attention-check items, the correct answer in model space (``model_a`` / ``model_b``,
  from the item's correct screen side and the side system A was shown on); empty for ordinary votes. The statistics
  (`eval_protocols.human.votes.ordinary_votes`) drop these rows from win rates and ratings and use them for
  annotator quality control only;
* ``latency_ms``: the vote's response time;
* ``item_id``, ``annotator_id``, ``study_id``: store ids, for joins (e.g. with the items' images);
* ``simulated``: whether the annotator is a simulated one (name starting with ``sim-``, see
  `harness.simulate.votes`).

``annotator`` is the annotator's name, suffixed ``#<id>`` only when two annotators of one study share a name.
``prompt`` is the caption text, so bootstraps cluster and agreement groups by caption.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from harness.errors import HarnessError
from harness.storage.records import SIMULATED_PREFIX

if TYPE_CHECKING:
    from harness.storage.records import ItemRecord
    from harness.storage.repository import Repository

COLUMNS: tuple[str, ...] = (
    "model_a", "model_b", "winner", "annotator", "prompt", "protocol", "left",
    "expected", "latency_ms", "item_id", "annotator_id", "study_id", "simulated",
)


def expected_winner(item: ItemRecord) -> str | None:
    """The model-space answer of an attention check (``None`` for ordinary items).

    The item stores the correct *screen* side; system A is on the left iff ``item.left == "a"``.
    """
    if not item.is_attention_check or item.expected is None:
        return None
    a_on_left = item.left == "a"
    return "model_a" if (item.expected == "left") == a_on_left else "model_b"


def study_vote_table(repo: Repository, study_id: int) -> pd.DataFrame:
    """Every vote of one study as a vote table (attention-check votes included, marked by ``expected``).

    Args:
        repo: the store.
        study_id: the study.

    Returns:
        A frame with `COLUMNS`, one row per vote in storage order (possibly empty).

    Raises:
        HarnessError: the study does not exist.
    """
    if repo.get_study(study_id) is None:
        known = ", ".join(str(s.study_id) for s in repo.list_studies()[:10]) or "none"
        raise HarnessError(f"study {study_id} does not exist (known: {known}); list studies with `harness study list`")
    items = {i.item_id: i for i in repo.list_items(study_id)}
    annotators = repo.list_annotators(study_id)
    counts = Counter(a.name for a in annotators)
    names = {a.annotator_id: a.name if counts[a.name] == 1 else f"{a.name}#{a.annotator_id}" for a in annotators}
    records = []
    for v in repo.load_votes(study_id):
        item = items[v.item_id]
        name = names.get(v.annotator_id, f"annotator#{v.annotator_id}")
        records.append(
            {
                "model_a": v.model_a,
                "model_b": v.model_b,
                "winner": v.winner,
                "annotator": name,
                "prompt": v.prompt,
                "protocol": v.protocol,
                "left": v.left_model,
                "expected": expected_winner(item),
                "latency_ms": v.response_ms,
                "item_id": v.item_id,
                "annotator_id": v.annotator_id,
                "study_id": v.study_id,
                "simulated": name.startswith(SIMULATED_PREFIX),
            }
        )
    return pd.DataFrame.from_records(records, columns=list(COLUMNS))


def votes_of_studies(repo: Repository, study_ids: Sequence[int]) -> pd.DataFrame:
    """The vote tables of several studies, concatenated (one report: one Holm family)."""
    frames = [study_vote_table(repo, sid) for sid in study_ids]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(frames, ignore_index=True)


def run_study_ids(repo: Repository, run_id: str, name: str = "") -> list[int]:
    """Ids of the studies `harness.study.design.create_studies` made for a run: named ``<run id>/<protocol>``, or
    ``<run id>/<name>/<protocol>`` for the set of studies called ``name`` (``study.name``)."""
    prefix = f"{run_id}/{name}/" if name else f"{run_id}/"
    return [s.study_id for s in repo.list_studies() if s.name.startswith(prefix) and "/" not in s.name[len(prefix):]]


def vote_source(votes: pd.DataFrame) -> str:
    """``"simulated annotators"``, ``"human annotators"``, ``"mixed: N simulated + M human votes"`` or ``"no votes"``."""
    if len(votes) == 0:
        return "no votes"
    sim = int(votes["simulated"].sum()) if "simulated" in votes.columns else 0
    human = len(votes) - sim
    if human == 0:
        return "simulated annotators"
    if sim == 0:
        return "human annotators"
    return f"mixed: {sim} simulated + {human} human votes"


def write_votes(votes: pd.DataFrame, path: str) -> None:
    """Write a vote table as ``.csv``, ``.parquet`` or ``.json`` (a list of objects, as FastChat writes it).

    Raises:
        HarnessError: unknown extension.
    """
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix == "csv":
        votes.to_csv(path, index=False)
    elif suffix in ("parquet", "pq"):
        votes.to_parquet(path, index=False)
    elif suffix == "json":
        votes.to_json(path, orient="records", indent=1)
    else:
        raise HarnessError(f"--out {path}: unknown format; end the file name in .csv, .parquet or .json")
