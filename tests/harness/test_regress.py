"""`harness regress`: the gate fires on degraded samples, passes on other sampling noise, and guards its baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.config import RegressConfig, load_config
from harness.errors import ConfigError
from harness.regress.baseline import Measurement, check_gate_metrics, compare, load_baseline

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, system: str, sampling: str, regress: str = "bootstrap = 400\nalpha = 0.01") -> Path:
    """A gate config: 4 toy captions × 6 seeds of one system, real renders as the FD/KID reference."""
    path.write_text(
        f'name = "gate"\nseed = 0\nout_dir = "{path.parent / "runs"}"\n'
        '[prompts]\nsource = "toyworld"\nsplit = "test"\nn = 4\n'
        f"[[systems]]\n{system}\n[sampling]\nseeds_per_prompt = 6\n{sampling}\n"
        '[metrics]\nextractor = "pixels"\nreference_per_prompt = 6\n'
        f"[regress]\n{regress}\n"
    )
    return path


def gate(config: Path, baseline: Path, *extra: str) -> int:
    return main(["regress", str(config), "--baseline", str(baseline), "--no-progress", *extra])


def json_out(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def regressed(out: dict[str, Any]) -> set[str]:
    return {c["metric"] for c in out["comparisons"] if c["regressed"]}


def test_noisier_renders_fire_the_gate_and_other_seeds_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "gate.toml", 'id = "model"\ngenerator = "degraded"\n'
                          "options = { blur = 0.5, noise = 0.02 }", "")
    baseline = tmp_path / "baseline.json"
    assert gate(config, baseline, "--update-baseline") == 0
    assert "baseline written" in capsys.readouterr().out
    # the unchanged system with other sampling noise (another run seed: other scenes, noise and reference renders)
    assert gate(config, baseline, "--set", "seed=1") == 0
    out = capsys.readouterr().out
    assert "ok: no regression in 4 comparisons" in out and "REGRESSED" not in out
    # a degraded system: five times the pixel noise
    report = tmp_path / "artifacts" / "regress.md"
    assert gate(config, baseline, "--set", "systems.0.options.noise=0.1", "--report", str(report)) == 1
    out = capsys.readouterr().out
    assert "REGRESSION:" in out
    fd_row = next(line for line in out.splitlines() if line.split()[2:3] == ["fd"])
    assert fd_row.split()[-1] == "REGRESSED"
    summary = json.loads(report.with_suffix(".json").read_text())
    assert summary["exit_code"] == 1 and summary["status"] == "regressed"
    assert {"fd", "kid"} <= {c["metric"] for c in summary["comparisons"] if c["regressed"]}
    assert "| model | - | fd | lower |" in report.read_text()


def _perturbed_glide(folder: Path, sigma: float) -> Path:
    """A copy of the toy GLIDE checkpoint with seeded Gaussian noise (sigma × each tensor's std) on its weights."""
    from models.checkpoints import load_checkpoint, save_checkpoint
    from models.factory import DEFAULT_CHECKPOINT_DIR

    state, meta, _ = load_checkpoint(DEFAULT_CHECKPOINT_DIR / "glide_toy")
    gen = torch.Generator().manual_seed(0)
    noisy = {
        k: (v + sigma * v.float().std() * torch.randn(v.shape, generator=gen)).to(v.dtype)
        if v.is_floating_point() and v.numel() > 1 else v
        for k, v in state.items()
    }
    save_checkpoint(noisy, meta, folder / "glide_toy")
    return folder


def test_toy_glide_degraded_on_purpose_fires_and_a_rerun_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)
    config = write_config(tmp_path / "gate.toml", 'id = "glide"\ngenerator = "glide"\noptions = { upsample = false }',
                          'guidance_scales = [3.0]\nsteps = "6"\nbatch_size = 24')
    baseline = tmp_path / "baseline.json"
    assert gate(config, baseline, "--update-baseline") == 0
    capsys.readouterr()
    assert gate(config, baseline, "--set", "seed=1", "--json") == 0
    assert regressed(json_out(capsys)) == set()
    noisy = _perturbed_glide(tmp_path / "noisy", sigma=0.5)
    assert gate(config, baseline, "--set", f'systems.0.options.checkpoint_dir="{noisy}"', "--json") == 1
    out = json_out(capsys)
    assert {"fd", "clip_score"} <= regressed(out) and out["status"] == "regressed"
    assert any(n.startswith("glide: checkpoint changed") for n in out["notes"])


def test_update_baseline_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "gate.toml", 'id = "model"\ngenerator = "degraded"',
                          "", 'metrics = ["fd", "diversity"]\nclip = ""\nbootstrap = 200')
    baseline = tmp_path / "ci" / "baseline.json"
    assert gate(config, baseline, "--update-baseline") == 0
    data = json.loads(baseline.read_text())
    assert data["format"] == "unclip-harness/regress-baseline/1"
    cfg = load_config(config)
    assert data["config_sha256"] == cfg.config_hash() and data["harness_version"]
    assert data["checkpoints"]["model"]["generator"] == "degraded" and data["created_at"]
    assert [r["metric"] for r in data["results"]] == ["fd", "diversity"]
    assert all(len(r["replicates"]) == 200 for r in data["results"])
    assert list(baseline.parent.iterdir()) == [baseline]  # written atomically: no temporary file left
    loaded = load_baseline(baseline, str(config))
    assert [m.value for m in loaded.measurements] == [r["value"] for r in data["results"]]
    capsys.readouterr()
    # the same images again: identical numbers, zero difference, no regression
    assert gate(config, baseline, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["worse_by"] for c in out["comparisons"]] == [0.0, 0.0] and out["status"] == "ok"
    # rewriting replaces the file
    assert gate(config, baseline, "--update-baseline", "--set", "seed=3") == 0
    assert json.loads(baseline.read_text())["seed"] == 3


def test_bad_baselines_are_one_clear_error_before_generating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "gate.toml", 'id = "model"\ngenerator = "degraded"', "",
                          'metrics = ["fd"]\nbootstrap = 100')
    baseline = tmp_path / "baseline.json"
    assert gate(config, baseline) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: baseline") and "not found" in err and "--update-baseline" in err
    assert not (tmp_path / "runs").exists()
    baseline.write_text('{"format": "unclip-harness/regress-baseline/1", "results": [')
    assert gate(config, baseline) == 2
    assert "corrupt" in capsys.readouterr().err
    assert gate(config, baseline, "--update-baseline") == 0
    for override, part in (("prompts.n=3", "prompts differ"), ('regress.metrics=["fd","kid"]', "metrics differ"),
                           ("sampling.seeds_per_prompt=5", "seeds_per_prompt differ")):
        capsys.readouterr()
        assert gate(config, baseline, "--set", override) == 2
        err = capsys.readouterr().err
        assert part in err and "--update-baseline" in err and len(err.strip().splitlines()) == 1


def test_a_configured_preference_proxy_is_gated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eval_protocols.features.pixels import PixelExtractor
    from eval_protocols.human.proxy import PreferenceProxy

    pixels = PixelExtractor()
    weights = np.random.default_rng(0).standard_normal(pixels.dim)
    PreferenceProxy(weights, np.ones(pixels.dim), feature_id=pixels.extractor_id,
                    metadata={"extractor": "pixels"}).save(tmp_path / "proxy")
    config = write_config(tmp_path / "gate.toml", 'id = "model"\ngenerator = "degraded"', "",
                          f'metrics = ["diversity"]\nclip = ""\nproxy = "{tmp_path / "proxy"}"\nbootstrap = 200')
    baseline = tmp_path / "baseline.json"
    assert gate(config, baseline, "--update-baseline") == 0
    data = json.loads(baseline.read_text())
    assert [r["metric"] for r in data["results"]] == ["diversity", "proxy"]
    assert data["fingerprint"]["features"]["proxy"].startswith(pixels.extractor_id)
    capsys.readouterr()
    assert gate(config, baseline, "--json") == 0
    assert [c["worse_by"] for c in json_out(capsys)["comparisons"]] == [0.0, 0.0]


def measurement(metric: str, value: float, spread: float, higher: bool, seed: int) -> Measurement:
    replicates = value + spread * np.random.default_rng(seed).standard_normal(1000)
    return Measurement("m", "", metric, higher, value, 10, replicates)


def test_compare_directions_tolerance_and_bonferroni() -> None:
    base = [measurement("fd", 1.0, 0.1, False, 0), measurement("clip_score", 50.0, 1.0, True, 1)]
    worse = [measurement("fd", 1.6, 0.1, False, 2), measurement("clip_score", 44.0, 1.0, True, 3)]
    better = [measurement("fd", 0.4, 0.1, False, 4), measurement("clip_score", 56.0, 1.0, True, 5)]
    rule = RegressConfig(metrics=("fd", "clip_score"))
    fd, clip = compare(base, worse, rule)
    assert fd.regressed and clip.regressed and fd.worse_by == pytest.approx(0.6) and clip.worse_by == pytest.approx(6)
    assert fd.low < 0.6 < fd.high and fd.beyond_noise == pytest.approx(fd.low)
    assert all(c.improved and not c.regressed for c in compare(base, better, rule))
    tolerant = RegressConfig(metrics=("fd", "clip_score"), tolerance={"fd": 0.7, "clip_score": 1.0})
    fd, clip = compare(base, worse, tolerant)
    assert not fd.regressed and clip.regressed
    # more comparisons widen each interval (alpha / m per side)
    wide = compare(base * 5, worse * 5, rule)[0]
    assert wide.low < compare(base, worse, rule)[0].low



def test_regress_section_is_validated(tmp_path: Path) -> None:
    assert check_gate_metrics(RegressConfig(proxy="p")) == ("fd", "kid", "clip_score", "diversity", "proxy")
    with pytest.raises(ConfigError, match="did you mean 'diversity'"):
        check_gate_metrics(RegressConfig(metrics=("diversty",)))
    with pytest.raises(ConfigError, match="regress.tolerance.fd"):
        check_gate_metrics(RegressConfig(tolerance={"fd": -1.0}))
    with pytest.raises(ConfigError, match="clip is empty"):
        check_gate_metrics(RegressConfig(clip=""))
    bad = tmp_path / "bad.toml"
    bad.write_text("[regress]\ntolerence = {}\n")
    with pytest.raises(ConfigError, match="did you mean 'tolerance'"):
        load_config(bad)
    shipped = load_config(ROOT / "configs" / "regress_toy.toml")
    assert check_gate_metrics(shipped.regress) == ("fd", "kid", "clip_score", "diversity")


def test_layout_diversity_is_gated_on_its_own_extractor(tmp_path: Path) -> None:
    from harness.regress.measure import GateTools, ReferenceData, UnitData, metric_inputs

    config = write_config(tmp_path / "gate.toml", 'id = "model"\ngenerator = "reference"', "",
                          'metrics = ["fd", "layout_diversity"]\nclip = ""')
    tools = GateTools.build(load_config(config))
    assert tools.extractor.extractor_id.startswith("pixels") and tools.clip is None
    assert tools.own["layout_diversity"].extractor_id == "layout-g4"
    assert tools.feature_ids()["own:layout_diversity"] == "layout-g4"
    prompts = np.repeat(["a", "b"], 3)
    unit = UnitData("m", "", ("x",) * 6, prompts, np.zeros((6, 80)), None, None, None,
                    {"layout_diversity": np.ones((6, 48))})
    none = ReferenceData(None, None, None)
    assert metric_inputs("layout_diversity", unit, none).samples.shape == (6, 48)  # type: ignore[union-attr]
    assert metric_inputs("fd", unit, none).samples.shape == (6, 80)  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="metrics.extractors.fd: the regression gate measures fd on"):
        GateTools.build(load_config(config, ['metrics.names=["fd"]', 'metrics.extractors={fd="layout"}']))
