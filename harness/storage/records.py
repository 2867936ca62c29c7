"""Frozen records that cross the storage boundary.

Everything `harness.storage.repository.Repository` takes or returns is one of these plain dataclasses: no SQLAlchemy
type ever leaves `harness.storage`, so dashboards and commands depend on these shapes only. Timestamps are aware
`datetime`s in UTC. Ids assigned by the store (studies, items, annotators, assignments, votes) are positive integers;
records passed *into* the store before it assigned one carry ``0`` there.

Vote vocabulary (the vote-table contract of DESIGN.md): the two systems of an item are ``system_a`` / ``system_b``,
exported as ``model_a`` / ``model_b``; ``left`` says which of them the annotator saw on the left; the annotator's
``choice`` is in screen space (``left | right | tie``) and its ``winner`` in model space (``model_a | model_b | tie``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import HarnessError

if TYPE_CHECKING:
    from eval_protocols.human.pairing import DesignedItem

StudyStatus = Literal["draft", "open", "closed"]
Side = Literal["a", "b"]
Choice = Literal["left", "right", "tie"]
Winner = Literal["model_a", "model_b", "tie"]
AssignmentStatus = Literal["pending", "completed", "skipped", "broken", "expired"]

STUDY_STATUSES: tuple[StudyStatus, ...] = ("draft", "open", "closed")
CHOICES: tuple[Choice, ...] = ("left", "right", "tie")
ASSIGNMENT_STATUSES: tuple[AssignmentStatus, ...] = ("pending", "completed", "skipped", "broken", "expired")
IMAGE_BOOKKEEPING_KEYS: tuple[str, ...] = ("sample_index", "generator_model_id", "checkpoint_sha256")
"""Keys the run pipeline adds to an image's ``settings`` beside the sampling settings (see `ImageRecord.sampling_settings`)."""


@dataclass(frozen=True)
class RunRecord:
    """One generation run: a run directory with its resolved config and provenance.

    Attributes:
        run_id: unique id chosen by the caller (e.g. the run directory's name).
        name: human-readable name.
        created_at: when the run was created (UTC).
        run_dir: path of the run directory (``images/``, ``manifest``, config, provenance).
        config: the run's resolved config (JSON-serialisable).
        provenance: git commit, package versions, device, seeds (JSON-serialisable).
    """

    run_id: str
    name: str
    created_at: datetime
    run_dir: str
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageRecord:
    """One generated (or reference) image of a run, content-addressed by its PNG bytes.

    Attributes:
        sha256: hex SHA-256 of the PNG file (64 characters); with ``run_id`` the key.
        run_id: the run that produced it.
        prompt_id: id of the prompt in the run's prompt set.
        prompt: the caption text.
        model_id: the system that made it (e.g. ``unclip-toy``, ``glide-toy@s=3.0``).
        seed: the per-image seed.
        settings: sampler, steps, guidance scales, checkpoint hash (JSON-serialisable).
        path: the file, relative to the run directory (or absolute).
    """

    sha256: str
    run_id: str
    prompt_id: str
    prompt: str
    model_id: str
    seed: int
    settings: dict[str, Any]
    path: str

    @property
    def sample_index(self) -> int:
        """Seed index ``k`` within (system, prompt, settings): ``settings["sample_index"]`` as the run pipeline stores it,
        else the seed (seeds derive from (run seed, prompt, k), so they order every system's images alike)."""
        return int(self.settings.get("sample_index", self.seed))

    @property
    def sampling_settings(self) -> dict[str, Any]:
        """``settings`` without the run pipeline's bookkeeping (`IMAGE_BOOKKEEPING_KEYS`): guidance scales, steps, sampler."""
        return {k: v for k, v in self.settings.items() if k not in IMAGE_BOOKKEEPING_KEYS}


@dataclass(frozen=True)
class MetricResultRecord:
    """One metric value of one model in one run, for one setting group.

    ``(run_id, metric, model_id, group, extractor_id)`` is the key: saving a record with the same key replaces it.

    Attributes:
        run_id: the run measured.
        metric: metric name (``fid``, ``kid``, ``clip_score``, ...).
        model_id: the system measured.
        group: the settings this value belongs to, e.g. ``{"guidance_scale": 3.0, "steps": 50}``.
        value: the point estimate.
        ci_low: lower end of its confidence interval, if any.
        ci_high: upper end of its confidence interval, if any.
        n: number of samples the value is computed from.
        extractor_id: feature extractor the metric used (``""`` when none).
        inputs_hash: hash of the inputs (image sha256s, reference statistics), to detect stale results.
        details: anything else (JSON-serialisable): per-class values, bootstrap settings.
    """

    run_id: str
    metric: str
    model_id: str
    group: dict[str, Any]
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int
    extractor_id: str = ""
    inputs_hash: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyRecord:
    """A human study: one protocol, a set of items, a vote quota per item.

    Attributes:
        study_id: assigned by the store (``0`` before `Repository.create_study`).
        name: unique human-readable name.
        protocol_name: ``photorealism``, ``caption_similarity``, ``diversity`` or a custom protocol.
        protocol: snapshot of the protocol definition (question, instructions, options) when the study was made.
        status: ``draft`` (being set up), ``open`` (accepting votes) or ``closed``.
        votes_per_item: default vote target of an item.
        allow_tie: whether the "Not sure" option is offered.
        created_at: creation time (UTC).
        seed: seed of the study design (pairing, sides, attention checks).
    """

    study_id: int
    name: str
    protocol_name: str
    protocol: dict[str, Any]
    status: StudyStatus
    votes_per_item: int
    allow_tie: bool
    created_at: datetime
    seed: int


@dataclass(frozen=True)
class ItemRecord:
    """One comparison shown to annotators: the same caption (and seed index) from two systems.

    Attributes:
        item_id: assigned by the store (``0`` before `Repository.create_study`).
        study_id: the study (``0`` before `Repository.create_study`).
        position: order of the item in the study design.
        prompt_id: id of the caption.
        prompt: the caption text.
        system_a: the system exported as ``model_a``.
        system_b: the system exported as ``model_b``.
        images_a: sha256s of system A's images (1 for pairs, 16 for a 4×4 diversity grid).
        images_b: sha256s of system B's images.
        left: which system is shown on the left (counterbalanced by the study design).
        is_attention_check: whether the item is a quality-control item with a known answer.
        expected: the correct screen side of an attention check, else ``None``.
        votes_target: completed votes wanted (``0`` means the study's ``votes_per_item``).
    """

    item_id: int
    study_id: int
    position: int
    prompt_id: str
    prompt: str
    system_a: str
    system_b: str
    images_a: tuple[str, ...]
    images_b: tuple[str, ...]
    left: Side
    is_attention_check: bool = False
    expected: Literal["left", "right"] | None = None
    votes_target: int = 0

    @classmethod
    def from_designed(cls, item: DesignedItem) -> ItemRecord:
        """The record to store for an item of `eval_protocols.human.pairing.design_study` (ids ``0``, set by the store)."""
        return cls(
            item_id=0,
            study_id=0,
            position=item.position,
            prompt_id=item.prompt_id,
            prompt=item.prompt,
            system_a=item.system_a,
            system_b=item.system_b,
            images_a=tuple(item.images_a),
            images_b=tuple(item.images_b),
            left=item.left,
            is_attention_check=item.is_attention_check,
            expected=item.expected,
            votes_target=item.votes_target,
        )


SIMULATED_PREFIX = "sim-"
"""Names of simulated annotators start with this; every vote table, report and page labels their votes simulated."""


@dataclass(frozen=True)
class AnnotatorRecord:
    """An annotator invited to one study (the invite token is stored only as its SHA-256).

    Attributes:
        annotator_id: assigned by the store.
        study_id: the study the invite is for.
        name: label the admin gave (never shown to other annotators).
        created_at: when the invite was created (UTC).
    """

    annotator_id: int
    study_id: int
    name: str
    created_at: datetime

    @property
    def simulated(self) -> bool:
        """Whether this is one of `harness run`'s simulated annotators (named ``sim-NN``, `SIMULATED_PREFIX`)."""
        return self.name.startswith(SIMULATED_PREFIX)


@dataclass(frozen=True)
class AssignmentRecord:
    """One item handed to one annotator.

    ``pending`` until voted (``completed``), skipped, reported broken, or ``expired`` (left pending past the
    assignment timeout while its slot went to someone else).

    Attributes:
        assignment_id: assigned by the store.
        study_id: the study.
        item_id: the item.
        annotator_id: the annotator.
        status: see above.
        created_at: when it was handed out (UTC).
        completed_at: when it left ``pending`` (UTC), else ``None``.
    """

    assignment_id: int
    study_id: int
    item_id: int
    annotator_id: int
    status: AssignmentStatus
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class VoteRecord:
    """One vote, as exported in the vote table (``model_a, model_b, winner`` + annotator, prompt, protocol, left).

    Attributes:
        vote_id: assigned by the store.
        assignment_id: the assignment it completes (at most one vote per assignment).
        study_id: the study.
        item_id: the item.
        annotator_id: who voted.
        protocol: the study's protocol name.
        choice: what the annotator clicked, in screen space.
        winner: the same answer in model space.
        model_a: the item's ``system_a``.
        model_b: the item's ``system_b``.
        left_model: the system that was shown on the left.
        prompt: the caption.
        response_ms: milliseconds from showing the item to the vote.
        created_at: when the vote was stored (UTC).
    """

    vote_id: int
    assignment_id: int
    study_id: int
    item_id: int
    annotator_id: int
    protocol: str
    choice: Choice
    winner: Winner
    model_a: str
    model_b: str
    left_model: str
    prompt: str
    response_ms: int
    created_at: datetime


@dataclass(frozen=True)
class Answer:
    """An annotator's answer to an assignment, as `Repository.record_votes_and_next` takes them in a batch.

    Attributes:
        assignment_id: the assignment answered.
        choice: ``left``, ``right`` or ``tie``, in screen space.
        response_ms: milliseconds from showing the item to the answer.
        annotator_id: who answers; when given it must own the assignment.
    """

    assignment_id: int
    choice: str
    response_ms: int
    annotator_id: int | None = None


@dataclass(frozen=True)
class Submission:
    """What `Repository.submit` returns for one answer.

    Attributes:
        vote: the assignment's vote: the one just stored, or the one an earlier call stored.
        counted: whether this call stored it; false for a repeat (a double press, a stale second tab), whose
            answer is not counted (it may even differ from ``vote.choice``).
        next: the annotator's next ``(assignment, item)``, or ``None`` when nothing is left for them.
    """

    vote: VoteRecord
    counted: bool
    next: tuple[AssignmentRecord, ItemRecord] | None


@dataclass(frozen=True)
class AnnotatorProgress:
    """What one annotator has done in a study.

    Attributes:
        annotator_id: the annotator.
        name: their label.
        completed: votes cast.
        skipped: items skipped.
        broken: items reported broken.
        pending: items handed out and not answered (0 or 1 in normal use).
        remaining: items still open to them (below quota and never assigned to them), for a progress bar.
        attention_checks: attention-check items they voted on.
        attention_passed: of those, how many they answered as expected.
    """

    annotator_id: int
    name: str
    completed: int
    skipped: int
    broken: int
    pending: int
    remaining: int
    attention_checks: int
    attention_passed: int


@dataclass(frozen=True)
class ItemProgress:
    """Assignment counts of one item.

    Attributes:
        item_id: the item.
        position: its position in the study.
        votes_target: completed votes wanted.
        completed: votes cast.
        pending: handed out, not answered (stale ones included).
        skipped: skipped by an annotator.
        broken: reported broken.
    """

    item_id: int
    position: int
    votes_target: int
    completed: int
    pending: int
    skipped: int
    broken: int


@dataclass(frozen=True)
class StudyProgress:
    """Progress of a whole study: totals plus the per-annotator and per-item breakdowns.

    Attributes:
        study_id: the study.
        items: number of items.
        votes_target: sum of the items' vote targets.
        votes: votes cast.
        attention_checks: votes on attention-check items.
        attention_passed: of those, answered as expected.
        annotators: one entry per annotator, by id.
        per_item: one entry per item, by position.
    """

    study_id: int
    items: int
    votes_target: int
    votes: int
    attention_checks: int
    attention_passed: int
    annotators: tuple[AnnotatorProgress, ...]
    per_item: tuple[ItemProgress, ...]


def validate_study(study: StudyRecord, study_items: Sequence[ItemRecord]) -> None:
    """Check a study and its items before they are stored (`Repository.create_study`).

    Raises:
        HarnessError: naming the first problem found and how to fix it.
    """
    if study.status not in STUDY_STATUSES:
        raise HarnessError(f"study status {study.status!r} is not one of {', '.join(STUDY_STATUSES)}")
    if study.votes_per_item < 1:
        raise HarnessError(f"study {study.name!r}: votes_per_item is {study.votes_per_item}; give at least 1")
    positions = [i.position for i in study_items]
    if len(set(positions)) != len(positions):
        raise HarnessError(f"study {study.name!r}: item positions repeat; number the items 0..n-1")
    for item in study_items:
        where = f"study {study.name!r}, item at position {item.position}"
        if item.system_a == item.system_b and not item.is_attention_check:
            raise HarnessError(f"{where} pairs system {item.system_a!r} with itself; pair two different systems")
        if not item.images_a or not item.images_b:
            raise HarnessError(f"{where} has no images on one side; give images_a and images_b")
        if item.left not in ("a", "b"):
            raise HarnessError(f"{where}: left is {item.left!r}; use 'a' or 'b'")
        if item.expected not in (None, "left", "right") or (item.expected is not None) != item.is_attention_check:
            raise HarnessError(f"{where}: an attention check needs expected 'left'/'right', other items None")
