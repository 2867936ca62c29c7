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


def test_manipulations_refuse_a_missing_or_unreadable_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    out = tmp_path / "strip.png"
    cases = [
        ["variations", str(tmp_path / "missing.png")],
        ["interpolate", str(not_an_image), str(tmp_path / "missing.png")],
        ["textdiff", str(tmp_path / "missing.png"), "--from", "a red circle", "--to", "a blue circle"],
    ]
    for argv in cases:
        assert main([*argv, "--out", str(out)]) == 2
        line = one_error_line(capsys)
        assert "cannot read image" in line and "pass a PNG or JPEG file" in line, line
        assert not out.exists()  # nothing half-written


def test_train_refuses_a_described_share_outside_0_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "glide", "--out", str(out), "--steps", "1", "--described-p", "1.5"]) == 2
    assert "--described-p: described_p must lie in [0, 1], got 1.5" in one_error_line(capsys)
    assert not (out / "state.pt").exists()


@pytest.mark.parametrize(
    ("flags", "problem"),
    [(["--shape-twins", "2"], "must lie in [0, 1]"), (["--shape-twins", "0.5", "--fresh", "7"], "even number")],
)
def test_clip_training_refuses_bad_shape_twin_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], problem: str
) -> None:
    out = tmp_path / "run"
    assert main(["train", "clip", "--out", str(out), "--steps", "1", *flags]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: --shape-twins: ") and problem in line
    assert not out.exists() or not any(out.iterdir())


def test_evaluating_clip_weights_with_the_wrong_config(capsys: pytest.CaptureFixture[str]) -> None:
    """The conv CLIP of unCLIP evaluated as the ViT toy config: one line that names the fix, not a key dump."""
    weights = Path(__file__).resolve().parents[2] / "checkpoints" / "toy" / "unclip_clip_toy.safetensors"
    assert main(["train", "evaluate-clip", str(weights), "--config", "clip_toy", "--n", "4"]) == 2
    line = one_error_line(capsys)
    assert "do not fit the architecture" in line and "model_config" in line and len(line) < 400
