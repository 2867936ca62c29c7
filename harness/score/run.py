"""`harness score CONFIG`: metrics for every (system, settings) group of the config's run, against its reference.

Reference images: ``metrics.reference = "toyworld"`` renders ``reference_per_prompt`` real images of every caption
of the run into ``<run dir>/reference/`` (seeds disjoint from the generation seeds); a folder path uses every image
file in it; an ``.npz`` with ``mu``/``sigma`` serves the Fréchet distance only.

Caption metrics (``clip_score``, ``r_precision``) need ``metrics.clip_extractor``: its image features of the samples
and its text features of the run's captions (sample i's caption in ``sample_text``; the distinct captions and each
sample's row in ``captions``/``caption_index``). That CLIP also serves ``cmmd``, ``diversity`` and ``vendi`` when set;
``layout_diversity`` uses the colour-layout extractor (``layout``) it is defined on; FD, KID and PRDC use
``metrics.extractor``; ``metrics.extractors`` overrides any of these per metric
(`harness.score.extractors.metric_extractor_name`). Each result records the id of the extractor it was computed on.

Features come through the on-disk cache (image sha256, extractor id), so scoring twice extracts once; a metric
result whose inputs hash (images, reference, extractor, options) is already stored is not recomputed.

Under torchrun (`harness.distributed`) feature extraction is split round-robin over the ranks (each writes its
images' cache entries) and the features are gathered back in manifest order; rank 0 alone renders the reference,
reads and writes the store and computes the metrics, from the same feature arrays a single process would hold, so
every result (FD with its mu/sigma, KID, intervals...) is bit-identical to a one-process run for an extractor whose
features of an image do not depend on the batch it came in (``pixels``; a network's may differ in the last bits).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from eval_protocols.bootstrap import percentile_interval, resample_indices
from eval_protocols.features.base import FeatureExtractor
from eval_protocols.features.cache import FeatureCache, extract_files
from eval_protocols.human.design_inputs import settings_label
from eval_protocols.metrics.base import MetricResult
from eval_protocols.metrics.bootstrap import with_bootstrap
from eval_protocols.metrics.registry import MetricInputs, MetricSpec, get_metric
from harness import distributed
from harness.config import RunConfig
from harness.distributed import DistContext
from harness.errors import ConfigError, HarnessError
from harness.faults import fault_point
from harness.paths import feature_cache_dir
from harness.prompts import PromptRecord
from harness.rundir import ManifestEntry, RunDir
from harness.score.extractors import build_extractor, metric_extractor_name
from harness.score.inputs import npz_reference, reference_images

if TYPE_CHECKING:
    from harness.storage.records import MetricResultRecord
    from harness.storage.repository import Repository


def with_interval(
    spec: MetricSpec, inputs: MetricInputs, results: list[MetricResult], n_resamples: int, seed: int
) -> list[MetricResult]:
    """Add seeded 95% bootstrap intervals: per-unit values resampled where a result has them (prompts clustered,
    percentile interval), otherwise the sample images resampled and the metric recomputed (feature-space metrics
    such as FD and KID; basic bootstrap interval, see below)."""
    if n_resamples <= 0 or inputs.samples is None or len(inputs.samples) < 2:
        return results
    out = []
    for r in results:
        if r.ci_low is not None or any(k in r.details for k in ("per_caption", "per_sample")):
            out.append(r if r.ci_low is not None else with_bootstrap(r, groups=inputs.groups, n_resamples=n_resamples,
                                                                      seed=seed))
            continue

        q_low, q_high = percentile_interval(_image_replicates(spec, inputs, r.name, n_resamples, seed))
        # Basic (reverse-percentile) interval [2θ̂ − q_high, 2θ̂ − q_low]: resampling images with replacement
        # duplicates some, which inflates FD and KID (the percentile interval of FD can lie wholly above θ̂); the
        # basic interval carries the bootstrap's bias estimate over to θ̂ instead.
        low, high = 2 * r.value - q_high, 2 * r.value - q_low
        details = {**r.details, "ci_resampled": "images", "ci_resamples": n_resamples, "ci_confidence": 0.95,
                   "ci_method": "basic bootstrap"}
        out.append(dataclasses.replace(r, ci_low=low, ci_high=high, details=details))
    return out


def _image_replicates(spec: MetricSpec, inputs: MetricInputs, name: str, n_resamples: int, seed: int) -> np.ndarray:
    """``float64 (n_resamples,)`` values of metric ``name`` on the sample images resampled with replacement (the
    reference kept whole); replicate b resamples row b of
    `eval_protocols.bootstrap.resample_indices` ``(N, n_resamples, default_rng(seed))``.

    Through the metric's vectorised replicate rule (`MetricSpec.replicates`, the CI gate's: plain arrays, no
    streaming metric object per replicate, which costs far more, above all on a loaded machine: benchmarks/demo.md)
    when it has one for this result, with the reference rows passed unresampled; otherwise the
    metric itself on each resample. Both give the same numbers to float64 rounding
    (`tests/harness/test_score_intervals.py`).
    """
    samples = np.asarray(inputs.samples)
    rng = np.random.default_rng(seed)
    idx = resample_indices(len(samples), n_resamples, rng)
    has_reference = inputs.reference is not None or inputs.reference_stats is not None
    if spec.replicates is not None and name == spec.name and has_reference:
        whole = None if inputs.reference is None else np.tile(np.arange(len(inputs.reference)), (n_resamples, 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return spec.replicates(inputs, idx, whole)[1]

    def statistic(rows: np.ndarray) -> float:
        sub = dataclasses.replace(inputs, samples=samples[rows],
                                  groups=None if inputs.groups is None else np.asarray(inputs.groups)[rows])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return next(v.value for v in spec(sub) if v.name == name)

    return np.array([statistic(rows) for rows in idx], dtype=np.float64)


def _inputs_hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def sharded_features(
    extractor: FeatureExtractor,
    paths: Sequence[Path],
    cache: FeatureCache,
    image_sha256s: Sequence[str] | None,
    ctx: DistContext,
) -> np.ndarray:
    """`extract_files` split over the ranks: rank r extracts ``paths[r::world]``; every rank gets all rows in order.

    Returns:
        ``float32 (N, D)``, row i for ``paths[i]`` (one process: `extract_files` itself).
    """
    if not ctx.is_distributed:
        return extract_files(extractor, paths, cache, image_sha256s=image_sha256s)
    index = distributed.shard(range(len(paths)), ctx.rank, ctx.world_size)
    shas = None if image_sha256s is None else [image_sha256s[i] for i in index]
    local = extract_files(extractor, [paths[i] for i in index], cache, image_sha256s=shas)
    out = np.zeros((len(paths), extractor.dim), dtype=np.float32)
    for rank, share in enumerate(distributed.all_gather_object(ctx, local)):
        out[rank :: ctx.world_size] = share
    return out


@dataclasses.dataclass(frozen=True)
class CaptionFeatures:
    """CLIP text features of a run's distinct captions.

    Attributes:
        prompt_ids: ``(C,)`` the captions' prompt ids, in prompt-set order.
        features: ``float32 (C, D)`` unit-norm text embeddings, row c for ``prompt_ids[c]``.
    """

    prompt_ids: tuple[str, ...]
    features: np.ndarray


def caption_features(clip: FeatureExtractor, prompts: Sequence[PromptRecord]) -> CaptionFeatures:
    """Encode every prompt's text with the CLIP's text tower (``encode_text``)."""
    encode = getattr(clip, "encode_text", None)
    if encode is None:
        raise ConfigError(f"metrics.clip_extractor {clip.extractor_id!r} has no text tower; use a clip:... extractor")
    return CaptionFeatures(tuple(p.prompt_id for p in prompts), np.asarray(encode([p.text for p in prompts])))


def caption_inputs(captions: CaptionFeatures, group: Sequence[ManifestEntry]) -> dict[str, np.ndarray]:
    """`MetricInputs` fields of the caption metrics for a group: ``sample_text`` (N, D), ``captions`` (C, D) and
    ``caption_index`` (N,), sample i's caption being row ``caption_index[i]``."""
    row = {pid: k for k, pid in enumerate(captions.prompt_ids)}
    index = np.array([row[e.prompt_id] for e in group], dtype=np.int64)
    return {"sample_text": captions.features[index], "captions": captions.features, "caption_index": index}


def score_run(
    cfg: RunConfig,
    run_dir: RunDir,
    entries: Sequence[ManifestEntry],
    prompts: Sequence[PromptRecord],
    repo: Repository | None,
    *,
    progress: bool = True,
    dist: DistContext | None = None,
) -> list[MetricResultRecord]:
    """Compute and store every configured metric for every (system, settings) group; returns all results.

    Args:
        repo: the store (rank 0's; other ranks pass None).
        dist: the torchrun context (module docstring); None for one process, which is refused under torchrun.
    """
    from harness.storage.records import MetricResultRecord

    if dist is None:
        distributed.require_single_process("this scoring")
    ctx = dist or distributed.SINGLE

    specs = []
    for name in cfg.metrics.names:
        try:
            specs.append(get_metric(name))
        except ValueError as exc:
            raise ConfigError(f"metrics.names: {exc}") from None
    needs_text = any(s.needs_text for s in specs)  # MetricsConfig ensures a clip_extractor then
    built: dict[str, FeatureExtractor] = {}
    for name in dict.fromkeys(metric_extractor_name(s, cfg.metrics) for s in specs):
        built[name] = build_extractor(name)
    clip = None
    if needs_text:
        clip = built[cfg.metrics.clip_extractor]  # the caption metrics resolve to it (no override allowed)
    cache = FeatureCache(feature_cache_dir())
    ref_files = distributed.from_main(ctx, lambda: reference_images(cfg, run_dir, prompts))  # rank 0 renders
    npz = npz_reference(cfg.metrics.reference) if cfg.metrics.reference.endswith(".npz") else None
    ref_key = _inputs_hash(sorted(str(f.name) for f in ref_files), cfg.metrics.reference)
    ref_feats: dict[str, np.ndarray | None] = {}
    captions = caption_features(clip, prompts) if clip is not None and needs_text else None

    groups: dict[tuple[str, str], list[ManifestEntry]] = defaultdict(list)
    for e in entries:
        groups[(e.system_id, json.dumps(e.settings, sort_keys=True))].append(e)
    stored = distributed.from_main(  # every rank takes the same path through the loop below
        ctx, lambda: {(r.metric, r.model_id, json.dumps(r.group, sort_keys=True), r.inputs_hash): r
                      for r in (repo.load_metric_results(cfg.run_id) if repo else [])}
    )
    results: list[MetricResultRecord] = []
    show = distributed.show_progress(ctx, progress)
    bar = tqdm(total=len(groups) * len(specs), desc="score", unit="metric", disable=not show)
    for (system_id, settings_json), group in sorted(groups.items()):
        settings = json.loads(settings_json)
        feats: dict[str, np.ndarray] = {}
        for spec in specs:
            use = built[metric_extractor_name(spec, cfg.metrics)]
            key = _inputs_hash(spec.name, sorted(e.sha256 for e in group), ref_key, use.extractor_id,
                               cfg.metrics.bootstrap, cfg.seed)
            done = [r for (m, s, g, h), r in stored.items() if s == system_id and g == settings_json and h == key]
            if done:
                results += done
                bar.update(1)
                continue
            if use.extractor_id not in ref_feats:
                ref_feats[use.extractor_id] = sharded_features(use, ref_files, cache, None, ctx) if ref_files else None
            if use.extractor_id not in feats:
                feats[use.extractor_id] = sharded_features(use, [run_dir.root / e.path for e in group], cache,
                                                           [e.sha256 for e in group], ctx)
            if not ctx.is_main:  # rank 0 alone computes and stores; the others only extract
                bar.update(1)
                continue
            inputs = MetricInputs(
                reference=ref_feats[use.extractor_id], samples=feats[use.extractor_id],
                groups=np.array([e.prompt_id for e in group]), reference_stats=npz,
                **(caption_inputs(captions, group) if captions is not None and spec.needs_text else {}),
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
                    ci_low=v.ci_low, ci_high=v.ci_high, n=v.n, extractor_id=use.extractor_id,
                    inputs_hash=key,
                    details={"higher_is_better": v.higher_is_better,
                             "extractor_weights_sha256": use.weights_sha256,
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
    return distributed.broadcast_object(ctx, results)
