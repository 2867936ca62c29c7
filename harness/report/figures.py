"""Metric figures of the report (matplotlib, PNGs written into the report folder).

* `metric_curves`: unCLIP Fig. 9 / GLIDE Fig. 6 style: each metric (FD, CLIP score, diversity, ...) against the
  decoder guidance scale, one panel per metric, one curve per system with its 95% interval, one legend;
* `metric_tradeoff`: FD (or FID) against CLIP score, one curve per system through its guidance scales.

Systems are named by their model name (``unCLIP (diffusion prior)``, ``GLIDE``; the guidance scale is the x axis)
and keep one colour in every panel. Systems that take no guidance scale (real renders, a folder of images) have one
value per metric: a dashed horizontal line with its interval as a band (metric vs guidance) or a star (trade-off).
Each function returns ``None`` when there is nothing to plot (no system with two guidance scales). The human-study
figures (Fig. 10, ratings) are `eval_protocols.human.figures`, shared with the app.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from eval_protocols.human.figures import png_bytes
from harness.rundir import atomic_write_bytes

if TYPE_CHECKING:
    from harness.storage.records import MetricResultRecord

METRIC_TITLES: dict[str, str] = {
    "fd": "FD", "fid": "FID", "kid": "KID", "cmmd": "CMMD", "clip_score": "CLIP score",
    "r_precision": "CLIP R-precision", "diversity": "Diversity (CLIP)", "layout_diversity": "Diversity (colour layout)",
    "vendi": "Vendi score",
}
"""Metric name → its name on an axis or in a table."""
METRIC_ORDER: tuple[str, ...] = (
    "fid", "fd", "clip_score", "layout_diversity", "diversity", "vendi", "r_precision", "kid", "cmmd"
)
"""Order of the panels: the paper's Fig. 9 metrics first."""
_COLOURS: tuple[str, ...] = ("#d62728", "#9467bd", "#1f77b4", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
REFERENCE_COLOUR = "#222222"


def metric_title(metric: str) -> str:
    return METRIC_TITLES.get(metric, metric)


def _by_system(results: Sequence[MetricResultRecord], metric: str) -> dict[str, dict[float, MetricResultRecord]]:
    """``{system: {guidance scale: record}}`` of one metric (records without a guidance scale are left out)."""
    out: dict[str, dict[float, MetricResultRecord]] = defaultdict(dict)
    for r in results:
        if r.metric == metric and "guidance_scale" in r.group:
            out[r.model_id][float(r.group["guidance_scale"])] = r
    return out


def _unguided(results: Sequence[MetricResultRecord], metric: str) -> dict[str, MetricResultRecord]:
    """``{system: record}`` of one metric for the systems measured without a guidance scale."""
    return {r.model_id: r for r in results if r.metric == metric and "guidance_scale" not in r.group}


def guidance_scales(results: Sequence[MetricResultRecord]) -> list[float]:
    """Distinct guidance scales the metric results were computed at."""
    return sorted({float(r.group["guidance_scale"]) for r in results if "guidance_scale" in r.group})


def swept_metrics(results: Sequence[MetricResultRecord]) -> list[str]:
    """Metrics with at least one system measured at two or more guidance scales, in panel order."""
    names = {r.metric for r in results}
    swept = [m for m in names if any(len(v) >= 2 for v in _by_system(results, m).values())]
    return sorted(swept, key=lambda m: (METRIC_ORDER.index(m) if m in METRIC_ORDER else len(METRIC_ORDER), m))


def _colours(systems: Sequence[str]) -> dict[str, str]:
    return {s: _COLOURS[i % len(_COLOURS)] for i, s in enumerate(systems)}


def metric_curves(
    results: Sequence[MetricResultRecord],
    out: Path,
    *,
    name: Callable[[str], str] = str,
    order: Callable[[str], Any] = str,
) -> Path | None:
    """Every swept metric against the guidance scale, one panel each, with 95% intervals; ``None`` if none is swept.

    Args:
        results: metric results of a run.
        out: the PNG to write.
        name: system id → the name in the legend (e.g. `Labeller.model_name`).
        order: sort key of the systems (legend order and colours).
    """
    metrics = swept_metrics(results)
    if not metrics:
        return None
    guided = sorted({s for m in metrics for s, v in _by_system(results, m).items() if len(v) >= 2}, key=order)
    colour = _colours(guided)
    cols = len(metrics) if len(metrics) <= 3 else (2 if len(metrics) == 4 else 3)
    nrows = math.ceil(len(metrics) / cols)
    height = 3.3 * nrows + 0.7
    fig = Figure(figsize=(4.0 * cols, height), dpi=100)
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        _panel(ax, results, metric, guided, colour, name)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    handles, labels = [], []
    for ax in axes[: len(metrics)]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=9, frameon=False)
    legend_rows = math.ceil(len(labels) / 4)
    fig.tight_layout(rect=(0, (0.25 + 0.25 * legend_rows) / height, 1, 1))
    atomic_write_bytes(out, png_bytes(fig))
    return out


def _panel(
    ax: Axes,
    results: Sequence[MetricResultRecord],
    metric: str,
    guided: Sequence[str],
    colour: Mapping[str, str],
    name: Callable[[str], str],
) -> None:
    """One metric: a curve with interval bars per guided system, a dashed line and band per unguided one."""
    by_system = _by_system(results, metric)
    higher = None
    for system in guided:
        per_g = by_system.get(system, {})
        if len(per_g) < 2:
            continue
        scales = sorted(per_g)
        records = [per_g[g] for g in scales]
        higher = records[0].details.get("higher_is_better", higher)
        ax.plot(scales, [r.value for r in records], marker="o", color=colour[system], label=name(system))
        # The interval is drawn as it is, not as ± around the value: a percentile bootstrap of a biased statistic
        # (FD, KID) may lie entirely above or below the point estimate.
        for g, r in zip(scales, records, strict=True):
            if r.ci_low is not None and r.ci_high is not None:
                ax.vlines(g, r.ci_low, r.ci_high, color=colour[system], lw=1.5, alpha=0.8)
    for system, r in sorted(_unguided(results, metric).items()):
        ax.axhline(r.value, ls="--", lw=1.2, color=REFERENCE_COLOUR, label=name(system))
        if r.ci_low is not None and r.ci_high is not None:
            ax.axhspan(r.ci_low, r.ci_high, color=REFERENCE_COLOUR, alpha=0.08, lw=0)
        higher = r.details.get("higher_is_better", higher)
    scales = guidance_scales([r for r in results if r.metric == metric])
    ax.set_xticks(scales, [f"{g:g}" for g in scales])
    ax.set_xlabel("decoder guidance scale")
    better = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
    ax.set_title(metric_title(metric) + better, fontsize=10)
    ax.grid(color="#eeeeee", lw=0.6)


def metric_tradeoff(
    results: Sequence[MetricResultRecord],
    x_metric: str,
    y_metric: str,
    out: Path,
    *,
    name: Callable[[str], str] = str,
    order: Callable[[str], Any] = str,
) -> Path | None:
    """``y_metric`` against ``x_metric`` (e.g. FD vs CLIP score), a curve per system through its guidance scales."""
    xs, ys = _by_system(results, x_metric), _by_system(results, y_metric)
    curves = {s: sorted(set(xs[s]) & set(ys[s])) for s in xs if s in ys}
    curves = {s: g for s, g in curves.items() if len(g) >= 2}
    if not curves:
        return None
    colour = _colours(sorted(curves, key=order))
    fig = Figure(figsize=(6.4, 4.4), dpi=100)
    ax = fig.add_subplot()
    for system in sorted(curves, key=order):
        scales = curves[system]
        x = [xs[system][g].value for g in scales]
        y = [ys[system][g].value for g in scales]
        ax.plot(x, y, marker="o", color=colour[system], label=name(system))
        for g, xi, yi in zip(scales, x, y, strict=True):
            ax.annotate(f"g = {g:g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    x_fixed, y_fixed = _unguided(results, x_metric), _unguided(results, y_metric)
    for system in sorted(set(x_fixed) & set(y_fixed)):
        ax.plot([x_fixed[system].value], [y_fixed[system].value], marker="*", ms=11, ls="none",
                color=REFERENCE_COLOUR, label=name(system))
    ax.set_xlabel(metric_title(x_metric))
    ax.set_ylabel(metric_title(y_metric))
    ax.set_title(f"{metric_title(y_metric)} against {metric_title(x_metric)} over guidance scales", fontsize=10)
    ax.grid(color="#eeeeee", lw=0.6)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_bytes(out, png_bytes(fig))
    return out
