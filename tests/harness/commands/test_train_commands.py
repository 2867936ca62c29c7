"""``harness train``: subcommands registered per model module, help, and one-line errors for missing weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cli

ROOT = Path(__file__).resolve().parents[3]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_help_lists_the_trainers(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train"]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in ("clip", "oracle", "evaluate-clip", "evaluate-oracle"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "clip", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--out", "--steps", "--batch", "--resume", "--ema", "--export"))


def test_missing_clip_checkpoint_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["train", "evaluate-clip", str(tmp_path / "gone.safetensors")]) == 2
    line = one_error_line(capsys)
    assert "not found" in line and "gone.safetensors" in line


def test_missing_oracle_checkpoint_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["train", "evaluate-oracle", str(tmp_path / "gone.safetensors")]) == 2
    line = one_error_line(capsys)
    assert "not found" in line and "gone.safetensors" in line


def test_out_dir_with_a_state_needs_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "oracle", "--out", str(tmp_path), "--steps", "1", "--batch", "4", "--width", "8", "--fresh", "4"]
    assert cli.main([*args, "--warmup", "1", "--window", "8"]) == 0
    capsys.readouterr()
    assert cli.main([*args, "--warmup", "1", "--window", "8"]) == 2
    assert "--resume" in one_error_line(capsys)
    assert cli.main([*args, "--warmup", "1", "--window", "8", "--resume"]) == 0


def test_the_clip_unclip_conditions_on_encodes_shape(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped convolutional CLIP of unCLIP, named by its stem (config read from the checkpoint's own JSON, no
    --config): its image embedding must say the shape, or the decoder cannot draw it (the ViT toy CLIP probed at
    22-25%, chance 19%)."""
    checkpoint = ROOT / "checkpoints" / "toy" / "unclip_clip_toy"
    assert cli.main(["train", "evaluate-clip", str(checkpoint), "--n", "32", "--probe", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    probes = {p["attribute"]: p for p in result["probe"]}
    assert probes["shape"]["accuracy"] >= 0.75 > 3 * probes["shape"]["chance"]
    assert probes["colour"]["accuracy"] >= 0.95
    assert result["top1"] > 10 * result["chance_top1"]


def test_evaluate_clip_probe_reads_colour_from_the_shipped_toy_clip(capsys: pytest.CaptureFixture[str]) -> None:
    """The probe on real embeddings: colour, which the toy CLIP plainly encodes, is read almost perfectly (a positive
    control); every attribute is reported with its chance rate."""
    checkpoint = ROOT / "checkpoints" / "toy" / "clip_toy.safetensors"
    assert cli.main(["train", "evaluate-clip", str(checkpoint), "--n", "32", "--probe", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    probes = {p["attribute"]: p for p in result["probe"]}
    assert set(probes) == {"shape", "colour", "size"}
    assert probes["colour"]["accuracy"] >= 0.95 > probes["colour"]["chance"]
    assert all(p["n_train"] == 1000 and p["n_test"] == 500 and 0.0 < p["chance"] < 1.0 for p in probes.values())
