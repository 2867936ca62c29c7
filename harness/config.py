"""Run configuration: TOML files validated into frozen dataclasses.

Precedence: built-in defaults < the TOML file < ``--set key=value`` overrides (dotted keys, list indices allowed:
``--set sampling.guidance_scales=[1,3]``, ``--set systems.0.id=mine``). Values given with ``--set`` are parsed as TOML
values, so ``3`` is an int, ``[1, 2]`` a list and ``abc`` (not valid TOML) a plain string.

Every unknown key fails with the key, the file and a did-you-mean; every wrong type names the expected type.
The resolved config is written into each run directory (``config.json``) with its sha256, so a run is reproducible
from it alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from eval_protocols.human.comparisons import COMPARISON_MODES
from eval_protocols.metrics.registry import metric_names
from harness.errors import ConfigError, did_you_mean
from harness.extractor_names import check_extractor_name


@dataclass(frozen=True)
class PromptsConfig:
    """Where the captions come from.

    Attributes:
        source: ``"toyworld"`` (the built-in renderer's captions) or a path to a JSONL/CSV/TXT caption file.
        split: toy-world split (``train`` | ``val`` | ``test``); ignored for files.
        n: number of prompts (a seeded subset for files; ``0`` means all lines of a file).
        seed: seed of the toy-world scenes or of the subset drawn from a file.
    """

    source: str = "toyworld"
    split: str = "test"
    n: int = 8
    seed: int = 0


@dataclass(frozen=True)
class SystemConfig:
    """One system (model) to generate with.

    Attributes:
        id: the system id stored with every image and vote (immutable; never renamed afterwards).
        generator: generator name (``harness generators`` lists them), e.g. ``reference`` (real toy renders) or
            ``degraded`` (real renders blurred and noised: a known-worse system for sanity checks).
        options: generator-specific options (e.g. ``{blur = 1.0, noise = 0.1}`` for ``degraded``).
    """

    id: str
    generator: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings of every system: the sweep (seeds, guidance scales) and the sampler of each stage.

    The sampler settings left out (None) take the pipeline's own defaults, which live in one place,
    `models.pipelines.base.SamplingConfig` (chosen by measured quality: ``benchmarks/sampling.md``); a model
    generator writes the values it used into each image's settings (`harness.generate.pipelines`). A value given here
    is used as it is: a configured 0 stays 0. Sampler names and steps strings are checked, with a did-you-mean, when
    the model generators are built, before any image is made (the run config itself is read without torch). ``sampler = "ddim"``, ``steps = "20"``, ``prior_steps = "32"``,
    ``upsampler_steps = "10"`` reproduce the images made before the faster samplers (the old demo).

    Attributes:
        seeds_per_prompt: images per (system, prompt, setting); seed index ``k`` uses the same seed for every system,
            so items of a study can pair the same seed index.
        guidance_scales: decoder (or single-stage) classifier-free guidance scales to sweep.
        prior_guidance_scale: guidance of unCLIP's prior stage (the paper's 1 = unguided conditional prior).
        sampler: the sampler of every stage (``"dpm++2m"``, ``"ddim"``, ``"ddpm"``, ``"dpm++3m"``, ``"dpm++2m-sde"``,
            ``"euler-a"``, ``"heun"``: `models.diffusion.SAMPLER_NAMES`); ``prior_sampler``, ``decoder_sampler``,
            ``upsampler_sampler`` override it for one stage.
        steps: the decoder's (GLIDE's base model's) steps: a respacing string (``"20"``, ``"trailing8"``,
            ``"logsnr4"``, ``"karras10"``, ``"ddim50"``: `models.diffusion.respace`).
        prior_steps: the diffusion prior's steps; upsampler_steps: the upsampler's.
        batch_size: images per forward pass; never changes an image (per-sample seeds).
    """

    seeds_per_prompt: int = 4
    guidance_scales: tuple[float, ...] = (1.0,)
    prior_guidance_scale: float | None = None
    sampler: str | None = None
    prior_sampler: str | None = None
    decoder_sampler: str | None = None
    upsampler_sampler: str | None = None
    steps: str | None = None
    prior_steps: str | None = None
    upsampler_steps: str | None = None
    batch_size: int = 16

    def stage_settings(self) -> dict[str, Any]:
        """The sampler settings given (None left out): the keys of an image's settings besides its guidance scale."""
        keys = ("prior_guidance_scale", "sampler", "prior_sampler", "decoder_sampler", "upsampler_sampler", "steps",
                "prior_steps", "upsampler_steps")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class MetricsConfig:
    """What `harness score` computes.

    Attributes:
        names: metric names (``harness metrics --help`` lists them).
        extractor: feature extractor id for feature-space metrics (``pixels`` needs no weights).
        reference: ``"toyworld"`` (real renders of the same captions), an image folder, or an ``.npz`` with mu/sigma.
        reference_per_prompt: real images per prompt when the reference is the toy world.
        bootstrap: bootstrap replicates for metric intervals (0 disables).
        clip_extractor: a CLIP (``clip:toy`` for the shipped toy CLIP, or ``clip:<arch>:<checkpoint>``) for the
            caption metrics ``clip_score`` and ``r_precision`` (which need it) and for ``cmmd``, ``diversity`` and
            ``vendi`` (which otherwise use ``extractor``); empty: none.
        extractors: per-metric feature extractor, overriding the rule above
            (``{ layout_diversity = "layout-g8" }``); each key is a metric of ``names``, each value an extractor
            name (`harness.extractor_names.EXTRACTOR_NAMES`). A metric defined on one extractor
            (`eval_protocols.metrics.registry.MetricSpec.extractor`: ``layout_diversity`` on ``layout``) uses it
            when not listed here. Resolution: `harness.score.extractors.metric_extractor_name`.
    """

    names: tuple[str, ...] = ("fd",)
    extractor: str = "pixels"
    reference: str = "toyworld"
    reference_per_prompt: int = 4
    bootstrap: int = 200
    clip_extractor: str = ""
    extractors: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        text_metrics = [n for n in self.names if n in metric_names(needs_text=True)]  # they read CLIP text features
        if text_metrics and not self.clip_extractor:
            raise ConfigError(
                f"metrics.names has {', '.join(text_metrics)}, which needs a CLIP: set metrics.clip_extractor "
                '(e.g. "clip:toy", or "clip:ViT-B-32:/path/to/checkpoint")'
            )
        for metric, name in self.extractors.items():
            if metric not in self.names:
                raise ConfigError(
                    f"metrics.extractors names metric '{metric}', which is not in metrics.names"
                    f"{did_you_mean(metric, self.names)}"
                )
            if metric in metric_names(needs_text=True):
                raise ConfigError(
                    f"metrics.extractors.{metric}: {metric} compares image and caption embeddings of "
                    "metrics.clip_extractor; set that instead"
                )
            if not isinstance(name, str):
                raise ConfigError(f"metrics.extractors.{metric} = {name!r} must be a string, e.g. \"layout\"")
            try:
                check_extractor_name(name)
            except ConfigError as exc:
                raise ConfigError(f"metrics.extractors.{metric}: {exc}") from None


DEFAULT_VOTES_PER_ITEM = 3
"""Votes per item of a protocol that has neither ``study.half_width`` nor ``study.votes_per_item``."""
DEFAULT_EXCLUSION_SHARE = 0.2
"""Expected share of a cell's votes dropped by annotator exclusion: one vote in five (careless annotators, failed
attention checks, implausibly fast voting). The simulated annotators of the toy configs drop 2 of 12 (16.7%)."""


@dataclass(frozen=True)
class StudyConfig:
    """The human studies opened for a run: one per protocol.

    Attributes:
        protocols: protocol names (``photorealism``, ``caption_similarity``, ``diversity``).
        comparisons: which pairs of study systems are compared (a study system is a system at one setting,
            ``<system>@<settings>`` when it was swept over several):
            ``"paper"``: the paper's question, P(unCLIP beats GLIDE) at matched guidance: every guided system
            against ``baseline`` at the same decoder guidance scale, plus the other guided systems against each other
            at that scale; unguided systems (real renders, image folders) only serve attention checks;
            ``"all_pairs"``: every pair of study systems; ``"vs_baseline"``: every study system against
            ``baseline`` (a study system id there).
        baseline: the baseline of ``"paper"`` (a ``[[systems]]`` id, e.g. ``"glide"``: always the second system of
            its cells, so they read P(system beats baseline)) or of ``"vs_baseline"`` (a study system id).
        half_width: target per protocol (``{ photorealism = 0.05, caption_similarity = 0.05, diversity = 0.10 }``):
            the largest 95% normal-interval half-width of a cell's win rate (worst case p = ½, ties counted half as
            the report does). The votes per cell follow from it (`eval_protocols.human.power.plan_cell`):
            n = ⌈(1.96·½ / h)²⌉ (0.05 → 385, 0.10 → 97), divided by ``1 − exclusion_share``, spread evenly over the
            cell's items (votes per item ⌈n_collect / items⌉).
        votes_per_item: explicit votes per item for every protocol; when given it wins over ``half_width`` (the study
            still records the target and whether the votes reach it, and `harness study create` says so). Neither
            given: ``DEFAULT_VOTES_PER_ITEM`` (3).
        exclusion_share: expected share of a cell's votes dropped before analysis (annotators excluded by the
            attention-check and fast-voting rules), in ``[0, 1)``; planned votes are divided by ``1 − share``.
            Default ``DEFAULT_EXCLUSION_SHARE`` (0.2); with simulated annotators keep it at least
            ``simulate.careless_share``.
        min_grid_pairs: a grid protocol (diversity) whose cells hold fewer distinct grid pairs (one per caption) than
            this gets a warning at study creation: the cell then speaks for a few captions, whatever its vote count.
        attention_rate: share of attention-check items mixed in.
        allow_tie: offer "Not sure".
        seed: seed of the study design.
        name: label of this set of studies: they are named ``<run id>/<protocol>``, or ``<run id>/<name>/<protocol>``
            when set. A run's studies with other settings need another name (`harness study create --name`): an
            existing study is reused only when it was designed with the same settings.
    """

    protocols: tuple[str, ...] = ("photorealism", "caption_similarity")
    comparisons: str = "all_pairs"
    baseline: str = ""
    half_width: Mapping[str, float] = field(default_factory=dict)
    votes_per_item: int | None = None
    exclusion_share: float = DEFAULT_EXCLUSION_SHARE
    min_grid_pairs: int = 16
    attention_rate: float = 0.1
    allow_tie: bool = True
    seed: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if self.name and (self.name != self.name.strip() or "/" in self.name):
            raise ConfigError(f"study.name = {self.name!r}: use a label without '/' or surrounding spaces, e.g. \"pilot\"")
        if self.comparisons not in COMPARISON_MODES:
            modes = ", ".join(f'"{m}"' for m in COMPARISON_MODES)
            raise ConfigError(f"study.comparisons = {self.comparisons!r} is not one of {modes}; e.g. \"paper\"")
        targets = {}
        for name, h in self.half_width.items():
            if name not in self.protocols:
                raise ConfigError(
                    f"study.half_width names protocol '{name}', which is not in study.protocols"
                    f"{did_you_mean(name, self.protocols)}"
                )
            if isinstance(h, bool) or not isinstance(h, int | float) or not 0.0 < h < 0.5:
                raise ConfigError(f"study.half_width.{name} = {h!r} must be a number in (0, 0.5); e.g. 0.05 for ±5 pp")
            targets[name] = float(h)
        object.__setattr__(self, "half_width", targets)
        v = self.votes_per_item
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"study.votes_per_item = {v!r} must be an integer >= 1 (or left out to plan from half_width)")
        e = self.exclusion_share
        if isinstance(e, bool) or not isinstance(e, int | float) or not 0.0 <= e < 1.0:
            raise ConfigError(f"study.exclusion_share = {e!r} must be in [0, 1); e.g. 0.2 for one vote in five dropped")
        if isinstance(self.min_grid_pairs, bool) or not isinstance(self.min_grid_pairs, int) or self.min_grid_pairs < 1:
            raise ConfigError(f"study.min_grid_pairs = {self.min_grid_pairs!r} must be an integer >= 1; e.g. 16")


@dataclass(frozen=True)
class SimulateConfig:
    """Simulated annotators that vote in the run's studies until humans do (`harness.simulate.votes`).

    They vote through the store like people, named ``sim-<k>``, and every report labels their votes as simulated.

    Attributes:
        enabled: whether `harness run` lets them vote (only in studies without human votes).
        annotators: how many simulated annotators per study (at least the votes wanted per item).
        careless_share: share of careless raters, who answer at random and fast.
        position_bias: added to the standardised difference left − right (0 = none; 0.1 ≈ 54% left wins
            on indistinguishable items).
        noise: standard deviation of the Gaussian judgement noise, in units of the typical score difference of an
            item (1: an item of typical difference is judged right Φ(1) ≈ 84% of the time).
        seed: seed of the annotators' draws.
    """

    enabled: bool = True
    annotators: int = 12
    careless_share: float = 0.15
    position_bias: float = 0.1
    noise: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class RegressConfig:
    """The CI regression gate (`harness regress`, `harness.regress.gate`): what it gates and how much worse is too much.

    Attributes:
        metrics: gated metrics, from ``fd``, ``kid`` (lower is better), ``clip_score``, ``diversity``,
            ``layout_diversity`` (on ``layout`` features, or ``metrics.extractors``'s) and ``proxy`` (higher is better;
            ``proxy`` needs ``proxy``).
        clip: the CLIP of ``clip_score`` and ``diversity``: ``clip:toy`` (the shipped toy CLIP) or
            ``clip:<arch>:<checkpoint>``; empty: ``diversity`` on ``metrics.extractor`` features, no ``clip_score``.
        proxy: stem of a trained preference proxy (``harness proxy train --out STEM``); empty: none.
        alpha: family-wise false-alarm rate, split evenly over all (system, guidance scale, metric) comparisons.
        bootstrap: bootstrap replicates per comparison (stored in the baseline).
        seed: base seed of the bootstrap resampling.
        tolerance: per-metric margin in the metric's own units (e.g. ``{ fd = 0.5 }``); default 0.
    """

    metrics: tuple[str, ...] = ("fd", "kid", "clip_score", "diversity")
    clip: str = "clip:toy"
    proxy: str = ""
    alpha: float = 0.05
    bootstrap: int = 1000
    seed: int = 0
    tolerance: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """A whole run: prompts × systems × sampling settings × seeds, then metrics, a study and a report.

    Attributes:
        name: run name; the run id is ``<name>-<config hash[:8]>``.
        seed: run seed; image seeds derive from (seed, prompt id, seed index).
        out_dir: root of run directories (``<out_dir>/<run id>``).
        db_url: store URL; empty means ``$HARNESS_DB_URL`` or the SQLite file under the data dir.
    """

    name: str = "run"
    seed: int = 0
    out_dir: str = "runs"
    db_url: str = ""
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    systems: tuple[SystemConfig, ...] = ()
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    study: StudyConfig = field(default_factory=StudyConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    regress: RegressConfig = field(default_factory=RegressConfig)

    def __post_init__(self) -> None:
        study = self.study
        ids = [s.id for s in self.systems]
        if study.comparisons == "paper" and not study.baseline:
            raise ConfigError(
                'study.comparisons = "paper" compares each guided system with study.baseline at the same guidance '
                f"scale, but study.baseline is not set; set it to a [[systems]] id, e.g. baseline = \"glide\" (ids: {ids})"
            )
        if study.baseline and ids and study.comparisons == "paper" and study.baseline not in ids:
            raise ConfigError(
                f"study.baseline = '{study.baseline}' is not a [[systems]] id{did_you_mean(study.baseline, ids)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the resolved config."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def generation_hash(self) -> str:
        """sha256 of what decides the images (name, seed, prompts, systems, sampling), not metrics or studies."""
        d = self.to_dict()
        keys = ("name", "seed", "prompts", "systems", "sampling")
        canonical = json.dumps({k: d[k] for k in keys}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def run_id(self) -> str:
        """``<name>-<first 8 hex of the generation hash>``: the same images always map to the same run dir, so
        changing metrics or study settings rescored/re-studies the run instead of starting a new one."""
        return f"{self.name}-{self.generation_hash()[:8]}"


T = TypeVar("T")


@typing.overload
def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig: ...


@typing.overload
def load_config(path: str | Path, overrides: Sequence[str], cls: type[T]) -> T: ...


def load_config(path: str | Path, overrides: Sequence[str] = (), cls: type[Any] = RunConfig) -> Any:
    """Read a TOML file, apply ``--set`` overrides and validate into ``cls``.

    Args:
        path: the TOML file.
        overrides: ``key=value`` strings, dotted keys.
        cls: the frozen dataclass to build (``RunConfig`` by default).

    Raises:
        ConfigError: missing or unreadable file, invalid TOML, unknown key, wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; pass the path of a TOML file such as configs/toy.toml")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: invalid TOML ({exc}); fix the syntax at that position") from None
    for item in overrides:
        apply_override(data, item, source=str(path))
    return from_dict(cls, data, source=str(path))


def apply_override(data: dict[str, Any], item: str, *, source: str = "--set") -> None:
    """Apply one ``key.sub=value`` override to the raw TOML dict in place."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set sampling.steps=25")
    key, raw = item.split("=", 1)
    value = _parse_value(raw.strip())
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            node = node[_index(part, node, key)]
            continue
        if part not in node:
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[_index(last, node, key)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--set {item!r}: '{'.'.join(parts[:-1])}' is not a table in {source}")


def _index(part: str, node: list[Any], key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {key}: index {part!r} out of range (the list has {len(node)} entries)")
    return int(part)


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def from_dict(cls: type[T], data: Mapping[str, Any], *, source: str, where: str = "") -> T:
    """Validate a raw mapping into the frozen dataclass ``cls`` (recursively).

    Raises:
        ConfigError: naming the key path, the file and the fix (did-you-mean for unknown keys).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {source}: [{where or 'top level'}] must be a table, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            section = f"[{where}]" if where else "the top level"
            raise ConfigError(f"config file {source}: unknown key '{path}' in {section}{did_you_mean(key, fields)}")
        kwargs[key] = _coerce(hints[key], value, source=source, where=path)
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        label = f"[{where}]" if where else "the top level"
        raise ConfigError(f"config file {source}: missing required key '{missing[0]}' in {label}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a check across keys (``__post_init__``): name the file like every other error
        raise ConfigError(f"config file {source}: {exc}") from None


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _coerce(tp: Any, value: Any, *, source: str, where: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source=source, where=where)  # type: ignore[arg-type]
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list | tuple):
            value = [value]  # a scalar where a list is expected: a list of one
        inner = args[0]
        return tuple(_coerce(inner, v, source=source, where=f"{where}.{i}") for i, v in enumerate(value))
    if origin is Literal:
        if value not in get_args(tp):
            options = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"config file {source}: '{where}' = {value!r} is not one of {options}")
        return value
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        if value is None or len(inner) != 1:
            return value
        return _coerce(inner[0], value, source=source, where=where)  # an optional X: checked and converted as X
    if origin is not None and issubclass(origin, Mapping) or tp is Any:
        if origin is not None and not isinstance(value, Mapping):
            raise ConfigError(f"config file {source}: '{where}' must be a table")
        return dict(value) if isinstance(value, Mapping) else value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if tp in _TYPE_NAMES and (not isinstance(value, tp) or (tp is int and isinstance(value, bool))):
        raise ConfigError(
            f"config file {source}: '{where}' must be {_TYPE_NAMES[tp]}, got {value!r} ({type(value).__name__})"
        )
    return value
