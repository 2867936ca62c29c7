"""`harness metrics NAME A.npy [B.npy] --json`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from eval_protocols.metrics.fid import fd_from_features
from eval_protocols.metrics.kid import kernel_inception_distance
from harness.cli import main


@pytest.fixture
def feature_files(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    ref, samples = tmp_path / "ref.npy", tmp_path / "samples.npy"
    np.save(ref, rng.normal(size=(60, 8)))
    np.save(samples, rng.normal(size=(50, 8)) + 0.2)
    return ref, samples


def _run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_fd_json_matches_the_library(capsys: pytest.CaptureFixture[str], feature_files: tuple[Path, Path]) -> None:
    ref, samples = feature_files
    document = _run_json(capsys, ["metrics", "fd", str(ref), str(samples), "--json"])
    expected = fd_from_features(np.load(ref), np.load(samples)).value
    assert document["fd"] == pytest.approx(expected, rel=1e-12)
    assert document["n_samples"] == 50 and document["n_reference"] == 60


def test_fd_accepts_npz_statistics(
    capsys: pytest.CaptureFixture[str], feature_files: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, samples = feature_files
    features = np.load(ref)
    np.savez(tmp_path / "ref.npz", mu=features.mean(axis=0), sigma=np.cov(features, rowvar=False))
    document = _run_json(capsys, ["metrics", "fd", str(tmp_path / "ref.npz"), str(samples), "--json"])
    assert document["fd"] == pytest.approx(fd_from_features(features, np.load(samples)).value, rel=1e-9)


def test_kid_and_prdc_keys(capsys: pytest.CaptureFixture[str], feature_files: tuple[Path, Path]) -> None:
    ref, samples = feature_files
    kid = _run_json(
        capsys,
        ["metrics", "kid", str(ref), str(samples), "--json", "--subsets", "5", "--subset-size", "20", "--seed", "3"],
    )
    expected = kernel_inception_distance(np.load(ref), np.load(samples), subsets=5, subset_size=20, seed=3)
    assert kid["kid"] == pytest.approx(expected.value) and kid["kid_std"] == pytest.approx(expected.details["std"])
    prdc = _run_json(capsys, ["metrics", "prdc", str(ref), str(samples), "--json"])
    assert {"precision", "recall", "density", "coverage", "precision_k", "coverage_k"} <= set(prdc)


def test_vendi_with_a_groups_file(
    capsys: pytest.CaptureFixture[str], feature_files: tuple[Path, Path], tmp_path: Path
) -> None:
    _, samples = feature_files
    groups = tmp_path / "groups.txt"
    groups.write_text("\n".join(f"caption {i % 10}" for i in range(50)) + "\n")
    document = _run_json(capsys, ["metrics", "vendi", str(samples), "--groups", str(groups), "--json"])
    assert document["vendi_n_captions"] == 10 and 1.0 <= document["vendi"] <= 5.0  # type: ignore[operator]
    whole = _run_json(capsys, ["metrics", "diversity", str(samples), "--json"])
    assert whole["diversity_n_captions"] == 1


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        ("missing", "feature file not found"),
        ("dims", "dimension 8 but the other set has 3"),
        ("nan", r"rows \[4\] .*NaN"),
        ("count", "takes 2 file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], feature_files: tuple[Path, Path], tmp_path: Path, make_bad: str, message: str
) -> None:
    ref, samples = feature_files
    bad = tmp_path / "bad.npy"
    if make_bad == "dims":
        np.save(bad, np.zeros((50, 3)))
    elif make_bad == "nan":
        array = np.load(samples)
        array[4, 2] = np.nan
        np.save(bad, array)
    argv = ["metrics", "fd", str(ref), str(bad if make_bad != "missing" else tmp_path / "nope.npy"), "--json"]
    if make_bad == "count":
        argv = ["metrics", "kid", str(ref), "--json"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: ")
    assert re.search(message, err_lines[0])
