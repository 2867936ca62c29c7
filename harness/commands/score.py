"""`harness score CONFIG`: metrics of a generated run, stored and printed as a table.

Under ``torchrun --nproc_per_node N -m harness.cli score CONFIG`` the N processes share the feature extraction
(`harness.score.run`); rank 0 alone opens the store, computes the metrics and prints.
"""

from __future__ import annotations

import argparse
from typing import Any

from harness.commands import add_command, add_config_arguments
from harness.config import load_config


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "score",
        description="Compute metrics for every (system, guidance scale, steps) group of a run against the configured "
        "reference, store them and print a table. Features are cached; unchanged results are not recomputed.",
        epilog='Example: harness score configs/toy.toml --set metrics.names=["fd","kid"]',
    )
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness import distributed
    from harness.pipeline import open_generated_run
    from harness.report.document import fmt_ci
    from harness.report.write import settings_label
    from harness.score.run import score_run

    cfg = load_config(args.config, args.overrides)
    with distributed.session("auto") as ctx:
        opened = distributed.on_main(ctx, lambda: open_generated_run(cfg, args.db))  # rank 0 alone opens the store
        shared = distributed.broadcast_object(ctx, opened[:3] if opened else None)
        assert shared is not None  # rank 0 opened the run (or raised on every rank)
        run_dir, entries, prompts = shared
        repo = opened[3] if opened else None
        results = score_run(cfg, run_dir, entries, prompts, repo, progress=not args.no_progress, dist=ctx)
    if not ctx.is_main:
        return 0
    print(f"{'metric':<14} {'system':<24} {'settings':<28} {'value [95% CI]':<32} n")
    for r in sorted(results, key=lambda r: (r.metric, r.model_id, settings_label(r.group))):
        value = fmt_ci(r.value, r.ci_low, r.ci_high, 4)
        print(f"{r.metric:<14} {r.model_id:<24} {settings_label(r.group):<28} {value:<32} {r.n}")
    return 0
