"""A store that cannot be reached or written gives one `StorageError` line naming the URL (password masked) and a fix."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pg import PostgresServer

from harness.errors import HarnessError, StorageError
from harness.storage.repository import Repository


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def _one_line(exc: pytest.ExceptionInfo[StorageError]) -> str:
    message = str(exc.value)
    assert "\n" not in message and isinstance(exc.value, HarnessError)
    return message


def test_unreachable_postgresql() -> None:
    url = f"postgresql+psycopg://alice:s3cret@127.0.0.1:{_closed_port()}/votes"
    with pytest.raises(StorageError) as info:
        Repository.open(url)
    message = _one_line(info)
    assert "s3cret" not in message and "alice:***@127.0.0.1" in message
    assert "check that the server runs" in message


def test_missing_postgresql_database(postgres_server: PostgresServer) -> None:
    with pytest.raises(StorageError, match="does not exist") as info:
        Repository.open(postgres_server.url("no_such_db"))
    assert "no_such_db" in _one_line(info)


def test_unwritable_sqlite_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError) as info:
        Repository.open(f"sqlite:///{blocker / 'sub' / 'harness.db'}")
    message = _one_line(info)
    assert str(blocker) in message and "HARNESS_HOME" in message


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "harness.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError) as info:
        Repository.open(f"sqlite:///{path}")
    assert str(path) in _one_line(info)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a database URL"),
        ("mysql://u:pw@localhost/db", "unsupported backend 'mysql'"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message) as info:
        Repository.open(url)
    assert "pw" not in _one_line(info)


def test_default_url_is_under_the_data_dir(tmp_path: Path) -> None:
    with Repository.open() as repo:  # HARNESS_HOME is a temp dir (tests/conftest.py)
        assert repo.backend == "sqlite"
        assert repo.url.endswith("home/harness.db")
    assert (tmp_path / "home" / "harness.db").is_file()
