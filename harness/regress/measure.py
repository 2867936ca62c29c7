"""Measurements of the CI gate (`harness.regress.gate`): features of a gate run and bootstrap replicates per metric.

Every (system, guidance scale) unit gets, per gated metric, its point value on all images and B replicates. Replicate
b resamples with replacement, within every prompt, the unit's images (and, for ``fd``/``kid``, the reference images
of the same prompts), and recomputes the metric. The resampling and each metric's replicate rule are
eval_protocols' one bootstrap (`eval_protocols.bootstrap.stratified_indices`,
`eval_protocols.metrics.bootstrap.metric_replicates`); this module gathers the features they read:

* ``fd``, ``kid``: Fréchet distance / KID (`eval_protocols.metrics`) of the resampled sets on ``metrics.extractor``
  features; KID uses one subset pair when both sets fit one subset of 1000 rows (then it is exact), else 10;
* ``clip_score``, ``proxy``: the mean of per-image values (``100·max(cos(image, caption), 0)``; the proxy's f(x));
  replicate deviations are widened by ``sqrt(n/(n−1))`` (n = images per prompt), the usual small-sample correction
  of a bootstrapped mean;
* ``diversity``: the within-prompt mean pairwise cosine distance (CLIP image embeddings, else ``metrics.extractor``),
  averaged over prompts; a replicate averages only pairs of distinct original images (a repeated image would add a
  distance of 0), and the replicate spread is scaled to the within-prompt jackknife standard error
  (Efron–Stein: not below the true one in expectation), since the bootstrap of a pairwise statistic from a few
  images per prompt runs narrow.
* ``layout_diversity``: the same on colour-layout features (``layout``) with the RMS distance
  ``‖x − y‖₂ / √D`` (`eval_protocols.metrics.diversity`).

A metric defined on its own extractor (`eval_protocols.metrics.registry.MetricSpec.extractor`), or given one by
``[metrics] extractors``, is measured on that extractor's features, as `harness score` does; the reference metrics
(``fd``, ``kid``) always use ``metrics.extractor``.

Resampling is seeded by ``[regress] seed`` and the unit's image hashes: identical images give identical numbers,
other images (another run seed, another checkpoint) an independent resampling.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eval_protocols.bootstrap import stratified_indices
from eval_protocols.metrics.bootstrap import metric_replicates
from eval_protocols.metrics.registry import MetricInputs, gate_metrics, get_metric
from harness.config import RegressConfig, RunConfig
from harness.errors import ConfigError, HarnessError
from harness.regress.baseline import Measurement, check_gate_metrics

if TYPE_CHECKING:
    from eval_protocols.metrics.base import FeatureStats
    from harness.prompts import PromptRecord
    from harness.rundir import ManifestEntry, RunDir

KID_SUBSET_SIZE = 1000  # KID's usual subset size; smaller sets are used whole (one subset pair is then exact)


@dataclass(frozen=True, eq=False)
class GateTools:
    """The feature extractors the gated metrics need, built once (their ids go into the baseline's fingerprint)."""

    metrics: tuple[str, ...]
    extractor: Any = None  # metrics.extractor: fd, kid (and diversity without a CLIP)
    clip: Any = None  # image callable + encode_text: clip_score, diversity
    proxy: Any = None  # PreferenceProxy
    proxy_features: Any = None  # the extractor the proxy was trained on
    proxy_id: str = ""
    own: Mapping[str, Any] = field(default_factory=dict)  # metric -> the extractor it is measured on (see module doc)

    @classmethod
    def build(cls, cfg: RunConfig) -> GateTools:
        """Validate ``[regress]`` and build what its metrics need (missing weights fail here, before generating)."""
        from harness.score.extractors import build_extractor

        metrics = check_gate_metrics(cfg.regress)
        own: dict[str, Any] = {}
        for metric in metrics:
            name = cfg.metrics.extractors.get(metric) or get_metric(metric).extractor
            if name and get_metric(metric).needs_reference:
                raise ConfigError(f"metrics.extractors.{metric}: the regression gate measures {metric} on "
                                  "metrics.extractor features (its reference too); drop the entry or change that")
            if name:
                own[metric] = build_extractor(name)
        rest = set(metrics) - set(own)
        wants_clip = bool({"clip_score", "diversity"} & rest) and bool(cfg.regress.clip)
        needs_extractor = bool({"fd", "kid"} & rest) or ("diversity" in rest and not wants_clip)
        extractor = build_extractor(cfg.metrics.extractor) if needs_extractor else None
        clip = _build_clip(cfg.regress.clip) if wants_clip else None
        proxy, features, proxy_id = _build_proxy(cfg.regress.proxy) if cfg.regress.proxy else (None, None, "")
        return cls(metrics, extractor, clip, proxy, features, proxy_id, own)

    def feature_ids(self) -> dict[str, str]:
        """Ids of the extractors in use (``""`` for none; ``own:<metric>`` for a metric's own extractor)."""
        ids = {"extractor": getattr(self.extractor, "extractor_id", ""),
               "clip": getattr(self.clip, "extractor_id", ""), "proxy": self.proxy_id}
        return ids | {f"own:{m}": e.extractor_id for m, e in sorted(self.own.items())}


def _build_clip(name: str) -> Any:
    """A CLIP extractor with ``encode_text`` (`harness.score.extractors`: ``clip:toy`` or ``clip:<arch>:<checkpoint>``)."""
    from harness.score.extractors import build_extractor

    if not name.startswith("clip:"):
        raise ConfigError(f"regress.clip = {name!r}: use \"clip:toy\", \"clip:<arch>:<checkpoint>\" or \"\"")
    return build_extractor(name)


def _build_proxy(stem: str) -> tuple[Any, Any, str]:
    """``(proxy, its extractor, id)``; the id joins the feature id and a digest of the weights."""
    from eval_protocols.human.proxy import PreferenceProxy
    from harness.analyze.proxy import build_proxy_extractor

    try:
        proxy = PreferenceProxy.load(stem)
    except (ValueError, OSError, KeyError) as exc:
        raise HarnessError(f"regress.proxy: {exc}") from None
    features, feature_id, _ = build_proxy_extractor(str(proxy.metadata.get("extractor", "pixels")))
    if proxy.feature_id and feature_id != proxy.feature_id:
        raise HarnessError(f"regress.proxy {stem} was trained on {proxy.feature_id} features but {feature_id} is "
                           "available; retrain it (harness proxy train)")
    digest = hashlib.sha256(np.concatenate([proxy.weights, proxy.scale]).astype(np.float64).tobytes()).hexdigest()
    return proxy, features, f"{feature_id}:{digest[:16]}"


@dataclass(frozen=True, eq=False)
class UnitData:
    """Inputs of one (system, guidance scale) unit; arrays have one row per image, in plan order."""

    system_id: str
    group: str
    sha256s: tuple[str, ...]
    prompt_ids: np.ndarray  # (N,) prompt id of each image
    features: np.ndarray | None  # (N, D) metrics.extractor features
    clip: np.ndarray | None  # (N, Dc) CLIP image embeddings
    text: np.ndarray | None  # (N, Dc) CLIP text embedding of each image's caption
    utility: np.ndarray | None  # (N,) proxy utility f(x)
    own: Mapping[str, np.ndarray] = field(default_factory=dict)  # metric -> (N, D) features of its own extractor


@dataclass(frozen=True, eq=False)
class ReferenceData:
    """Reference features (fd, kid) with their prompt ids (None: resampled as one group), or FD statistics."""

    features: np.ndarray | None
    prompt_ids: np.ndarray | None
    stats: FeatureStats | None


def unit_label(settings: dict[str, Any]) -> str:
    """``guidance=<g>`` of a guided unit's settings, ``""`` for unguided generators."""
    return f"guidance={float(settings['guidance_scale']):g}" if "guidance_scale" in settings else ""


def load_units(tools: GateTools, run_dir: RunDir, entries: Sequence[ManifestEntry]) -> list[UnitData]:
    """Group a run's entries by (system, guidance scale) and extract what the metrics need (through the cache)."""
    from eval_protocols.features.cache import FeatureCache, extract_files
    from harness.paths import feature_cache_dir

    cache = FeatureCache(feature_cache_dir())
    by_unit: dict[tuple[str, str], list[ManifestEntry]] = {}
    for e in entries:
        by_unit.setdefault((e.system_id, unit_label(e.settings)), []).append(e)
    text_cache: dict[str, np.ndarray] = {}
    units = []
    for (system_id, group), rows in by_unit.items():
        files, shas = [run_dir.root / e.path for e in rows], [e.sha256 for e in rows]

        def feats(extractor: Any, files: list[Path] = files, shas: list[str] = shas) -> np.ndarray | None:
            return None if extractor is None else extract_files(extractor, files, cache, image_sha256s=shas)

        text = None
        if tools.clip is not None:
            missing = sorted({e.prompt for e in rows} - set(text_cache))
            text_cache.update(zip(missing, tools.clip.encode_text(missing), strict=True))
            text = np.stack([text_cache[e.prompt] for e in rows])
        proxy_feats = feats(tools.proxy_features)
        utility = None if proxy_feats is None else tools.proxy.utility(np.asarray(proxy_feats, dtype=np.float64))
        units.append(UnitData(system_id, group, tuple(shas), np.array([e.prompt_id for e in rows]),
                              feats(tools.extractor), feats(tools.clip), text, utility,
                              {m: extract_files(e, files, cache, image_sha256s=shas) for m, e in tools.own.items()}))
    return units


def load_reference(cfg: RunConfig, tools: GateTools, run_dir: RunDir, prompts: Sequence[PromptRecord]) -> ReferenceData:
    """Reference features for fd/kid: toy-world renders of the run's captions (`harness.score.inputs.reference_images`),
    every image of a folder, or FD statistics from an ``.npz``."""
    if not {"fd", "kid"} & set(tools.metrics):
        return ReferenceData(None, None, None)
    from eval_protocols.features.cache import FeatureCache, extract_files
    from harness.paths import feature_cache_dir
    from harness.rundir import RunDir as Folder
    from harness.score.inputs import reference_images

    ref = cfg.metrics.reference
    if ref.endswith(".npz"):
        if "kid" in tools.metrics:
            raise ConfigError(f"regress.metrics has 'kid' but metrics.reference = {ref!r} holds only FD statistics; "
                              "use reference images or drop kid")
        from eval_protocols.metrics.fid import load_stats

        try:
            return ReferenceData(None, None, load_stats(ref))
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"metrics.reference {ref}: cannot read mu/sigma ({exc})") from None
    files = reference_images(cfg, run_dir, prompts)
    prompt_ids = None
    if ref == "toyworld":  # the run's captions, reference_per_prompt renders each, with their prompt ids
        wanted = {p.prompt_id for p in prompts}
        kept = [e for e in Folder(run_dir.root / "reference").entries()
                if e.prompt_id in wanted and e.sample_index < cfg.metrics.reference_per_prompt]
        files = [run_dir.root / "reference" / e.path for e in kept]
        prompt_ids = np.array([e.prompt_id for e in kept])
    return ReferenceData(extract_files(tools.extractor, files, FeatureCache(feature_cache_dir())), prompt_ids, None)


def measure_unit(unit: UnitData, ref: ReferenceData, metrics: Sequence[str], rc: RegressConfig) -> list[Measurement]:
    """Point values and ``rc.bootstrap`` replicates of every metric on one unit (module docstring).

    Raises:
        HarnessError: a metric cannot be computed (e.g. diversity with one image per prompt).
    """
    digest = hashlib.sha256("\n".join((unit.system_id, unit.group, *unit.sha256s)).encode()).digest()
    rng = np.random.default_rng([rc.seed, int.from_bytes(digest[:8], "little")])
    n = len(unit.sha256s)
    idx = stratified_indices(unit.prompt_ids, n, rc.bootstrap, rng)
    n_ref = 0 if ref.features is None else len(ref.features)
    ref_idx = stratified_indices(ref.prompt_ids, n_ref, rc.bootstrap, rng) if n_ref else None
    directions = gate_metrics()
    out = []
    for metric in metrics:
        try:
            with warnings.catch_warnings(), _one_torch_thread():
                warnings.simplefilter("ignore")  # rank warnings of FD on small sets: the same in both runs
                value, replicates = metric_replicates(metric, metric_inputs(metric, unit, ref), idx, ref_idx)
        except ValueError as exc:
            raise HarnessError(f"regress: {metric} of {unit.system_id} {unit.group}: {exc}") from None
        out.append(Measurement(unit.system_id, unit.group, metric, directions[metric], float(value), n, replicates))
    return out


def metric_inputs(metric: str, unit: UnitData, ref: ReferenceData) -> MetricInputs:
    """What metric ``metric`` reads of a unit: CLIP image embeddings for the CLIP metrics (``clip_score``, and
    ``diversity`` when a CLIP is configured), else ``metrics.extractor`` features; the reference for fd/kid; the
    captions' text embeddings; the proxy's utilities. A metric with its own extractor reads that one's features."""
    clip_metric = get_metric(metric).clip_features or get_metric(metric).needs_text
    samples = unit.clip if clip_metric and unit.clip is not None else unit.features
    samples = unit.own.get(metric, samples)
    return MetricInputs(samples=samples, groups=unit.prompt_ids, reference=ref.features, reference_stats=ref.stats,
                        sample_text=unit.text, utility=unit.utility)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Small eigenproblems (FD per replicate) run faster on one thread than split over busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
