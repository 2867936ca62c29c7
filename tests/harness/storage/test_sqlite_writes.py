"""SQLite writes: checkpoints keep the WAL bounded under continuous writes; writers of several processes queue on the
file's writer gate."""

from __future__ import annotations

import os
from pathlib import Path

from storage_helpers import counter_mismatches, make_items, make_study

from harness.storage.engine import CHECKPOINT_EVERY
from harness.storage.repository import Repository


def test_wal_stays_bounded_under_continuous_writes(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    with Repository.open(url) as repo:  # the connections stay open: SQLite's checkpoint at close cannot help
        study_id = repo.create_study(make_study(votes_per_item=3), make_items(400))
        annotator = repo.create_annotator(study_id, "busy")[0].annotator_id
        nxt = repo.next_item_for(annotator, study_id)
        sizes = []
        for _ in range(20 * CHECKPOINT_EVERY):
            assert nxt is not None
            _, nxt = repo.record_vote_and_next(nxt[0].assignment_id, "left", 1, annotator_id=annotator)
            sizes.append(os.path.getsize(f"{path}-wal"))
    assert max(sizes) < 4_000_000  # 1.0 MB here with the checkpoints, 19 MB without
    assert counter_mismatches(url, study_id) == []


def test_writers_queue_on_a_sidecar_lock_file(tmp_path: Path) -> None:
    with Repository.open(f"sqlite:///{tmp_path / 'store.db'}") as repo:
        repo.create_study(make_study(), make_items(1))
    assert (tmp_path / "store.db-writers").is_file()
