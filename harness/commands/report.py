"""`harness report CONFIG`: (re)write the Markdown and HTML report of a run from the run dir and the store."""

from __future__ import annotations

import argparse
from typing import Any

from harness.commands import add_command, add_config_arguments
from harness.config import load_config


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "report",
        description="Write runs/<run id>/report/report.md and a self-contained report.html with the metrics, the "
        "studies of the run with their win rates, sample grids and provenance.",
        epilog="Example: harness report configs/toy.toml",
    )
    add_config_arguments(p, progress=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.analyze.vote_table import run_study_ids
    from harness.pipeline import open_generated_run
    from harness.report.write import write_report

    cfg = load_config(args.config, args.overrides)
    run_dir, entries, _prompts, repo = open_generated_run(cfg, args.db)
    study_ids = run_study_ids(repo, cfg.run_id, cfg.study.name)
    md, page = write_report(cfg, run_dir, repo, entries=entries, study_ids=study_ids)
    print(f"report: {md}")
    print(f"report (HTML): {page}")
    return 0
