"""`harness run CONFIG`: the whole pipeline — generate, score, open a study, write the report."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from harness.commands import add_command, add_config_arguments
from harness.config import load_config
from harness.distributed import require_single_process
from harness.pipeline import run_pipeline


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "run",
        description="Run every stage of a run config. Each stage skips work already done, so an interrupted run "
        "resumes where it stopped and ends with the same outputs.",
        epilog="Example: harness run configs/toy.toml --set prompts.n=4",
    )
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_single_process("harness run")  # refused before anything is written
    cfg = load_config(args.config, args.overrides)
    outcome = run_pipeline(cfg, progress=not args.no_progress, db_url=args.db)
    print(f"run {outcome.run_id}: {outcome.n_images} images in {outcome.run_dir}")
    print(f"report: {outcome.report_md.resolve()}")
    if outcome.report_html:
        print(f"report (HTML): {outcome.report_html.resolve()}")
    if outcome.study_ids:
        db = f" --db {shlex.quote(args.db)}" if args.db else ""
        ids = ", ".join(map(str, outcome.study_ids))
        print(f"studies {ids} are ready for annotators")
        print(f"open the voting app (prints the admin URL): harness app{db}")
        print(f"invite annotators: harness study invite {outcome.study_ids[0]} --n 3{db}")
    return 0
