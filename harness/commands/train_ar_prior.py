"""``harness train ar-prior``: the unCLIP autoregressive prior (PCA buckets of toy-CLIP embeddings).

Example::

    harness train ar-prior --out runs/ar-prior-toy --steps 3000 --batch 256 --clip checkpoints/toy/clip_toy \
        --export checkpoints/toy/unclip_ar_prior_toy
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.commands import TRAIN_ACTIONS, add_command
from harness.commands.train import optim_spec
from harness.commands.train_prior import add_prior_arguments, prior_spec
from harness.errors import HarnessError
from harness.train.ar_prior import DEFAULT_CONFIG, train_ar_prior


def register(actions: Any) -> None:
    """Add ``ar-prior`` to ``harness train``'s subparsers."""
    parser = add_command(
        actions,
        "ar-prior",
        table=TRAIN_ACTIONS,
        description="Train the AR prior over quantised PCA components of toy-CLIP image embeddings.",
    )
    add_prior_arguments(parser, DEFAULT_CONFIG, steps=3000)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; prints the summary as JSON."""
    try:
        summary = train_ar_prior(Path(args.out), optim_spec(args), prior_spec(args), resume=args.resume)
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    print(json.dumps(summary))
    return 0
