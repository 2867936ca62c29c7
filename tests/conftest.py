"""Shared fixtures: an isolated data dir per test and seeded generators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["pg"]  # `postgres_server` / `postgres_url`: a real PostgreSQL started for the tests (tests/pg.py)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own HARNESS_HOME, so no test touches the user's store."""
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HARNESS_DB_URL", raising=False)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
