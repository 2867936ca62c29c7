"""Attribute-oracle accuracy of the images two ``harness generate`` runs made, paired image by image: the CLI check
of ``benchmarks/sampling.md`` (``benchmarks/sampling_cli.toml`` with the default samplers and with the old DDIM 20).

Each image's truth is the single object its caption names (``parse_caption``; the captions of
``benchmarks/sampling_cli_captions.txt`` name shape, colour and size). The oracle (``checkpoints/toy/oracle``) reads
the 64 px images at its 32 px input. Images are paired by (system, prompt id, seed index, guidance scale): both runs
use the same seeds, only the sampling differs. For each system and overall the table gives the accuracy of both runs
and the paired difference Δ = mean(h_i − r_i) of the reference run ``--ref`` with the 95% interval
Δ ± 1.96·sd(h − r)/√n (normal approximation).

Usage::

    python benchmarks/sampling_cli_score.py RUN_DIR_DEFAULT RUN_DIR_DDIM20 --labels default ddim20
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from harness.data.toyworld.captions import parse_caption
from harness.rundir import ManifestEntry, RunDir
from harness.score.extractors import toy_oracle

ATTRIBUTES = ("colour", "shape", "size")


def hits(run: RunDir, entries: list[ManifestEntry], oracle: object) -> dict[str, np.ndarray]:
    """Per-image booleans (N,) for each attribute and ``all`` (every attribute right)."""
    images = np.stack(list(run.iter_images(entries)))
    labels = oracle.predict(images).labels  # type: ignore[attr-defined]
    truth = [parse_caption(e.prompt).objects[0] for e in entries]
    out = {a: labels[a] == np.asarray([getattr(t, a) for t in truth]) for a in ATTRIBUTES}
    out["all"] = np.logical_and.reduce([out[a] for a in ATTRIBUTES])
    return out


def pair_key(entry: ManifestEntry) -> tuple[str, str, int, float]:
    return (entry.system_id, entry.prompt_id, entry.sample_index, float(entry.settings["guidance_scale"]))


def paired_text(a: np.ndarray, b: np.ndarray) -> str:
    d = a.astype(float) - b.astype(float)
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan
    return f"{100 * d.mean():+.1f} ± {100 * half:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs=2, type=Path, help="two run dirs (<out_dir>/<run id>)")
    parser.add_argument("--labels", nargs=2, default=["a", "b"])
    args = parser.parse_args()
    runs = [RunDir(p) for p in args.runs]
    entries = [{pair_key(e): e for e in run.entries()} for run in runs]
    keys = sorted(set(entries[0]) & set(entries[1]))
    if not keys or len(keys) != len(entries[0]) or len(keys) != len(entries[1]):
        raise SystemExit(
            f"the runs do not hold the same images ({len(entries[0])} and {len(entries[1])}, {len(keys)} in common); "
            "generate both from benchmarks/sampling_cli.toml with only the sampling changed"
        )
    oracle = toy_oracle()
    scored = [hits(run, [e[k] for k in keys], oracle) for run, e in zip(runs, entries, strict=True)]
    first, second = args.labels
    print(
        f"| system | n | {first} colour | {second} colour | Δcolour | {first} shape | {second} shape | Δshape | "
        f"{first} all | {second} all | Δall ({first} − {second}, 95% CI) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    systems = list(dict.fromkeys(k[0] for k in keys))
    for system in [*systems, "all systems"]:
        mask = np.asarray([system in ("all systems", k[0]) for k in keys])
        a, b = ({m: h[m][mask] for m in h} for h in scored)
        cells = []
        for metric in ("colour", "shape", "all"):
            cells += [
                f"{100 * a[metric].mean():.1f}",
                f"{100 * b[metric].mean():.1f}",
                paired_text(a[metric], b[metric]),
            ]
        print(f"| {system} | {int(mask.sum())} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
