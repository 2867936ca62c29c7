"""Migrations from empty, down and up again, on both backends; the migrated tables equal `schema.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from harness.errors import StorageError
from harness.storage import migrate
from harness.storage.engine import make_engine
from harness.storage.repository import Repository
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
