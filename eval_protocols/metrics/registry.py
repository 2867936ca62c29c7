"""Metrics registered by name with their metadata; unknown names fail with "did you mean".

A registered metric is a function ``fn(inputs: MetricInputs, **options) -> list[MetricResult]`` (one metric may yield
several values: ``prdc`` gives precision, recall, density and coverage). `MetricInputs` carries every kind of input
a metric may read; `MetricSpec.requires` names the fields it needs, checked before the call.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np

from eval_protocols.metrics.base import FeatureStats, MetricResult


@dataclass(frozen=True)
class MetricInputs:
    """Everything a metric may read; unused fields stay None.

    Attributes:
        reference: ``(N_ref, D)`` reference (real) image features.
        reference_stats: precomputed reference mean/covariance (FD only), instead of ``reference``.
        samples: ``(N, D)`` sample image features (Inception for FD/KID/PRDC, CLIP for CMMD/CLIP score/diversity).
        sample_text: ``(N, D)`` CLIP text features of each sample's caption (row i belongs to sample i).
        groups: ``(N,)`` caption id (or text) of each sample, for per-caption metrics.
        captions: ``(C, D)`` CLIP features of the distinct captions, for R-precision.
        caption_index: ``(N,)`` row of ``captions`` that is sample i's true caption.
    """

    reference: np.ndarray | None = None
    reference_stats: FeatureStats | None = None
    samples: np.ndarray | None = None
    sample_text: np.ndarray | None = None
    groups: np.ndarray | None = None
    captions: np.ndarray | None = None
    caption_index: np.ndarray | None = None


MetricFn = Callable[..., list[MetricResult]]
F = TypeVar("F", bound=MetricFn)


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    Attributes:
        name: registry name (``harness metrics NAME``).
        fn: ``fn(inputs, **options) -> list[MetricResult]``.
        higher_is_better: direction of the main value.
        requires: `MetricInputs` fields that must be set.
        description: one line for help texts.
    """

    name: str
    fn: MetricFn
    higher_is_better: bool
    requires: tuple[str, ...]
    description: str

    def __call__(self, inputs: MetricInputs, **options: Any) -> list[MetricResult]:
        """Check the required inputs, then compute.

        Raises:
            ValueError: a required input is missing.
        """
        missing = [f for f in self.requires if getattr(inputs, f) is None]
        if missing:
            raise ValueError(f"metric '{self.name}' needs {', '.join(missing)}; pass them in MetricInputs")
        return self.fn(inputs, **options)


_REGISTRY: dict[str, MetricSpec] = {}
_INPUT_FIELDS = {f.name for f in fields(MetricInputs)}


def register_metric(
    name: str, *, higher_is_better: bool, requires: tuple[str, ...], description: str = ""
) -> Callable[[F], F]:
    """Decorator registering ``fn(inputs, **options) -> list[MetricResult]`` under ``name``.

    Raises:
        ValueError: ``name`` already registered (no silent replacement), or an unknown input field.
    """
    unknown = set(requires) - _INPUT_FIELDS
    if unknown:
        raise ValueError(f"metric '{name}' requires unknown inputs {sorted(unknown)}; valid: {sorted(_INPUT_FIELDS)}")

    def decorate(fn: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"metric '{name}' is already registered by {_REGISTRY[name].fn.__module__}")
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = MetricSpec(name, fn, higher_is_better, tuple(requires), doc)
        return fn

    return decorate


def get_metric(name: str) -> MetricSpec:
    """The registered metric ``name``.

    Raises:
        ValueError: unknown name, with the closest registered name or the list of names.
    """
    _load_builtin_metrics()
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, sorted(_REGISTRY), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"valid names: {', '.join(sorted(_REGISTRY))}"
    raise ValueError(f"unknown metric '{name}'; {hint}")


def list_metrics() -> list[str]:
    """Names of all registered metrics, sorted."""
    _load_builtin_metrics()
    return sorted(_REGISTRY)


def _load_builtin_metrics() -> None:
    """Import the modules that register the built-in metrics (idempotent)."""
    from eval_protocols.metrics import clip_score, cmmd, diversity, fid, kid, prdc  # noqa: F401
