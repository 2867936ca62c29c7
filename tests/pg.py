"""A real PostgreSQL server for the tests, started from the apt-installed binaries.

`PostgresServer` runs ``initdb`` + ``pg_ctl`` (as the ``postgres`` system user when we are root, since the server
refuses to run as root) in a temporary directory, listening on a free loopback port with ``trust`` authentication.
The fixtures:

- ``postgres_server`` (session): the running server; ``pytest.skip`` when it cannot start, ``pytest.fail`` when
  ``CI=true`` (a missing service is a failure in CI).
- ``postgres_url`` (function): a fresh, empty database on that server, as a ``postgresql+psycopg://`` URL.

Use them from any test folder with ``from pg import postgres_server, postgres_url  # noqa: F401`` in its
``conftest.py`` (pytest puts ``tests/`` on ``sys.path`` because ``tests/conftest.py`` has no package), or list
``pytest_plugins = ["pg"]`` in ``tests/conftest.py``. ``benchmarks/`` reuse `PostgresServer` directly.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

_DB_COUNTER = itertools.count()


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1.

    Args:
        durable: keep ``fsync``/``synchronous_commit`` on (benchmarks); tests turn them off for speed.
        max_connections: the server's connection limit (concurrency tests open many).
        settings: further server settings (``-c name=value``), e.g. ``{"synchronous_commit": "off"}``.
    """

    def __init__(
        self, *, durable: bool = False, max_connections: int = 300, settings: dict[str, str] | None = None
    ) -> None:
        self.durable = durable
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="harness-pg-"))
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0
        self.started = False

    @staticmethod
    def binaries() -> Path | None:
        """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl``, or ``None``."""
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
        return Path(found[-1]).parent if found else None

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        prefix = ("runuser", "-u", "postgres", "--") if self._as_postgres else ()
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> None:
        """Create the cluster and start the server; raises `RuntimeError` with the server's output on failure."""
        bin_dir = self.binaries()
        if bin_dir is None:
            raise RuntimeError(
                "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
            )
        if self._as_postgres:
            shutil.chown(self.dir, user="postgres", group="postgres")
        init = self._run(
            str(bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
        options = [
            f"-c port={self.port}",
            "-c listen_addresses=127.0.0.1",
            "-c unix_socket_directories=''",
            f"-c max_connections={self.max_connections}",
            "-c shared_buffers=64MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        start = self._run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
            "start",
        )
        if start.returncode != 0:
            log = (self.dir / "server.log").read_text(errors="replace") if (self.dir / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {start.stderr.strip()} {log[-500:]}")
        self.started = True

    def stop(self) -> None:
        """Stop the server (immediately) and delete its directory."""
        bin_dir = self.binaries()
        if self.started and bin_dir is not None:
            self._run(str(bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = name or f"t{os.getpid()}_{next(_DB_COUNTER)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_SHARED: dict[str, PostgresServer | str] = {}


def shared_server() -> PostgresServer:
    """The one server of this test process, started on first use and stopped at exit.

    Module-level rather than fixture-owned, so that several conftests or test modules importing the fixtures still
    share one server. Raises `RuntimeError` (remembered, not retried) when it cannot start.
    """
    if "error" in _SHARED:
        raise RuntimeError(str(_SHARED["error"]))
    if "server" not in _SHARED:
        server = PostgresServer()
        try:
            server.start()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            server.stop()
            _SHARED["error"] = str(exc)
            raise RuntimeError(str(exc)) from None
        atexit.register(server.stop)
        _SHARED["server"] = server
    server = _SHARED["server"]
    assert isinstance(server, PostgresServer)
    return server


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """A PostgreSQL server for the whole test session (skip locally, fail under ``CI=true``, when it cannot start)."""
    try:
        return shared_server()
    except RuntimeError as exc:
        message = f"PostgreSQL server could not start: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of a fresh, empty database on the session's PostgreSQL server."""
    return postgres_server.create_database()
