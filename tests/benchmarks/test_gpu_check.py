"""`benchmarks/gpu_check.sh --cpu-smoke`: the GPU check's own smoke test on the CPU (a real run, in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
PIPELINES = ("unclip-mid64", "glide", "unclip-diffusion-prior", "unclip-ar-prior")


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OUT"} | {"PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=600, env=env, check=False
    )


def test_cpu_smoke_prints_the_table_and_writes_every_row_as_json(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    proc = run_script("--cpu-smoke", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["finished"] and data["machine"]["device"] == "cpu" and data["total_s"] > 0
    rows = data["rows"]
    assert [(r["pipeline"], r["precision"]) for r in rows] == [(p, q) for p in PIPELINES for q in ("fp32", "bf16")]
    for row in rows:
        assert row["status"] == "ok" and row["images_per_s"] > 0 and row["calls"] >= 1, row
        assert row["batch"] == 2 and row["compile"] is False and row["image_size"] == 64
        assert (row["diff_vs_fp32"] is None) == (row["precision"] == "fp32")
    assert 1e5 < data["mid_decoder_parameters"] < 1e6  # the small stand-in for the 334M decoder
    lines = proc.stdout.splitlines()
    assert any(line.startswith("| pipeline | precision | compile | batch |") for line in lines)
    for pipeline in PIPELINES:
        assert any(line.startswith(f"| {pipeline} | bf16 | off | 2 |") for line in lines), pipeline
        assert any(line.startswith(f"sanity {pipeline}: bf16 vs fp32 mean") for line in lines), pipeline
    assert any(line.startswith("total: ") for line in lines)


@pytest.mark.skipif(torch.cuda.is_available(), reason="without --cpu-smoke a CUDA machine runs the full GPU check")
def test_without_cuda_the_full_check_is_one_clear_error() -> None:
    proc = run_script("--no-compile")
    assert proc.returncode == 2
    assert "no CUDA device here; run with --cpu-smoke" in proc.stderr
