"""Storage fixtures: every store test runs against SQLite (a temp file) and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.storage.repository import Repository


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty store: an SQLite file, or a fresh database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'harness.db'}"
    return str(request.getfixturevalue("postgres_url"))


class FakeClock:
    """A settable UTC clock for the repository (assignment timeouts without sleeping)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def repo(store_url: str, clock: FakeClock) -> Iterator[Repository]:
    with Repository.open(store_url, clock=clock, assignment_timeout=timedelta(minutes=30)) as repository:
        yield repository
