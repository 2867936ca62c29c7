"""Figures of the human evaluation, shared by the report and the app's Results page (matplotlib, no pyplot).

* `headline_figure`: unCLIP Fig. 10 style: P(unCLIP beats GLIDE) against the decoder guidance scale at matched
  scales, colour = protocol, line style = unCLIP prior, 95% interval bars, the 50% line (no preference);
* `ratings_figure`: Bradley–Terry ratings (Elo scale) with their bootstrap intervals, one panel per protocol,
  systems in one order on a shared axis.

Both build a `matplotlib.figure.Figure` directly (no global pyplot state, safe in Streamlit's threads) and
`png_bytes` renders it without a timestamp or software tag, so the same data gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from eval_protocols.human.bradley_terry import BTRatings
from eval_protocols.human.headline import Headline, Matchup
from eval_protocols.human.labels import Labeller, protocol_key, protocol_title

PROTOCOL_COLOURS: dict[str, str] = {
    "photorealism": "#1f77b4",
    "caption_similarity": "#ff7f0e",
    "diversity": "#2ca02c",
}
"""Colour of each protocol in every figure (other protocols cycle through `_EXTRA_COLOURS`)."""
_EXTRA_COLOURS: tuple[str, ...] = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_STYLES: tuple[tuple[str, str], ...] = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))
"""(line style, marker) of the first, second, ... challenger model (diffusion prior first)."""
DPI = 100


def protocol_colour(protocol: str, protocols: Sequence[str] = ()) -> str:
    """The fixed colour of a paper protocol; others by their position in ``protocols``."""
    if protocol in PROTOCOL_COLOURS:
        return PROTOCOL_COLOURS[protocol]
    others = [p for p in protocols if p not in PROTOCOL_COLOURS]
    k = others.index(protocol) if protocol in others else 0
    return _EXTRA_COLOURS[k % len(_EXTRA_COLOURS)]


def headline_series(
    head: Headline, labeller: Labeller
) -> dict[tuple[str, str], list[Matchup]]:
    """``{(protocol, challenger model name): [matchups with a known guidance scale, ascending]}``, in plot order."""
    series: dict[tuple[str, str], list[Matchup]] = {}
    for p in head.protocols:
        for m in head.matchups(p):
            if m.guidance is not None:
                series.setdefault((p, labeller.model_name(m.challenger)), []).append(m)
    return {k: sorted(v, key=lambda m: m.guidance or 0.0) for k, v in series.items()}


def headline_figure(head: Headline, labeller: Labeller, *, note: str = "") -> Figure | None:
    """P(challenger beats opponent) ± interval against the guidance scale; ``None`` when no scale is known.

    Args:
        head: from `eval_protocols.human.headline.headline`.
        labeller: names the challenger models (legend).
        note: appended to the title, e.g. ``"simulated votes"``.
    """
    series = headline_series(head, labeller)
    if not series:
        return None
    models = list(dict.fromkeys(model for _, model in series))
    protocols = list(dict.fromkeys(protocol for protocol, _ in series))
    scales = sorted({m.guidance for ms in series.values() for m in ms if m.guidance is not None})
    span = (scales[-1] - scales[0]) if len(scales) > 1 else 1.0
    fig = Figure(figsize=(8.4, 5.0), dpi=DPI)
    ax = fig.add_subplot()
    ax.axhline(50, color="#555555", lw=1, ls=(0, (4, 3)), zorder=1)
    for k, ((protocol, model), points) in enumerate(series.items()):
        dodge = 0.025 * span * (k - (len(series) - 1) / 2)
        line, marker = _STYLES[models.index(model) % len(_STYLES)]
        x = [(m.guidance or 0.0) + dodge for m in points]
        y = [100 * m.win_rate for m in points]
        err = [[100 * max(m.win_rate - m.ci_low, 0.0) for m in points],
               [100 * max(m.ci_high - m.win_rate, 0.0) for m in points]]
        ax.errorbar(x, y, yerr=err, color=protocol_colour(protocol, head.protocols), ls=line, marker=marker, ms=6,
                    lw=1.6, capsize=3, zorder=3)
    ax.set_xticks(scales, [f"{g:g}" for g in scales])
    ax.set_xlim(scales[0] - 0.15 * span, scales[-1] + 0.15 * span)
    ax.set_ylim(0, 100)
    ax.set_yticks(range(0, 101, 10))
    ax.grid(axis="y", color="#dddddd", lw=0.6, zorder=0)
    ax.set_xlabel("decoder guidance scale (the same for both systems)")
    ax.set_ylabel(f"P({head.challenger_name} beats {head.opponent_name}) (%)")
    title = f"P({head.challenger_name} beats {head.opponent_name}) at matched guidance, 95% intervals"
    fig.suptitle(f"{title}\n({note})" if note else title, fontsize=10.5)
    colour_keys = [Line2D([], [], color=protocol_colour(p, head.protocols), lw=2.5, label=protocol_title(p))
                   for p in protocols]
    style_keys = [Line2D([], [], color="#333333", ls=_STYLES[i % len(_STYLES)][0], marker=_STYLES[i % len(_STYLES)][1],
                         lw=1.6, label=model) for i, model in enumerate(models)]
    style_keys.append(Line2D([], [], color="#555555", ls=(0, (4, 3)), lw=1, label="50%: no preference"))
    first = ax.legend(handles=colour_keys, title="protocol (colour)", fontsize=8.5, title_fontsize=8.5,
                      loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, alignment="left")
    ax.add_artist(first)
    ax.legend(handles=style_keys, title="model (line style)", fontsize=8.5, title_fontsize=8.5, loc="upper left",
              bbox_to_anchor=(1.01, 0.55), frameon=False, alignment="left")
    fig.subplots_adjust(left=0.09, right=0.7, top=0.86 if note else 0.9, bottom=0.12)
    return fig


def ratings_figure(
    ratings: Mapping[str, BTRatings], labeller: Labeller, *, note: str = ""
) -> Figure | None:
    """Bradley–Terry ratings with intervals, one panel per protocol, systems on a shared axis; ``None`` if empty."""
    protocols = sorted((p for p, r in ratings.items() if r.systems), key=protocol_key)
    if not protocols:
        return None
    systems = sorted({s for p in protocols for s in ratings[p].systems}, key=labeller.sort_key)
    rows = {s: len(systems) - 1 - i for i, s in enumerate(systems)}  # first system at the top
    fig = Figure(figsize=(2.6 + 3.0 * len(protocols), 1.4 + 0.32 * len(systems)), dpi=DPI)
    axes = fig.subplots(1, len(protocols), sharey=True, squeeze=False)[0]
    for ax, protocol in zip(axes, protocols, strict=True):
        r = ratings[protocol]
        colour = protocol_colour(protocol, protocols)
        for i, system in enumerate(r.systems):
            y = rows[system]
            if r.ci_low is not None and r.ci_high is not None:
                ax.plot([r.ci_low[i], r.ci_high[i]], [y, y], color=colour, lw=2, alpha=0.55, solid_capstyle="butt")
            ax.plot([r.ratings[i]], [y], "o", color=colour, ms=5)
        ax.axvline(1000, color="#999999", lw=0.8, ls=":")
        ax.set_title(protocol_title(protocol) + ("" if r.converged else " (no finite MLE)"), fontsize=10)
        ax.set_xlabel("rating (Elo scale)", fontsize=9)
        ax.grid(axis="x", color="#eeeeee", lw=0.6)
        ax.tick_params(labelsize=8)
    axes[0].set_yticks(list(rows.values()), [labeller.label(s) for s in rows])
    axes[0].set_ylim(-0.7, len(systems) - 0.3)
    level = next(iter(ratings.values())).level
    head = f"Bradley–Terry ratings with {level:.0%} bootstrap intervals (1000 = average)"
    fig.suptitle(f"{head} ({note})" if note else head, fontsize=11)
    fig.tight_layout()
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (no metadata that changes between runs)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()
