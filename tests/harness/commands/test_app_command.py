"""``harness app``: the streamlit command line it runs, the printed admin URL, and its refusals of bad input."""

from __future__ import annotations

import argparse
import subprocess
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

    def fake_call(cmd: list[str], env: dict[str, str]) -> int:
        seen.append({"cmd": cmd, "env": env})
        return 0

    monkeypatch.setattr(subprocess, "call", fake_call)
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
     (["--host", " "], "--host is empty"), (["--db", "mysql://u@h/db"], "mysql")],
)
def test_bad_input_raises_one_line(argv: list[str], message: str, calls: list[dict[str, Any]]) -> None:
    with pytest.raises(HarnessError) as info:
        app.run(_parse(argv))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert calls == []
