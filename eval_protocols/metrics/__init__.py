"""Feature-space metrics: FD/FID, KID, CMMD, CLIP score, R-precision, diversity, PRDC, with bootstrap intervals.

Metrics receive feature arrays, never extractors (DESIGN.md rule 3). Start from `compute_metrics`, or call a metric's
function directly (`eval_protocols.metrics.fid.fd_from_features`, `...kid.kernel_inception_distance`, ...). What is
known about each metric (direction, inputs, CLIP, gate) comes from `registry`: `get_metric`, `metric_names`,
`gate_metrics`.

Importing this package registers the built-in metrics: the modules below each register theirs with
`registry.register_metric` (the registry imports none of them). None imports torch at import time.
"""

from __future__ import annotations

from eval_protocols.metrics import clip_score, cmmd, diversity, fid, kid, prdc, proxy  # noqa: F401  (registration)
from eval_protocols.metrics.base import FeatureStats, MetricResult
from eval_protocols.metrics.compute import compute_metrics
from eval_protocols.metrics.registry import (
    MetricInputs,
    MetricSpec,
    gate_metrics,
    get_metric,
    list_metrics,
    metric_names,
    register_metric,
)

__all__ = [
    "FeatureStats",
    "MetricInputs",
    "MetricResult",
    "MetricSpec",
    "compute_metrics",
    "gate_metrics",
    "get_metric",
    "list_metrics",
    "metric_names",
    "register_metric",
]
