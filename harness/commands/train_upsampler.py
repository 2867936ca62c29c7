"""``harness train upsampler``: the 32→64 toy upsampler (no text, blur conditioning augmentation).

Example::

    harness train upsampler --out runs/upsampler-toy --steps 3000 --batch 16 --bf16 \
        --export checkpoints/toy/unclip_upsampler_toy
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness import distributed
from harness.commands import TRAIN_ACTIONS, add_command
from harness.commands.train import optim_spec
from harness.commands.train_stages import add_stage_arguments, stage_spec
from harness.errors import HarnessError
from harness.train.upsampler import DEFAULT_CONFIG, train_upsampler


def register(actions: Any) -> None:
    """Add ``upsampler`` to ``harness train``'s subparsers."""
    parser = add_command(
        actions,
        "upsampler",
        table=TRAIN_ACTIONS,
        description="Train the unconditional 32->64 upsampler on pairs of toy-world renders.",
    )
    add_stage_arguments(parser, steps=3000, lr=1e-3, batch=16, config=DEFAULT_CONFIG, size=64)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; prints the summary as JSON."""
    try:
        summary = train_upsampler(Path(args.out), optim_spec(args), stage_spec(args), resume=args.resume)
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    if distributed.is_main_process():  # under torchrun: rank 0 reports
        print(json.dumps(summary))
    return 0
