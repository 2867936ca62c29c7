"""Images per second of each toy pipeline on this machine (see benchmarks/generation.md for the recorded results).

Usage::

    python benchmarks/bench_generation.py --n 16 --batch 16 --steps 50 --prior-steps 64 --upsampler-steps 10 \
        --guidance 3 --prior-guidance 2 --threads 1

Each pipeline generates ``--n`` toy-world test captions (one seed each) in one call; the time (wall-clock,
``time.perf_counter``) covers every stage (CLIP text encoding, prior, decoder, upsampler), not loading.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from harness.data import toyworld
from models.factory import create_pipeline, list_models
from models.pipelines.base import SamplingConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", default="50")
    parser.add_argument("--prior-steps", default="64")
    parser.add_argument("--upsampler-steps", default="10")
    parser.add_argument("--sampler", default="ddim", help="sampler of every stage (ddim: generation.md's numbers)")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--prior-guidance", type=float, default=2.0)
    parser.add_argument("--no-upsample", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint-dir", default="checkpoints/toy")
    parser.add_argument("--models", nargs="+", default=list_models())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prompts = [s.caption for s in toyworld.iter_scenes(args.n, split="test", seed=0)]
    config = SamplingConfig(
        prior_guidance_scale=args.prior_guidance,
        decoder_guidance_scale=args.guidance,
        sampler=args.sampler,
        prior_steps=args.prior_steps,
        decoder_steps=args.steps,
        upsampler_steps=args.upsampler_steps,
        upsample=not args.no_upsample,
        batch_size=args.batch,
    )
    for name in args.models:
        pipeline = create_pipeline(name, args.checkpoint_dir, upsampler=not args.no_upsample)
        start = time.perf_counter()
        out = pipeline(prompts, list(range(args.n)), config)
        seconds = time.perf_counter() - start
        print(
            json.dumps(
                {
                    "model": name,
                    "images": args.n,
                    "size": int(out.images.shape[1]),
                    "seconds": round(seconds, 2),
                    "images_per_s": round(args.n / seconds, 3),
                    **config.to_dict(),
                    "threads": args.threads,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
