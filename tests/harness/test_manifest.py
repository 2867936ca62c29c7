"""Run directories: content addressing, crash-safe appends, resume keys, seeds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.rundir import RunDir, derive_seed, encode_png


def fields(k: int = 0) -> dict:
    return {
        "system_id": "s",
        "model_id": "m",
        "prompt_id": "p",
        "prompt": "a red circle",
        "sample_index": k,
        "seed": derive_seed(0, "p", k),
        "settings": {"guidance_scale": 3.0},
        "checkpoint_sha256": None,
    }


def image(v: int) -> np.ndarray:
    return np.full((8, 8, 3), v, dtype=np.uint8)


def test_images_are_content_addressed(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r").create()
    e = run.add_image(image(7), fields())
    data = (run.root / e.path).read_bytes()
    assert e.sha256 == hashlib.sha256(data).hexdigest() and e.path == f"images/{e.sha256}.png"
    assert data == encode_png(image(7))  # deterministic encoding
    np.testing.assert_array_equal(run.load_image(e), image(7))


def test_torn_manifest_tail_is_dropped_and_unit_redone(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r").create()
    run.add_image(image(1), fields(0))
    run.add_image(image(2), fields(1))
    intact = run.manifest_path.read_bytes()
    run.manifest_path.write_bytes(intact + b'{"sha256": "abc", "pa')  # crash mid-append
    entries = run.entries()
    assert [e.sample_index for e in entries] == [0, 1]
    assert run.manifest_path.read_bytes() == intact
    assert len(run.done_keys()) == 2


def test_corrupt_middle_line_is_an_error(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r").create()
    run.add_image(image(1), fields(0))
    run.manifest_path.write_bytes(b"garbage\n" + run.manifest_path.read_bytes())
    with pytest.raises(HarnessError, match="line 1 is not a manifest entry"):
        run.entries()


def test_missing_png_means_not_done(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r").create()
    e = run.add_image(image(1), fields(0))
    (run.root / e.path).unlink()
    assert run.done_keys() == set()


def test_seed_derivation_is_stable_and_spread() -> None:
    assert derive_seed(0, "p", 0) == derive_seed(0, "p", 0)
    seeds = {derive_seed(0, f"p{i}", k) for i in range(50) for k in range(4)}
    assert len(seeds) == 200 and all(0 <= s < 2**31 for s in seeds)
    assert derive_seed(1, "p", 0) != derive_seed(0, "p", 0)


def test_unwritable_run_dir_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HarnessError, match="cannot write the run directory"):
        RunDir(blocker / "run").create()
