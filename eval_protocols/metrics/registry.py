"""Metrics registered by name with every fact a caller needs about them; unknown names fail with "did you mean".

A registered metric is a function ``fn(inputs: MetricInputs, **options) -> list[MetricResult]`` (one metric may yield
several values: ``prdc`` gives precision, recall, density and coverage). `MetricInputs` carries every kind of input
a metric may read; `MetricSpec.requires` names the fields it needs, checked before the call.

The spec is the one source of a metric's facts: its direction (``higher_is_better``), whether it reads the captions
(``needs_text``), whether it is defined on CLIP image embeddings (``clip_features``) or on the features of one named
extractor (``extractor``, e.g. ``"layout"`` for ``layout_diversity``), whether it compares against a
reference set (``needs_reference``) and whether the CI regression gate can compare two runs on it (``replicates``).
Query them with `metric_names` and `gate_metrics`.

This module imports no metric module. The built-in metrics register when the package `eval_protocols.metrics` is
imported (its ``__init__`` imports them), and Python imports a package before any of its modules, this one included:
after ``import eval_protocols.metrics.registry`` every built-in metric is registered. Registration imports numpy only
(torch is imported when an FD is computed), so lookups are cheap.
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
        utility: ``(N,)`` a preference proxy's utility f(x) of each sample (`eval_protocols.human.proxy`).
    """

    reference: np.ndarray | None = None
    reference_stats: FeatureStats | None = None
    samples: np.ndarray | None = None
    sample_text: np.ndarray | None = None
    groups: np.ndarray | None = None
    captions: np.ndarray | None = None
    caption_index: np.ndarray | None = None
    utility: np.ndarray | None = None


MetricFn = Callable[..., list[MetricResult]]
ReplicatesFn = Callable[[MetricInputs, np.ndarray, np.ndarray | None], tuple[float, np.ndarray]]
"""``fn(inputs, idx (B, N), ref_idx (B, N_ref) | None) -> (value, (B,) replicates)``, see `MetricSpec.replicates`."""
F = TypeVar("F", bound=MetricFn)

TEXT_INPUTS = frozenset({"sample_text", "captions", "caption_index"})
"""`MetricInputs` fields made from the captions' text (CLIP text features)."""
REFERENCE_INPUTS = frozenset({"reference", "reference_stats"})
"""`MetricInputs` fields describing the reference (real) set."""


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric and its facts.

    Attributes:
        name: registry name (``harness metrics NAME``).
        fn: ``fn(inputs, **options) -> list[MetricResult]``.
        higher_is_better: direction of the main value.
        requires: `MetricInputs` fields that must be set; ``"a|b"`` means at least one of ``a`` and ``b``.
        description: one line for help texts.
        clip_features: defined on CLIP image embeddings (CLIP score, R-precision, CMMD, diversity, Vendi): a caller
            with a CLIP extractor gives it that CLIP's features (another extractor's otherwise, unless it
            `needs_text`, when only a CLIP will do: its text and image towers share one space).
        extractor: the feature extractor the metric is defined on, by the harness's extractor name (``"layout"``:
            `eval_protocols.features.pixels.LayoutExtractor`); a caller builds it for this metric unless told to use
            another (``metrics.extractors`` in a run config). Empty: the caller's general extractor (or its CLIP,
            see ``clip_features``).
        replicates: the metric's bootstrap rule for comparing two runs (`ReplicatesFn`; the CI regression gate):
            point value and replicates on resamples drawn within prompts; None when it has none (the gate cannot
            use it).
    """

    name: str
    fn: MetricFn
    higher_is_better: bool
    requires: tuple[str, ...]
    description: str
    clip_features: bool = False
    replicates: ReplicatesFn | None = None
    extractor: str = ""

    @property
    def needs_text(self) -> bool:
        """Reads CLIP text features of the captions (``sample_text``, ``captions``, ``caption_index``)."""
        return any(set(r.split("|")) & TEXT_INPUTS for r in self.requires)

    @property
    def needs_reference(self) -> bool:
        """Compares the samples with a reference set (``reference`` features or FD's ``reference_stats``)."""
        return any(set(r.split("|")) & REFERENCE_INPUTS for r in self.requires)

    @property
    def gate(self) -> bool:
        """The CI regression gate can compare two runs on it (it has a `replicates` rule)."""
        return self.replicates is not None

    def check_inputs(self, inputs: MetricInputs) -> None:
        """Raise ValueError naming the required inputs that are missing."""
        missing = [r for r in self.requires if all(getattr(inputs, f) is None for f in r.split("|"))]
        if missing:
            wanted = ", ".join(r.replace("|", " or ") for r in missing)
            raise ValueError(f"metric '{self.name}' needs {wanted}; pass them in MetricInputs")

    def __call__(self, inputs: MetricInputs, **options: Any) -> list[MetricResult]:
        """Check the required inputs, then compute.

        Raises:
            ValueError: a required input is missing.
        """
        self.check_inputs(inputs)
        return self.fn(inputs, **options)


_REGISTRY: dict[str, MetricSpec] = {}
_INPUT_FIELDS = {f.name for f in fields(MetricInputs)}


def register_metric(
    name: str,
    *,
    higher_is_better: bool,
    requires: tuple[str, ...],
    description: str = "",
    clip_features: bool = False,
    replicates: ReplicatesFn | None = None,
    extractor: str = "",
) -> Callable[[F], F]:
    """Decorator registering ``fn(inputs, **options) -> list[MetricResult]`` under ``name`` (facts: `MetricSpec`).

    Raises:
        ValueError: ``name`` already registered (no silent replacement), or an unknown input field.
    """
    unknown = {f for r in requires for f in r.split("|")} - _INPUT_FIELDS
    if unknown:
        raise ValueError(f"metric '{name}' requires unknown inputs {sorted(unknown)}; valid: {sorted(_INPUT_FIELDS)}")

    def decorate(fn: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"metric '{name}' is already registered by {_REGISTRY[name].fn.__module__}")
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = MetricSpec(name, fn, higher_is_better, tuple(requires), doc, clip_features, replicates,
                                     extractor)
        return fn

    return decorate


def get_metric(name: str) -> MetricSpec:
    """The registered metric ``name``.

    Raises:
        ValueError: unknown name, with the closest registered name or the list of names.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, sorted(_REGISTRY), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"valid names: {', '.join(sorted(_REGISTRY))}"
    raise ValueError(f"unknown metric '{name}'; {hint}")


def list_metrics() -> list[str]:
    """Names of all registered metrics, sorted."""
    return sorted(_REGISTRY)


def metric_names(
    *,
    needs_text: bool | None = None,
    clip_features: bool | None = None,
    needs_reference: bool | None = None,
    gate: bool | None = None,
    higher_is_better: bool | None = None,
) -> tuple[str, ...]:
    """Names of the registered metrics whose facts (`MetricSpec`) equal every filter given, sorted.

    Built-in examples: ``metric_names(needs_text=True)`` -> ``("clip_score", "r_precision")``;
    ``metric_names(clip_features=True, needs_text=False)`` -> ``("cmmd", "diversity", "vendi")``;
    ``metric_names(gate=True)`` -> ``("clip_score", "diversity", "fd", "kid", "layout_diversity", "proxy")``.
    """
    wanted = {"needs_text": needs_text, "clip_features": clip_features, "needs_reference": needs_reference,
              "gate": gate, "higher_is_better": higher_is_better}
    return tuple(
        name
        for name, spec in sorted(_REGISTRY.items())
        if all(value is None or getattr(spec, fact) == value for fact, value in wanted.items())
    )


def gate_metrics() -> dict[str, bool]:
    """The metrics the CI regression gate can compare two runs on, with their ``higher_is_better``, sorted by name.

    Built-in: ``{"clip_score": True, "diversity": True, "fd": False, "kid": False, "layout_diversity": True,
    "proxy": True}``.
    """
    return {name: _REGISTRY[name].higher_is_better for name in metric_names(gate=True)}
