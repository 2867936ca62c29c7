"""Preference-proxy score: the mean utility f(x) of a vote-trained preference proxy over the samples.

A `eval_protocols.human.proxy.PreferenceProxy` predicts P(humans prefer y over x) = σ(f(y) − f(x)) from image
features; its utility ``f(x) = w·(φ(x) / scale)`` is on a logit scale, so a difference of 1 in the mean utility of two
systems is a preference odds of e for a typical pair. The caller computes ``utility = proxy.utility(features)``
(the features the proxy was trained on) and passes it in `MetricInputs.utility`; this metric averages it, with the
per-sample values in ``details["per_sample"]`` for bootstrap intervals. Higher is better.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eval_protocols.metrics.base import MetricResult
from eval_protocols.metrics.bootstrap import mean_replicates
from eval_protocols.metrics.registry import MetricInputs, register_metric


def proxy_score(utility: Any) -> MetricResult:
    """Mean of the per-sample utilities ``(N,)`` (``name="proxy"``), N >= 1.

    Raises:
        ValueError: not a non-empty 1-D array of finite numbers.
    """
    values = np.asarray(utility, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"proxy utility must be a non-empty 1-D array of finite numbers, got shape {values.shape}")
    details: dict[str, Any] = {"std": float(values.std()), "per_sample": values.tolist()}
    return MetricResult("proxy", float(values.mean()), len(values), higher_is_better=True, details=details)


def _proxy_replicates(inputs: MetricInputs, idx: np.ndarray, ref_idx: np.ndarray | None) -> tuple[float, np.ndarray]:
    """Mean utility and its within-prompt replicates (`eval_protocols.metrics.bootstrap.mean_replicates`)."""
    return mean_replicates(inputs.utility, inputs.groups, idx)


@register_metric(
    "proxy",
    higher_is_better=True,
    requires=("utility",),
    description="mean utility of a preference proxy",
    replicates=_proxy_replicates,
)
def _proxy_metric(inputs: MetricInputs) -> list[MetricResult]:
    return [proxy_score(inputs.utility)]
