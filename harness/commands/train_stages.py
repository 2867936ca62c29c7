"""Flags and settings shared by the diffusion-stage trainers' subcommands (``harness train glide|decoder|...``).

Not a command itself: `harness.commands.train_glide`, `train_decoder`, `train_upsampler`, `train_prior` and
`train_ar_prior` import it.
"""

from __future__ import annotations

import argparse

from harness.commands.train import add_optim_arguments, add_stream_arguments
from harness.errors import HarnessError
from harness.train.diffusion import ImageDataSpec
from harness.train.glide import StageRunSpec


def add_stage_arguments(
    parser: argparse.ArgumentParser,
    *,
    steps: int,
    lr: float,
    batch: int,
    config: str,
    size: int = 32,
    grid_every: int = 2000,
    ema: float = 0.999,
) -> None:
    """Optimiser flags plus data, device, precision and export flags."""
    add_optim_arguments(parser, steps=steps, lr=lr, batch=batch, warmup=200, ema=ema)
    parser.add_argument("--config", default=config, help=f"network config name or JSON path (default {config})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the data stream")
    add_stream_arguments(parser, fresh=16, window=8192)
    parser.add_argument("--size", type=int, default=size, help=f"render size (default {size})")
    parser.add_argument(
        "--described-p",
        type=float,
        default=0.0,
        help="share of fresh examples that are one object with shape, colour and size named (default 0)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 ...")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU and CUDA)")
    parser.add_argument("--fp32", action="store_true", help="export float32 weights (default float16)")
    parser.add_argument(
        "--stop-at", type=int, default=None, help="pause after this many steps (resumable; e.g. equal budgets)"
    )
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="warm start from this checkpoint of the same network (fresh optimiser, EMA and schedule)",
    )
    parser.add_argument(
        "--grid-every", type=int, default=grid_every, help=f"steps between sample grids, 0 = off (default {grid_every})"
    )


def stage_spec(args: argparse.Namespace) -> StageRunSpec:
    """`StageRunSpec` from the parsed flags."""
    try:
        data = ImageDataSpec(
            data_seed=args.seed, fresh=args.fresh, window=args.window, size=args.size, described_p=args.described_p
        )
    except ValueError as exc:
        raise HarnessError(f"--described-p: {exc}; pass e.g. --described-p 0.5") from None
    return StageRunSpec(
        batch=args.batch,
        data=data,
        config=args.config,
        model_seed=args.seed,
        device=args.device,
        bf16=args.bf16,
        export=args.export,
        fp16=not args.fp32,
        grid_every=args.grid_every,
        stop_at=args.stop_at,
        init_from=args.init_from,
    )
