"""`harness generate CONFIG`: make the images of a run (resumable), without scoring or studies.

Under ``torchrun --nproc_per_node N -m harness.cli generate CONFIG`` the N processes share the work units
(`harness.generate.run`); rank 0 prepares the run dir, merges the manifest and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness import distributed
from harness.commands import add_command, add_config_arguments
from harness.config import load_config
from harness.generate.run import build_generators, generate_run
from harness.prompts import load_prompts
from harness.rundir import RunDir, prepare_run_dir


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "generate",
        description="Generate prompts × systems × guidance scales × seeds into a content-addressed run directory. "
        "A rerun skips images already made.",
        epilog="Example: harness generate configs/toy.toml --set sampling.seeds_per_prompt=2",
    )
    add_config_arguments(p, db=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    generators = build_generators(cfg)
    prompts = load_prompts(cfg.prompts)
    with distributed.session("auto") as ctx:
        distributed.on_main(ctx, lambda: prepare_run_dir(cfg))  # run dir, config and provenance before any write
        run_dir = RunDir(Path(cfg.out_dir) / cfg.run_id)
        entries = generate_run(cfg, run_dir, prompts, progress=not args.no_progress, generators=generators, dist=ctx)
        distributed.main_print(ctx, f"{len(entries)} images in {run_dir.root}")
    return 0
