"""`harness score RUN`: metrics for every (system, settings) group of a run, against the configured reference.

Reference images: ``metrics.reference = "toyworld"`` renders ``reference_per_prompt`` real images of every caption
of the run into ``<run dir>/reference/`` (seeds disjoint from the generation seeds); a folder path uses every image
file in it; an ``.npz`` with ``mu``/``sigma`` serves the Fréchet distance only.

Features come through the on-disk cache (image sha256, extractor id), so scoring twice extracts once; a metric
result whose inputs hash (images, reference, extractor, options) is already stored is not recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from eval_protocols.features.cache import FeatureCache, extract_files
from eval_protocols.metrics.base import MetricResult
from eval_protocols.metrics.bootstrap import bootstrap_ci, with_bootstrap
from eval_protocols.metrics.registry import MetricInputs, MetricSpec, get_metric
from harness.config import RunConfig
from harness.errors import ConfigError, HarnessError
from harness.extractors import build_extractor
from harness.faults import fault_point
from harness.generators import ReferenceGenerator
from harness.manifest import ManifestEntry, RunDir, derive_seed
from harness.paths import feature_cache_dir
from harness.prompts import PromptRecord

if TYPE_CHECKING:
    from harness.storage.records import MetricResultRecord
    from harness.storage.repository import Repository

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
REFERENCE_SEED_OFFSET = 1_000_003  # reference renders never reuse a generation seed


def reference_images(cfg: RunConfig, run_dir: RunDir, prompts: Sequence[PromptRecord]) -> list[Path]:
    """Files of the reference images (rendered on first use for the toy world)."""
    ref = cfg.metrics.reference
    if ref == "toyworld":
        ref_dir = RunDir(run_dir.root / "reference").create()
        done = ref_dir.done_keys()
        gen = ReferenceGenerator()
        for p in prompts:
            for k in range(cfg.metrics.reference_per_prompt):
                settings: dict[str, Any] = {}
                if ("real", p.prompt_id, k, "{}") in done:
                    continue
                seed = derive_seed(cfg.seed + REFERENCE_SEED_OFFSET, p.prompt_id, k)
                image = gen.generate([p.text], [seed], settings)[0]
                ref_dir.add_image(
                    image,
                    {"system_id": "real", "model_id": gen.model_id, "prompt_id": p.prompt_id, "prompt": p.text,
                     "sample_index": k, "seed": seed, "settings": settings, "checkpoint_sha256": None},
                )
        return [ref_dir.root / e.path for e in ref_dir.entries()]
    path = Path(ref)
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"metrics.reference folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if path.suffix == ".npz":
        return []
    raise ConfigError(
        f"metrics.reference = {ref!r} is neither \"toyworld\", an image folder nor an .npz file with mu and sigma"
    )


def _npz_reference(path: str) -> Any:
    from eval_protocols.metrics.fid import load_stats

    try:
        return load_stats(path)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"metrics.reference {path}: cannot read mu/sigma ({exc}); save them with numpy.savez") from None


def with_interval(
    spec: MetricSpec, inputs: MetricInputs, results: list[MetricResult], n_resamples: int, seed: int
) -> list[MetricResult]:
    """Add seeded 95% bootstrap intervals: per-unit values resampled where a result has them (prompts clustered),
    otherwise the sample images resampled and the metric recomputed (feature-space metrics such as FD and KID)."""
    if n_resamples <= 0 or inputs.samples is None or len(inputs.samples) < 2:
        return results
    out = []
    for r in results:
        if r.ci_low is not None or any(k in r.details for k in ("per_caption", "per_sample")):
            out.append(r if r.ci_low is not None else with_bootstrap(r, groups=inputs.groups, n_resamples=n_resamples,
                                                                      seed=seed))
            continue

        def statistic(idx: np.ndarray, name: str = r.name) -> float:
            sub = dataclasses.replace(inputs, samples=inputs.samples[idx],  # type: ignore[index]
                                      groups=None if inputs.groups is None else inputs.groups[idx])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return next(v.value for v in spec(sub) if v.name == name)

        low, high = bootstrap_ci(statistic, len(inputs.samples), n_resamples=n_resamples, seed=seed)
        details = {**r.details, "ci_resampled": "images", "ci_resamples": n_resamples, "ci_confidence": 0.95}
        out.append(dataclasses.replace(r, ci_low=low, ci_high=high, details=details))
    return out


def _inputs_hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def score_run(
    cfg: RunConfig,
    run_dir: RunDir,
    entries: Sequence[ManifestEntry],
    prompts: Sequence[PromptRecord],
    repo: Repository | None,
    *,
    progress: bool = True,
) -> list[MetricResultRecord]:
    """Compute and store every configured metric for every (system, settings) group; returns all results."""
    from harness.report import settings_label
    from harness.storage.records import MetricResultRecord

    specs = []
    for name in cfg.metrics.names:
        try:
            specs.append(get_metric(name))
        except ValueError as exc:
            raise ConfigError(f"metrics.names: {exc}") from None
    extractor = build_extractor(cfg.metrics.extractor)
    cache = FeatureCache(feature_cache_dir())
    ref_files = reference_images(cfg, run_dir, prompts)
    npz = _npz_reference(cfg.metrics.reference) if cfg.metrics.reference.endswith(".npz") else None
    ref_feats = extract_files(extractor, ref_files, cache) if ref_files else None
    ref_key = _inputs_hash(sorted(str(f.name) for f in ref_files), cfg.metrics.reference)

    groups: dict[tuple[str, str], list[ManifestEntry]] = defaultdict(list)
    for e in entries:
        groups[(e.system_id, json.dumps(e.settings, sort_keys=True))].append(e)
    stored = {(r.metric, r.model_id, json.dumps(r.group, sort_keys=True), r.inputs_hash): r
              for r in (repo.load_metric_results(cfg.run_id) if repo else [])}
    results: list[MetricResultRecord] = []
    bar = tqdm(total=len(groups) * len(specs), desc="score", unit="metric", disable=not progress)
    for (system_id, settings_json), group in sorted(groups.items()):
        settings = json.loads(settings_json)
        feats = None
        for spec in specs:
            key = _inputs_hash(spec.name, sorted(e.sha256 for e in group), ref_key, extractor.extractor_id,
                               cfg.metrics.bootstrap, cfg.seed)
            done = [r for (m, s, g, h), r in stored.items() if s == system_id and g == settings_json and h == key]
            if done:
                results += done
                bar.update(1)
                continue
            if feats is None:
                feats = extract_files(extractor, [run_dir.root / e.path for e in group], cache,
                                      image_sha256s=[e.sha256 for e in group])
            inputs = MetricInputs(
                reference=ref_feats, samples=feats, groups=np.array([e.prompt_id for e in group]),
                reference_stats=npz,
            )
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # rank warnings are reported once, below
                    values = with_interval(spec, inputs, spec(inputs), cfg.metrics.bootstrap, cfg.seed)
            except ValueError as exc:
                raise HarnessError(f"metric {spec.name} on {system_id} ({settings_label(settings)}): {exc}") from None
            fresh = [
                MetricResultRecord(
                    run_id=cfg.run_id, metric=v.name, model_id=system_id, group=settings, value=float(v.value),
                    ci_low=v.ci_low, ci_high=v.ci_high, n=v.n, extractor_id=extractor.extractor_id,
                    inputs_hash=key,
                    details={"higher_is_better": v.higher_is_better,
                             "extractor_weights_sha256": extractor.weights_sha256,
                             **{k: d for k, d in v.details.items() if np.isscalar(d)}},
                )
                for v in values
            ]
            if repo is not None:  # stored at once: a run interrupted later skips it by its inputs hash on resume
                repo.save_metric_results(fresh)
            results += fresh
            fault_point("score")  # test hook (harness.faults): no-op unless HARNESS_FAULT_AFTER is set
            bar.update(1)
    bar.close()
    return results
