"""One module per `harness` subcommand (see `harness.cli`), the table that names them, and the flags several share.

`COMMANDS` is all the CLI knows before a command runs: its name, help line and module. `harness --help` lists them
without importing any command module, and `harness NAME ...` imports only NAME's module (so ``harness --help``,
``harness analyze`` or ``harness study list`` never load torch). A command module exposes
``register(subparsers) -> None``, which adds its parser with `add_command` and sets ``func`` (``args -> int``).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DB_HELP = "store URL (default: $HARNESS_DB_URL or the SQLite file under .harness/)"


@dataclass(frozen=True)
class Command:
    """A subcommand as the top-level parser knows it before importing it."""

    module: str
    """The module whose ``register`` adds the command's parser."""
    help: str
    """The line shown by ``harness --help`` (``%`` doubled, as argparse formats it)."""
    nested: bool = False
    """The command has actions of its own, registered lazily too: ``register(subparsers, argv)``."""


COMMANDS: dict[str, Command] = {  # the order of `harness --help`
    "run": Command("harness.commands.run", "run a config end to end: generate → score → study → report (resumable)"),
    "toy": Command("harness.commands.toy", "render toy-world scenes (PNGs + manifest) or write a toy-world prompt set"),
    "train": Command(
        "harness.commands.train",
        "train a toy-world model (clip, oracle, ...) with checkpoints, resume and a JSONL log",
        nested=True,
    ),
    "generate": Command("harness.commands.generate", "generate the images of a run config (resumable)"),
    "variations": Command(
        "harness.commands.manipulate", "image variations (unCLIP Fig. 3): DDIM-invert, decode with eta > 0"
    ),
    "interpolate": Command(
        "harness.commands.manipulate", "interpolate two images (unCLIP Fig. 4): slerp of their CLIP embeddings"
    ),
    "textdiff": Command(
        "harness.commands.manipulate", "text diff (unCLIP Fig. 5): move an image's embedding towards a caption change"
    ),
    "score": Command("harness.commands.score", "compute the configured metrics of a generated run"),
    "metrics": Command(
        "harness.commands.metrics", "compute FD, KID, CMMD, PRDC, diversity or Vendi from saved feature files"
    ),
    "study": Command("harness.commands.study", "create, list, open, close human studies and invite annotators"),
    "analyze": Command(
        "harness.commands.analyze", "win rates, intervals, p-values and Bradley–Terry ratings from a vote file"
    ),
    "plan": Command("harness.commands.plan", "votes needed to detect a win rate against 50%%"),
    "report": Command("harness.commands.report", "write the Markdown + HTML report of a run"),
    "regress": Command(
        "harness.commands.regress",
        "CI gate: fail (exit 1) when sample quality regressed beyond noise against a baseline",
    ),
    "proxy": Command("harness.commands.proxy", "train / apply the vote-trained preference proxy"),
    "app": Command("harness.commands.app", "start the voting app (vote, admin and results pages)"),
    "db": Command("harness.commands.db", "migrate the store or show its schema revision"),
}


TRAIN_ACTIONS: dict[str, Command] = {  # `harness train ACTION`, in the order of `harness train --help`
    "clip": Command(
        "harness.commands.train_clip",
        "train the toy CLIP (open_clip, ClipLoss) on toy-world renders and paraphrased captions",
    ),
    "evaluate-clip": Command(
        "harness.commands.train_clip", "text->image retrieval of a CLIP checkpoint on held-out toy-world pairs"
    ),
    "oracle": Command(
        "harness.commands.train_oracle",
        "train the attribute oracle (shape, colour, size) on degraded single-object renders",
    ),
    "evaluate-oracle": Command(
        "harness.commands.train_oracle",
        "oracle accuracy on fresh held-out single-object renders, clean and degraded",
    ),
    "prior": Command(
        "harness.commands.train_prior",
        "train the unCLIP diffusion prior (x0-prediction of sqrt(D)*z_i, 10%% text dropped)",
    ),
    "ar-prior": Command(
        "harness.commands.train_ar_prior",
        "train the unCLIP autoregressive prior (PCA + buckets, 10%% text dropped)",
    ),
    "decoder": Command(
        "harness.commands.train_decoder",
        "train the unCLIP toy decoder (CLIP embedding 10%% / caption 50%% dropped)",
    ),
    "upsampler": Command(
        "harness.commands.train_upsampler",
        "train the 32->64 toy upsampler (Gaussian-blur conditioning augmentation)",
    ),
    "glide": Command(
        "harness.commands.train_glide",
        "train the GLIDE-style toy baseline (text-conditional UNet, 20%% empty captions)",
    ),
}


def add_command(
    subparsers: Any, name: str, *, table: Mapping[str, Command] = COMMANDS, **kwargs: Any
) -> argparse.ArgumentParser:
    """Add the parser of command ``name`` with its help line from ``table`` (``kwargs`` as for ``add_parser``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=table[name].help, **kwargs)
    return parser


def chosen(argv: Sequence[str], table: Mapping[str, Command]) -> str | None:
    """The command of ``table`` that ``argv`` names: its first word that is not a flag, if it is in the table."""
    word = next((w for w in argv if not w.startswith("-")), None)
    return word if word in table else None


def add_lazily(subparsers: Any, table: Mapping[str, Command], argv: Sequence[str]) -> None:
    """Add every command of ``table``: the one ``argv`` names by importing its module (which may add its siblings
    too), the others as placeholders that only show their help line.

    Args:
        argv: the words after the parent command (all of them: the chosen command's module reads its own).
    """
    name = chosen(argv, table)
    module = table[name].module if name else None
    for other, spec in table.items():
        if other == name:
            loaded = importlib.import_module(spec.module)
            rest = list(argv[list(argv).index(name) + 1 :])
            if spec.nested:
                loaded.register(subparsers, rest)
            else:
                loaded.register(subparsers)
        elif spec.module != module:
            subparsers.add_parser(other, help=spec.help, add_help=False)


def add_config_arguments(
    parser: argparse.ArgumentParser, *, db: bool = True, progress: bool = True
) -> None:
    """``CONFIG``, ``--set KEY=VALUE`` and, optionally, ``--db URL`` and ``--no-progress``."""
    parser.add_argument("config", help="run config (TOML), e.g. configs/toy.toml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a key"
    )
    if db:
        parser.add_argument("--db", default=None, help=DB_HELP)
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
