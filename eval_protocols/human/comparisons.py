"""Which pairs of study systems the paper compares: each guided system against the baseline at the same guidance scale.

unCLIP's Table 1 and Fig. 10 report P(unCLIP beats GLIDE) for each prior at matched decoder guidance scales. With
study systems ``<system>@<settings>`` (`eval_protocols.human.design_inputs`), `paper_comparisons` returns, for every
guidance scale g (ascending):

1. ``(S@g, B@g)`` for every guided system S other than the baseline B, in the order of ``settings``: the baseline
   always second, so a cell reads P(S beats B);
2. ``(S@g, T@g)`` for every two guided systems S before T (in that order) other than the baseline: e.g. unCLIP with
   the diffusion prior against unCLIP with the autoregressive prior.

Unguided study systems (real renders, image folders: no ``guidance_scale``) take no part. Settings that differ only in
guidance match by the guidance scale; other settings (prior guidance, steps) are not compared, since a config sweeps
guidance only.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

COMPARISON_MODES: tuple[str, ...] = ("all_pairs", "vs_baseline", "paper")
"""The keyword comparisons of a study design (`eval_protocols.human.pairing.design_study`)."""


@dataclass(frozen=True)
class SystemSetting:
    """What a study system is made of: the generating system and the decoder guidance scale it sampled at."""

    system: str
    """The system of the run config (``glide``), the same for all its settings."""
    guidance_scale: float | None
    """Decoder (or single-stage) classifier-free guidance scale; ``None`` for unguided systems."""


def paper_comparisons(settings: Mapping[str, SystemSetting], baseline: str) -> list[tuple[str, str]]:
    """The ``(a, b)`` study-system pairs of the paper's comparison (module docstring), baseline second.

    Args:
        settings: ``{study system id: SystemSetting}``; its order orders the systems within a guidance scale.
        baseline: the baseline's *system* id (``glide``), not a study system id.

    Raises:
        ValueError: no or an unknown or unguided baseline, two study systems of one system at one guidance scale,
            a guided system that shares no guidance scale with any other, or no pair at all; each names the fix.
    """
    if not baseline:
        raise ValueError("comparisons 'paper' compares every guided system with a baseline; name it (e.g. baseline='glide')")
    by_system: dict[str, dict[float, str]] = {}
    for study_id, s in settings.items():
        if s.guidance_scale is None:
            continue
        scales = by_system.setdefault(s.system, {})
        g = float(s.guidance_scale)
        if g in scales:
            raise ValueError(
                f"system {s.system!r} has two study systems at guidance {g:g} ({scales[g]!r}, {study_id!r}) that "
                "differ in other settings; compare them with explicit pairs, or study one of them"
            )
        scales[g] = study_id
    if baseline not in by_system:
        unguided = sorted({s.system for s in settings.values() if s.guidance_scale is None})
        why = "is not guided (it has no guidance scale)" if baseline in unguided else "is not among the systems"
        raise ValueError(
            f"the baseline {baseline!r} {why}; comparisons 'paper' needs a guided baseline, one of {sorted(by_system)}"
        )
    others = [name for name in by_system if name != baseline]
    if not others:
        raise ValueError(
            f"comparisons 'paper' compares guided systems with the baseline {baseline!r}, but there is no other guided "
            "system; add one, or use 'all_pairs'"
        )
    all_scales = sorted({g for scales in by_system.values() for g in scales})
    pairs: list[tuple[str, str]] = []
    for g in all_scales:
        here = [name for name in others if g in by_system[name]]
        if g in by_system[baseline]:
            pairs.extend((by_system[name][g], by_system[baseline][g]) for name in here)
        pairs.extend((by_system[s][g], by_system[t][g]) for s, t in itertools.combinations(here, 2))
    _check_every_system_paired(by_system, pairs, settings)
    return pairs


def _check_every_system_paired(
    by_system: Mapping[str, Mapping[float, str]], pairs: list[tuple[str, str]], settings: Mapping[str, SystemSetting]
) -> None:
    """A guided system without any pair would vanish from the study unnoticed: name it and its scales."""
    paired = {settings[sid].system for pair in pairs for sid in pair}
    for name in by_system:
        if name not in paired:
            shown = {other: sorted(s) for other, s in by_system.items()}
            raise ValueError(
                f"system {name!r} shares no guidance scale with any other guided system (guidance scales: {shown}); "
                "sample every system at the same sampling.guidance_scales, or use 'all_pairs'"
            )
