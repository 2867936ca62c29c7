"""The vote plan of a study: its cells (pairs of study systems) and the votes each item collects.

A cell is one pair of study systems in one protocol; every cell of a study has the same number of items m
(`eval_protocols.human.pairing.items_per_cell`: captions × shared seed indices for one-image protocols, one grid pair
per caption for diversity). The votes per item come from ``study.half_width`` through the power planner
(`eval_protocols.human.power.plan_cell`: n = ⌈(z·½ / h)²⌉ kept votes, ⌈n / (1 − exclusion_share)⌉ collected,
⌈n_collect / m⌉ per item), or from ``study.votes_per_item``, which wins when both are given, or default to 3.

The plan is stored with the study, in its protocol snapshot under
`eval_protocols.human.protocol.STUDY_PLAN_KEY` (`VotePlan.to_dict`), so a report can set the planned votes and
half-width of each cell beside what the votes achieved, and find the paper's cells (system, baseline, guidance scale)
without parsing study-system ids.

Warnings (returned, stored with the plan, and printed by `harness study create`):

- a grid protocol's cells hold fewer distinct grid pairs than ``study.min_grid_pairs``: its win rate speaks for a
  few captions, whatever the number of votes (more captions fix it; more seeds per caption do not, since a cell shows
  one grid pair per caption);
- ``study.votes_per_item`` overrides a ``study.half_width`` target (says whether the target is still reached);
- the target needs more votes per item than there are simulated annotators (each votes once per item): the votes
  per item are capped at ``simulate.annotators`` and the plan records that the target is missed;
- simulated annotators are more careless than ``study.exclusion_share`` allows for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from eval_protocols.human.comparisons import SystemSetting
from eval_protocols.human.power import CellPlan, plan_cell
from eval_protocols.human.protocol import Protocol
from harness.config import DEFAULT_VOTES_PER_ITEM, SimulateConfig, StudyConfig
from harness.errors import ConfigError

PLAN_VERSION = 1
"""Version of the stored plan's layout (`VotePlan.to_dict`)."""

CellKind = Literal["vs_baseline", "between", "pair"]
Rule = Literal["half_width", "votes_per_item", "default", "simulated_annotators"]


@dataclass(frozen=True)
class Cell:
    """One pair of study systems compared in a study; its win rate reads P(``system_a`` beats ``system_b``)."""

    system_a: str
    system_b: str
    """The baseline's study system in ``vs_baseline`` cells."""
    base_a: str
    """The run-config system of ``system_a`` (``unclip-diffusion-prior``)."""
    base_b: str
    guidance_scale: float | None
    """The guidance scale both sides share; ``None`` when they differ or are unguided."""
    kind: CellKind
    """``vs_baseline`` (a system against the baseline), ``between`` (two non-baseline systems of a paper study) or
    ``pair`` (any other pair, e.g. of ``all_pairs``)."""


@dataclass(frozen=True)
class VotePlan:
    """Cells and votes of one study (module docstring)."""

    protocol: str
    comparisons: str
    baseline: str | None
    rule: Rule
    """Where the votes per item came from: the target, the explicit ``study.votes_per_item``, the default (3), or
    the target capped at the number of simulated annotators."""
    cell: CellPlan
    """Target, items, votes per item and expected half-width, the same for every cell."""
    cells: tuple[Cell, ...]
    grid_pairs: int | None
    """Distinct grid pairs per cell of a grid protocol (``None`` for one-image protocols)."""
    min_grid_pairs: int | None
    warnings: tuple[str, ...]
    """What the plan cannot promise (module docstring), one line each."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored under `STUDY_PLAN_KEY`: ``version``, ``comparisons``, ``baseline``, ``rule``, the
        `CellPlan` fields (``half_width`` target, ``level``, ``exclusion_share``, ``n_planned``, ``n_collect``,
        ``items``, ``votes_per_item``, ``votes_per_cell``, ``expected_half_width``), ``meets_target``,
        ``grid_pairs``, ``min_grid_pairs``, ``cells`` (list of `Cell` dicts) and ``warnings``."""
        return {
            "version": PLAN_VERSION,
            "protocol": self.protocol,
            "comparisons": self.comparisons,
            "baseline": self.baseline,
            "rule": self.rule,
            **asdict(self.cell),
            "meets_target": self.cell.meets_target,
            "grid_pairs": self.grid_pairs,
            "min_grid_pairs": self.min_grid_pairs,
            "cells": [asdict(c) for c in self.cells],
            "warnings": list(self.warnings),
        }


def cells_of(
    pairs: Sequence[tuple[str, str]], settings: Mapping[str, SystemSetting], comparisons: str, baseline: str | None
) -> tuple[Cell, ...]:
    """The `Cell` of every ``(a, b)`` pair, in order."""
    cells = []
    for a, b in pairs:
        sa, sb = settings[a], settings[b]
        g = sa.guidance_scale if sa.guidance_scale == sb.guidance_scale else None
        if comparisons == "paper":
            kind: CellKind = "vs_baseline" if sb.system == baseline else "between"
        else:
            kind = "vs_baseline" if comparisons == "vs_baseline" else "pair"
        cells.append(Cell(a, b, sa.system, sb.system, g, kind))
    return tuple(cells)


def plan_votes(
    study: StudyConfig,
    simulate: SimulateConfig,
    protocol: Protocol,
    items: int,
    cells: tuple[Cell, ...],
) -> VotePlan:
    """The vote plan of ``protocol``'s study whose cells hold ``items`` items each (module docstring).

    Raises:
        ConfigError: simulated annotators are on and fewer than explicit votes per item (each votes once per item).
    """
    target = study.half_width.get(protocol.name)
    rule: Rule
    if study.votes_per_item is not None:
        rule, votes = "votes_per_item", study.votes_per_item
    elif target is not None:
        rule, votes = "half_width", None
    else:
        rule, votes = "default", DEFAULT_VOTES_PER_ITEM
    cell = plan_cell(items, half_width=target, votes_per_item=votes, exclusion_share=study.exclusion_share)
    if rule != "half_width" and simulate.enabled and simulate.annotators < cell.votes_per_item:
        raise ConfigError(
            f"the {protocol.name} study wants {cell.votes_per_item} votes per item, but each of the "
            f"simulate.annotators = {simulate.annotators} votes once per item; set simulate.annotators >= "
            f"{cell.votes_per_item} or lower study.votes_per_item"
        )
    warnings = []
    if rule == "half_width" and simulate.enabled and simulate.annotators < cell.votes_per_item:
        wanted, rule = cell.votes_per_item, "simulated_annotators"
        cell = plan_cell(items, half_width=target, votes_per_item=simulate.annotators,
                         exclusion_share=study.exclusion_share)
        warnings.append(
            f"the target ±{target:g} needs {wanted} votes per item ({items} items per cell), but "
            f"each of the simulate.annotators = {simulate.annotators} votes once per item: capped at "
            f"{cell.votes_per_item}, ±{cell.expected_half_width:.1%} expected; set simulate.annotators >= {wanted} "
            "or add captions (prompts.n)"
        )
    grid = protocol.grid is not None
    warnings.extend(_warnings(study, simulate, protocol, cell, rule))
    return VotePlan(
        protocol=protocol.name,
        comparisons=study.comparisons,
        baseline=study.baseline or None,
        rule=rule,
        cell=cell,
        cells=cells,
        grid_pairs=items if grid else None,
        min_grid_pairs=study.min_grid_pairs if grid else None,
        warnings=tuple(warnings),
    )


def _warnings(study: StudyConfig, simulate: SimulateConfig, protocol: Protocol, cell: CellPlan, rule: Rule) -> list[str]:
    out = []
    if protocol.grid is not None and cell.items < study.min_grid_pairs:
        out.append(
            f"each cell shows {cell.items} distinct grid pair(s) (one per caption), fewer than "
            f"study.min_grid_pairs = {study.min_grid_pairs}; its win rate speaks for these {cell.items} caption(s) "
            f"whatever the votes: raise prompts.n to >= {study.min_grid_pairs} (more seeds per caption do not help)"
        )
    if rule == "votes_per_item" and cell.half_width is not None:
        reach = "reaches" if cell.meets_target else "misses"
        out.append(
            f"study.votes_per_item = {cell.votes_per_item} wins over study.half_width = "
            f"{cell.half_width:g}: ±{cell.expected_half_width:.1%} expected per cell, which {reach} the target "
            f"(the target alone would plan {cell.n_collect} votes per cell)"
        )
    if simulate.enabled and simulate.careless_share > study.exclusion_share:
        out.append(
            f"simulate.careless_share = {simulate.careless_share:g} exceeds study.exclusion_share = "
            f"{study.exclusion_share:g}: excluding the careless annotators will leave cells short of their planned "
            "votes; raise study.exclusion_share"
        )
    return out
