"""Study design: which pairs of images each item shows, on which side, and where the attention checks go.

`design_study` is a pure, seeded function from generated images to a frozen `StudyDesign`:

- **Comparisons.** ``"all_pairs"`` (every pair of systems), ``"vs_baseline"`` (every system against one),
  ``"paper"`` (each guided system against the baseline at the same guidance scale, plus the other guided systems
  against each other at that scale: `eval_protocols.human.comparisons`) or explicit ``(a, b)`` pairs.
- **Pairing.** An item shows the same caption from two systems; for one-image protocols (photorealism, caption
  similarity) also the same seed index, so both sides differ only by the system. Grid protocols (diversity) show the
  first ``rows * cols`` images (seed indices ``0 .. 15`` for 4×4) of each system.
- **Balance.** Every comparison gets the same number of items ``n``. Captions are dealt round-robin along one seeded
  cyclic order that continues from comparison to comparison, so within a comparison and over the whole study the
  item counts of any two captions differ by at most one (unless a caption runs out of seed indices). The seed
  indices of a caption follow one seeded permutation shared by all comparisons, so different comparisons reuse the
  same images where they can.
- **Counterbalancing.** Exact, not by coin flip: within a comparison the sides alternate along the items grouped by
  caption, so system ``a`` is on the left in ``ceil(n/2)`` or ``floor(n/2)`` items (the seed picks which), and the
  same holds within each caption.
- **Attention checks.** ``m = round(r * N / (1 - r))`` check items for ``N`` regular items and rate ``r``, so checks
  make up a fraction ``m / (N + m)`` within one item of ``r``. They come from a caller-supplied `AttentionPool`
  (cases reused in seeded order when the pool is smaller than ``m``), their expected sides alternate exactly, and
  all items are shuffled into seeded positions.

Attention-check items use the reserved system ids `ATTENTION_REFERENCE` (the unaltered side, which should win) and
`ATTENTION_ALTERED`; statistics must drop them (``is_attention_check``) before computing win rates.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from eval_protocols.human.comparisons import SystemSetting, paper_comparisons
from eval_protocols.human.protocol import ATTENTION_CHECK_KINDS, AttentionCheckKind, Protocol

Side = Literal["a", "b"]
ComparisonMode = Literal["all_pairs", "vs_baseline", "paper"]
ComparisonSpec = Sequence[tuple[str, str]] | ComparisonMode

ATTENTION_REFERENCE = "attention-check:reference"
"""System id of the side of an attention check that an attentive annotator picks."""
ATTENTION_ALTERED = "attention-check:altered"
"""System id of the corrupted / contradicting / collapsed side of an attention check."""
RESERVED_SYSTEMS = (ATTENTION_REFERENCE, ATTENTION_ALTERED)


@dataclass(frozen=True)
class AttentionCase:
    """One attention-check stimulus: the side that must win and the side that must lose.

    The caller makes the images, e.g. with `eval_protocols.human.corruptions` for photorealism. For caption
    similarity the caller also picks the contradicting caption (another shape or colour than the shown caption, from
    its own prompt grammar) and renders it; that choice is domain knowledge and stays out of this module.
    """

    prompt_id: str
    """Caption id (stored with the item like any other)."""
    prompt: str
    """The caption shown with the check (the true one for ``contradicting_caption``)."""
    reference: tuple[str, ...]
    """Image ids of the unaltered side: a real render, the true caption's render, or 16 varied renders."""
    altered: tuple[str, ...]
    """Image ids of the side that should lose: corrupted render, contradicting render, or 16 copies of one image."""

    def __post_init__(self) -> None:
        if not self.reference or len(self.reference) != len(self.altered):
            raise ValueError(
                f"attention case {self.prompt_id!r}: reference and altered need the same, non-zero number of images, "
                f"got {len(self.reference)} and {len(self.altered)}"
            )
        if tuple(self.reference) == tuple(self.altered):
            raise ValueError(f"attention case {self.prompt_id!r}: reference and altered images are identical")

    @classmethod
    def collapsed_grid(cls, prompt_id: str, prompt: str, varied: Sequence[str], copy_index: int = 0) -> AttentionCase:
        """Diversity check: ``varied`` against ``len(varied)`` copies of ``varied[copy_index]``."""
        varied = tuple(varied)
        if not 0 <= copy_index < len(varied):
            raise ValueError(f"copy_index {copy_index} is outside the {len(varied)} varied images; pick one of them")
        return cls(prompt_id, prompt, reference=varied, altered=(varied[copy_index],) * len(varied))


@dataclass(frozen=True)
class AttentionPool:
    """Attention-check cases of one kind, all with the same number of images per side."""

    kind: AttentionCheckKind
    """Must equal the protocol's ``attention_check_kind``."""
    cases: tuple[AttentionCase, ...]

    def __post_init__(self) -> None:
        if self.kind not in ATTENTION_CHECK_KINDS:
            raise ValueError(f"attention pool kind {self.kind!r} is not one of {list(ATTENTION_CHECK_KINDS)}")
        if not self.cases:
            raise ValueError("attention pool is empty; add at least one AttentionCase or set attention_rate=0")
        sizes = {len(case.reference) for case in self.cases}
        if len(sizes) != 1:
            raise ValueError(f"attention pool mixes cases with {sorted(sizes)} images per side; use one size")

    @property
    def images_per_side(self) -> int:
        return len(self.cases[0].reference)


@dataclass(frozen=True)
class DesignedItem:
    """One item of a study: two stimuli, their sides, and how many votes it should collect."""

    position: int
    """Seeded position in the study, ``0 .. len(items) - 1``."""
    prompt_id: str
    prompt: str
    system_a: str
    """First system of the comparison (``model_a`` in the vote table)."""
    system_b: str
    images_a: tuple[str, ...]
    """Image ids of system ``a``: one, or ``rows * cols`` in seed-index order for a grid."""
    images_b: tuple[str, ...]
    left: Side
    """Which system is shown on the left."""
    is_attention_check: bool
    expected: Literal["left", "right"] | None
    """The correct answer of an attention check (the side of ``system_a``, the reference); ``None`` otherwise."""
    votes_target: int
    seed_index: int | None = None
    """Seed index shared by both sides of a one-image item; ``None`` for grids and attention checks."""

    @property
    def left_system(self) -> str:
        return self.system_a if self.left == "a" else self.system_b

    @property
    def right_system(self) -> str:
        return self.system_b if self.left == "a" else self.system_a

    @property
    def left_images(self) -> tuple[str, ...]:
        return self.images_a if self.left == "a" else self.images_b

    @property
    def right_images(self) -> tuple[str, ...]:
        return self.images_b if self.left == "a" else self.images_a

    def outcome(self, answer: str) -> Literal["model_a", "model_b", "tie"]:
        """Map a screen-space answer (``left | right | tie``) to the vote table's ``winner`` (``model_a | model_b | tie``).

        Raises:
            ValueError: for any other answer.
        """
        if answer == "tie":
            return "tie"
        if answer not in ("left", "right"):
            raise ValueError(f"answer {answer!r} is not one of ['left', 'right', 'tie']")
        return "model_a" if (answer == "left") == (self.left == "a") else "model_b"


@dataclass(frozen=True)
class StudyDesign:
    """A designed study: its protocol snapshot, items in position order, and the seed that made them."""

    protocol: Protocol
    items: tuple[DesignedItem, ...]
    seed: int

    @property
    def comparisons(self) -> tuple[tuple[str, str], ...]:
        """The ``(system_a, system_b)`` pairs compared, in order of first position (attention checks excluded)."""
        seen = dict.fromkeys((item.system_a, item.system_b) for item in self._regular())
        return tuple(seen)

    def _regular(self) -> list[DesignedItem]:
        return [item for item in sorted(self.items, key=lambda i: i.position) if not item.is_attention_check]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dump: the protocol snapshot, the seed and every item (tuples become lists)."""
        items = []
        for item in self.items:
            data = asdict(item)
            data["images_a"], data["images_b"] = list(item.images_a), list(item.images_b)
            items.append(data)
        return {"protocol": self.protocol.to_dict(), "seed": self.seed, "items": items}

    def summary(self) -> dict[str, Any]:
        """Return JSON-ready counts: items, checks, votes, per-comparison sides and per-caption coverage."""
        regular = self._regular()
        checks = [item for item in self.items if item.is_attention_check]
        per_comparison = []
        for a, b in self.comparisons:
            mine = [item for item in regular if (item.system_a, item.system_b) == (a, b)]
            per_comparison.append(
                {
                    "system_a": a,
                    "system_b": b,
                    "items": len(mine),
                    "a_left": sum(item.left == "a" for item in mine),
                    "b_left": sum(item.left == "b" for item in mine),
                    "captions": len({item.prompt_id for item in mine}),
                    "votes_target": sum(item.votes_target for item in mine),
                }
            )
        per_prompt = Counter(item.prompt_id for item in regular)
        return {
            "protocol": self.protocol.name,
            "protocol_version": self.protocol.version,
            "allow_tie": self.protocol.allow_tie,
            "seed": self.seed,
            "items": len(self.items),
            "regular_items": len(regular),
            "attention_checks": len(checks),
            "attention_rate": len(checks) / len(self.items) if self.items else 0.0,
            "attention_expected": {side: sum(item.expected == side for item in checks) for side in ("left", "right")},
            "votes_target": sum(item.votes_target for item in self.items),
            "comparisons": per_comparison,
            "captions": len(per_prompt),
            "items_per_caption": {"min": min(per_prompt.values(), default=0), "max": max(per_prompt.values(), default=0)},
        }


def design_study(
    protocol: Protocol,
    systems: Mapping[str, Mapping[str, Sequence[str]]],
    prompts: Mapping[str, str],
    comparisons: ComparisonSpec = "all_pairs",
    *,
    votes_per_item: int = 1,
    items_per_comparison: int | None = None,
    attention_rate: float = 0.0,
    attention_pool: AttentionPool | None = None,
    seed: int = 0,
    baseline: str | None = None,
    system_settings: Mapping[str, SystemSetting] | None = None,
) -> StudyDesign:
    """Design a balanced, counterbalanced pairwise study (see the module docstring for the rules).

    Args:
        protocol: the protocol; its ``grid`` decides one image or ``rows * cols`` images per side.
        systems: ``{system_id: {prompt_id: [image_id, ...]}}``, images per prompt in seed-index order.
        prompts: ``{prompt_id: caption}``: the captions of the study; every compared system needs images for each.
        comparisons: explicit ``(a, b)`` pairs, ``"all_pairs"`` (every pair of sorted system ids),
            ``"vs_baseline"`` (every other system as ``a`` against ``baseline`` as ``b``) or ``"paper"`` (see
            `eval_protocols.human.comparisons.paper_comparisons`; needs ``system_settings`` and ``baseline``).
        votes_per_item: target votes per item (>= 1).
        items_per_comparison: items per comparison; ``None`` takes the most that every comparison can fill.
        attention_rate: fraction ``r`` in ``[0, 1)`` of the study's items that are attention checks.
        attention_pool: the check stimuli; required when ``attention_rate > 0``.
        seed: seeds every random choice (caption order, seed indices, sides, check order, positions).
        baseline: the baseline: a study system id for ``"vs_baseline"``, a system id (``glide``) for ``"paper"``.
        system_settings: ``{study system id: SystemSetting}`` (system and guidance scale), for ``"paper"``.

    Returns:
        The design; ``items`` are sorted by ``position``.

    Raises:
        ValueError: on a self-pair, an unknown system, missing images (naming system and prompt), fewer than
            ``rows * cols`` images for a grid, too many items requested, or an invalid rate, pool or vote target.
    """
    _check_settings(protocol, votes_per_item, items_per_comparison, attention_rate, attention_pool)
    pairs = resolve_comparisons(systems, comparisons, baseline, system_settings)
    prompt_ids = _prompt_ids(prompts)
    capacity = {pair: _capacity(protocol, systems, pair, prompt_ids) for pair in pairs}
    n = _items_per_comparison(capacity, items_per_comparison)

    rng = np.random.default_rng(seed)
    order = [prompt_ids[i] for i in rng.permutation(len(prompt_ids))]
    seed_order = {p: rng.permutation(max(c[p] for c in capacity.values())).tolist() for p in order}
    items: list[DesignedItem] = []
    cursor = 0
    for a, b in pairs:
        counts, cursor = _deal(order, capacity[(a, b)], n, cursor)
        first: Side = "a" if rng.integers(2) == 0 else "b"
        units = [
            (p, k)
            for p in order
            for k in [s for s in seed_order[p] if s < capacity[(a, b)][p]][: counts[p]]
        ]
        for index, (p, k) in enumerate(units):
            left: Side = first if index % 2 == 0 else ("b" if first == "a" else "a")
            items.append(_regular_item(protocol, systems, prompts, (a, b), p, k, left, votes_per_item))

    n_checks = _attention_count(len(items), attention_rate)
    if n_checks:
        assert attention_pool is not None
        items.extend(_attention_items(attention_pool, n_checks, votes_per_item, rng))
    positions = rng.permutation(len(items))
    placed = [_with_position(item, int(pos)) for item, pos in zip(items, positions)]
    return StudyDesign(protocol=protocol, items=tuple(sorted(placed, key=lambda i: i.position)), seed=seed)


def items_per_cell(
    protocol: Protocol,
    systems: Mapping[str, Mapping[str, Sequence[str]]],
    prompts: Mapping[str, str],
    pairs: Sequence[tuple[str, str]],
    items_per_comparison: int | None = None,
) -> int:
    """Items every comparison of ``pairs`` gets from `design_study` (the same for all; what a vote plan divides by):
    for a grid protocol the distinct grid pairs, one per caption.

    Raises:
        ValueError: as `design_study` (missing images, too many items requested, no prompts).
    """
    prompt_ids = _prompt_ids(prompts)
    capacity = {pair: _capacity(protocol, systems, pair, prompt_ids) for pair in pairs}
    return _items_per_comparison(capacity, items_per_comparison)


def resolve_comparisons(
    systems: Mapping[str, object],
    comparisons: ComparisonSpec,
    baseline: str | None = None,
    system_settings: Mapping[str, SystemSetting] | None = None,
) -> list[tuple[str, str]]:
    """Return the ``(a, b)`` pairs to compare, checked: known systems, no self-pairs, no duplicates either way round.

    Raises:
        ValueError: on any of those problems, or an unknown ``comparisons`` keyword.
    """
    names = list(systems)
    for name in names:
        if not isinstance(name, str) or not name or name in RESERVED_SYSTEMS:
            raise ValueError(f"system id {name!r} is empty or reserved; rename the system")
    if len(names) < 2:
        raise ValueError(f"a study compares at least two systems, got {names}; add another run")
    if comparisons == "all_pairs":
        return list(itertools.combinations(sorted(names), 2))
    if comparisons == "vs_baseline":
        if baseline is None:
            raise ValueError("comparisons='vs_baseline' needs baseline=<system id>; name the baseline system")
        _check_known(baseline, names)
        return [(name, baseline) for name in sorted(names) if name != baseline]
    if comparisons == "paper":
        if system_settings is None:
            raise ValueError("comparisons='paper' needs system_settings={study system id: SystemSetting}; pass them")
        if set(system_settings) != set(names):
            odd = sorted(set(system_settings) ^ set(names))
            raise ValueError(f"system_settings and systems differ in {odd}; give the settings of every system, no more")
        return paper_comparisons(system_settings, baseline or "")
    keyword = comparisons if isinstance(comparisons, str) else None
    if keyword is not None:
        raise ValueError(
            f"comparisons {keyword!r} is not 'all_pairs', 'vs_baseline', 'paper' or a list of (a, b) pairs"
        )
    pairs: list[tuple[str, str]] = []
    for pair in comparisons:
        if len(pair) != 2:
            raise ValueError(f"comparison {pair!r} is not an (a, b) pair of system ids")
        a, b = pair
        _check_known(a, names)
        _check_known(b, names)
        if a == b:
            raise ValueError(f"comparison ({a!r}, {b!r}) pairs a system with itself; compare two different systems")
        if (a, b) in pairs or (b, a) in pairs:
            raise ValueError(f"comparison ({a!r}, {b!r}) is listed twice (in some order); list each pair once")
        pairs.append((a, b))
    if not pairs:
        raise ValueError("comparisons is empty; list at least one (a, b) pair or use 'all_pairs'")
    return pairs


def _check_known(name: str, names: list[str]) -> None:
    if name not in names:
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known systems are {sorted(names)}"
        raise ValueError(f"unknown system {name!r} in comparisons; {hint}")


def _check_settings(
    protocol: Protocol,
    votes_per_item: int,
    items_per_comparison: int | None,
    attention_rate: float,
    attention_pool: AttentionPool | None,
) -> None:
    if isinstance(votes_per_item, bool) or not isinstance(votes_per_item, int) or votes_per_item < 1:
        raise ValueError(f"votes_per_item must be an integer >= 1, got {votes_per_item!r}")
    if items_per_comparison is not None and (
        isinstance(items_per_comparison, bool) or not isinstance(items_per_comparison, int) or items_per_comparison < 1
    ):
        raise ValueError(f"items_per_comparison must be an integer >= 1 or None, got {items_per_comparison!r}")
    if not 0.0 <= attention_rate < 1.0:
        raise ValueError(f"attention_rate must be in [0, 1), got {attention_rate!r}; e.g. 0.05 for one check in 20")
    if attention_rate > 0 and attention_pool is None:
        raise ValueError(f"attention_rate={attention_rate} needs an attention_pool; pass one or set attention_rate=0")
    if attention_pool is not None:
        if attention_pool.kind != protocol.attention_check_kind:
            raise ValueError(
                f"attention pool of kind {attention_pool.kind!r} does not fit protocol {protocol.name!r}, "
                f"which needs {protocol.attention_check_kind!r}"
            )
        if attention_pool.images_per_side != protocol.images_per_side:
            raise ValueError(
                f"attention pool has {attention_pool.images_per_side} image(s) per side but protocol "
                f"{protocol.name!r} shows {protocol.images_per_side}; rebuild the pool"
            )


def _prompt_ids(prompts: Mapping[str, str]) -> list[str]:
    if not prompts:
        raise ValueError("no prompts given; pass at least one {prompt_id: caption}")
    return sorted(prompts)


def _capacity(
    protocol: Protocol, systems: Mapping[str, Mapping[str, Sequence[str]]], pair: tuple[str, str], prompt_ids: list[str]
) -> dict[str, int]:
    """Items each caption can give a comparison: shared seed indices (one-image) or 1 (grid)."""
    need = protocol.images_per_side
    capacity: dict[str, int] = {}
    for p in prompt_ids:
        counts = []
        for system in pair:
            images = systems[system].get(p)
            if not images:
                raise ValueError(f"system {system!r} has no images for prompt {p!r}; generate them or drop the prompt")
            if len(images) < need:
                raise ValueError(
                    f"system {system!r} has {len(images)} image(s) for prompt {p!r} but protocol {protocol.name!r} "
                    f"needs {need} per side; generate at least {need} seeds per prompt"
                )
            counts.append(len(images))
        capacity[p] = 1 if protocol.grid is not None else min(counts)
    return capacity


def _items_per_comparison(capacity: Mapping[tuple[str, str], Mapping[str, int]], requested: int | None) -> int:
    totals = {pair: sum(c.values()) for pair, c in capacity.items()}
    smallest = min(totals.values())
    if requested is None:
        return smallest
    for pair, total in totals.items():
        if requested > total:
            raise ValueError(
                f"items_per_comparison={requested} but comparison {pair} has only {total} distinct items "
                f"(captions x shared seed indices); lower it to {smallest} or generate more images"
            )
    return requested


def _deal(order: list[str], capacity: Mapping[str, int], n: int, cursor: int) -> tuple[dict[str, int], int]:
    """Deal ``n`` items round-robin over the cyclic caption ``order`` from ``cursor``, skipping exhausted captions.

    Returns:
        ``(items per caption, cursor after the last dealt caption)``.
    """
    counts = dict.fromkeys(order, 0)
    dealt = 0
    while dealt < n:
        p = order[cursor % len(order)]
        cursor += 1
        if counts[p] < capacity[p]:
            counts[p] += 1
            dealt += 1
    return counts, cursor % len(order)


def _regular_item(
    protocol: Protocol,
    systems: Mapping[str, Mapping[str, Sequence[str]]],
    prompts: Mapping[str, str],
    pair: tuple[str, str],
    prompt_id: str,
    seed_index: int,
    left: Side,
    votes: int,
) -> DesignedItem:
    a, b = pair
    images_a: tuple[str, ...]
    images_b: tuple[str, ...]
    if protocol.grid is None:
        images_a = (systems[a][prompt_id][seed_index],)
        images_b = (systems[b][prompt_id][seed_index],)
    else:
        images_a = tuple(systems[a][prompt_id][: protocol.images_per_side])
        images_b = tuple(systems[b][prompt_id][: protocol.images_per_side])
    if images_a == images_b:
        raise ValueError(
            f"systems {a!r} and {b!r} give identical images for prompt {prompt_id!r}: the same run under two names? "
            "drop one of them"
        )
    return DesignedItem(
        position=-1,
        prompt_id=prompt_id,
        prompt=prompts[prompt_id],
        system_a=a,
        system_b=b,
        images_a=images_a,
        images_b=images_b,
        left=left,
        is_attention_check=False,
        expected=None,
        votes_target=votes,
        seed_index=seed_index if protocol.grid is None else None,
    )


def _attention_count(n_regular: int, rate: float) -> int:
    """``round(r * N / (1 - r))``, half up: checks then make up ``r`` of all items to within half an item."""
    return math.floor(rate * n_regular / (1.0 - rate) + 0.5) if rate > 0 else 0


def _attention_items(pool: AttentionPool, count: int, votes: int, rng: np.random.Generator) -> list[DesignedItem]:
    """``count`` check items: cases in seeded cycles over the pool, expected sides alternating exactly."""
    cases: list[AttentionCase] = []
    while len(cases) < count:
        cases.extend(pool.cases[i] for i in rng.permutation(len(pool.cases)))
    first: Side = "a" if rng.integers(2) == 0 else "b"
    sides: list[Side] = [first if i % 2 == 0 else ("b" if first == "a" else "a") for i in range(count)]
    sides = [sides[i] for i in rng.permutation(count)]
    return [
        DesignedItem(
            position=-1,
            prompt_id=case.prompt_id,
            prompt=case.prompt,
            system_a=ATTENTION_REFERENCE,
            system_b=ATTENTION_ALTERED,
            images_a=tuple(case.reference),
            images_b=tuple(case.altered),
            left=side,
            is_attention_check=True,
            expected="left" if side == "a" else "right",
            votes_target=votes,
        )
        for case, side in zip(cases[:count], sides)
    ]


def _with_position(item: DesignedItem, position: int) -> DesignedItem:
    return replace(item, position=position)
