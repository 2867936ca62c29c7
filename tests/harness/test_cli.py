"""The CLI surface: every listed command has working help, and user errors are one line with exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser, main

TOY = Path(__file__).resolve().parents[2] / "configs" / "toy_quick.toml"


def commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)  # type: ignore[arg-type]


def test_help_lists_commands_and_exits_zero() -> None:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for name in ("run", "generate", "score", "report", "toy"):
        assert name in proc.stdout


@pytest.mark.parametrize("name", commands())
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: harness " + name in capsys.readouterr().out


NO_TORCH = """
import sys
from harness.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "open_clip", "torchvision", "diffusers") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
sys.exit(code)
"""


def _heavy_modules(args: list[str], cwd: Path) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, *args], check=False, capture_output=True, text=True,
                          timeout=300, cwd=cwd)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("HEAVY="))
    return proc.returncode, line.removeprefix("HEAVY=")


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["study", "--help"], ["plan", "--win-rate", "0.6"]])
def test_light_commands_import_no_torch(args: list[str], tmp_path: Path) -> None:
    code, heavy = _heavy_modules(args, tmp_path)
    assert code == 0 and heavy == "", f"harness {' '.join(args)} imported {heavy}"


def test_analyze_a_vote_file_imports_no_torch(tmp_path: Path) -> None:
    votes = tmp_path / "votes.csv"
    rows = ["model_a,model_b,winner"] + ["unclip,glide,model_a"] * 30 + ["unclip,glide,model_b"] * 20
    votes.write_text("\n".join(rows) + "\n")
    code, heavy = _heavy_modules(["analyze", str(votes), "--json"], tmp_path)
    assert code == 0 and heavy == "", f"harness analyze imported {heavy}"


def test_command_table_matches_the_registered_parsers() -> None:
    """The help line `harness --help` shows (from COMMANDS, without importing) is the one each module registers."""
    import argparse
    import importlib

    from harness.commands import COMMANDS, TRAIN_ACTIONS

    for table in (COMMANDS, TRAIN_ACTIONS):
        for name, spec in table.items():
            sub = argparse.ArgumentParser().add_subparsers()
            importlib.import_module(spec.module).register(sub)
            assert name in sub.choices, f"{spec.module} does not register {name!r}"
            shown = next(a.help for a in sub._choices_actions if a.dest == name)
            assert shown == spec.help


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("cmd", ["generate", "score", "report"])
def test_missing_config_is_one_line(cmd: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([cmd, str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not found" in err[0]


def test_score_before_generate_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(TOY), "--set", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "holds no images yet" in err and "harness generate" in err


def test_unreachable_database_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"
    assert main(["run", str(TOY), "--no-progress", "--db", url, "--set", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "127.0.0.1:1" in err[0] and "secret" not in err[0]


def test_unwritable_out_dir_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["generate", str(TOY), "--no-progress", "--set", f"out_dir={blocker}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write the run directory" in err[0]


def test_debug_shows_traceback(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not found"):
        main(["--debug", "generate", str(tmp_path / "missing.toml")])
