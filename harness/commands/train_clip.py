"""``harness train clip`` (contrastive training of the toy CLIP) and ``harness train evaluate-clip`` (retrieval).

Examples::

    harness train clip --out runs/clip-toy --steps 1800 --batch 128 --export checkpoints/toy/clip_toy
    harness train evaluate-clip checkpoints/toy/clip_toy.safetensors --n 100
    harness train evaluate-clip checkpoints/toy/unclip_clip_toy.safetensors --probe
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from harness.commands import TRAIN_ACTIONS, add_command
from harness.commands.train import add_optim_arguments, add_stream_arguments, optim_spec
from harness.errors import HarnessError
from harness.train.clip import (
    ClipDataSpec,
    describe,
    describe_probes,
    evaluate_retrieval,
    probe_attributes,
    train_clip,
)
from models.checkpoints import checkpoint_paths
from models.networks.clip import TOY_CLIP_CONFIG, load_clip


def register(actions: Any) -> None:
    """Add ``clip`` and ``evaluate-clip`` to ``harness train``'s subparsers."""
    train = add_command(
        actions,
        "clip",
        table=TRAIN_ACTIONS,
        description="Contrastive training of an open_clip CLIP on the toy world's train split.",
    )
    add_optim_arguments(train, steps=1800, lr=1e-3, batch=128, warmup=200, ema=0.0)
    train.add_argument("--config", default=str(TOY_CLIP_CONFIG), help="open_clip model config JSON (default toy)")
    train.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the data stream")
    add_stream_arguments(train, fresh=32, window=8192)
    train.add_argument(
        "--shape-twins",
        type=float,
        default=0.0,
        help="share of examples paired in their batch with the same scene in other shapes (hard negatives; default 0)",
    )
    train.add_argument("--fp32", action="store_true", help="export float32 weights (default float16)")
    train.set_defaults(func=run_train)

    evaluate = add_command(
        actions,
        "evaluate-clip",
        table=TRAIN_ACTIONS,
        description="Top-1/top-5 text->image retrieval among N test-split pairs, against chance.",
    )
    evaluate.add_argument("checkpoint", help="weights file (e.g. checkpoints/toy/clip_toy.safetensors)")
    evaluate.add_argument(
        "--config",
        default=None,
        help="open_clip config JSON or architecture name (default: the checkpoint's own JSON, else the toy config)",
    )
    evaluate.add_argument("--n", type=int, default=100, help="pairs (candidates per caption; default 100)")
    evaluate.add_argument("--split", default="test", help="toy-world split (default test: held-out pairs)")
    evaluate.add_argument("--seed", type=int, default=1, help="dataset seed of the pairs (default 1)")
    evaluate.add_argument("--size", type=int, default=32, help="render size, 32 or 64 (default 32)")
    evaluate.add_argument(
        "--probe",
        action="store_true",
        help="also fit linear probes of shape, colour and size on the image embeddings (does z_i carry them?)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    """Train; prints the summary line."""
    optim = optim_spec(args)
    try:
        data = ClipDataSpec(data_seed=args.seed, fresh=args.fresh, window=args.window, shape_twin_p=args.shape_twins)
    except ValueError as exc:
        raise HarnessError(f"--shape-twins: {exc}; pass a share in [0, 1] with an even --fresh") from None
    try:
        summary = train_clip(
            Path(args.out),
            optim,
            batch=args.batch,
            data=data,
            config=args.config,
            model_seed=args.seed,
            export=Path(args.export) if args.export else None,
            export_fp16=not args.fp32,
            resume=args.resume,
        )
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    print(json.dumps(summary))
    return 0


def checkpoint_clip_config(path: str) -> dict[str, Any] | str:
    """The open_clip config a `harness train clip` checkpoint (stem or file) stores in its JSON, else the toy config."""
    _, meta_path, _ = checkpoint_paths(path)
    try:
        config = json.loads(meta_path.read_text()).get("model_config")
    except (OSError, json.JSONDecodeError, AttributeError):  # no JSON beside the weights (a foreign file), or not ours
        config = None
    return config if isinstance(config, dict) else str(TOY_CLIP_CONFIG)


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate retrieval; prints one line (or JSON)."""
    torch.set_num_threads(1)
    try:
        model = load_clip(args.config or checkpoint_clip_config(args.checkpoint), args.checkpoint)
        result = evaluate_retrieval(model, n=args.n, split=args.split, seed=args.seed, size=args.size)
        probes = probe_attributes(model, size=args.size) if args.probe else ()
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    if args.json:
        print(json.dumps({**asdict(result), **({"probe": [asdict(p) for p in probes]} if probes else {})}))
    else:
        print(describe(result))
        if probes:
            print(describe_probes(probes))
    return 0
