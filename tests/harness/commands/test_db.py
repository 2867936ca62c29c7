"""``harness db upgrade`` / ``harness db current`` on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.storage import migrate

HEAD = migrate.head_revision()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'harness.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_current_then_upgrade_then_current(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current", "--url", url]) == 0
    assert capsys.readouterr().out.startswith("empty (run `harness db upgrade`")
    assert main(["db", "upgrade", "--url", url]) == 0
    assert f"upgraded from empty to revision {HEAD}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--url", url]) == 0
    assert f"already at revision {HEAD}" in capsys.readouterr().out
    assert main(["db", "current", "--url", url]) == 0
    assert capsys.readouterr().out.strip() == f"{HEAD} (newest)"


def test_default_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert main(["db", "upgrade"]) == 0
    assert migrate.store_revision(f"sqlite:///{tmp_path / 'env.db'}") == HEAD


def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--url", "postgresql+psycopg://u:pw@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot use the PostgreSQL store") and err.count("\n") == 1 and "pw" not in err
    assert main(["db", "upgrade", "--url", f"sqlite:///{tmp_path / 'x.db'}", "--revision", "0999"]) == 2
    assert "known revisions: 0001" in capsys.readouterr().err


def test_current_does_not_create_a_missing_sqlite_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current", "--url", f"sqlite:///{tmp_path / 'none' / 'harness.db'}"]) == 0
    assert capsys.readouterr().out.startswith("empty")
    assert not (tmp_path / "none").exists()
