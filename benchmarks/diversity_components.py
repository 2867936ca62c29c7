"""Where a run's within-caption diversity comes from: colour layout, background colour, object placement.

Usage::

    python benchmarks/diversity_components.py runs/<run id>      # prints a Markdown table

For every (system, decoder guidance scale) group of a run directory's manifest, and each caption's samples
x_1..x_n (n = seeds per caption), the mean over captions of the mean pairwise RMS distance
``mean_{i≠j} ‖f(x_i) − f(x_j)‖₂ / √D`` of three features f:

* ``layout`` — `eval_protocols.features.pixels.LayoutExtractor` (mean RGB of 4 × 4 cells on [0, 1]; D = 48): the
  metric ``layout_diversity`` of the report;
* ``background`` — the median RGB on [0, 1] of the image's outer ring (4 px at 64 px, scaled with the size; D = 3):
  the toy world draws backgrounds (solid, gradient, texture; colour, light) that captions never name;
* ``placement`` — the share of strongly coloured pixels (HSV saturation > 0.45 and value > 0.35, i.e. the objects
  rather than the muted backgrounds) in each cell of a 16 × 16 grid (D = 256): where the objects are.

The toy-CLIP ``diversity`` is not recomputed here; it is in the run's ``report/metrics.json``. This is an analysis
aid for the README's headline section, not a metric of the registry: the placement mask is a heuristic (a saturated
background counts as object).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from eval_protocols.features.pixels import LayoutExtractor


def mean_pairwise_rms(features: np.ndarray) -> float:
    """``mean_{i≠j} ‖f_i − f_j‖₂ / √D`` of ``(n, D)`` features, n ≥ 2."""
    diff = features[:, None, :] - features[None, :, :]
    dist = np.sqrt((diff**2).sum(axis=-1) / features.shape[1])
    n = len(features)
    return float(dist.sum() / (n * (n - 1)))


def background_colour(images: np.ndarray) -> np.ndarray:
    """``(n, 3)`` median RGB on [0, 1] of each image's outer ring (``size // 16`` pixels wide)."""
    x = images.astype(np.float64) / 255.0
    width = max(1, images.shape[1] // 16)
    ring = np.ones(images.shape[1:3], dtype=bool)
    ring[width:-width, width:-width] = False
    return np.median(x[:, ring, :], axis=1)


def placement(images: np.ndarray, grid: int = 16) -> np.ndarray:
    """``(n, grid²)`` share of strongly coloured pixels per cell (module docstring)."""
    x = images.astype(np.float64) / 255.0
    high, low = x.max(axis=-1), x.min(axis=-1)
    saturation = (high - low) / np.maximum(high, 1e-6)
    mask = ((saturation > 0.45) & (high > 0.35)).astype(np.float64)
    h, w = mask.shape[1:]
    rows, cols = np.array_split(np.arange(h), grid), np.array_split(np.arange(w), grid)
    return np.stack([mask[:, r[0] : r[-1] + 1, c[0] : c[-1] + 1].mean(axis=(1, 2)) for r in rows for c in cols], axis=1)


def components(run_dir: Path) -> dict[tuple[str, float | None], dict[str, float]]:
    """``{(system, guidance): {"layout", "background", "placement": caption-averaged diversity, "captions"}}``."""
    groups: dict[tuple[str, float | None, str], list[np.ndarray]] = defaultdict(list)
    for line in (run_dir / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        key = (entry["system_id"], entry["settings"].get("guidance_scale"), entry.get("prompt_id") or entry["prompt"])
        groups[key].append(np.asarray(Image.open(run_dir / entry["path"]).convert("RGB")))
    layout = LayoutExtractor()
    per_group: dict[tuple[str, float | None], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (system, guidance, _caption), images in groups.items():
        if len(images) < 2:
            continue
        batch = np.stack(images)
        values = per_group[(system, guidance)]
        values["layout"].append(mean_pairwise_rms(layout(batch)))
        values["background"].append(mean_pairwise_rms(background_colour(batch)))
        values["placement"].append(mean_pairwise_rms(placement(batch)))
    return {
        key: {**{name: float(np.mean(v)) for name, v in values.items()}, "captions": float(len(values["layout"]))}
        for key, values in per_group.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run directory (runs/<run id>) with manifest.jsonl")
    args = parser.parse_args()
    table = components(args.run_dir)
    print("| system | guidance | captions | layout | background | placement |")
    print("|---|---|---|---|---|---|")
    for (system, guidance), v in sorted(table.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0.0)):
        g = "–" if guidance is None else f"{guidance:g}"
        print(f"| {system} | {g} | {v['captions']:.0f} | {v['layout']:.4f} | {v['background']:.4f} | "
              f"{v['placement']:.4f} |")


if __name__ == "__main__":
    main()
