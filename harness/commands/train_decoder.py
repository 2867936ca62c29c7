"""``harness train decoder``: the unCLIP toy decoder (text UNet + CLIP image embedding).

Example::

    harness train decoder --out runs/decoder-toy --steps 8000 --batch 48 --bf16 --clip checkpoints/toy/clip_toy \
        --export checkpoints/toy/unclip_decoder_toy
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
from harness.train.decoder import DEFAULT_CLIP, DEFAULT_CONFIG, train_decoder


def register(actions: Any) -> None:
    """Add ``decoder`` to ``harness train``'s subparsers."""
    parser = add_command(
        actions,
        "decoder",
        table=TRAIN_ACTIONS,
        description="Train the unCLIP decoder on toy-world renders and their toy-CLIP image embeddings.",
    )
    add_stage_arguments(parser, steps=8000, lr=1e-3, batch=48, config=DEFAULT_CONFIG)
    parser.add_argument("--clip", default=DEFAULT_CLIP, help=f"frozen CLIP checkpoint stem (default {DEFAULT_CLIP})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; prints the summary as JSON."""
    try:
        summary = train_decoder(
            Path(args.out), optim_spec(args), stage_spec(args), clip_path=args.clip, resume=args.resume
        )
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    if distributed.is_main_process():  # under torchrun: rank 0 reports
        print(json.dumps(summary))
    return 0
