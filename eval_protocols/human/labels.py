"""Readable names of systems and protocols, one labeller for the report and the app.

A study system id is ``<system>`` or ``<system>@<settings label>`` (`design_inputs.study_systems`, e.g.
``glide@g=3.0 prior g=1.0 steps=20``); metric results carry the run-config system id and a settings dict. Both
become labels such as ``unCLIP (diffusion prior), g = 3``, ``GLIDE, g = 1`` or ``real renders``:

* the model name comes from the system's generator (the run config's ``[[systems]] generator``): `MODEL_NAMES`;
  a system of an unknown generator keeps its id, and two systems of one generator get their ids in brackets;
* a setting is printed only where it applies (`APPLIES`: GLIDE has no prior, real renders take no guidance) and
  where its value differs between the systems being labelled together (so ``steps`` shared by all is left out);
* two systems that would still share a label get their full settings label in brackets.

`Labeller.from_config(config, systems)` builds one from a run config as `RunConfig.to_dict` stores it (the store's
`RunRecord.config`), so the app and the report label alike.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from eval_protocols.human.design_inputs import settings_label

Role = Literal["unclip", "glide", "real", "other"]

MODEL_NAMES: dict[str, str] = {
    "unclip-diffusion-prior": "unCLIP (diffusion prior)",
    "unclip-ar-prior": "unCLIP (AR prior)",
    "glide": "GLIDE",
    "reference": "real renders",
    "degraded": "degraded renders",
}
"""Generator name → model name shown in tables and plots."""
ROLES: dict[str, Role] = {
    "unclip-diffusion-prior": "unclip",
    "unclip-ar-prior": "unclip",
    "glide": "glide",
    "reference": "real",
}
"""Generator name → its part in the paper's comparison (anything else: ``other``)."""
PRIOR_ORDER: tuple[str, ...] = ("unclip-diffusion-prior", "unclip-ar-prior")
"""unCLIP generators in the order Table 1 lists them (diffusion prior first)."""
APPLIES: dict[str, frozenset[str]] = {
    "glide": frozenset({"guidance_scale", "steps", "sampler"}),
    "reference": frozenset(),
    "degraded": frozenset(),
}
"""Settings that change a generator's images; a generator not listed here is taken to use every setting it has."""
SETTING_NAMES: dict[str, str] = {"guidance_scale": "g", "prior_guidance_scale": "prior g", "steps": "steps"}
"""Setting key → its name in a label (``g = 3``)."""
_LABEL_KEYS: dict[str, str] = {"g": "guidance_scale", "prior g": "prior_guidance_scale"}
_SETTING = re.compile(r"(prior g|[^\s=]+)=(\S+)")

PROTOCOL_ORDER: tuple[str, ...] = ("photorealism", "caption_similarity", "diversity")
PROTOCOL_TITLES: dict[str, str] = {
    "photorealism": "Photorealism",
    "caption_similarity": "Caption similarity",
    "diversity": "Diversity",
}


def protocol_title(name: str) -> str:
    """``caption_similarity`` → ``Caption similarity`` (unknown protocols: underscores become spaces)."""
    return PROTOCOL_TITLES.get(name, name.replace("_", " ").capitalize())


def protocol_key(name: str) -> tuple[int, str]:
    """Sort key: the paper's protocols in its order, then the others by name."""
    return (PROTOCOL_ORDER.index(name) if name in PROTOCOL_ORDER else len(PROTOCOL_ORDER), name)


def parse_study_system(system_id: str) -> tuple[str, dict[str, str]]:
    """``"glide@g=3.0 prior g=1.0 steps=20"`` → ``("glide", {"guidance_scale": "3.0", "prior_guidance_scale": "1.0",
    "steps": "20"})``; an id without ``@`` (or whose part after it is not a settings label) → ``(id, {})``.

    Inverse of `design_inputs.study_systems` naming for the settings the run pipeline writes.
    """
    if "@" not in system_id:
        return system_id, {}
    base, label = system_id.split("@", 1)
    pairs = _SETTING.findall(label)
    if not pairs or "".join(f"{k}={v}" for k, v in pairs).replace(" ", "") != label.replace(" ", ""):
        return system_id, {}
    return base, {_LABEL_KEYS.get(k, k): v for k, v in pairs}


def generators_of(config: Mapping[str, object]) -> dict[str, str]:
    """``{system id: generator}`` from a run config dict (``systems = [{id, generator, ...}]``); ``{}`` without one."""
    systems = config.get("systems")
    if not isinstance(systems, list):
        return {}
    return {str(s["id"]): str(s["generator"]) for s in systems if isinstance(s, Mapping) and "id" in s and "generator" in s}


def _number(value: object) -> str:
    """``3.0`` / ``"3.0"`` → ``3``; anything that is not a number stays as written."""
    try:
        return f"{float(str(value)):g}"
    except ValueError:
        return str(value)


@dataclass(frozen=True)
class SystemInfo:
    """One system as the labeller sees it.

    Attributes:
        id: the study system id (``glide@g=3.0 steps=20``) or, for metric results, ``<system>@<settings label>``.
        base: the run-config system id (``glide``).
        generator: its generator (``""`` when unknown).
        settings: its sampling settings as strings (``{"guidance_scale": "3.0", ...}``).
    """

    id: str
    base: str
    generator: str
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def role(self) -> Role:
        """``unclip`` / ``glide`` / ``real`` / ``other`` by generator."""
        return ROLES.get(self.generator, "other")

    @property
    def guidance(self) -> float | None:
        """The decoder (single-stage) guidance scale, if the system has one."""
        value = self.settings.get("guidance_scale")
        try:
            return None if value is None else float(value)
        except ValueError:
            return None

    def applies(self, key: str) -> bool:
        """Whether setting ``key`` changes this system's images (see `APPLIES`)."""
        known = APPLIES.get(self.generator)
        return key in self.settings and (known is None or key in known)


@dataclass(frozen=True)
class Labeller:
    """Labels for a fixed set of systems (the settings shown depend on what differs among them)."""

    systems: Mapping[str, SystemInfo]
    model_names: Mapping[str, str]
    """Run-config system id → model name (``unCLIP (diffusion prior)``, ``GLIDE``, ``glide-big``)."""
    labels: Mapping[str, str]
    """System id → full label."""
    generators: Mapping[str, str] = field(default_factory=dict)
    """Run-config system id → generator (for ids the labeller was not built with, e.g. metric results' ids)."""

    @classmethod
    def build(
        cls,
        system_ids: Iterable[str],
        generators: Mapping[str, str],
        default_settings: Mapping[str, Mapping[str, object]] | None = None,
    ) -> Labeller:
        """Label ``system_ids`` (study system ids) given ``{run-config system id: generator}``.

        ``default_settings`` (run-config system id → settings) fills in the settings of a system entered without
        ``@`` (a run with one setting), so its guidance scale is still known.
        """
        infos = {}
        for sid in sorted(set(system_ids)):
            base, settings = parse_study_system(sid)
            if not settings and default_settings and base in default_settings:
                settings = {k: str(v) for k, v in default_settings[base].items()}
            infos[sid] = SystemInfo(sid, base, generators.get(base, ""), settings)
        bases = {i.base: i.generator for i in infos.values()}
        for base, generator in generators.items():  # systems without images or votes still get their model name
            bases.setdefault(base, generator)
        names = _model_names(bases)
        return cls(infos, names, _labels(infos, names), dict(generators))

    @classmethod
    def from_config(cls, config: Mapping[str, object], system_ids: Iterable[str]) -> Labeller:
        """Labeller of ``system_ids`` with generators (and single-setting defaults) from a run config dict."""
        generators = generators_of(config)
        return cls.build(system_ids, generators, _config_defaults(config, generators))

    def info(self, system_id: str) -> SystemInfo:
        """The `SystemInfo` of a labelled system (an unknown id is parsed on the spot, its generator from the config)."""
        if system_id in self.systems:
            return self.systems[system_id]
        base, settings = parse_study_system(system_id)
        return SystemInfo(system_id, base, self.generators.get(base, ""), settings)

    def label(self, system_id: str) -> str:
        """``unCLIP (diffusion prior), g = 3``; an id the labeller was not built with is returned unchanged."""
        return self.labels.get(system_id, system_id)

    def sort_key(self, system_id: str) -> tuple[int, str, float, str]:
        """Order of systems in tables and plots: unCLIP (diffusion prior), unCLIP (AR prior), GLIDE, others, real
        renders; then by guidance scale."""
        info = self.info(system_id)
        rank = {g: i for i, g in enumerate((*PRIOR_ORDER, "glide"))}.get(info.generator, 3 + (info.role == "real"))
        g = info.guidance
        return (rank, self.model_name(system_id), -1.0 if g is None else g, system_id)

    def model_name(self, system_id: str) -> str:
        """The model part of the label (``unCLIP (AR prior)``), for a study system id or a run-config system id."""
        base = self.info(system_id).base if system_id not in self.model_names else system_id
        return self.model_names.get(base, base)


def metric_system_id(system: str, settings: Mapping[str, object]) -> str:
    """The study-system-style id of a metric result's (system, settings): ``glide@g=3.0 steps=20``."""
    return f"{system}@{settings_label(settings)}" if settings else system


def _config_defaults(config: Mapping[str, object], generators: Mapping[str, str]) -> dict[str, dict[str, object]]:
    """``{system: {"guidance_scale": g}}`` for guided systems when the run sampled one decoder guidance scale."""
    sampling = config.get("sampling")
    scales = sampling.get("guidance_scales") if isinstance(sampling, Mapping) else None
    if not isinstance(scales, list | tuple) or len(scales) != 1:
        return {}
    return {s: {"guidance_scale": scales[0]} for s, g in generators.items() if APPLIES.get(g) != frozenset()}


def _model_names(bases: Mapping[str, str]) -> dict[str, str]:
    """Run-config system id → model name, from ``{system id: generator}``; systems sharing a generator are told
    apart by their ids."""
    by_generator: dict[str, set[str]] = defaultdict(set)
    for base, generator in bases.items():
        by_generator[generator].add(base)
    names = {}
    for base, generator in bases.items():
        name = MODEL_NAMES.get(generator)
        if name is None:
            names[base] = base
        elif len(by_generator[generator]) > 1:
            names[base] = f"{name} ({base})"
        else:
            names[base] = name
    return names


def _labels(infos: Mapping[str, SystemInfo], names: Mapping[str, str]) -> dict[str, str]:
    """Model name plus the settings that apply and differ among the systems they apply to."""
    values: dict[str, set[str]] = defaultdict(set)
    for info in infos.values():
        for key, value in info.settings.items():
            if info.applies(key):
                values[key].add(_number(value))
    order = [k for k in SETTING_NAMES if k in values] + sorted(k for k in values if k not in SETTING_NAMES)
    varying = [k for k in order if len(values[k]) > 1]
    labels = {}
    for sid, info in infos.items():
        parts = [f"{SETTING_NAMES.get(k, k)} = {_number(info.settings[k])}" for k in varying if info.applies(k)]
        labels[sid] = ", ".join([names.get(info.base, info.base), *parts])
    counts: dict[str, int] = defaultdict(int)
    for text in labels.values():
        counts[text] += 1
    return {
        sid: text if counts[text] == 1 else f"{text} [{settings_label(infos[sid].settings)}]"
        for sid, text in labels.items()
    }
