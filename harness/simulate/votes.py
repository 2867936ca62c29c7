"""Simulated annotators that vote through the repository, exactly as people do, until every item's quota is met.

Until humans vote, a run's report still needs win rates; they come from simulated annotators, clearly labelled
everywhere: their names start with ``sim-`` (`harness.storage.records.SIMULATED_PREFIX`), reports say "simulated
annotators", and ``<run dir>/simulated_votes.json`` records who they were and which judges they used.

Each one is invited with `Repository.create_annotator`, asks for work with `Repository.next_item_for` and answers
through `Repository.record_votes_and_next` (the voting page's `record_vote_and_next`, many in one transaction), so
quotas, one-vote-per-item, side counterbalancing and attention checks are enforced by the same code as for people.
The loop is round-robin: the next to vote is the annotator, among those with an item, who has cast the fewest votes
in the study (lowest index on ties); votes are stored in batches that follow that order until an annotator would
vote twice (`next_turns`), so batching changes nothing but the speed. The order is read back from the store, so a
simulation killed between two batches resumes with the very votes it would have cast. It stops when no annotator gets an item any more: with at least as many annotators as the largest vote
target, every quota is then met exactly.

Decision model of a careful annotator on an item with left/right sides L, R (`harness.simulate.judges` scores):

    Δ = (s(L) − s(R)) / σ_protocol + β + η·ε,   ε ~ N(0, 1)
    choice = "tie" if ties are allowed and |Δ| < τ, else "left" if Δ > 0 else "right"

with σ_protocol the median of |s(A) − s(B)| over the study's ordinary items (so Δ and the noise η are in units of
the typical difference between the two sides of an item), β the position bias (towards the left), η the noise and τ = `TIE_MARGIN`. A careless
annotator answers left / right / tie with probabilities 0.45 / 0.45 / 0.1 (no tie when not offered), fast.
Response times: careful ≈ lognormal around 3 s, careless ≈ 0.5 s. Every draw of a vote comes from a generator seeded
by (seed, annotator index, item position, protocol), so a vote does not depend on the order of the loop.

A rerun adds no votes: the existing ``sim-`` annotators are reused, and a study whose quotas are met hands out
nothing. Studies with human votes, and studies that are not open, are left alone. ``<run dir>/simulated_votes.json``
describes the state of the store (votes per study), never the history of the calls, so an interrupted and an
uninterrupted run leave the same file.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from harness.config import RunConfig, SimulateConfig
from harness.errors import HarnessError
from harness.faults import fault_point
from harness.prompts import PromptRecord
from harness.rundir import RunDir
from harness.score.inputs import image_loader
from harness.simulate.judges import ImageJudge, Judge, judge_for, stack
from harness.storage.records import SIMULATED_PREFIX, Answer

if TYPE_CHECKING:
    from harness.storage.records import ItemRecord
    from harness.storage.repository import Repository

TIE_MARGIN = 0.15
CARELESS_PROBS = (0.45, 0.45, 0.10)
CAREFUL_MEDIAN_MS = 3000.0
CARELESS_MEDIAN_MS = 500.0
SIMULATION_RECORD = "simulated_votes.json"


@dataclass(frozen=True)
class SimulatedStudyVotes:
    """What the simulated annotators did in one study.

    Attributes:
        study_id: the study.
        votes_added: votes recorded by this call (0 on a rerun).
        annotators: names of the simulated annotators of the study.
        careless: those of them who answer at random.
        judge_id: the judge (extractor, weights) their answers came from.
        skipped: why the study was left alone (``""`` when it was not).
    """

    study_id: int
    votes_added: int
    annotators: tuple[str, ...]
    careless: tuple[str, ...]
    judge_id: str
    skipped: str = ""


def annotator_name(k: int) -> str:
    """``sim-01``, ``sim-02``, ...: the name of the k-th (0-based) simulated annotator."""
    return f"{SIMULATED_PREFIX}{k + 1:02d}"


def careless_indices(n: int, share: float, seed: int) -> frozenset[int]:
    """Which of ``n`` annotators are careless: ``round(share·n)`` of them, drawn with ``seed``."""
    if not 0.0 <= share <= 1.0:
        raise HarnessError(f"simulate.careless_share = {share} is not in [0, 1]; use e.g. 0.15")
    rng = np.random.default_rng([seed, 0xCA4E1E55])
    return frozenset(int(i) for i in rng.permutation(n)[: round(share * n)])


def vote_rng(seed: int, annotator: int, position: int, protocol: str) -> np.random.Generator:
    """The generator of one annotator's vote on one item (order-independent)."""
    return np.random.default_rng([seed, annotator, position, zlib.crc32(protocol.encode("utf-8"))])


def decide(
    delta: float, *, careless: bool, allow_tie: bool, cfg: SimulateConfig, rng: np.random.Generator
) -> tuple[str, int]:
    """One answer (``left | right | tie``) and its response time in ms (module docstring).

    Args:
        delta: standardised score difference left − right, (s(L) − s(R)) / σ.
        careless: whether the annotator answers at random.
        allow_tie: whether "Not sure" is offered.
        cfg: position bias and noise.
        rng: this vote's generator.
    """
    if careless:
        probs = np.array(CARELESS_PROBS if allow_tie else (0.5, 0.5, 0.0))
        choice = str(rng.choice(("left", "right", "tie"), p=probs / probs.sum()))
        return choice, int(CARELESS_MEDIAN_MS * rng.lognormal(0.0, 0.3))
    d = delta + cfg.position_bias + cfg.noise * rng.standard_normal()
    if allow_tie and abs(d) < TIE_MARGIN:
        choice = "tie"
    else:
        choice = "left" if d > 0 else "right"
    return choice, int(CAREFUL_MEDIAN_MS * rng.lognormal(0.0, 0.4))


class ItemScores:
    """Judge scores of both sides of every item of a study, cached by the side's image hashes."""

    def __init__(self, judge: Judge, load: Callable[[tuple[str, ...]], np.ndarray]) -> None:
        self.judge = judge
        self.load = load
        self._cache: dict[tuple[tuple[str, ...], str], float] = {}

    def side(self, images: tuple[str, ...], caption: str) -> float:
        key = (images, caption)
        if key not in self._cache:
            self._cache[key] = self.judge(self.load(images), caption)
        return self._cache[key]

    def prefetch(self, items: list[ItemRecord], batch: int = 64) -> None:
        """Score the one-image sides of ``items`` in batches of up to ``batch`` images per caption, for a judge
        that scores images one by one (`ImageJudge`): a network judge then runs once per batch instead of once per
        side (the oracle judge of 576 pair items: ~50 s one at a time on 2 cores)."""
        if not isinstance(self.judge, ImageJudge):
            return
        by_caption: dict[str, dict[str, None]] = {}  # caption -> image hashes, first-seen order, each once
        for item in items:
            for side in (item.images_a, item.images_b):
                if len(side) == 1 and (side, item.prompt) not in self._cache:
                    by_caption.setdefault(item.prompt, {})[side[0]] = None
        for caption, wanted in by_caption.items():
            shas = list(wanted)
            for start in range(0, len(shas), batch):
                chunk = tuple(shas[start : start + batch])
                for sha, score in zip(chunk, self.judge.score_each(self.load(chunk), caption), strict=True):
                    self._cache[((sha,), caption)] = float(score)

    def scale(self, items: list[ItemRecord], progress: str = "") -> float:
        """σ = median of |s(A) − s(B)| over the ordinary items: the typical difference (robust to a few extreme
        items; falls back to the root mean square, then 1, when the median is 0). Judging every item is the bulk
        of the work: a non-empty ``progress`` shows a bar with that label."""
        self.prefetch(items)
        ordinary = [i for i in items if not i.is_attention_check]
        diffs = np.abs([self.side(i.images_a, i.prompt) - self.side(i.images_b, i.prompt)
                        for i in tqdm(ordinary, desc=progress, unit="item", disable=not progress)])
        for value in (float(np.median(diffs)) if len(diffs) else 0.0,
                      float(np.sqrt(np.mean(diffs**2))) if len(diffs) else 0.0):
            if value > 1e-12:
                return value
        return 1.0

    def delta(self, item: ItemRecord, scale: float) -> float:
        """(s(left) − s(right)) / σ."""
        a, b = self.side(item.images_a, item.prompt), self.side(item.images_b, item.prompt)
        return (a - b) / scale if item.left == "a" else (b - a) / scale



def simulate_study(
    repo: Repository,
    study_id: int,
    judges: Mapping[str, Judge],
    cfg: SimulateConfig,
    *,
    load: Callable[[tuple[str, ...]], np.ndarray] | None = None,
    progress: bool = False,
) -> SimulatedStudyVotes:
    """Let ``cfg.annotators`` simulated annotators vote in one study until every quota is met (idempotent).

    Args:
        repo: the store.
        study_id: the study.
        judges: judges by protocol name (`harness.simulate.judges.make_judges`).
        cfg: the ``[simulate]`` section.
        load: images by sha256 (default: through the store's image paths).
        progress: show a progress bar over the study's votes.

    Raises:
        HarnessError: unknown study, too few annotators for the vote targets, or no judge for the protocol.
    """
    study = repo.get_study(study_id)
    if study is None:
        raise HarnessError(f"study {study_id} does not exist; list studies with `harness study list`")
    items = repo.list_items(study_id)
    try:
        judge = judge_for(dict(judges), study.protocol_name, str(study.protocol.get("attention_check_kind", "")))
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    existing = [a for a in repo.list_annotators(study_id) if a.name.startswith(SIMULATED_PREFIX)]
    careless = careless_indices(cfg.annotators, cfg.careless_share, cfg.seed)
    names = tuple(annotator_name(k) for k in range(cfg.annotators))
    careless_names = tuple(names[k] for k in sorted(careless))

    def result(added: int, skipped: str = "") -> SimulatedStudyVotes:
        return SimulatedStudyVotes(study_id, added, names, careless_names, judge.judge_id, skipped)

    sim_ids = {a.annotator_id for a in existing}
    votes = repo.load_votes(study_id)
    if any(v.annotator_id not in sim_ids for v in votes):
        return result(0, "humans have voted")
    if study.status != "open":
        return result(0, f"study is {study.status}")
    targets = [i.votes_target or study.votes_per_item for i in items]
    if cfg.annotators < max(targets, default=0):
        raise HarnessError(
            f"simulate.annotators = {cfg.annotators} < {max(targets)} votes wanted per item; "
            f"set simulate.annotators >= {max(targets)}"
        )
    by_name = {a.name: a for a in existing}
    annotators = [by_name.get(n) or repo.create_annotator(study_id, n)[0] for n in names]
    current = {k: repo.next_item_for(a.annotator_id, study_id) for k, a in enumerate(annotators)}
    if all(v is None for v in current.values()):
        return result(0)
    per_annotator = Counter(v.annotator_id for v in votes)
    cast = {k: per_annotator[a.annotator_id] for k, a in enumerate(annotators)}
    scores = ItemScores(judge, load or image_loader(repo))
    scale = scores.scale(items, progress=f"judge {study.protocol_name}" if progress else "")
    added = 0
    with tqdm(total=sum(targets), initial=len(votes), desc=f"votes {study.protocol_name}", unit="vote",
              disable=not progress) as bar:
        while batch := next_turns(current, cast):
            answers = []
            for k in batch:
                assignment, item = current[k]  # type: ignore[misc]
                rng = vote_rng(cfg.seed, k, item.position, study.protocol_name)
                choice, ms = decide(
                    scores.delta(item, scale), careless=k in careless, allow_tie=study.allow_tie, cfg=cfg, rng=rng
                )
                answers.append(Answer(assignment.assignment_id, choice, ms, annotators[k].annotator_id))
            for k, (_vote, following) in zip(batch, repo.record_votes_and_next(answers), strict=True):
                current[k] = following
                cast[k] += 1
                added += 1
                fault_point("vote")  # test hook (harness.faults): no-op unless HARNESS_FAULT_AFTER is set
            bar.update(len(batch))
    return result(added)


def next_turns(current: Mapping[int, object | None], cast: Mapping[int, int]) -> list[int]:
    """The annotators that vote next, in order, as one batch (one store transaction).

    The order is the one-vote-at-a-time rule: the annotator with the fewest votes cast (lowest index on ties)
    votes next, then counts one more. A batch follows that order until an annotator would vote a second time (its
    next item is known only once its vote is stored), so batched runs store the same votes as one-by-one runs.
    """
    counts = {k: cast[k] for k, work in current.items() if work is not None}
    batch: list[int] = []
    while counts:
        k = min(counts, key=lambda j: (counts[j], j))
        if k in batch:
            break
        batch.append(k)
        counts[k] += 1
    return batch


def simulated_vote_count(repo: Repository, study_id: int) -> int:
    """How many votes of the study the store holds from simulated (``sim-``) annotators."""
    sim_ids = {a.annotator_id for a in repo.list_annotators(study_id) if a.name.startswith(SIMULATED_PREFIX)}
    return sum(v.annotator_id in sim_ids for v in repo.load_votes(study_id))


def simulate_run(
    cfg: RunConfig,
    run_dir: RunDir,
    prompts: Sequence[PromptRecord],
    repo: Repository,
    study_ids: Sequence[int],
    *,
    progress: bool = False,
) -> list[SimulatedStudyVotes]:
    """Simulated votes in every study of a run (idempotent); records them in ``<run dir>/simulated_votes.json``
    (settings, judges and, per study, the annotators and how many simulated votes the store holds).

    The realism judge compares with the run's reference images (`harness.score.inputs.reference_images`).

    Raises:
        HarnessError: the run has no reference images (an ``.npz`` reference), or see `simulate_study`.
    """
    from eval_protocols.features.base import load_image_file
    from harness.score.inputs import reference_images
    from harness.simulate.judges import make_judges

    if not cfg.simulate.enabled or not study_ids:
        return []
    files = reference_images(cfg, run_dir, prompts)
    if not files:
        raise HarnessError(
            "simulated annotators judge photorealism against reference images, but metrics.reference is an .npz; "
            "set metrics.reference to \"toyworld\" or an image folder, or set simulate.enabled = false"
        )
    judges = make_judges(stack([load_image_file(f) for f in files]))
    done = [simulate_study(repo, sid, judges, cfg.simulate, progress=progress) for sid in study_ids]
    studies = {  # the store's state, not this call's history (votes_added), so a resumed run writes the same file
        str(d.study_id): {**{k: v for k, v in dataclasses.asdict(d).items() if k != "votes_added"},
                          "votes": simulated_vote_count(repo, d.study_id)}
        for d in done
    }
    run_dir.write_json(
        SIMULATION_RECORD,
        {
            "simulated": True,
            "config": dataclasses.asdict(cfg.simulate),
            "tie_margin": TIE_MARGIN,
            "reference_images": len(files),
            "judges": {name: j.judge_id for name, j in judges.items()},
            "studies": studies,
        },
    )
    return done
