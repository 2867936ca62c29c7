"""`harness.faults`: the test hook that hard-kills a run at a chosen point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.faults import FAULT_ENV, fault_point, parse_fault


def test_parse_fault() -> None:
    assert parse_fault("generate:5") == ("generate", 5)
    assert parse_fault("vote:1") == ("vote", 1)
    for bad in ("generate", "generate:0", "generate:x", "genrate:3", ":3"):
        with pytest.raises(HarnessError, match=FAULT_ENV):
            parse_fault(bad)


def test_unset_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULT_ENV, raising=False)
    for _ in range(3):
        fault_point("generate")


def test_fault_is_a_sigkill_without_cleanup(tmp_path: Path) -> None:
    marker = tmp_path / "cleanup-ran"
    script = (
        "import atexit, sys\n"
        "from harness.faults import fault_point\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').close())\n"
        "fault_point('generate'); fault_point('score'); fault_point('score')\n"
        "sys.stdout.write('alive\\n'); sys.stdout.flush()\n"
        "try:\n"
        "    fault_point('generate')\n"
        "finally:\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "print('not reached')\n"
    )
    env = {**os.environ, FAULT_ENV: "generate:2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == "alive\n"
    assert not marker.exists()  # neither `finally` nor atexit ran
