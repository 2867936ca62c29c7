"""What a study is designed from: a run's images grouped into study systems, and its attention-check stimuli.

`harness study create` (from a run's manifest) and the admin page (from the images in the store) both call these, so
a study made either way compares the same systems under the same names and reuses the same attention checks.

- **Systems.** A system sampled under one setting keeps its id; a system swept over several settings enters a study
  once per setting, as ``<system>@<settings label>`` (e.g. ``glide@g=3.0 steps=50``). Images of a (system, prompt)
  are listed in seed-index order, so index ``k`` of two systems shares the seed ``k`` (`design_study` pairs on it).
  `system_settings` tells what each study system is (system and guidance scale), for the paper's comparisons.
- **Attention checks.** The stimuli of run ``R`` live in the run ``R-attention``; an image of case ``i`` has the
  system id ``attention:<protocol>:<role>`` and the seed index ``i * ATTENTION_CASE_STRIDE + k`` (``k`` numbers the
  16 varied renders of a diversity case, 0 otherwise). Roles per check kind: ``real``/``corrupted`` (photorealism),
  ``true``/``wrong`` (caption similarity), ``varied`` (diversity; the altered side is 16 copies of ``varied[0]``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from eval_protocols.human.comparisons import SystemSetting
from eval_protocols.human.pairing import AttentionCase, AttentionPool
from eval_protocols.human.protocol import AttentionCheckKind, Protocol

ATTENTION_SUFFIX = "-attention"
"""Run ``R`` keeps its attention-check stimuli in the run ``R + ATTENTION_SUFFIX``."""
ATTENTION_CASE_STRIDE = 100
"""Seed index of image ``k`` of attention case ``i``: ``i * ATTENTION_CASE_STRIDE + k`` (``k < 100``)."""
ATTENTION_ROLES: dict[AttentionCheckKind, tuple[str, str | None]] = {
    "corrupted_render": ("real", "corrupted"),
    "contradicting_caption": ("true", "wrong"),
    "collapsed_grid": ("varied", None),
}
"""``(reference role, altered role)`` per attention-check kind; ``None``: the altered side is copies of the reference."""


@dataclass(frozen=True)
class SampleRef:
    """One generated image as study design sees it.

    Attributes:
        system_id: the system of the run config that made it (``unclip``, ``glide``, ``attention:photorealism:real``).
        prompt_id: the caption's id.
        sample_index: seed index ``k`` within (system, prompt, settings).
        image_id: the image's sha256.
        settings: sampling settings (guidance scales, steps, sampler): images of one system under different settings
            become different study systems.
        prompt: the caption text (``""`` when the caller does not need it).
        seed: the image's seed (only attention checks use it, to tell apart cases made by different designs).
    """

    system_id: str
    prompt_id: str
    sample_index: int
    image_id: str
    settings: Mapping[str, object] = field(default_factory=dict)
    prompt: str = ""
    seed: int = 0


def settings_label(settings: Mapping[str, object]) -> str:
    """Short label of a settings group, e.g. ``g=3.0 steps=50`` (``—`` when empty)."""
    if not settings:
        return "—"
    short = {"guidance_scale": "g", "prior_guidance_scale": "prior g", "steps": "steps"}
    return " ".join(f"{short.get(k, k)}={v}" for k, v in sorted(settings.items()))


def study_systems(samples: Iterable[SampleRef]) -> dict[str, dict[str, list[str]]]:
    """``{study system id: {prompt id: [image id in seed-index order]}}``, the ``systems`` of `design_study`.

    A system with one settings group keeps its id; one with several becomes ``<system>@<settings_label>`` per group.
    Ties in seed index (which a well-formed run does not have) are broken by image id, so the result is deterministic.
    """
    samples = list(samples)
    study_id = _study_ids(samples)
    grouped: dict[str, dict[str, list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        grouped[study_id(s)][s.prompt_id].append((s.sample_index, s.image_id))
    return {sid: {p: [img for _, img in sorted(v)] for p, v in per.items()} for sid, per in grouped.items()}


def system_settings(samples: Iterable[SampleRef]) -> dict[str, SystemSetting]:
    """``{study system id: SystemSetting}`` (the system and its ``guidance_scale`` setting, ``None`` when unguided),
    with the ids of `study_systems`, in order of first appearance; what ``comparisons="paper"`` matches on."""
    samples = list(samples)
    study_id = _study_ids(samples)
    out: dict[str, SystemSetting] = {}
    for s in samples:
        g = s.settings.get("guidance_scale")  # a number as the run config gave it (JSON may hold 3 for 3.0)
        out.setdefault(study_id(s), SystemSetting(s.system_id, None if g is None else float(str(g))))
    return out


def _study_ids(samples: list[SampleRef]) -> Callable[[SampleRef], str]:
    """The study-system id of a sample: the system id, or ``<system>@<settings label>`` for a swept system."""
    labels_per_system: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        labels_per_system[s.system_id].add(settings_label(s.settings))

    def study_id(s: SampleRef) -> str:
        return s.system_id if len(labels_per_system[s.system_id]) == 1 else f"{s.system_id}@{settings_label(s.settings)}"

    return study_id


def attention_system_id(protocol_name: str, role: str) -> str:
    """System id of an attention-check image: ``attention:<protocol>:<role>``."""
    return f"attention:{protocol_name}:{role}"


def attention_pool(protocol: Protocol, samples: Iterable[SampleRef]) -> AttentionPool | None:
    """Rebuild the attention cases of ``protocol`` from the images of an attention run; ``None`` when it has none.

    Images are grouped into cases by (case index ``sample_index // ATTENTION_CASE_STRIDE``, prompt, base seed
    ``seed - sample_index % ATTENTION_CASE_STRIDE``), so cases rendered by several designs of the same run stay apart,
    and come in that order (the order `harness study create` rendered them in). A case missing one of its roles (the
    store keeps one record per image of a run, so an image shared by two roles keeps only one), or a diversity case
    with fewer than ``rows * cols`` varied renders, is skipped.
    """
    ref_role, alt_role = ATTENTION_ROLES[protocol.attention_check_kind]
    by_role = {attention_system_id(protocol.name, ref_role): ref_role}
    if alt_role is not None:
        by_role[attention_system_id(protocol.name, alt_role)] = alt_role
    cases: dict[tuple[int, str, int], dict[str, list[tuple[int, SampleRef]]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        role = by_role.get(s.system_id)
        if role is None:
            continue
        k = s.sample_index % ATTENTION_CASE_STRIDE
        key = (s.sample_index // ATTENTION_CASE_STRIDE, s.prompt_id, s.seed - k)
        cases[key][role].append((k, s))
    built = []
    for key in sorted(cases):
        roles = cases[key]
        reference = [s for _, s in sorted(roles.get(ref_role, []), key=lambda ks: (ks[0], ks[1].image_id))]
        if alt_role is None:
            if len(reference) >= protocol.images_per_side:
                varied = [s.image_id for s in reference[: protocol.images_per_side]]
                built.append(AttentionCase.collapsed_grid(key[1], reference[0].prompt, varied))
        elif len(reference) == 1 and len(roles.get(alt_role, [])) == 1:
            altered = roles[alt_role][0][1]
            if altered.image_id != reference[0].image_id:
                built.append(AttentionCase(key[1], reference[0].prompt, (reference[0].image_id,), (altered.image_id,)))
    if not built:
        return None
    return AttentionPool(kind=protocol.attention_check_kind, cases=tuple(built))
