"""Tables and the quality-vs-cost plot of ``benchmarks/sampling.md`` from the JSON lines of
``benchmarks/sampling_quality.py`` (the last record of each point counts, so resumed sweeps do not double count).

Paired differences: each point stores per-image hits, and every setting saw the same captions, seeds and starting
noise, so a setting is compared with the reference setting image by image: Δ = mean(h_i − r_i) with the 95%
interval Δ ± 1.96·sd(h − r)/√n (normal approximation to the paired difference).

Usage::

    python benchmarks/sampling_report.py --results benchmarks/sampling_results.jsonl --plot benchmarks/sampling_quality.png
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

KEY_FIELDS = ("stage", "model", "guidance", "start", "sampler", "steps", "config", "px", "n")
FAMILY_STYLE = {"ddim": "o-", "dpm++2m": "s-", "dpm++3m": "^-", "heun": "D-", "dpm++2m-sde": "v--", "euler-a": "x--"}
SERIES_COLOUR = {
    ("ddim", "uniform"): "tab:blue",
    ("ddim", "trailing"): "tab:cyan",
    ("ddim", "logsnr"): "tab:olive",
    ("dpm++2m", "uniform"): "tab:red",
    ("dpm++2m", "trailing"): "tab:green",
    ("dpm++2m", "logsnr"): "tab:purple",
    ("dpm++2m", "karras"): "tab:brown",
    ("dpm++3m", "uniform"): "tab:pink",
}


def load(path: Path) -> list[dict[str, Any]]:
    """The last record of every point, in first-seen order."""
    points: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            points[tuple(row.get(k) for k in KEY_FIELDS)] = row
    return list(points.values())


def paired(row: dict[str, Any], ref: dict[str, Any], metric: str = "all") -> tuple[float, float]:
    """(Δ, half-width of the 95% interval) of ``metric`` hits, row minus reference, over their common images."""
    a, b = np.asarray(row["hits"][metric], float), np.asarray(ref["hits"][metric], float)
    n = min(len(a), len(b))
    d = a[:n] - b[:n]
    return float(d.mean()), float(1.96 * d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def spacing(steps: str) -> str:
    return "".join(c for c in steps if c.isalpha()) or "uniform"


def ci(row: dict[str, Any], ref: dict[str, Any] | None, metric: str = "all") -> str:
    """ "Δ ± half-width" in points, or "–" for the reference itself."""
    if ref is None or row is ref:
        return "–"
    delta, half = paired(row, ref, metric)
    return f"{100 * delta:+.1f} ± {100 * half:.1f}"


def decoder_table(rows: list[dict[str, Any]], model: str, guidance: float, n: int) -> str:
    mine = [
        r for r in rows if r["stage"] == "decoder" and r["model"] == model and r["guidance"] == guidance and r["n"] == n
    ]
    ref = next((r for r in mine if r["sampler"] == "ddim" and r["steps"] == "50"), None)
    lines = [
        "| sampler | steps | NFE | colour | shape | size | all | Δall vs DDIM 50 (95% CI) | R-prec | ΔR-prec | FD | noise |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(mine, key=lambda r: (r["sampler"] != "ddim", r["sampler"], r["nfe"], r["steps"])):
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {r['nfe']} | {pct(r['colour'])} | {pct(r['shape'])} | "
            f"{pct(r['size'])} | {pct(r['all'])} | {ci(r, ref)} | {pct(r['r_precision'])} | "
            f"{ci(r, ref, 'r_precision')} | {r['fd']:.3f} | {r['pixel_noise']:.2f} |"
        )
    return "\n".join(lines)


def upsampler_table(rows: list[dict[str, Any]], n: int, start: float) -> str:
    mine = [r for r in rows if r["stage"] == "upsampler" and r["n"] == n and r["start"] == start]
    ref = next((r for r in mine if r["sampler"] == "ddim" and r["steps"] == "10"), None)
    lines = [
        "| sampler | steps | kept | NFE | all | Δall vs DDIM 10 (95% CI) | R-prec | FD (64 px) | noise | MSE to DDIM 100 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(mine, key=lambda r: (r["sampler"] != "ddim", r["sampler"], r["nfe"], r["steps"])):
        delta = "–" if ref is None or r is ref else "{:+.1f} ± {:.1f}".format(*(100 * v for v in paired(r, ref)))
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {r['kept']} | {r['nfe']} | {pct(r['all'])} | {delta} | "
            f"{pct(r['r_precision'])} | {r['fd']:.3f} | {r['pixel_noise']:.2f} | {r['mse_to_ddim100']:.2e} |"
        )
    return "\n".join(lines)


def prior_table(rows: list[dict[str, Any]], n: int) -> str:
    mine = [r for r in rows if r["stage"] == "prior" and r["n"] == n]
    lines = [
        "| sampler | steps | kept | NFE | cos to DDIM 250 (mean) | (min) | chosen z_i·z_t | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(mine, key=lambda r: (r["sampler"] != "ddim", r["sampler"], r["nfe"], r["steps"])):
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {r['kept']} | {r['nfe']} | {r['cos_to_ddim250_mean']:.4f} | "
            f"{r['cos_to_ddim250_min']:.4f} | {r['z_i_dot_z_t']:.4f} | {r['seconds']} |"
        )
    return "\n".join(lines)


def final_table(rows: list[dict[str, Any]], reference: str, n: int) -> str:
    """Whole pipelines at ``n`` captions, the reference setting first within each (model, guidance)."""
    found = [r for r in rows if r["stage"] == "final" and r["n"] == n]
    groups = list(dict.fromkeys((r["model"], r["guidance"]) for r in found))
    mine = sorted(found, key=lambda r: (groups.index((r["model"], r["guidance"])), r["config"] != reference))
    lines = [
        f"| model | guidance | setting | n | colour | shape | size | all | Δall vs {reference} (95% CI) | R-prec | "
        + "FD (64 px) | noise |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in mine:
        ref = next(
            (
                x
                for x in mine
                if x["model"] == r["model"]
                and x["guidance"] == r["guidance"]
                and x["config"] == reference
                and x["n"] == r["n"]
            ),
            None,
        )
        delta = "–" if ref is None or r is ref else "{:+.1f} ± {:.1f}".format(*(100 * v for v in paired(r, ref)))
        lines.append(
            f"| {r['model']} | {r['guidance']:g} | {r['config']} | {r['n']} | {pct(r['colour'])} | {pct(r['shape'])} | "
            f"{pct(r['size'])} | {pct(r['all'])} | {delta} | {pct(r['r_precision'])} | {r['fd']:.3f} | "
            f"{r['pixel_noise']:.2f} |"
        )
    return "\n".join(lines)


def speed_tables(path: Path) -> str:
    """Images/s of the demo mix per setting (median of the alternating repeats) and ours against diffusers' loop."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    demo = [r for r in rows if r["mode"] == "demo"]
    labels = list(dict.fromkeys(r["config"] for r in demo))
    out = [
        "| model | guidance | " + " | ".join(f"{c} images/s (runs, s)" for c in labels) + " | speed-up | load |",
        "|---|---|" + "---|" * len(labels) + "---|---|",
    ]
    for key in dict.fromkeys((r["model"], r["guidance"]) for r in demo):
        cells = {r["config"]: r for r in demo if (r["model"], r["guidance"]) == key}
        first, last = cells[labels[0]], cells[labels[-1]]
        out.append(
            f"| {key[0]} | {key[1]:g} | "
            + " | ".join(
                f"{cells[c]['images_per_s']:.2f} ({', '.join(str(x) for x in cells[c]['seconds'])})" for c in labels
            )
            + f" | {last['images_per_s'] / first['images_per_s']:.2f}× | {first['load1']} |"
        )
    totals = {r["config"]: r for r in rows if r["mode"] == "demo-total"}
    if totals:
        last = totals[labels[-1]] if labels[-1] in totals else next(reversed(totals.values()))
        out.append(
            f"| **all {last['images']} images** | | "
            + " | ".join(
                f"**{totals[c]['images_per_s']:.2f}** ({totals[c]['seconds']} s)" if c in totals else "–"
                for c in labels
            )
            + f" | **{last['speedup_vs_first']:.2f}×** | {last['load1']} |"
        )
    versus = [r for r in rows if r["mode"] == "diffusers"]
    if versus:
        out += [
            "",
            "| model | setting | ours images/s (runs, s) | diffusers loop images/s (runs, s) | ratio | "
            + "max / mean pixel difference | load |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in versus:
            out.append(
                f"| {r['model']} | {r['config']} | {r['ours_images_per_s']:.2f} ({', '.join(map(str, r['ours_seconds']))}) "
                f"| {r['diffusers_images_per_s']:.2f} ({', '.join(map(str, r['diffusers_seconds']))}) | "
                f"{r['ours_images_per_s'] / r['diffusers_images_per_s']:.2f} | {r['max_pixel_diff']} / "
                f"{r['mean_pixel_diff']} | {r['load1']} |"
            )
    return "\n".join(out)


def plot(rows: list[dict[str, Any]], path: Path, models: Iterable[str], guidance: float, n: int) -> None:
    """Columns: the decoder stage of each model, then the upsampler; rows: oracle accuracy, a second quality measure
    (R-precision; for the upsampler the distance to its 100-step result) and pixel noise, against network
    evaluations of the stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    models = list(models)
    fig, axes = plt.subplots(3, len(models) + 1, figsize=(4.2 * (len(models) + 1), 10.5), squeeze=False)
    panels = [
        (
            f"decoder: {m}",
            [
                r
                for r in rows
                if r["stage"] == "decoder" and r["model"] == m and r["guidance"] == guidance and r["n"] == n
            ],
            "r_precision",
        )
        for m in models
    ]
    upsampler = [r for r in rows if r["stage"] == "upsampler" and r["n"] == n and r["start"] == 0.4]
    panels.append(("upsampler from t = 0.4·T (GLIDE DDIM 20 bases)", upsampler, "mse_to_ddim100"))
    labels = {
        "all": "oracle: all three right (%)",
        "r_precision": "CLIP R-precision (%)",
        "mse_to_ddim100": "MSE to the 100-step upsample",
        "pixel_noise": "pixel noise (|x − median3x3|)",
    }
    for col, (title, mine, second) in enumerate(panels):
        for row_index, metric in enumerate(("all", second, "pixel_noise")):
            ax = axes[row_index][col]
            if not mine:
                ax.set_title(f"{title}: no points at n = {n}" if row_index == 0 else "", fontsize=9)
                ax.axis("off")
                continue
            for (family, space), group in _series(mine).items():
                xs = [r["nfe"] for r in group]
                ys = [100 * r[metric] if metric in ("all", "r_precision") else r[metric] for r in group]
                label = family + ("" if space == "uniform" else f" ({space})")
                colour = SERIES_COLOUR.get((family, space), "tab:gray")
                ax.plot(xs, ys, FAMILY_STYLE.get(family, ".-"), color=colour, label=label, ms=4)
            ref = next((r for r in mine if r["sampler"] == "ddim" and r["steps"] == "50"), None)
            if ref is not None and metric == "all":
                ax.axhspan(100 * ref["all"] - 2, 100 * ref["all"] + 2, color="grey", alpha=0.15, label="DDIM 50 ± 2 pp")
            if metric == "mse_to_ddim100":
                ax.set_yscale("log")
            ax.set_xscale("log")
            ax.set_xticks([t for t in (3, 5, 8, 10, 15, 20, 32, 50) if t <= max(r["nfe"] for r in mine)])
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("network evaluations per image (this stage)")
            ax.set_ylabel(labels[metric])
            ax.set_title(title if row_index == 0 else "", fontsize=9)
            ax.grid(alpha=0.3)
            if row_index == 0:
                ax.legend(fontsize=6)
    fig.suptitle(f"Toy models: quality against network evaluations (n = {n} captions, decoder guidance {guidance:g})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _series(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["sampler"], spacing(r["steps"])), []).append(r)
    return {k: sorted(v, key=lambda r: r["nfe"]) for k, v in sorted(groups.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/sampling_results.jsonl"))
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--models", nargs="+", default=["glide", "unclip-diffusion-prior", "unclip-ar-prior"])
    parser.add_argument("--final-reference", default="ddim20")
    parser.add_argument("--speed", type=Path, default=None, help="JSON lines of benchmarks/sampling_speed.py")
    args = parser.parse_args()
    rows = load(args.results)
    for r in rows:
        if r["stage"] == "real" and r["n"] == args.n:
            print(
                f"real renders {r['px']} px (n = {r['n']}): all {pct(r['all'])}, R-prec {pct(r['r_precision'])}, "
                f"FD {r['fd']:.3f}, noise {r['pixel_noise']:.2f}"
            )
    for model in args.models:
        if any(r["stage"] == "decoder" and r["model"] == model for r in rows):
            print(f"\n### Decoder stage: {model} (32 px, guidance {args.guidance:g}, n = {args.n})\n")
            print(decoder_table(rows, model, args.guidance, args.n))
    for start in sorted({r["start"] for r in rows if r["stage"] == "upsampler" and r["n"] == args.n}):
        print(f"\n### Upsampler from t = {start:g}·(T − 1) (n = {args.n})\n")
        print(upsampler_table(rows, args.n, start))
    if any(r["stage"] == "prior" and r["n"] == args.n for r in rows):
        print(f"\n### Diffusion prior (n = {args.n})\n")
        print(prior_table(rows, args.n))
    if any(r["stage"] == "final" and r["n"] == args.n for r in rows):
        print(f"\n### Whole pipelines (64 px, n = {args.n})\n")
        print(final_table(rows, args.final_reference, args.n))
    if args.speed is not None:
        print("\n### Speed\n")
        print(speed_tables(args.speed))
    if args.plot is not None:
        present = [m for m in args.models if any(r["stage"] == "decoder" and r["model"] == m for r in rows)]
        plot(rows, args.plot, present, args.guidance, args.n)


if __name__ == "__main__":
    main()
