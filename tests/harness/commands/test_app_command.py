"""``harness app``: the streamlit command line it runs, the printed admin URL, and its refusals of bad input."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness.commands import app
from harness.errors import HarnessError


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="harness")
    app.register(parser.add_subparsers())
    return parser.parse_args(["app", *argv])


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def fake_exec(cmd: list[str], env: dict[str, str]) -> int:
        seen.append({"cmd": cmd, "env": env})
        return 0

    monkeypatch.setattr(app, "exec_streamlit", fake_exec)
    monkeypatch.delenv("HARNESS_ADMIN_SECRET", raising=False)
    return seen


def test_runs_streamlit_headless_on_the_address(
    tmp_path: Path, calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert app.run(_parse(["--host", "0.0.0.0", "--port", "8765", "--db", url, "--admin-secret", "topsecret"])) == 0
    (call,) = calls
    cmd = call["cmd"]
    assert cmd[1:4] == ["-m", "streamlit", "run"] and Path(cmd[4]) == Path(app.__file__).parents[2] / "dashboards" / "app.py"
    assert Path(cmd[4]).is_file()
    flags = dict(zip(cmd[5::2], cmd[6::2]))
    assert flags["--server.headless"] == "true"
    assert flags["--server.address"] == "0.0.0.0" and flags["--server.port"] == "8765"
    assert "topsecret" not in " ".join(cmd)  # secrets travel in the environment
    assert call["env"]["HARNESS_ADMIN_SECRET"] == "topsecret" and call["env"]["HARNESS_DB_URL"] == url
    out = capsys.readouterr().out
    assert "http://localhost:8765/?admin=topsecret" in out
    assert (tmp_path / "store.db").is_file()  # the store was created and migrated up front
    assert call["env"]["HARNESS_PUBLIC_URL"] == "http://localhost:8765"  # invite links point where the app serves


def test_public_url_is_the_base_of_links(tmp_path: Path, calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert app.run(_parse(["--port", "8766", "--db", url, "--public-url", "https://eval.example.org/"])) == 0
    assert calls[-1]["env"]["HARNESS_PUBLIC_URL"] == "https://eval.example.org"
    assert "https://eval.example.org/?admin=" in capsys.readouterr().out
    with pytest.raises(HarnessError, match="--public-url"):
        app.run(_parse(["--db", url, "--public-url", "eval.example.org"]))


def test_min_response_ms_travels_to_the_app(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    app.run(_parse(["--db", url, "--min-response-ms", "450"]))
    assert calls[-1]["env"]["HARNESS_MIN_RESPONSE_MS"] == "450"


def test_generates_a_random_secret(tmp_path: Path, calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    secrets = []
    for _ in range(2):
        app.run(_parse(["--db", url]))
        secrets.append(calls[-1]["env"]["HARNESS_ADMIN_SECRET"])
        assert f"http://localhost:8501/?admin={secrets[-1]}" in capsys.readouterr().out
    assert len(secrets[0]) >= 20 and secrets[0] != secrets[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--port", "0"], "is not a TCP port"), (["--port", "70000"], "is not a TCP port"),
     (["--host", " "], "--host is empty"), (["--db", "mysql://u@h/db"], "mysql"),
     (["--min-response-ms", "-5"], "--min-response-ms -5 is negative")],
)
def test_bad_input_raises_one_line(argv: list[str], message: str, calls: list[dict[str, Any]]) -> None:
    with pytest.raises(HarnessError) as info:
        app.run(_parse(argv))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert calls == []


def test_invite_base_defaults_to_the_served_address() -> None:
    from dashboards.admin import DEFAULT_BASE_URL, served_base_url

    assert served_base_url("https://eval.example.org/", "http://127.0.0.1:9999/?admin=x") == "https://eval.example.org"
    assert served_base_url(None, "http://127.0.0.1:9999/?admin=x") == "http://127.0.0.1:9999"
    assert served_base_url("", None) == DEFAULT_BASE_URL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serving(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.mark.slow
def test_killing_harness_app_with_sigkill_stops_the_server(tmp_path: Path) -> None:
    """`harness app` becomes the Streamlit server, so no orphan keeps serving after a SIGKILL."""
    port = _free_port()
    env = {**os.environ, "HARNESS_HOME": str(tmp_path / "home")}
    env.pop("HARNESS_DB_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "app", "--port", str(port), "--admin-secret", "s3cret"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _serving(base):
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "harness app did not serve within 60 s"
            time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _serving(base) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _serving(base), "a Streamlit process outlived `harness app`"
    finally:
        if proc.poll() is None:
            proc.kill()
