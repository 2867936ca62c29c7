"""Time simulated annotators on the toy run (see simulate.md).

Run from a folder where `harness run CONFIG` ran once, after a fresh store and `harness study create CONFIG`:
``python benchmarks/bench_simulate.py configs/toy.toml``; a second call times the idempotent rerun.
"""

from __future__ import annotations

import sys
import time

import torch

from harness.analyze.vote_table import run_study_ids
from harness.config import load_config
from harness.pipeline import open_generated_run
from harness.simulate.votes import simulate_run


def main() -> None:
    torch.set_num_threads(1)
    cfg = load_config(sys.argv[1] if len(sys.argv) > 1 else "configs/toy.toml")
    run_dir, _, prompts, repo = open_generated_run(cfg)
    start = time.perf_counter()
    done = simulate_run(cfg, run_dir, prompts, repo, run_study_ids(repo, cfg.run_id))
    seconds = time.perf_counter() - start
    print(f"{sum(d.votes_added for d in done)} votes in {seconds:.1f} s: " + ", ".join(
        f"study {d.study_id} +{d.votes_added} ({d.judge_id})" for d in done))


if __name__ == "__main__":
    main()
