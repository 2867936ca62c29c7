"""``harness variations | interpolate | textdiff``: unCLIP's latent manipulations as paper-style strips (Fig. 3–5).

Any RGB image works (a toy-world render or your own): it is centre-cropped to a square and resized to the
decoder's resolution before CLIP encoding and DDIM inversion. Each command writes one PNG strip: the input
image(s) first, then the generated images.

Examples::

    harness variations photo.png --n 6 --out variations.png
    harness interpolate a.png b.png --n 7 --out interp.png            # x_T fixed; --slerp-noise to slerp x_T too
    harness textdiff cat.png --from "a red circle" --to "a blue circle" --n 6 --out diff.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from harness.commands import add_command
from harness.errors import HarnessError

UNCLIP_MODELS = ("unclip-diffusion-prior", "unclip-ar-prior")


def register(subparsers: Any) -> None:
    """Add ``variations``, ``interpolate`` and ``textdiff``."""
    variations = add_command(
        subparsers,
        "variations",
        description="Variations of an image: same CLIP embedding z_i and inverted x_T, DDIM with eta > 0.",
    )
    variations.add_argument("image", help="input image (PNG/JPEG)")
    variations.add_argument("--eta", type=float, default=1.0, help="DDIM eta of the decoder (default 1.0)")
    _common(variations, "variations.png")
    variations.set_defaults(func=run_variations)

    interpolate = add_command(
        subparsers,
        "interpolate",
        description="Decode slerp(z_i1, z_i2, theta) for theta from 0 to 1.",
    )
    interpolate.add_argument("image_a", help="first image")
    interpolate.add_argument("image_b", help="second image")
    interpolate.add_argument(
        "--slerp-noise", action="store_true", help="slerp x_T between the DDIM inversions (default: one fixed x_T)"
    )
    _common(interpolate, "interpolation.png")
    interpolate.set_defaults(func=run_interpolate)

    textdiff = add_command(
        subparsers,
        "textdiff",
        description="Decode slerp(z_i, norm(z_t - z_t0), theta) with x_T the image's DDIM inversion.",
    )
    textdiff.add_argument("image", help="input image")
    textdiff.add_argument("--from", dest="from_text", required=True, help="a caption of the image (z_t0)")
    textdiff.add_argument("--to", dest="to_text", required=True, help="the target caption (z_t)")
    textdiff.add_argument("--max-theta", type=float, default=0.5, help="largest slerp angle fraction (default 0.5)")
    _common(textdiff, "textdiff.png")
    textdiff.set_defaults(func=run_textdiff)


def _common(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--model", default=UNCLIP_MODELS[0], choices=UNCLIP_MODELS, help="unCLIP pipeline")
    parser.add_argument(
        "--checkpoint-dir", default="checkpoints/toy", help="stage checkpoints (default checkpoints/toy)"
    )
    parser.add_argument("--n", type=int, default=6, help="images in the strip besides the input(s) (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling noise")
    parser.add_argument("--guidance", type=float, default=3.0, help="decoder guidance scale (default 3)")
    parser.add_argument("--steps", default="50", help="decoder DDIM steps, also used for the inversion (default 50)")
    parser.add_argument("--upsampler-steps", default="10", help="upsampler DDIM steps (default 10)")
    parser.add_argument(
        "--upsampler-start",
        type=float,
        default=0.4,
        help="fraction of the upsampler chain run, from the noised bilinear upsample (default 0.4; 1 = from noise)",
    )
    parser.add_argument("--no-upsample", action="store_true", help="stay at the decoder's resolution")
    parser.add_argument("--out", default=default_out, help=f"output PNG (default {default_out})")


def _setup(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from models.factory import create_pipeline
    from models.pipelines.base import SamplingConfig

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if args.n < 2:
        raise HarnessError(f"--n must be at least 2, got {args.n}")
    try:
        pipeline = create_pipeline(args.model, args.checkpoint_dir, upsampler=not args.no_upsample)
        config = SamplingConfig(
            decoder_guidance_scale=args.guidance,
            decoder_steps=str(args.steps),
            upsampler_steps=str(args.upsampler_steps),
            upsampler_start=float(args.upsampler_start),
            upsample=not args.no_upsample,
            batch_size=min(args.n, 16),
        )
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    return pipeline, config


def read_square(path: str) -> Image.Image:
    """An RGB image centre-cropped to a square (read once, before any model loads).

    Raises:
        HarnessError: the file is missing or not an image.
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read image {path}: {exc}; pass a PNG or JPEG file") from None
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    return rgb.crop((left, top, left + side, top + side))


def resized(square: Image.Image, size: int) -> np.ndarray:
    """A square image resized (bicubic) to the decoder's ``size``: uint8 (size, size, 3)."""
    return np.asarray(square.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def write_strip(inputs: list[np.ndarray], outputs: np.ndarray, out: str) -> None:
    """Inputs (nearest-resized to the outputs' size) then outputs, one row, written atomically to ``out``."""
    from models.pipelines.unclip import figure_strip

    size = outputs.shape[1]
    shown = [np.asarray(Image.fromarray(x).resize((size, size), Image.Resampling.NEAREST)) for x in inputs]
    strip = figure_strip(np.concatenate([np.stack(shown), outputs]))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(strip).save(tmp)
    os.replace(tmp, path)
    print(f"wrote {path} ({len(inputs)} input + {len(outputs)} generated images, {size}x{size})")


def _decoder_size(pipeline: Any) -> int:
    return int(pipeline.decoder.network.config.image_size)


def run_variations(args: argparse.Namespace) -> int:
    """Write a variations strip."""
    square = read_square(args.image)
    pipeline, config = _setup(args)
    image = resized(square, _decoder_size(pipeline))
    write_strip([image], pipeline.variations(image, args.n, args.seed, config, eta=args.eta), args.out)
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    """Write an interpolation strip."""
    squares = read_square(args.image_a), read_square(args.image_b)
    pipeline, config = _setup(args)
    a, b = (resized(square, _decoder_size(pipeline)) for square in squares)
    images = pipeline.interpolate(a, b, args.n, args.seed, config, fixed_noise=not args.slerp_noise)
    write_strip([a, b], images, args.out)
    return 0


def run_textdiff(args: argparse.Namespace) -> int:
    """Write a text-diff strip."""
    square = read_square(args.image)
    pipeline, config = _setup(args)
    image = resized(square, _decoder_size(pipeline))
    try:
        images = pipeline.text_diff(
            image, args.from_text, args.to_text, args.n, args.seed, config, max_theta=args.max_theta
        )
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    write_strip([image], images, args.out)
    return 0
