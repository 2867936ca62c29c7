"""``harness train glide``: the GLIDE-style toy baseline (text UNet with its own text Transformer).

Example::

    harness train glide --out runs/glide-toy --steps 8000 --batch 48 --bf16 --export checkpoints/toy/glide_toy
    harness train glide --out runs/glide-toy --steps 8000 --batch 48 --bf16 --export checkpoints/toy/glide_toy --resume
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
from harness.train.glide import DEFAULT_CONFIG, train_glide


def register(actions: Any) -> None:
    """Add ``glide`` to ``harness train``'s subparsers."""
    parser = add_command(
        actions,
        "glide",
        table=TRAIN_ACTIONS,
        description="Train the GLIDE base model on toy-world renders (v-prediction, learned variance, EMA).",
    )
    add_stage_arguments(parser, steps=8000, lr=1e-3, batch=48, config=DEFAULT_CONFIG)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; prints the summary as JSON."""
    try:
        summary = train_glide(Path(args.out), optim_spec(args), stage_spec(args), resume=args.resume)
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    if distributed.is_main_process():  # under torchrun: rank 0 reports
        print(json.dumps(summary))
    return 0
