"""Feature-space metrics: FD/FID, KID, CMMD, CLIP score, R-precision, diversity, PRDC, with bootstrap intervals.

Metrics receive feature arrays, never extractors (DESIGN.md rule 3). Start from `compute_metrics`, or call a metric's
function directly (`eval_protocols.metrics.fid.fd_from_features`, `...kid.kernel_inception_distance`, ...).
"""

from __future__ import annotations

from eval_protocols.metrics.base import FeatureStats, MetricResult
from eval_protocols.metrics.compute import compute_metrics
from eval_protocols.metrics.registry import MetricInputs, get_metric, list_metrics, register_metric

__all__ = [
    "FeatureStats",
    "MetricInputs",
    "MetricResult",
    "compute_metrics",
    "get_metric",
    "list_metrics",
    "register_metric",
]
