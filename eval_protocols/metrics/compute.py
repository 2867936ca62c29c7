"""One call that computes several registered metrics from saved features (for `harness score` and `harness metrics`).

Example::

    results = compute_metrics(["fd", "kid", "prdc"], reference=ref_inception, samples=sample_inception)
    results += compute_metrics(
        ["clip_score", "diversity", "vendi"], samples=sample_clip, sample_text=caption_clip_per_sample,
        groups=prompt_ids, bootstrap=1000,
    )
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eval_protocols.metrics.base import FeatureStats, MetricResult
from eval_protocols.metrics.bootstrap import with_bootstrap
from eval_protocols.metrics.registry import MetricInputs, get_metric


def compute_metrics(
    names: Sequence[str],
    reference: np.ndarray | None = None,
    samples: np.ndarray | None = None,
    *,
    reference_stats: FeatureStats | None = None,
    sample_text: np.ndarray | None = None,
    groups: Sequence[Any] | np.ndarray | None = None,
    captions: np.ndarray | None = None,
    caption_index: np.ndarray | None = None,
    utility: np.ndarray | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[MetricResult]:
    """Compute the named metrics, in order, each possibly yielding several results.

    Args:
        names: registered metric names (`eval_protocols.metrics.registry.list_metrics`).
        reference: ``(N_ref, D)`` reference features (FD, KID, CMMD, PRDC).
        samples: ``(N, D)`` sample features (Inception or CLIP, matching what each metric expects).
        reference_stats: FD reference statistics instead of ``reference`` features.
        sample_text: ``(N, D)`` CLIP text features of each sample's caption (CLIP score).
        groups: ``(N,)`` prompt/caption label per sample (diversity, Vendi; prompt-level bootstrap).
        captions: ``(C, D)`` CLIP features of the distinct captions (R-precision).
        caption_index: ``(N,)`` caption row per sample (R-precision).
        utility: ``(N,)`` a preference proxy's utility per sample (``proxy``).
        options: per-metric keyword options, e.g. ``{"kid": {"subsets": 50}, "r_precision": {"k": 32}}``.
        bootstrap: number of bootstrap resamples for metrics with per-unit values (0: no intervals).
        confidence: interval coverage.
        seed: seed of bootstraps (metrics take their own ``seed`` option).

    Returns:
        The results, in the order of ``names``.

    Raises:
        ValueError: an unknown metric name (with did-you-mean), a missing input, or bad features.
    """
    specs = [get_metric(name) for name in names]  # fail on a typo before computing anything
    inputs = MetricInputs(
        reference=reference,
        reference_stats=reference_stats,
        samples=samples,
        sample_text=sample_text,
        groups=None if groups is None else np.asarray(groups),
        captions=captions,
        caption_index=caption_index,
        utility=utility,
    )
    results: list[MetricResult] = []
    for spec in specs:
        for result in spec(inputs, **dict((options or {}).get(spec.name, {}))):
            if bootstrap > 0:
                result = with_bootstrap(
                    result, groups=inputs.groups, n_resamples=bootstrap, confidence=confidence, seed=seed
                )
            results.append(result)
    return results
