"""Quality of the toy 32→64 upsampler: true 32 px renders upsampled, against the true 64 px renders of the same scenes.

For 32 fully specified single-object test captions (size, colour and shape cycling), it renders each scene at 64 px
and at 32 px (exact area downsampling of the same scene), upsamples the 32 px image with the checkpoint's upsampler
(DDIM ``--steps``, per-image seed = index) and prints:

* MSE on [0, 1] against the true 64 px render;
* pixel noise, mean |x − median₃ₓ₃(x)| on [0, 255], of the upsampled images and of the true renders (the clean level).

Usage::

    python scripts/eval_toy_upsampler.py checkpoints/toy --steps 10 --start 0.4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import median_filter

from harness.data import toyworld
from models.factory import load_stage
from models.pipelines.stages import to_uint8, upsample_images


def pixel_noise(images: np.ndarray) -> float:
    """Mean |x − median₃ₓ₃(x)| over uint8 (N, H, W, 3) images, on [0, 255]."""
    x = images.astype(np.float64)
    return float(np.abs(x - median_filter(x, size=(1, 3, 3, 1), mode="nearest")).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint_dir", type=Path)
    parser.add_argument("--steps", default="10", help="respacing of the upsampler (default 10)")
    parser.add_argument("--sampler", default="ddim", help="sampler (models.diffusion.SAMPLER_NAMES; default ddim)")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument(
        "--start", type=float, default=1.0, help="fraction of the chain run (1 = from pure noise; see upsample_images)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    stage, _, digest = load_stage(args.checkpoint_dir, "unclip_upsampler_toy", "cpu")
    high, low = [], []
    for k in range(args.n):
        text = f"a {toyworld.SIZES[k % 3]} {toyworld.COLOUR_NAMES[k % 8]} {toyworld.SHAPES[k % 7]}"
        image64, scene = toyworld.render_caption(text, seed=k, size=64)
        high.append(image64)
        low.append(toyworld.render_scene(scene, size=32))
    truth = np.stack(high)
    x = torch.from_numpy(np.stack(low)).permute(0, 3, 1, 2).float() / 127.5 - 1
    generators = [torch.Generator().manual_seed(k) for k in range(len(x))]
    out = upsample_images(stage, x, generators, respacing=args.steps, sampler=args.sampler, start=args.start)
    up = to_uint8(out).numpy()
    mse = float((((up.astype(np.float64) - truth) / 255.0) ** 2).mean())
    bilinear = torch.nn.functional.interpolate(x, size=truth.shape[1:3], mode="bilinear", align_corners=False)
    bilinear_u8 = to_uint8(bilinear).numpy()
    bilinear_mse = float((((bilinear_u8.astype(np.float64) - truth) / 255.0) ** 2).mean())
    print(
        f"{args.checkpoint_dir} (sha256 {digest[:16]}), DDIM {args.steps}, start {args.start}: MSE {mse:.5f}, "
        f"bilinear MSE {bilinear_mse:.5f}, pixel noise "
        f"{pixel_noise(up):.2f} (true 64 px renders {pixel_noise(truth):.2f})"
    )


if __name__ == "__main__":
    main()
