"""Throughput of the feature extractors and the cost of the Fréchet step; results go in benchmarks/metrics.md.

Run: ``.venv/bin/python benchmarks/bench_metrics.py [--quick]``. Uses 2 torch threads (the whole shared CPU), random
weights (speed does not depend on the weight values) and fixed seeds.

Measures:
1. Inception-v3 pool3 features/s at 64 x 64 and 256 x 256 inputs (both resized to 299 inside the network).
2. open_clip image features/s: the tiny test config (32 px) and ViT-B-32 (224 px), random weights.
3. FD ``compute()`` at D = 2048 (N = 5,000 per side): ours (eigh and eig) vs torchmetrics' ``FrechetInceptionDistance``
   on the same features, and the state size of `FrechetDistance` at N = 1,000 and 10,000.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from eval_protocols.features.clip import OpenClipFeatures
from eval_protocols.features.inception import InceptionFeatures
from eval_protocols.metrics.fid import FrechetDistance

TINY_CLIP: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def features_per_second(extractor: Callable[[np.ndarray], np.ndarray], size: int, batch: int, batches: int) -> float:
    """Images per second over ``batches`` batches after one warm-up batch."""
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    extractor(images[:2])
    start = time.perf_counter()
    for _ in range(batches):
        extractor(images)
    return batch * batches / (time.perf_counter() - start)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


class _Identity(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def bench_fd(n: int, dim: int = 2048) -> None:
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    real = rng.normal(size=(n, dim)) @ mixing
    fake = rng.normal(size=(n, dim)) @ (mixing + 0.02 * rng.normal(size=(dim, dim)) / np.sqrt(dim)) + 0.05
    ours = {method: FrechetDistance(dim, method=method) for method in ("eigh", "eig")}
    theirs = FrechetInceptionDistance(feature=_Identity(dim))
    for start in range(0, n, 1000):
        for metric in ours.values():
            metric.update(real[start : start + 1000], real=True)
            metric.update(fake[start : start + 1000], real=False)
        theirs.update(torch.from_numpy(real[start : start + 1000]), real=True)  # float64 in, float64 result out
        theirs.update(torch.from_numpy(fake[start : start + 1000]), real=False)
    for method, metric in ours.items():
        value, seconds = timed(metric.compute)
        print(f"FD compute D={dim} N={n} ours-{method}: {seconds:.2f} s  value {float(value):.6f}")
    value, seconds = timed(theirs.compute)
    print(f"FD compute D={dim} N={n} torchmetrics FID: {seconds:.2f} s  value {float(value):.6f}")


def bench_fd_state(dim: int = 2048) -> None:
    for n in (1_000, 10_000):
        metric = FrechetDistance(dim)
        rng = np.random.default_rng(0)
        for _ in range(n // 1000):
            metric.update(rng.normal(size=(1000, dim)).astype(np.float32), real=False)
        state = sum(getattr(metric, name).numel() * getattr(metric, name).element_size() for name in metric._defaults)
        print(f"FrechetDistance state after N={n}: {state / 2**20:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer batches, smaller FD")
    args = parser.parse_args()
    torch.set_num_threads(2)
    batches = 1 if args.quick else 3
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")

    inception = InceptionFeatures(random_weights=True)
    for size in (64, 256):
        rate = features_per_second(inception, size, batch=16, batches=batches)
        print(f"Inception pool3 {size}px -> 299: {rate:.1f} images/s")
    tiny = OpenClipFeatures(TINY_CLIP, random_weights=True)
    print(f"tiny open_clip (32px, ViT 2x64): {features_per_second(tiny, 32, batch=256, batches=batches):.0f} images/s")
    texts = [f"a {c} cube left of a sphere" for c in ("red", "green", "blue", "white")] * 64
    _, seconds = timed(lambda: tiny.encode_text(texts))
    print(f"tiny open_clip text: {len(texts) / seconds:.0f} captions/s")
    vit = OpenClipFeatures("ViT-B-32", random_weights=True)
    print(f"open_clip ViT-B-32 (224px): {features_per_second(vit, 256, batch=16, batches=batches):.1f} images/s")

    bench_fd(2000 if args.quick else 5000)
    bench_fd_state()


if __name__ == "__main__":
    main()
