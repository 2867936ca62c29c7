"""``harness train prior``: the unCLIP diffusion prior on toy-CLIP embeddings.

Example::

    harness train prior --out runs/prior-toy --steps 3000 --batch 256 --clip checkpoints/toy/clip_toy \
        --export checkpoints/toy/unclip_prior_toy
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.commands import TRAIN_ACTIONS, add_command
from harness.commands.train import add_optim_arguments, add_stream_arguments, optim_spec
from harness.errors import HarnessError
from harness.train.decoder import DEFAULT_CLIP
from harness.train.prior import DEFAULT_CONFIG, PriorRunSpec, train_prior


def add_prior_arguments(parser: argparse.ArgumentParser, config: str, steps: int) -> None:
    """Flags shared by ``prior`` and ``ar-prior``."""
    add_optim_arguments(parser, steps=steps, lr=5e-4, batch=256, warmup=200, ema=0.999)
    parser.add_argument("--config", default=config, help=f"network config name or JSON path (default {config})")
    parser.add_argument("--clip", default=DEFAULT_CLIP, help=f"frozen CLIP checkpoint stem (default {DEFAULT_CLIP})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the data stream")
    add_stream_arguments(parser, fresh=32, window=16384)
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda ...")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU and CUDA)")
    parser.add_argument("--fp32", action="store_true", help="export float32 weights (default float16)")
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="warm start from this checkpoint of the same prior (fresh optimiser, EMA and schedule)",
    )


def prior_spec(args: argparse.Namespace) -> PriorRunSpec:
    """`PriorRunSpec` from the parsed flags."""
    return PriorRunSpec(
        batch=args.batch,
        config=args.config,
        clip=args.clip,
        data_seed=args.seed,
        fresh=args.fresh,
        window=args.window,
        model_seed=args.seed,
        device=args.device,
        bf16=args.bf16,
        export=args.export,
        fp16=not args.fp32,
        init_from=args.init_from,
    )


def register(actions: Any) -> None:
    """Add ``prior`` to ``harness train``'s subparsers."""
    parser = add_command(
        actions,
        "prior",
        table=TRAIN_ACTIONS,
        description="Train the diffusion prior P(z_i | caption) on toy-CLIP embeddings of toy-world pairs.",
    )
    add_prior_arguments(parser, DEFAULT_CONFIG, steps=3000)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; prints the summary as JSON."""
    try:
        summary = train_prior(Path(args.out), optim_spec(args), prior_spec(args), resume=args.resume)
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    print(json.dumps(summary))
    return 0
