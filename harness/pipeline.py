"""`harness run CONFIG`: prompts → generate → score → study → simulated votes → report, each stage resumable.

Stages are the same functions the single-step commands call; a rerun of a finished or interrupted run skips the
work already done (images by content hash and manifest key, features by the cache, metric results by an inputs
hash, the study by name, simulated votes by the quotas they fill; ``simulate.enabled = false`` turns them off).
Every durable step is atomic (a PNG, a manifest line, a cached vector, a metric result, a study, a vote), so a run
killed at any point, even with SIGKILL, resumes to byte-identical outputs: images, manifests, features, the
report and its ``metrics.json``, and the same records in the store (``tests/harness/test_run_resume.py`` kills
runs mid-stage through `harness.faults`). The one time in the outputs is the creation time in
``provenance.json``, kept from the run's first attempt.

Each stage shows a progress bar with counts and ETA: ``generate`` (images), ``score`` (metric × group),
``study`` (protocols), ``votes <protocol>`` (simulated votes), ``report`` (parts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import RunConfig
from harness.errors import HarnessError
from harness.generate.store import store_run
from harness.prompts import PromptRecord, load_prompts
from harness.rundir import ManifestEntry, RunDir, prepare_run_dir

if TYPE_CHECKING:
    from harness.storage.repository import Repository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run produced."""

    run_id: str
    run_dir: Path
    n_images: int
    report_md: Path
    report_html: Path | None
    study_ids: tuple[int, ...]






def open_generated_run(
    cfg: RunConfig, db_url: str | None = None
) -> tuple[RunDir, list[ManifestEntry], list[PromptRecord], Repository]:
    """Open the run dir of a config that `harness generate` has filled, and the store (with the run recorded)."""
    from harness.generate.run import build_generators, ordered_entries, plan_units
    from harness.storage.repository import Repository

    run_dir = RunDir(Path(cfg.out_dir) / cfg.run_id)
    if not run_dir.manifest_path.is_file():
        raise HarnessError(
            f"run dir {run_dir.root} holds no images yet; run `harness generate {'CONFIG'}` (or `harness run`) first"
        )
    prompts = load_prompts(cfg.prompts)
    entries = ordered_entries(run_dir, plan_units(cfg, prompts, build_generators(cfg)))
    repo = Repository.open(db_url or cfg.db_url or None)
    store_run(
        repo, cfg.run_id, cfg.name, run_dir, entries,
        config=cfg.to_dict(), provenance=run_dir.read_json("provenance.json"),
    )
    return run_dir, entries, prompts, repo


def run_pipeline(cfg: RunConfig, *, progress: bool = True, db_url: str | None = None) -> RunOutcome:
    """Run every stage of a config; returns where the outputs are."""
    from harness.generate.run import build_generators, generate_run
    from harness.report.write import write_report
    from harness.score.run import score_run
    from harness.simulate.votes import simulate_run
    from harness.storage.repository import Repository
    from harness.study.design import create_studies

    generators = build_generators(cfg)  # bad names/options fail before anything is written
    prompts: list[PromptRecord] = load_prompts(cfg.prompts)
    repo = Repository.open(db_url or cfg.db_url or None)
    run_dir = prepare_run_dir(cfg)
    entries = generate_run(cfg, run_dir, prompts, progress=progress, generators=generators)
    store_run(
        repo, cfg.run_id, cfg.name, run_dir, entries,
        config=cfg.to_dict(), provenance=run_dir.read_json("provenance.json"),
    )
    results = score_run(cfg, run_dir, entries, prompts, repo, progress=progress)
    studies = create_studies(cfg, run_dir, entries, prompts, repo, progress=progress)
    simulate_run(cfg, run_dir, prompts, repo, [s.study_id for s in studies], progress=progress)
    md, html = write_report(
        cfg, run_dir, repo, entries=entries, results=results, study_ids=[s.study_id for s in studies],
        progress=progress,
    )
    return RunOutcome(
        run_id=cfg.run_id,
        run_dir=run_dir.root,
        n_images=len(entries),
        report_md=md,
        report_html=html,
        study_ids=tuple(s.study_id for s in studies),
    )
