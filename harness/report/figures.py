"""Figures of the report (matplotlib, Agg backend, PNGs written into the report folder).

* `win_rate_vs_guidance`: the paper's Fig. 10 style: for a system swept over guidance scales (study systems named
  ``<system>@g=<scale> ...``), P(swept system beats opponent) with its interval against the scale, one panel per
  protocol, one line per (swept system, opponent);
* `metric_tradeoff`: FD (or FID) against CLIP score, one curve per system through its guidance scales (the FID–CLIP
  score trade-off of GLIDE Fig. 6 / unCLIP Fig. 9);
* `metric_vs_guidance`: a metric (e.g. FD, CLIP score, Vendi diversity) against the guidance scale, one curve per
  system, with its 95% interval.

Systems that take no guidance scale (real renders, a folder of images) have one value per metric; they are drawn
as a dashed horizontal line (metric vs guidance) or a single star (trade-off), so the curves can be read against them.
Each function returns ``None`` when there is nothing to plot (no system with two guidance scales), so callers just
skip it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from eval_protocols.human.winrates import WinRate
    from harness.storage.records import MetricResultRecord

_GUIDANCE = re.compile(r"(?:^| )(?<!prior )g=([-+0-9.eE]+)")


def split_guidance(system: str) -> tuple[str, float | None]:
    """``"glide@g=3.0 steps=50"`` -> ``("glide", 3.0)``; a system without a decoder guidance scale -> ``(system, None)``."""
    if "@" not in system:
        return system, None
    base, settings = system.split("@", 1)
    match = _GUIDANCE.search(settings)
    if match is None:
        return system, None
    try:
        return base, float(match.group(1))
    except ValueError:
        return system, None


def guidance_series(
    rates: Sequence[WinRate],
) -> dict[str, dict[tuple[str, str], list[tuple[float, float, float, float]]]]:
    """``{protocol: {(swept system, opponent): [(g, P(swept beats opponent), low, high), ...]}}`` (≥ 2 points each).

    When system_a carries the guidance scale the rate is used as is; when system_b does, it is flipped (1 − p,
    1 − high, 1 − low). Pairs where both or neither side is swept are left out.
    """
    series: dict[str, dict[tuple[str, str], list[tuple[float, float, float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for w in rates:
        base_a, g_a = split_guidance(w.system_a)
        base_b, g_b = split_guidance(w.system_b)
        if (g_a is None) == (g_b is None):
            continue
        if g_a is not None:
            series[w.protocol][(base_a, w.system_b)].append((g_a, w.win_rate, w.ci_low, w.ci_high))
        else:
            assert g_b is not None
            series[w.protocol][(base_b, w.system_a)].append((g_b, 1 - w.win_rate, 1 - w.ci_high, 1 - w.ci_low))
    return {
        proto: {key: sorted(points) for key, points in lines.items() if len(points) >= 2}
        for proto, lines in series.items()
        if any(len(points) >= 2 for points in lines.values())
    }


def win_rate_vs_guidance(rates: Sequence[WinRate], out: Path) -> Path | None:
    """Fig. 10 style plot of P(swept system beats opponent) ± interval vs guidance scale; ``None`` if no sweep."""
    series = guidance_series(rates)
    if not series:
        return None
    protocols = sorted(series)
    fig, axes = plt.subplots(1, len(protocols), figsize=(4.2 * len(protocols), 3.4), squeeze=False)
    for ax, proto in zip(axes[0], protocols):
        for (swept, opponent), points in sorted(series[proto].items()):
            g = [p[0] for p in points]
            rate = [p[1] for p in points]
            err = [[max(p[1] - p[2], 0.0) for p in points], [max(p[3] - p[1], 0.0) for p in points]]
            ax.errorbar(g, rate, yerr=err, marker="o", capsize=3, label=f"{swept} vs {opponent}")
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0, 1)
        ax.set_xlabel("guidance scale")
        ax.set_ylabel("win rate")
        ax.set_title(proto.replace("_", " "))
        ax.legend(fontsize=7)
    return _save(fig, out)


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


def metric_tradeoff(results: Sequence[MetricResultRecord], x_metric: str, y_metric: str, out: Path) -> Path | None:
    """``y_metric`` against ``x_metric`` (e.g. FD vs CLIP score), a curve per system through its guidance scales."""
    xs, ys = _by_system(results, x_metric), _by_system(results, y_metric)
    curves = {s: sorted(set(xs[s]) & set(ys[s])) for s in xs if s in ys}
    curves = {s: g for s, g in curves.items() if len(g) >= 2}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for system, scales in sorted(curves.items()):
        x = [xs[system][g].value for g in scales]
        y = [ys[system][g].value for g in scales]
        ax.plot(x, y, marker="o", label=system)
        for g, xi, yi in zip(scales, x, y):
            ax.annotate(f"{g:g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    x_fixed, y_fixed = _unguided(results, x_metric), _unguided(results, y_metric)
    for system in sorted(set(x_fixed) & set(y_fixed)):
        ax.plot([x_fixed[system].value], [y_fixed[system].value], marker="*", ms=10, ls="none",
                label=f"{system} (no guidance)")
    ax.set_xlabel(x_metric)
    ax.set_ylabel(y_metric)
    ax.set_title(f"{y_metric} vs {x_metric} over guidance scales")
    ax.legend(fontsize=7)
    return _save(fig, out)


def metric_vs_guidance(results: Sequence[MetricResultRecord], metric: str, out: Path) -> Path | None:
    """A metric with its interval against the guidance scale, one curve per system."""
    by_system = {s: v for s, v in _by_system(results, metric).items() if len(v) >= 2}
    if not by_system:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for system, per_g in sorted(by_system.items()):
        scales = sorted(per_g)
        records = [per_g[g] for g in scales]
        value = [r.value for r in records]
        (line,) = ax.plot(scales, value, marker="o", label=system)
        # The interval is drawn as it is, not as ± around the value: a percentile bootstrap of a biased statistic
        # (FD, KID) may lie entirely above or below the point estimate.
        for g, r in zip(scales, records, strict=True):
            if r.ci_low is not None and r.ci_high is not None:
                ax.vlines(g, r.ci_low, r.ci_high, color=line.get_color(), lw=1.5)
                ax.hlines([r.ci_low, r.ci_high], g - 0.06, g + 0.06, color=line.get_color(), lw=1)
    for system, r in sorted(_unguided(results, metric).items()):
        line = ax.axhline(r.value, ls="--", lw=1, label=f"{system} (no guidance)")
        if r.ci_low is not None and r.ci_high is not None:
            ax.axhspan(r.ci_low, r.ci_high, color=line.get_color(), alpha=0.12, lw=0)
    ax.set_xlabel("guidance scale")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs guidance scale")
    ax.legend(fontsize=7)
    return _save(fig, out)


def _save(fig: plt.Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return out
