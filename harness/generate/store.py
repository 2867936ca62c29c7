"""The record of a run dir in the store: the run and one `ImageRecord` per manifest entry (idempotent)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from harness.rundir import ManifestEntry, RunDir
from harness.storage.records import ImageRecord, RunRecord

if TYPE_CHECKING:
    from harness.storage.repository import Repository


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
