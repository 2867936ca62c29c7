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

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import provenance
from harness.config import RunConfig
from harness.errors import HarnessError
from harness.manifest import ManifestEntry, RunDir
from harness.prompts import PromptRecord, load_prompts

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


def prepare_run_dir(cfg: RunConfig) -> RunDir:
    """Create ``<out_dir>/<run_id>`` and write the resolved config and provenance (kept from the first attempt)."""
    if not cfg.systems:
        raise HarnessError("the run config defines no [[systems]]; add at least one (see configs/toy.toml)")
    ids = [s.id for s in cfg.systems]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise HarnessError(f"system id {dupes[0]!r} is used twice in [[systems]]; system ids must be unique")
    run_dir = RunDir(Path(cfg.out_dir) / cfg.run_id).create()
    run_dir.write_json("config.json", {"config": cfg.to_dict(), "config_sha256": cfg.config_hash()})
    if not (run_dir.root / "provenance.json").exists():
        seeds = {"run": cfg.seed, "prompts": cfg.prompts.seed, "study": cfg.study.seed}
        run_dir.write_json("provenance.json", provenance.collect(cfg.config_hash(), seeds))
    return run_dir


def store_run(
    repo: Repository,
    run_id: str,
    name: str,
    run_dir: RunDir,
    entries: list[ManifestEntry],
    *,
    config: dict[str, Any],
    provenance: dict[str, Any],
) -> None:
    """Record a run dir and its images in the store (idempotent)."""
    from harness.storage.records import ImageRecord, RunRecord

    if repo.get_run(run_id) is None:
        created = provenance.get("created_at")
        repo.create_run(
            RunRecord(
                run_id=run_id,
                name=name,
                created_at=dt.datetime.fromisoformat(created) if created else dt.datetime.now(dt.UTC),
                run_dir=str(run_dir.root.resolve()),
                config=config,
                provenance=provenance,
            )
        )
    repo.add_images(
        [
            ImageRecord(
                sha256=e.sha256,
                run_id=run_id,
                prompt_id=e.prompt_id,
                prompt=e.prompt,
                model_id=e.system_id,
                seed=e.seed,
                settings={
                    **e.settings,
                    "sample_index": e.sample_index,
                    "generator_model_id": e.model_id,
                    "checkpoint_sha256": e.checkpoint_sha256,
                },
                path=e.path,
            )
            for e in entries
        ]
    )


def open_generated_run(
    cfg: RunConfig, db_url: str | None = None
) -> tuple[RunDir, list[ManifestEntry], list[PromptRecord], Repository]:
    """Open the run dir of a config that `harness generate` has filled, and the store (with the run recorded)."""
    from harness.generate import build_generators, ordered_entries, plan_units
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
    from harness.generate import build_generators, generate_run
    from harness.report import write_report
    from harness.score import score_run
    from harness.simulate_votes import simulate_run
    from harness.storage.repository import Repository
    from harness.study import create_studies

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
