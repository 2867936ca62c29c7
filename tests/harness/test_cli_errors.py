"""One failing-input case for the commands whose own test files cover only their happy paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_train_into_an_unwritable_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", "clip", "--out", str(blocker / "run"), "--steps", "1"]) == 2
    assert "cannot create the training folder" in one_error_line(capsys)


def test_proxy_for_an_unknown_study(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["proxy", "train", "--study", "999", "--out", str(tmp_path / "p")]) == 2
    assert "does not exist" in one_error_line(capsys)


def test_proxy_score_without_a_trained_proxy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["proxy", "score", str(tmp_path / "none"), str(tmp_path / "a.png")]) == 2
    assert "train one first" in one_error_line(capsys)
