"""``harness train oracle`` (the toy-world attribute oracle) and ``harness train evaluate-oracle``.

Examples::

    harness train oracle --out runs/oracle --steps 4000 --batch 128 --export checkpoints/toy/oracle
    harness train evaluate-oracle checkpoints/toy/oracle.safetensors --n 1000
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from eval_protocols.features.oracle import ToyAttributeOracle
from harness.commands import TRAIN_ACTIONS, add_command
from harness.commands.train import add_optim_arguments, add_stream_arguments, optim_spec
from harness.errors import HarnessError
from harness.train.oracle import describe, evaluate_oracle, train_oracle


def register(actions: Any) -> None:
    """Add ``oracle`` and ``evaluate-oracle`` to ``harness train``'s subparsers."""
    train = add_command(
        actions,
        "oracle",
        table=TRAIN_ACTIONS,
        description="Train the toy-world attribute oracle CNN with noise/blur/colour/quantisation/warp augmentations.",
    )
    add_optim_arguments(train, steps=4000, lr=2e-3, batch=128, warmup=100, ema=0.998)
    train.add_argument("--width", type=int, default=32, help="channels of the first CNN stage (default 32)")
    train.add_argument("--seed", type=int, default=0, help="seed of the initial weights, data and augmentations")
    add_stream_arguments(train, fresh=32, window=8192)
    train.set_defaults(func=run_train)

    evaluate = add_command(
        actions,
        "evaluate-oracle",
        table=TRAIN_ACTIONS,
        description="Per-attribute accuracy on test-split single-object scenes: clean 32/64 px and each degradation.",
    )
    evaluate.add_argument("checkpoint", help="weights file (e.g. checkpoints/toy/oracle.safetensors)")
    evaluate.add_argument("--n", type=int, default=1000, help="scenes (default 1000)")
    evaluate.add_argument("--split", default="test", help="toy-world split (default test)")
    evaluate.add_argument("--seed", type=int, default=2, help="dataset seed (default 2; training never uses it)")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    """Train; prints the summary line."""
    optim = optim_spec(args)
    summary = train_oracle(
        Path(args.out),
        optim,
        batch=args.batch,
        width=args.width,
        data_seed=args.seed,
        fresh=args.fresh,
        window=args.window,
        model_seed=args.seed,
        export=Path(args.export) if args.export else None,
        resume=args.resume,
    )
    print(json.dumps(summary))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate; prints a Markdown table (or JSON)."""
    torch.set_num_threads(1)
    try:
        oracle = ToyAttributeOracle.from_checkpoint(args.checkpoint)
        result = evaluate_oracle(oracle, n=args.n, seed=args.seed, split=args.split)
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    print(json.dumps(asdict(result)) if args.json else describe(result))
    return 0
