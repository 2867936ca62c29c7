"""``harness toy``: render toy-world scenes to PNGs with a manifest, or write a toy-world prompt set.

Examples::

    harness toy render --n 1000 --split train --out data/toy-train
    harness toy render --n 200 --split test --out data/toy-test32 --size 32 --seed 1
    harness toy prompts --n 50 --split test --out configs/prompts/toy-test.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.commands import add_command
from harness.data.toyworld.export import export_prompts, export_renders

_EPILOG = """examples:
  harness toy render --n 1000 --split train --out data/toy-train
  harness toy render --n 200 --split test --out data/toy-test32 --size 32
  harness toy prompts --n 50 --split test --out configs/prompts/toy-test.jsonl"""


def register(subparsers: Any) -> None:
    """Add ``toy`` (with its actions ``render`` and ``prompts``) to the top-level subparsers."""
    parser = add_command(
        subparsers,
        "toy",
        description="The toy world: a deterministic renderer of captioned scenes (see DESIGN.md).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run, toy_parser=parser)
    actions = parser.add_subparsers(dest="toy_action", metavar="ACTION")

    render = actions.add_parser(
        "render",
        help="write DIR/images/<sha256>.png and DIR/manifest.jsonl",
        description="Render scenes 0..N-1 of a split; every scene is a function of (seed, index, split).",
    )
    _add_common(render, out_help="output directory (created if missing)")
    render.add_argument("--size", type=int, default=64, help="image size: 64 (native) or 32 (area downsample)")
    render.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    prompts = actions.add_parser(
        "prompts",
        help="write a JSONL prompt set of toy-world captions",
        description='One line per scene: {"prompt_id": "toy-<split>-<seed>-<index>", "text": ..., "scene": {...}}.',
    )
    _add_common(prompts, out_help="output .jsonl file")


def _add_common(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument("--n", type=int, required=True, help="number of scenes (indices 0..N-1)")
    parser.add_argument("--split", default="train", help="train, val or test (test holds out shape-colour pairs)")
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")


def run(args: argparse.Namespace) -> int:
    """Dispatch ``harness toy ACTION``; prints what was written; returns the exit status."""
    if args.toy_action == "render":
        result = export_renders(
            args.out, args.n, args.split, seed=args.seed, size=args.size, progress=not args.no_progress
        )
        print(
            f"wrote {result.count} scenes ({result.distinct_images} distinct {args.size}x{args.size} PNGs) "
            f"of split {args.split}, seed {args.seed}; manifest: {result.path}"
        )
        return 0
    if args.toy_action == "prompts":
        result = export_prompts(args.out, args.n, args.split, seed=args.seed)
        print(f"wrote {result.count} prompts of split {args.split}, seed {args.seed} to {result.path}")
        return 0
    args.toy_parser.print_help()
    return 2
