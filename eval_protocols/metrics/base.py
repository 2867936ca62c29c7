"""What every metric returns (`MetricResult`) and the input checks every metric shares (`as_features`)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MetricResult:
    """One computed metric value.

    Attributes:
        name: the metric's own name (``"fd"``, ``"kid"``, ``"precision"``, ...), the key in JSON output.
        value: the point estimate.
        n: the number of units it was computed from (samples; prompts for per-caption metrics).
        ci_low: lower end of the confidence interval (`eval_protocols.metrics.bootstrap`), None when not computed.
        ci_high: upper end of the confidence interval, None when not computed.
        higher_is_better: the direction of improvement.
        details: extra values (``std``, ``n_reference``, per-caption or per-sample values, settings); JSON-serialisable.
    """

    name: str
    value: float
    n: int
    higher_is_better: bool
    ci_low: float | None = None
    ci_high: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self, skip: Collection[str] = ()) -> dict[str, Any]:
        """A flat JSON object: ``{name: value, name_ci_low, name_ci_high, name_<detail>: ...}`` for scalar details.

        Args:
            skip: detail keys to leave out (e.g. ``n_reference`` when the caller reports it once).
        """
        out: dict[str, Any] = {self.name: self.value}
        if self.ci_low is not None and self.ci_high is not None:
            out[f"{self.name}_ci_low"] = self.ci_low
            out[f"{self.name}_ci_high"] = self.ci_high
        for key, value in self.details.items():
            if key not in skip and isinstance(value, (int, float, str, bool)):
                out[f"{self.name}_{key}"] = value
        return out


def as_features(features: Any, name: str, *, min_rows: int = 1, dim: int | None = None) -> np.ndarray:
    """Validate a feature array: 2-D, finite, enough rows, the expected width; returned as float64.

    Args:
        features: array-like ``(N, D)``.
        name: what the array is (``"reference features"``), for the error message.
        min_rows: the fewest rows the metric needs.
        dim: the required ``D`` (another set's width), or None.

    Returns:
        ``float64 (N, D)``.

    Raises:
        ValueError: naming the problem and, for NaN/inf, the offending rows.
    """
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array, got shape {array.shape}")
    if array.shape[0] < min_rows:
        raise ValueError(f"{name}: {array.shape[0]} rows, this metric needs at least {min_rows}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{name} have dimension {array.shape[1]} but the other set has {dim}; use one extractor")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise ValueError(f"{name}: rows {_row_list(bad)} contain NaN or inf; drop or re-extract those images")
    return array


def _row_list(rows: np.ndarray, shown: int = 10) -> str:
    """``[3, 17, ...] (5 rows)`` for the first ``shown`` rows."""
    head = ", ".join(str(int(r)) for r in rows[:shown])
    more = ", ..." if rows.size > shown else ""
    return f"[{head}{more}] ({rows.size} row{'s' if rows.size != 1 else ''})"


def group_indices(groups: Any, n: int, *, min_size: int = 1, what: str = "caption") -> dict[Any, np.ndarray]:
    """Row indices per group label, in first-seen order.

    Args:
        groups: ``(N,)`` labels (caption ids or texts), or None to treat all rows as one group.
        n: the number of rows.
        min_size: the fewest rows each group needs.
        what: the group noun for messages.

    Returns:
        ``{label: int64 row indices}``.

    Raises:
        ValueError: wrong length, or groups with fewer than ``min_size`` rows (named).
    """
    labels = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    if labels.shape != (n,):
        raise ValueError(f"{what} labels have shape {labels.shape}, expected ({n},): one label per feature row")
    order: dict[Any, list[int]] = {}
    for row, label in enumerate(labels.tolist()):
        order.setdefault(label, []).append(row)
    small = [label for label, rows in order.items() if len(rows) < min_size]
    if small:
        shown = ", ".join(repr(s) for s in small[:5]) + (", ..." if len(small) > 5 else "")
        raise ValueError(
            f"{len(small)} {what}(s) have fewer than {min_size} samples ({shown}); "
            f"generate at least {min_size} samples per {what}"
        )
    return {label: np.asarray(rows, dtype=np.int64) for label, rows in order.items()}


@dataclass(frozen=True)
class FeatureStats:
    """Gaussian summary of a feature set, as FD reference statistics (``.npz`` with ``mu``, ``sigma``).

    Attributes:
        mu: ``float64 (D,)`` mean.
        sigma: ``float64 (D, D)`` unbiased covariance (divided by N - 1).
        n: number of features summarised, or None when the file does not say.
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int | None = None
