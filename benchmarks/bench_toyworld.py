"""Toy-world throughput on one core: scenes per second for sampling, rendering (64 and 32) and PNG encoding.

Usage::

    .venv/bin/python benchmarks/bench_toyworld.py [--n 2000] [--repeats 3]

Pins BLAS/OpenMP to one thread before numpy loads and reports the best of ``--repeats`` runs, both in wall-clock
and in process CPU time (the CPU figure is the steadier one on a shared machine). No torch.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np

from harness.data import toyworld
from harness.data.toyworld.export import encode_png


def best_rate(fn: Callable[[int], object], n: int, repeats: int) -> tuple[float, float]:
    """Best (wall, cpu) scenes per second of ``fn(i)`` for i in 0..n-1 over ``repeats`` runs."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            fn(i)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return n / min(wall), n / min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scenes = [toyworld.sample_scene(0, i, "train") for i in range(args.n)]
    images = [toyworld.render_scene(s) for s in scenes[:200]]  # also warms caches
    cases: dict[str, Callable[[int], object]] = {
        "sample_scene": lambda i: toyworld.sample_scene(0, i, "train"),
        "render_scene 64": lambda i: toyworld.render_scene(scenes[i], 64),
        "render_scene 32": lambda i: toyworld.render_scene(scenes[i], 32),
        "sample + render 64": lambda i: toyworld.render_scene(toyworld.sample_scene(0, i, "train"), 64),
        "sample + render 64 + PNG": lambda i: encode_png(
            toyworld.render_scene(toyworld.sample_scene(0, i, "train"), 64)
        ),
        "PNG encode 64 only": lambda i: encode_png(images[i % len(images)]),
    }
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, n={args.n}")
    print(f"{'case':<28} {'scenes/s (wall)':>16} {'scenes/s (CPU)':>16}")
    for name, fn in cases.items():
        wall, cpu = best_rate(fn, args.n, args.repeats)
        print(f"{name:<28} {wall:>16,.0f} {cpu:>16,.0f}")


if __name__ == "__main__":
    main()
