"""Fixtures of the app tests: a real SQLite store with one open study (see `voting_store`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from voting_store import VotingStore, build_store

from harness.storage.repository import Repository


@pytest.fixture
def store(tmp_path: Path) -> VotingStore:
    return build_store(tmp_path)


@pytest.fixture
def repo(store: VotingStore) -> Iterator[Repository]:
    with Repository.open(store.url) as repository:
        yield repository
