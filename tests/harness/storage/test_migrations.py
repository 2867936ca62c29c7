"""Migrations from empty, down and up again, on both backends; the migrated tables equal `schema.py`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from harness.errors import StorageError
from harness.storage import migrate
from harness.storage.engine import make_engine
from harness.storage.repository import AssignmentError, Repository
from harness.storage.schema import metadata

TABLES = {"runs", "images", "metric_results", "studies", "items", "annotators", "assignments", "votes"}


def test_upgrade_from_empty_matches_schema(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        assert migrate.current_revision(engine) is None
        before, after = migrate.upgrade(engine)
        assert (before, after) == (None, migrate.head_revision())
        assert TABLES <= set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        migrate.upgrade(engine)
        assert migrate.downgrade(engine, "base") == (migrate.head_revision(), None)
        assert not TABLES & set(sa.inspect(engine).get_table_names())
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert TABLES <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_open_migrates_and_reopen_is_a_no_op(store_url: str) -> None:
    with Repository.open(store_url) as repo:
        assert repo.list_runs() == []
    with Repository.open(store_url) as repo:
        assert migrate.current_revision(repo.engine) == migrate.head_revision()


def test_store_from_a_newer_harness_is_refused(store_url: str) -> None:
    Repository.open(store_url).close()
    engine = make_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    finally:
        engine.dispose()
    with pytest.raises(StorageError, match="9999_future.*newer than this harness.*upgrade unclip-harness") as info:
        Repository.open(store_url)
    assert "\n" not in str(info.value)


def test_migrations_ship_as_python_package_files() -> None:
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    versions = sorted(p.name for p in (migrate.MIGRATIONS_DIR / "versions").glob("*.py"))
    assert {"0001_initial.py", "0002_vote_counters.py", "__init__.py"} <= set(versions)
    assert migrate.known_revisions() == {"0001", "0002"}


def test_concurrent_opens_of_a_fresh_store_migrate_once(store_url: str) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(6)

    def open_and_count(_: int) -> int:
        barrier.wait()
        with Repository.open(store_url, pool_size=1) as repo:
            return len(repo.list_studies())

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(open_and_count, range(6))) == [0] * 6
    engine = make_engine(store_url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


def test_threads_migrating_different_stores_at_once(tmp_path: Path) -> None:
    """Alembic's migration context is process-global: concurrent migrations of different stores must not mix."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(6)

    def open_one(k: int) -> str | None:
        url = f"sqlite:///{tmp_path / f's{k}.db'}"
        barrier.wait()
        Repository.open(url, pool_size=1).close()
        return migrate.store_revision(url)

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(open_one, range(6))) == [migrate.head_revision()] * 6


def _store_at_0001_with_votes(url: str) -> dict[str, int]:
    """A store migrated to 0001 only, filled the way the 0001 code left stores: a study of 4 items (targets 2, 2, 2,
    1), annotators a, b, c and their assignments and votes (ids returned by name)."""
    from datetime import UTC, datetime, timedelta

    from harness.storage.schema import annotators, assignments, items, studies, votes

    now = datetime.now(UTC)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine, "0001")
        with engine.begin() as conn:
            study = conn.execute(sa.insert(studies).values(
                name="old", protocol_name="photorealism", protocol={}, status="open", votes_per_item=2,
                allow_tie=True, created_at=now, seed=11)).inserted_primary_key[0]
            ids = {"study": study}
            for k, target in enumerate((2, 2, 2, 1), start=1):
                ids[f"i{k}"] = conn.execute(sa.insert(items).values(
                    study_id=study, position=k - 1, prompt_id=f"p{k}", prompt=f"caption {k}", system_a="unclip",
                    system_b="glide", images_a=[f"{k:064x}"], images_b=[f"{k + 9:064x}"], left="a",
                    is_attention_check=False, expected=None, votes_target=target)).inserted_primary_key[0]
            for name in "abc":
                ids[name] = conn.execute(sa.insert(annotators).values(
                    study_id=study, name=name, token_sha256=name * 64, created_at=now)).inserted_primary_key[0]

            def assign(who: str, item: str, status: str, age_min: float) -> int:
                created = now - timedelta(minutes=age_min)
                done = None if status == "pending" else created
                return int(conn.execute(sa.insert(assignments).values(
                    study_id=study, item_id=ids[item], annotator_id=ids[who], status=status, created_at=created,
                    completed_at=done)).inserted_primary_key[0])

            for key, who, item, status, age in [
                ("a1", "a", "i1", "completed", 90), ("b1", "b", "i1", "completed", 80),
                ("a2", "a", "i2", "completed", 70), ("b2", "b", "i2", "pending", 120),  # stale, lost its slot:
                ("c2", "c", "i2", "pending", 1),  # c's fresh one holds the item's last slot
                ("b3", "b", "i3", "skipped", 60), ("c3", "c", "i3", "expired", 200),
                ("c4", "c", "i4", "pending", 0.5),  # c's second pending one (never shown by the old code)
            ]:
                ids[key] = assign(who, item, status, age)
            for key in ("a1", "b1", "a2"):
                row = conn.execute(
                    sa.select(assignments.c.assignment_id, assignments.c.item_id, assignments.c.annotator_id,
                              assignments.c.created_at)
                    .where(assignments.c.assignment_id == ids[key])
                ).one()
                conn.execute(sa.insert(votes).values(
                    assignment_id=row.assignment_id, study_id=study, item_id=row.item_id,
                    annotator_id=row.annotator_id, protocol="photorealism", choice="left", winner="model_a",
                    model_a="unclip", model_b="glide", left_model="unclip", prompt="p", response_ms=700,
                    created_at=row.created_at))
    finally:
        engine.dispose()
    return ids


def test_upgrade_carries_a_store_with_votes_forward(store_url: str) -> None:
    from storage_helpers import counter_mismatches

    from harness.storage.schema import annotators, assignments, items, votes

    ids = _store_at_0001_with_votes(store_url)
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            votes_before = conn.execute(sa.select(votes).order_by(votes.c.vote_id)).all()
        assert migrate.upgrade(engine) == ("0001", migrate.head_revision())
        with engine.connect() as conn:
            assert conn.execute(sa.select(votes).order_by(votes.c.vote_id)).all() == votes_before
            counters = {r.item_id: (r.n_active, r.n_done) for r in conn.execute(sa.select(items))}
            ranks = sorted(conn.execute(sa.select(items.c.tour_rank)).scalars())
            status = dict(conn.execute(sa.select(assignments.c.assignment_id, assignments.c.status)).all())
            holds = dict(conn.execute(sa.select(assignments.c.assignment_id, assignments.c.holds_slot)).all())
            cursors = dict(conn.execute(sa.select(annotators.c.annotator_id, annotators.c.tour_cursor)).all())
            rank_of = dict(conn.execute(sa.select(items.c.item_id, items.c.tour_rank)).all())
    finally:
        engine.dispose()
    assert counters == {ids["i1"]: (2, 2), ids["i2"]: (2, 1), ids["i3"]: (0, 0), ids["i4"]: (0, 0)}
    assert ranks == [0, 1, 2, 3]
    assert not holds[ids["b2"]] and holds[ids["c2"]] and holds[ids["a2"]] and not holds[ids["b3"]]
    assert status[ids["c4"]] == "expired"  # one pending assignment per annotator from 0002 on
    assert cursors[ids["a"]] == rank_of[ids["i2"]] + 1  # just past a's last assigned item
    assert counter_mismatches(store_url, ids["study"]) == []

    with Repository.open(store_url) as repo:  # the migrated store keeps every rule
        with pytest.raises(AssignmentError, match="expired"):  # b's stale answer: the last slot is c's
            repo.record_vote(ids["b2"], "left", 1, annotator_id=ids["b"])
        assert repo.record_vote(ids["c2"], "right", 1, annotator_id=ids["c"]).item_id == ids["i2"]
        d = repo.create_annotator(ids["study"], "d")[0].annotator_id
        for annotator in (ids["a"], ids["b"], ids["c"], d):
            while (nxt := repo.next_item_for(annotator, ids["study"])) is not None:
                repo.record_vote(nxt[0].assignment_id, "left", 1, annotator_id=annotator)
        per_item = Counter(v.item_id for v in repo.load_votes(ids["study"]))
    assert per_item == {ids["i1"]: 2, ids["i2"]: 2, ids["i3"]: 2, ids["i4"]: 1}  # every quota exactly
    assert counter_mismatches(store_url, ids["study"]) == []


def test_downgrade_from_0002_keeps_the_votes(store_url: str) -> None:
    from harness.storage.schema import votes

    _store_at_0001_with_votes(store_url)
    engine = make_engine(store_url)
    try:
        migrate.upgrade(engine)
        assert migrate.downgrade(engine, "0001") == (migrate.head_revision(), "0001")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("items")}
        assert not {"n_active", "n_done", "tour_rank"} & columns
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(votes)).scalar_one() == 3
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
