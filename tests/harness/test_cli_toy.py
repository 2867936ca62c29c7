"""``harness toy``: PNG folders with a manifest, prompt sets, help, and one-line errors for bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cli import main
from harness.data import toyworld


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["toy", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "render" in out and "prompts" in out and "harness toy render --n" in out
    with pytest.raises(SystemExit) as exc:
        main(["toy", "render", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--n", "--split", "--out", "--seed", "--size"))


def test_toy_without_action_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["toy"]) == 2
    assert "ACTION" in capsys.readouterr().out


def test_render_writes_content_addressed_pngs_and_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    assert main(["toy", "render", "--n", "6", "--split", "test", "--out", str(out), "--seed", "4", "--size", "32"]) == 0
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(6))
    for r in records:
        data = (out / r["path"]).read_bytes()
        assert r["path"] == f"images/{r['sha256']}.png" and hashlib.sha256(data).hexdigest() == r["sha256"]
        scene = toyworld.sample_scene(4, r["index"], "test")
        assert (r["split"], r["seed"], r["size"], r["caption"]) == ("test", 4, 32, scene.caption)
        assert toyworld.SceneSpec.from_dict(r["scene"]) == scene
        image = np.asarray(Image.open(out / r["path"]).convert("RGB"))
        assert np.array_equal(image, toyworld.render_scene(scene, 32))
    assert sorted(p.name for p in out.rglob("*") if p.name.startswith(".")) == []  # no temporary files left


def test_render_is_reproducible(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["toy", "render", "--n", "4", "--out", str(tmp_path / name), "--no-progress"]) == 0
    a, b = (tmp_path / "a" / "manifest.jsonl").read_bytes(), (tmp_path / "b" / "manifest.jsonl").read_bytes()
    assert a == b
    assert sorted(p.name for p in (tmp_path / "a" / "images").iterdir()) == sorted(
        p.name for p in (tmp_path / "b" / "images").iterdir()
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--n", "0"], "--n must be a positive number"),
        (["--n", "3", "--split", "tset"], "did you mean 'test'"),
        (["--n", "3", "--size", "48"], "--size must be one of 32, 64"),
        (["--n", "3", "--seed", "-1"], "--seed must be a non-negative"),
    ],
)
def test_render_bad_input_is_one_line(
    args: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["toy", "render", *args, "--out", str(out)]) == 2
    assert fragment in one_error_line(capsys)
    assert not out.exists()


def test_render_to_unwritable_directory_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    assert main(["toy", "render", "--n", "2", "--out", str(blocker / "out")]) == 2
    line = one_error_line(capsys)
    assert "cannot write to output directory" in line and "writable --out" in line


def test_prompts_writes_a_prompt_set(tmp_path: Path) -> None:
    path = tmp_path / "sets" / "toy.jsonl"
    assert main(["toy", "prompts", "--n", "5", "--split", "val", "--seed", "3", "--out", str(path)]) == 0
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["prompt_id"] for r in records] == [f"toy-val-3-{i}" for i in range(5)]
    for i, r in enumerate(records):
        scene = toyworld.sample_scene(3, i, "val")
        assert r["text"] == scene.caption and r["scene"] == json.loads(json.dumps(scene.to_dict()))
        assert toyworld.parse_caption(r["text"]) == scene.caption_spec


def test_prompts_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["toy", "prompts", "--n", "-2", "--out", str(tmp_path / "p.jsonl")]) == 2
    assert "--n must be a positive number" in one_error_line(capsys)
    assert main(["toy", "prompts", "--n", "2", "--out", str(tmp_path)]) == 2
    assert "is a directory" in one_error_line(capsys)
