"""`harness regress`: the CI gate that fails when sample quality dropped beyond statistical noise.

A gate run generates the config's fixed prompts × seeds with the run machinery (`harness.generate`: resumable,
content-addressed images in ``<out_dir>/<run id>``), measures every (system, guidance scale) unit on the gated
metrics (``[regress]`` in the run config, `harness.config.RegressConfig`) with B bootstrap replicates each, and
compares them with a stored baseline file (``--update-baseline`` writes one).

The rule, per system, guidance scale and metric (numbers in the metric's own units):

* worsening ``w = new − baseline`` for lower-is-better metrics (``fd``, ``kid``) and ``w = baseline − new`` for
  higher-is-better ones (``clip_score``, ``diversity``, ``proxy``): ``w > 0`` means worse;
* replicate b of a run recomputes the metric after resampling, within every prompt, the generated images (and for
  ``fd``/``kid`` the reference images) with replacement; each run seeds its resampling with its own images' hashes,
  so the replicates of the two runs are independent and ``w*_b = ±(θ*_new,b − θ*_base,b)`` samples the bootstrap
  distribution of the difference. Shifted by ``w − mean(w*)`` (removing the resampling bias: FD and KID of a resample
  with repeated images run high), its ``α/m`` and ``1 − α/m`` quantiles are the interval ``[low, high]`` of ``w``,
  with ``m`` the number of comparisons (Bonferroni: an unchanged model fails any comparison with chance ≤ α);
* a comparison REGRESSES when ``low > tolerance`` (``[regress] tolerance``, default 0): worse beyond noise and beyond
  the margin, by ``low − tolerance`` ("beyond noise" in the table); it is "improved" when ``high < 0``.

The baseline records the values, their replicates, a fingerprint of what makes numbers comparable (prompts, seeds
per prompt, systems and guidance scales, metrics, feature extractors, reference, B), the config hash, checkpoint
sha256s, harness version, git commit and date. Generator options, checkpoints, sampler steps and the run seed may
differ from the baseline's: they are what the gate tests. A different fingerprint is a `HarnessError` naming
``--update-baseline``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from harness import __version__
from harness.config import RegressConfig, RunConfig
from harness.errors import ConfigError, HarnessError, did_you_mean

if TYPE_CHECKING:
    from eval_protocols.metrics.base import FeatureStats
    from harness.manifest import ManifestEntry, RunDir
    from harness.prompts import PromptRecord

GATE_METRICS: dict[str, bool] = {"fd": False, "kid": False, "clip_score": True, "diversity": True, "proxy": True}
"""Metrics the gate knows, with ``higher_is_better``."""
BASELINE_FORMAT = "unclip-harness/regress-baseline/1"
KID_SUBSET_SIZE = 1000  # KID's usual subset size; smaller sets are used whole (one subset pair is then exact)

Statistic = Callable[[np.ndarray, np.ndarray | None], np.ndarray]
"""``(idx (B, N), ref_idx (B, M) | None) -> (B,)``: a metric on resampled rows (identity rows give the point value)."""


@dataclass(frozen=True)
class Measurement:
    """One metric of one (system, guidance scale) unit, with its bootstrap replicates.

    Attributes:
        system_id: the system id of the run config.
        group: ``guidance=<g>`` for guided generators, ``""`` otherwise.
        metric: a `GATE_METRICS` name.
        higher_is_better: direction of improvement.
        value: the point estimate on all images.
        n: images it was computed from.
        replicates: ``float64 (B,)`` bootstrap replicates (module docstring).
    """

    system_id: str
    group: str
    metric: str
    higher_is_better: bool
    value: float
    n: int
    replicates: np.ndarray = field(repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.system_id, self.group, self.metric)

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Bias-shifted percentile interval of the value: replicates moved to mean ``value``, then quantiles."""
        shifted = self.replicates - self.replicates.mean() + self.value
        low, high = np.quantile(shifted, [(1 - confidence) / 2, (1 + confidence) / 2])
        return float(low), float(high)


@dataclass(frozen=True)
class Comparison:
    """The gate's verdict on one (system, guidance scale, metric); ``worse_by`` > 0 means worse than the baseline.

    Attributes:
        baseline / current: the two point estimates.
        worse_by: ``w`` of the module docstring; ``low``/``high``: its interval at level α/m per side.
        tolerance: the configured margin; ``regressed`` = ``low > tolerance``; ``improved`` = ``high < 0``.
    """

    system_id: str
    group: str
    metric: str
    higher_is_better: bool
    baseline: float
    current: float
    worse_by: float
    low: float
    high: float
    tolerance: float
    regressed: bool
    improved: bool

    @property
    def beyond_noise(self) -> float:
        """How far the worsening exceeds noise and tolerance (> 0 only when regressed)."""
        return self.low - self.tolerance


@dataclass(frozen=True)
class Baseline:
    """A baseline file's content: header (provenance, fingerprint) and measurements."""

    header: dict[str, Any]
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True)
class GateOutcome:
    """What one `run_gate` call produced; ``comparisons`` is empty when the baseline was (re)written."""

    run_id: str
    run_dir: Path
    baseline_path: Path
    measurements: tuple[Measurement, ...]
    comparisons: tuple[Comparison, ...]
    updated: bool
    notes: tuple[str, ...]
    alpha: float

    @property
    def regressed(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.regressed)


# ---------------------------------------------------------------------------------------------------------- rule


def gate_metrics(rc: RegressConfig) -> tuple[str, ...]:
    """The validated metric list (``proxy`` added when a proxy is configured).

    Raises:
        ConfigError: unknown or repeated metric, a metric lacking its model, bad alpha/bootstrap/tolerance.
    """
    names = tuple(rc.metrics) + (("proxy",) if rc.proxy and "proxy" not in rc.metrics else ())
    for name in names:
        if name not in GATE_METRICS:
            raise ConfigError(f"regress.metrics: unknown metric {name!r}{did_you_mean(name, GATE_METRICS)}")
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"regress.metrics = {list(names)}: list each of {', '.join(GATE_METRICS)} at most once")
    if "proxy" in names and not rc.proxy:
        raise ConfigError("regress.metrics has 'proxy' but regress.proxy is empty; set it to a trained proxy's stem")
    if "clip_score" in names and not rc.clip:
        raise ConfigError("regress.metrics has 'clip_score' but regress.clip is empty; set it to \"toy-clip\"")
    if not 0.0 < rc.alpha < 1.0 or rc.bootstrap < 20:
        raise ConfigError(f"regress: need 0 < alpha < 1 and bootstrap >= 20, got {rc.alpha} and {rc.bootstrap}")
    for name, tol in rc.tolerance.items():
        if name not in names:
            raise ConfigError(f"regress.tolerance: {name!r} is not a gated metric{did_you_mean(name, names)}")
        if isinstance(tol, bool) or not isinstance(tol, int | float) or tol < 0:
            raise ConfigError(f"regress.tolerance.{name} = {tol!r}: must be a number >= 0 (metric units)")
    return names


def compare(baseline: Sequence[Measurement], current: Sequence[Measurement], rc: RegressConfig) -> list[Comparison]:
    """Apply the rule of the module docstring to every current measurement (all must be in the baseline)."""
    base = {m.key: m for m in baseline}
    q = rc.alpha / max(len(current), 1)
    out = []
    for cur in current:
        old = base[cur.key]
        sign = -1.0 if cur.higher_is_better else 1.0
        worse = sign * (cur.value - old.value)
        b = min(len(old.replicates), len(cur.replicates))
        diffs = sign * (cur.replicates[:b] - old.replicates[:b])
        low, high = (float(v) for v in np.quantile(diffs - diffs.mean() + worse, [q, 1.0 - q]))
        tol = float(rc.tolerance.get(cur.metric, 0.0))
        out.append(Comparison(cur.system_id, cur.group, cur.metric, cur.higher_is_better, old.value, cur.value,
                              worse, low, high, tol, regressed=low > tol, improved=high < 0.0))
    return out


def stratified_indices(groups: np.ndarray | None, n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``int64 (B, n)`` resampled rows: within each group label (same positions), rows drawn with replacement."""
    labels = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    out = np.empty((n_resamples, n), dtype=np.int64)
    for label in dict.fromkeys(labels.tolist()):
        rows = np.flatnonzero(labels == label)
        out[:, rows] = rows[rng.integers(0, len(rows), (n_resamples, len(rows)))]
    return out


# ----------------------------------------------------------------------------------------------- baseline file


def fix_hint(config: str, baseline: Path) -> str:
    return f"harness regress {config} --baseline {baseline} --update-baseline"


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any], path: Path, config: str) -> None:
    """Raise one `HarnessError` naming the first part of the setup that differs from the baseline's."""
    for key in current:
        if saved.get(key) != current[key]:
            raise HarnessError(
                f"baseline {path} was made from a different setup ({key} differ: baseline {_short(saved.get(key))}, "
                f"now {_short(current[key])}); if the change is intended, record a new baseline with "
                f"`{fix_hint(config, path)}`"
            )


def _short(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def baseline_text(header: dict[str, Any], measurements: Sequence[Measurement]) -> str:
    """The baseline file: indented header, then one result per line (replicates to 7 significant digits)."""
    results = [
        json.dumps({"system": m.system_id, "group": m.group, "metric": m.metric,
                    "higher_is_better": m.higher_is_better, "value": m.value, "n": m.n, "ci95": list(m.interval()),
                    "replicates": [float(f"{r:.7g}") for r in m.replicates]})
        for m in measurements
    ]
    head = json.dumps({"format": BASELINE_FORMAT, **header}, indent=2, sort_keys=True)
    return head[:-2] + ',\n  "results": [\n    ' + ",\n    ".join(results) + "\n  ]\n}\n"


def write_baseline(path: Path, header: dict[str, Any], measurements: Sequence[Measurement]) -> None:
    """Write the baseline atomically (temporary file in the same folder, fsync, rename)."""
    from harness.manifest import atomic_write_bytes

    try:
        atomic_write_bytes(path, baseline_text(header, measurements).encode("utf-8"))
    except OSError as exc:
        raise HarnessError(f"cannot write the baseline {path} ({exc.strerror}); choose a writable path") from None


def load_baseline(path: Path, config: str) -> Baseline:
    """Read and validate a baseline file.

    Raises:
        HarnessError: missing, unreadable, not JSON, or not a regress baseline — naming ``--update-baseline``.
    """
    fix = f"create it with `{fix_hint(config, path)}`"
    if not path.is_file():
        raise HarnessError(f"baseline {path} not found; {fix}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
            raise ValueError(f"format is not {BASELINE_FORMAT!r}")
        if not isinstance(data.get("fingerprint"), dict):
            raise ValueError("no fingerprint")
        n_rep = int(data["fingerprint"]["bootstrap"])
        results = [_measurement(r, n_rep) for r in data["results"]]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"baseline {path} is corrupt or not a regress baseline ({exc}); re{fix}") from None
    header = {k: v for k, v in data.items() if k not in ("format", "results")}
    return Baseline(header, tuple(results))


def _measurement(r: dict[str, Any], n_rep: int) -> Measurement:
    replicates = np.asarray(r["replicates"], dtype=np.float64)
    if replicates.shape != (n_rep,) or not np.isfinite(replicates).all() or not np.isfinite(float(r["value"])):
        raise ValueError(f"{r.get('metric')} of {r.get('system')}: expected {n_rep} finite replicates")
    if r["metric"] not in GATE_METRICS:
        raise ValueError(f"unknown metric {r['metric']!r}")
    return Measurement(str(r["system"]), str(r["group"]), str(r["metric"]), bool(r["higher_is_better"]),
                       float(r["value"]), int(r["n"]), replicates)


# ------------------------------------------------------------------------------------------------- measuring


@dataclass(frozen=True, eq=False)
class GateTools:
    """The feature extractors the gated metrics need, built once (their ids go into the fingerprint)."""

    metrics: tuple[str, ...]
    extractor: Any = None  # metrics.extractor: fd, kid (and diversity without a CLIP)
    clip: Any = None  # image callable + encode_text: clip_score, diversity
    proxy: Any = None  # PreferenceProxy
    proxy_features: Any = None  # the extractor the proxy was trained on
    proxy_id: str = ""

    @classmethod
    def build(cls, cfg: RunConfig) -> GateTools:
        from harness.extractors import build_extractor

        metrics = gate_metrics(cfg.regress)
        needs_pixels = {"fd", "kid"} & set(metrics) or ("diversity" in metrics and not cfg.regress.clip)
        extractor = build_extractor(cfg.metrics.extractor) if needs_pixels else None
        clip = _build_clip(cfg.regress.clip) if {"clip_score", "diversity"} & set(metrics) and cfg.regress.clip else None
        proxy = features = None
        proxy_id = ""
        if cfg.regress.proxy:
            proxy, features, proxy_id = _build_proxy(cfg.regress.proxy)
        return cls(metrics, extractor, clip, proxy, features, proxy_id)

    def feature_ids(self) -> dict[str, str]:
        return {"extractor": getattr(self.extractor, "extractor_id", ""), "clip": getattr(self.clip, "extractor_id", ""),
                "proxy": self.proxy_id}


def _build_clip(name: str) -> Any:
    from harness.extractors import build_extractor
    from harness.sim_judges import load_toy_clip

    if name == "toy-clip":
        clip = load_toy_clip()
        if clip is None:
            raise HarnessError("regress.clip = \"toy-clip\" but checkpoints/toy/clip_toy.* is missing; train it "
                               "(harness train clip) or set regress.clip = \"clip:<arch>:<checkpoint>\"")
        return clip
    if not name.startswith("clip:"):
        raise ConfigError(f"regress.clip = {name!r}: use \"toy-clip\", \"clip:<arch>:<checkpoint>\" or \"\"")
    return build_extractor(name)


def _build_proxy(stem: str) -> tuple[Any, Any, str]:
    from eval_protocols.human.proxy import PreferenceProxy
    from harness.proxy import build_proxy_extractor

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


@dataclass(frozen=True, eq=False)
class ReferenceData:
    """Reference features (fd, kid) with their prompt ids, or FD statistics from an ``.npz``."""

    features: np.ndarray | None
    prompt_ids: np.ndarray | None
    stats: FeatureStats | None


def unit_label(settings: dict[str, Any]) -> str:
    """``guidance=<g>`` of a guided unit's settings, ``""`` for unguided generators."""
    return f"guidance={float(settings['guidance_scale']):g}" if "guidance_scale" in settings else ""


def load_units(tools: GateTools, run_dir: RunDir, entries: Sequence[ManifestEntry]) -> list[UnitData]:
    """Group a run's entries by (system, guidance scale) and extract what the metrics need (feature cache)."""
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
                              feats(tools.extractor), feats(tools.clip), text, utility))
    return units


def load_reference(cfg: RunConfig, tools: GateTools, run_dir: RunDir, prompts: Sequence[PromptRecord]) -> ReferenceData:
    """Reference features for fd/kid (toy-world renders of the run's captions, an image folder, or FD stats)."""
    if not {"fd", "kid"} & set(tools.metrics):
        return ReferenceData(None, None, None)
    from eval_protocols.features.cache import FeatureCache, extract_files
    from harness.manifest import RunDir as _RunDir
    from harness.paths import feature_cache_dir
    from harness.score import reference_images

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
    if ref == "toyworld":  # keep the run's captions and reference_per_prompt renders each, with their prompt ids
        wanted = {p.prompt_id for p in prompts}
        ref_entries = [e for e in _RunDir(run_dir.root / "reference").entries()
                       if e.prompt_id in wanted and e.sample_index < cfg.metrics.reference_per_prompt]
        files = [run_dir.root / "reference" / e.path for e in ref_entries]
        prompt_ids = np.array([e.prompt_id for e in ref_entries])
    features = extract_files(tools.extractor, files, FeatureCache(feature_cache_dir()))
    return ReferenceData(features, prompt_ids, None)


def statistic(metric: str, unit: UnitData, ref: ReferenceData) -> Statistic:
    """The batched metric function of a unit (see `Statistic`)."""
    from eval_protocols.metrics.clip_score import clip_score_per_sample
    from eval_protocols.metrics.diversity import pairwise_diversity
    from eval_protocols.metrics.fid import fd_from_features
    from eval_protocols.metrics.kid import kernel_inception_distance

    def loop(one: Callable[[np.ndarray, np.ndarray | None], float]) -> Statistic:
        return lambda idx, ref_idx: np.array([one(i, None if ref_idx is None else ref_idx[b])
                                              for b, i in enumerate(idx)])

    if metric in ("clip_score", "proxy"):
        per_sample = (clip_score_per_sample(unit.clip, unit.text) if metric == "clip_score" else unit.utility)
        return lambda idx, ref_idx: np.asarray(per_sample)[idx].mean(axis=1)
    if metric == "diversity":
        feats = unit.clip if unit.clip is not None else unit.features
        return loop(lambda i, _: pairwise_diversity(feats[i], unit.prompt_ids[i]).value)  # type: ignore[index]
    if metric == "fd":
        return loop(lambda i, r: fd_from_features(None if r is None else ref.features[r],  # type: ignore[index]
                                                  unit.features[i], reference_stats=ref.stats).value)  # type: ignore[index]
    assert ref.features is not None and unit.features is not None
    subsets = 1 if max(len(ref.features), len(unit.features)) <= KID_SUBSET_SIZE else 10
    return loop(lambda i, r: kernel_inception_distance(ref.features[r], unit.features[i],  # type: ignore[index]
                                                       subsets=subsets, subset_size=KID_SUBSET_SIZE).value)


def measure_unit(unit: UnitData, ref: ReferenceData, metrics: Sequence[str], rc: RegressConfig) -> list[Measurement]:
    """Point values and ``rc.bootstrap`` replicates of every metric on one unit (module docstring).

    The resampling is seeded by ``rc.seed`` and the unit's image hashes: identical images give identical numbers,
    other images an independent resampling.
    """
    digest = hashlib.sha256("\n".join((unit.system_id, unit.group, *unit.sha256s)).encode()).digest()
    rng = np.random.default_rng([rc.seed, int.from_bytes(digest[:8], "little")])
    n = len(unit.sha256s)
    idx = stratified_indices(unit.prompt_ids, n, rc.bootstrap, rng)
    n_ref = 0 if ref.features is None else len(ref.features)
    ref_idx = stratified_indices(ref.prompt_ids, n_ref, rc.bootstrap, rng) if n_ref else None
    identity, ref_identity = np.arange(n)[None], (np.arange(n_ref)[None] if n_ref else None)
    out = []
    for metric in metrics:
        stat = statistic(metric, unit, ref)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # rank warnings of FD on small sets: the same in both runs
                value = float(stat(identity, ref_identity)[0])
                replicates = stat(idx, ref_idx).astype(np.float64)
        except ValueError as exc:
            raise HarnessError(f"regress: {metric} of {unit.system_id} {unit.group}: {exc}") from None
        out.append(Measurement(unit.system_id, unit.group, metric, GATE_METRICS[metric], value, n, replicates))
    return out


# ------------------------------------------------------------------------------------------------------ gate


def fingerprint(cfg: RunConfig, tools: GateTools, prompts: Sequence[PromptRecord], units: Sequence[tuple[str, str]]
                ) -> dict[str, Any]:
    """What must match for two gate runs to be comparable (module docstring)."""
    return {
        "prompts": [[p.prompt_id, p.text] for p in prompts],
        "seeds_per_prompt": cfg.sampling.seeds_per_prompt,
        "units": [list(u) for u in units],
        "metrics": list(tools.metrics),
        "features": tools.feature_ids(),
        "reference": {"source": cfg.metrics.reference, "per_prompt": cfg.metrics.reference_per_prompt},
        "bootstrap": cfg.regress.bootstrap,
    }


def run_gate(cfg: RunConfig, baseline_path: Path, *, config_label: str, update: bool = False,
             progress: bool = True) -> GateOutcome:
    """Generate (resuming), measure and compare with — or, with ``update``, rewrite — the baseline.

    Raises:
        HarnessError: bad config, missing weights, a missing/corrupt/mismatched baseline (before generating).
    """
    from harness import provenance
    from harness.generate import build_generators, generate_run, plan_units
    from harness.prompts import load_prompts
    from harness.runner import prepare_run_dir

    tools = GateTools.build(cfg)
    generators = build_generators(cfg)
    prompts = load_prompts(cfg.prompts)
    units = list(dict.fromkeys((u.system.id, unit_label(u.settings)) for u in plan_units(cfg, prompts, generators)))
    per_side = cfg.regress.alpha / max(len(units) * len(tools.metrics), 1)
    if cfg.regress.bootstrap * per_side < 1.0:
        need = int(np.ceil(1.0 / per_side))
        raise ConfigError(f"regress.bootstrap = {cfg.regress.bootstrap} is too few for {len(units) * len(tools.metrics)}"
                          f" comparisons at alpha {cfg.regress.alpha}; set it to at least {need}")
    current_fp = fingerprint(cfg, tools, prompts, units)
    baseline = None if update else load_baseline(baseline_path, config_label)
    if baseline is not None:
        check_fingerprint(baseline.header["fingerprint"], current_fp, baseline_path, config_label)

    run_dir = prepare_run_dir(cfg)
    entries = generate_run(cfg, run_dir, prompts, progress=progress, generators=generators)
    reference = load_reference(cfg, tools, run_dir, prompts)
    measurements: list[Measurement] = []
    data = load_units(tools, run_dir, entries)
    for unit in tqdm(data, desc="bootstrap", unit="unit", disable=not progress):
        measurements += measure_unit(unit, reference, tools.metrics, cfg.regress)

    checkpoints = {s.id: {"generator": s.generator, "model_id": generators[s.id].model_id,
                          "checkpoint_sha256": generators[s.id].checkpoint_sha256} for s in cfg.systems}
    if update:
        header = {
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "harness_version": __version__,
            "git": provenance.git_commit(), "config_sha256": cfg.config_hash(), "run_id": cfg.run_id,
            "seed": cfg.seed, "checkpoints": checkpoints, "fingerprint": current_fp,
            "rule": {"alpha": cfg.regress.alpha, "tolerance": dict(cfg.regress.tolerance)},
        }
        write_baseline(baseline_path, header, measurements)
        return GateOutcome(cfg.run_id, run_dir.root, baseline_path, tuple(measurements), (), True, (),
                           cfg.regress.alpha)
    assert baseline is not None
    notes = _notes(baseline.header, checkpoints, cfg)
    comparisons = compare(baseline.measurements, measurements, cfg.regress)
    return GateOutcome(cfg.run_id, run_dir.root, baseline_path, tuple(measurements), tuple(comparisons), False,
                       notes, cfg.regress.alpha)


def _notes(header: dict[str, Any], checkpoints: dict[str, Any], cfg: RunConfig) -> tuple[str, ...]:
    """What changed since the baseline besides the numbers (for the report)."""
    notes = [f"baseline made {header.get('created_at', '?')} by harness {header.get('harness_version', '?')} "
             f"(git {str((header.get('git') or {}).get('commit'))[:12]})"]
    old = header.get("checkpoints", {})
    for system_id, now in checkpoints.items():
        before = (old.get(system_id) or {}).get("checkpoint_sha256")
        if before != now["checkpoint_sha256"]:
            notes.append(f"{system_id}: checkpoint changed ({str(before)[:12]} -> {str(now['checkpoint_sha256'])[:12]})")
    if header.get("seed") != cfg.seed:
        notes.append(f"run seed differs from the baseline's ({header.get('seed')} -> {cfg.seed}): other sampling noise")
    if header.get("config_sha256") != cfg.config_hash():
        notes.append("config differs from the baseline's in settings outside the fingerprint (options, steps, rule)")
    return tuple(notes)
