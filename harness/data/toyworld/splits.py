"""Train / val / test splits of the toy world, and the compositional hold-out that separates them.

``train`` and ``val`` draw from the same distribution (independent random streams), and neither ever contains a
(shape, colour) pair of `HELD_OUT_PAIRS`. Every ``test`` scene contains at least one held-out pair, named in its
caption, so a model evaluated on ``test`` must compose a shape and a colour it has only seen apart.

Every random choice of a scene comes from one generator seeded by ``(seed, split id, index)`` (`scene_rng`):
scene ``index`` is the same whatever else is sampled, and the three splits never share a stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from harness.data.toyworld.vocab import COLOUR_NAMES, SHAPES

SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")

# One colour per shape and one shape per colour (7 of the 56 pairs, 12.5%): every shape and every colour is still
# seen in training, only these combinations are not.
HELD_OUT_PAIRS: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        ("circle", "orange"),
        ("square", "cyan"),
        ("triangle", "pink"),
        ("star", "yellow"),
        ("hexagon", "blue"),
        ("diamond", "red"),
        ("cross", "green"),
    }
)


@dataclass(frozen=True)
class SplitSpec:
    """What a split may contain.

    Attributes:
        name: ``train``, ``val`` or ``test``.
        split_id: stream id mixed into every scene seed (distinct per split).
        pairs: the (shape, colour) pairs any object of the split may have.
        required_pairs: pairs of which every scene holds at least one object (empty: no requirement).
    """

    name: str
    split_id: int
    pairs: tuple[tuple[str, str], ...]
    required_pairs: tuple[tuple[str, str], ...]


def _all_pairs() -> tuple[tuple[str, str], ...]:
    return tuple((shape, colour) for shape in SHAPES for colour in COLOUR_NAMES)


def _seen_pairs() -> tuple[tuple[str, str], ...]:
    return tuple(pair for pair in _all_pairs() if pair not in HELD_OUT_PAIRS)


def _held_out_sorted() -> tuple[tuple[str, str], ...]:
    return tuple(pair for pair in _all_pairs() if pair in HELD_OUT_PAIRS)


SPLIT_SPECS: Final[dict[str, SplitSpec]] = {
    "train": SplitSpec("train", 1, _seen_pairs(), ()),
    "val": SplitSpec("val", 2, _seen_pairs(), ()),
    "test": SplitSpec("test", 3, _all_pairs(), _held_out_sorted()),
}


def get_split(name: str) -> SplitSpec:
    """The `SplitSpec` called ``name``.

    Raises:
        ValueError: ``name`` is not one of `SPLITS`.
    """
    if name not in SPLIT_SPECS:
        raise ValueError(f"unknown toy-world split {name!r}; use one of {', '.join(SPLITS)}")
    return SPLIT_SPECS[name]


def scene_rng(seed: int, index: int, split: str) -> np.random.Generator:
    """The generator of every random choice of scene ``index`` of ``split`` under ``seed``.

    Args:
        seed: non-negative dataset seed.
        index: non-negative scene index.
        split: one of `SPLITS`.

    Raises:
        ValueError: a negative seed or index, or an unknown split.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative integers, got seed={seed}, index={index}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), get_split(split).split_id, int(index)]))
