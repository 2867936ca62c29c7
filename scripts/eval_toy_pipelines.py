"""Quality of the toy pipelines on single-object captions: attribute-oracle accuracy and CLIP R-precision.

For ``--n`` captions "a {size} {colour} {shape}" (every attribute named; drawn with ``--seed`` over all 7×8×3
combinations), each pipeline draws one image per caption at each guidance scale. Measured on the 32×32 base
images (``upsample=False``) against real renders of the same captions:

* oracle accuracy (``checkpoints/toy/oracle``): colour, shape, size and all three right;
* CLIP R-precision with the final toy CLIP (``checkpoints/toy/clip_toy``): the true caption ranks first among
  ``--candidates`` captions (consecutive blocks of the ``--n`` captions, distinct by construction; 32 as in the
  issue's bar).

With ``--true-embedding``, the unCLIP decoder is also measured alone (once per scale): it decodes the CLIP image embedding z_i of a
real render of each caption (render seed 1000 + index, other scenes than the reference renders) with the caption,
so its errors are the decoder's (and the CLIP's: what z_i does not carry), not the prior's.

With ``--grid-dir`` it also writes, per model, an 8×8 sample grid at ``--grid-scale``: 8 captions (rows, the first
8 of the list) × 8 seeds (columns), plus the same grid of real renders, and each evaluated image set as a grid.

Usage::

    python scripts/eval_toy_pipelines.py --n 64 --scales 1 3 5 --steps 25 --json runs/eval_toy.json \
        --grid-dir checkpoints/toy/samples --grid-scale 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from eval_protocols.features.oracle import ToyAttributeOracle, accuracy
from harness.data import toyworld
from models.factory import create_pipeline
from models.networks.clip import encode_images, encode_texts, load_clip
from models.pipelines.base import SamplingConfig


def captions(n: int, seed: int) -> tuple[list[str], dict[str, list[str]]]:
    """``n`` distinct fully specified single-object captions and their true attributes."""
    combos = [(s, c, z) for s in toyworld.SHAPES for c in toyworld.COLOUR_NAMES for z in toyworld.SIZES]
    order = np.random.default_rng(seed).permutation(len(combos))[:n]
    picked = [combos[i] for i in order]
    texts = [f"{'an' if z[0] in 'aeiou' else 'a'} {z} {c} {s}" for s, c, z in picked]
    return texts, {
        "shape": [s for s, _, _ in picked],
        "colour": [c for _, c, _ in picked],
        "size": [z for _, _, z in picked],
    }


def r_precision(clip: torch.nn.Module, images: np.ndarray, texts: list[str], candidates: int = 32) -> float:
    """Fraction of images whose own caption has the highest CLIP similarity among the ``candidates`` captions of
    its block (images and texts aligned; blocks of ``candidates`` consecutive pairs, a shorter last block)."""
    hits = 0
    for start in range(0, len(texts), candidates):
        block = texts[start : start + candidates]
        sim = encode_images(clip, torch.from_numpy(images[start : start + candidates])) @ encode_texts(clip, block).T
        hits += int((sim.argmax(dim=1) == torch.arange(len(block))).sum())
    return hits / len(texts)


def pixel_noise(images: np.ndarray) -> float:
    """Mean |x − median₃ₓ₃(x)| over pixels and channels, on [0, 255]: per-pixel speckle that a 3×3 median removes
    while keeping edges and smooth backgrounds; real renders set the clean level ("backgrounds as clean as the
    renders'")."""
    from scipy.ndimage import median_filter

    x = images.astype(np.float64)
    return float(np.abs(x - median_filter(x, size=(1, 3, 3, 1), mode="nearest")).mean())


def sample_grid(
    pipeline: object, texts: list[str], config: SamplingConfig, rows: int = 8, columns: int = 8
) -> np.ndarray:
    """uint8 (rows·columns, H, W, 3): the first ``rows`` captions, each with seeds 0..columns−1 (row-major)."""
    prompts = [t for t in texts[:rows] for _ in range(columns)]
    seeds = [k for _ in range(rows) for k in range(columns)]
    return pipeline(prompts, seeds, config).images  # type: ignore[operator, no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--steps", default="25")
    parser.add_argument("--sampler", default="ddim", help="sampler of every stage (ddim: the MODEL_CARD's numbers)")
    parser.add_argument("--prior-steps", default="32")
    parser.add_argument("--prior-scale", type=float, default=1.0)
    parser.add_argument("--models", nargs="+", default=["glide", "unclip-diffusion-prior", "unclip-ar-prior"])
    parser.add_argument("--checkpoint-dir", default="checkpoints/toy")
    parser.add_argument("--json", default=None)
    parser.add_argument("--candidates", type=int, default=32, help="captions each R-precision ranks among")
    parser.add_argument("--grid-dir", default=None, help="write each model's images as a PNG grid here")
    parser.add_argument("--grid-scale", type=float, default=3.0, help="guidance scale of the 8×8 sample grids")
    parser.add_argument("--true-embedding", action="store_true", help="also decode true z_i (unCLIP models)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(args.checkpoint_dir)
    texts, truth = captions(args.n, args.seed)
    oracle = ToyAttributeOracle.from_checkpoint(folder / "oracle")
    clip_meta = json.loads((folder / "clip_toy.json").read_text())
    clip = load_clip(clip_meta["model_config"], folder / "clip_toy")
    real = np.stack([toyworld.render_caption(t, seed=k, size=32)[0] for k, t in enumerate(texts)])
    rows = [
        {
            "model": "real renders",
            "scale": None,
            **accuracy(oracle.predict(real), truth),
            "r_precision": r_precision(clip, real, texts, args.candidates),
            "pixel_noise": pixel_noise(real),
            "n": len(texts),
            "seconds": 0.0,
        }
    ]
    print(json.dumps(rows[-1]))
    references = np.stack([toyworld.render_caption(t, seed=1000 + k, size=32)[0] for k, t in enumerate(texts)])
    decoded_scales: set[float] = set()
    for name in args.models:
        pipeline = create_pipeline(name, folder, upsampler=False)
        for scale in args.scales:
            config = SamplingConfig(
                decoder_guidance_scale=scale,
                sampler=args.sampler,
                decoder_steps=args.steps,
                prior_steps=args.prior_steps,
                prior_guidance_scale=args.prior_scale,
                upsample=False,
                batch_size=16,
            )
            start = time.perf_counter()
            images = pipeline(texts, list(range(len(texts))), config).images
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "model": name,
                    "scale": scale,
                    **accuracy(oracle.predict(images), truth),
                    "r_precision": r_precision(clip, images, texts, args.candidates),
                    "pixel_noise": pixel_noise(images),
                    "n": len(texts),
                    "seconds": round(seconds, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            if args.true_embedding and hasattr(pipeline, "decode") and scale not in decoded_scales:
                # Both unCLIP pipelines share the decoder: measured once per scale.
                decoded_scales.add(scale)
                start = time.perf_counter()
                images = pipeline.decode(texts, pipeline.image_embeddings(references), list(range(len(texts))), config)
                rows.append(
                    {
                        "model": "unclip decoder from true z_i",
                        "scale": scale,
                        **accuracy(oracle.predict(images), truth),
                        "r_precision": r_precision(clip, images, texts, args.candidates),
                        "pixel_noise": pixel_noise(images),
                        "n": len(texts),
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
            if args.grid_dir:
                from harness.train.diffusion import save_grid

                save_grid(torch.from_numpy(images), Path(args.grid_dir) / f"{name}_g{scale:g}.png", 8)
        if args.grid_dir:
            from harness.train.diffusion import save_grid

            config = SamplingConfig(
                decoder_guidance_scale=args.grid_scale,
                sampler=args.sampler,
                decoder_steps=args.steps,
                prior_steps=args.prior_steps,
                prior_guidance_scale=args.prior_scale,
                upsample=False,
                batch_size=16,
            )
            grid = sample_grid(pipeline, texts, config)
            save_grid(torch.from_numpy(grid), Path(args.grid_dir) / f"{name}_8x8.png", 8)
    if args.grid_dir:
        from harness.train.diffusion import save_grid

        real_grid = np.stack([toyworld.render_caption(t, seed=k, size=32)[0] for t in texts[:8] for k in range(8)])
        save_grid(torch.from_numpy(real_grid), Path(args.grid_dir) / "real_renders_8x8.png", 8)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"captions": texts, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
