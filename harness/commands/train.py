"""``harness train MODEL``: train a toy-world model (CLIP, attribute oracle, and the other trainers as they land).

Each model's subcommand lives in its own module, ``harness/commands/train_<model>.py``, exposing
``register(actions) -> None`` that adds its parser to ``harness train``'s subparsers and sets ``func``. They are
listed in `harness.commands.TRAIN_ACTIONS` and imported lazily like the top-level commands, so ``harness train
--help`` loads no trainer (and no torch).

Examples::

    harness train clip --out runs/clip-toy --steps 1800 --batch 128
    harness train clip --out runs/clip-toy --steps 1800 --resume
    harness train oracle --out runs/oracle --steps 4000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.commands import TRAIN_ACTIONS, add_command, add_lazily

if TYPE_CHECKING:  # the CLI imports this module for --help; torch loads only when a trainer runs
    from harness.train.loop import OptimSpec

_EPILOG = """examples:
  harness train clip --out runs/clip-toy --steps 1800 --batch 128
  harness train clip --out runs/clip-toy --steps 1800 --resume        # continue after an interruption
  harness train evaluate-clip checkpoints/toy/clip_toy.safetensors
  harness train oracle --out runs/oracle --steps 4000
  harness train evaluate-oracle checkpoints/toy/oracle.safetensors"""


def register(subparsers: Any, argv: Sequence[str] = ()) -> None:
    """Add ``train`` and its model subcommands (the one ``argv`` names in full, the others by help line)."""
    parser = add_command(
        subparsers,
        "train",
        description="Train the toy models on toy-world renders. Every run folder resumes with --resume.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run, train_parser=parser)
    actions = parser.add_subparsers(dest="train_model", metavar="MODEL")
    add_lazily(actions, TRAIN_ACTIONS, argv)


def run(args: argparse.Namespace) -> int:
    """``harness train`` without a model: print the help."""
    args.train_parser.print_help()
    return 2


def add_stream_arguments(parser: argparse.ArgumentParser, *, fresh: int, window: int) -> None:
    """The replay-stream flags of the trainers that render their data (see `harness.train.stream`)."""
    parser.add_argument("--fresh", type=int, default=fresh, help=f"new examples per step; the rest is replayed (default {fresh})")
    parser.add_argument("--window", type=int, default=window, help=f"replay window in examples (default {window})")


def add_optim_arguments(
    parser: argparse.ArgumentParser, *, steps: int, lr: float, batch: int, warmup: int, ema: float | None
) -> None:
    """The optimisation flags every trainer shares (see `harness.train.loop.OptimSpec`)."""
    parser.add_argument("--out", required=True, help="run folder (state.pt, log.jsonl, exported checkpoint)")
    parser.add_argument("--steps", type=int, default=steps, help=f"optimiser steps (default {steps})")
    parser.add_argument("--batch", type=int, default=batch, help=f"examples per step (default {batch})")
    parser.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr})")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW decoupled weight decay (default 0.1)")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"linear warm-up steps (default {warmup})")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm, 0 = off (default 1.0)")
    parser.add_argument(
        "--ema", type=float, default=ema, help=f"EMA decay of the exported weights, 0 = off (default {ema})"
    )
    parser.add_argument("--checkpoint-every", type=int, default=250, help="steps between resumable states")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the cores are shared)")
    parser.add_argument("--export", default=None, help="also write the final checkpoint to this stem")


def optim_spec(args: argparse.Namespace) -> OptimSpec:
    """`OptimSpec` from the flags of `add_optim_arguments`; also sets the torch CPU thread count (``--threads``)."""
    import torch

    from harness.train.loop import OptimSpec

    torch.set_num_threads(args.threads)
    return OptimSpec(
        steps=args.steps,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup,
        grad_clip=args.grad_clip,
        ema_decay=args.ema or None,
        checkpoint_every=args.checkpoint_every,
    )
