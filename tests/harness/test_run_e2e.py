"""The walking skeleton: `harness run` from toy prompts to a report, resumable and byte-identical on resume."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import load_config
from harness.rundir import RunDir
from harness.storage.repository import Repository

TOY = Path(__file__).resolve().parents[2] / "configs" / "toy_quick.toml"
SMALL = [
    "prompts.n=3",
    "sampling.seeds_per_prompt=2",
    "sampling.guidance_scales=[1.0]",
    'study.protocols=["photorealism","caption_similarity"]',
    "metrics.reference_per_prompt=2",
    "metrics.bootstrap=20",
]


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under images/ and of the manifest."""
    files = sorted((root / "images").glob("*.png")) + [root / "manifest.jsonl"]
    return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def run_cli(tmp_path: Path, out: str, *extra: str) -> int:
    args = ["run", str(TOY), "--no-progress", "--set", f"out_dir={tmp_path / out}"]
    for s in [*SMALL, *extra]:
        args += ["--set", s]
    return main(args)


def test_run_end_to_end_writes_report_and_studies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, "runs") == 0
    out = capsys.readouterr().out
    report = Path(out.split("report: ")[1].splitlines()[0])
    assert report.is_file() and report.stat().st_size > 500
    text = report.read_text()
    assert "| degraded renders | " in text and "| real renders | " in text  # metric rows, readable names
    assert "No Table 1: this run compares no unCLIP system with a GLIDE system" in text
    assert (report.parent / "report.html").read_text().startswith("<!DOCTYPE html>")
    cfg = load_config(TOY, [*SMALL, f"out_dir={tmp_path / 'runs'}"])
    repo = Repository.open()
    studies = {s.name: s for s in repo.list_studies()}
    assert set(studies) == {f"{cfg.run_id}/photorealism", f"{cfg.run_id}/caption_similarity"}
    items = repo.list_items(studies[f"{cfg.run_id}/photorealism"].study_id)
    assert {(i.system_a, i.system_b) for i in items if not i.is_attention_check} == {("degraded", "reference")}
    assert any(i.is_attention_check for i in items)
    # every image an item shows resolves to a file through the store (attention checks included)
    shas = {sha for i in items for sha in (*i.images_a, *i.images_b)}
    paths = repo.image_paths(shas)
    assert set(paths) == shas and all(p.is_file() for p in paths.values())
    # the degraded system is measurably worse than real renders
    fd = {r.model_id: r.value for r in repo.load_metric_results(cfg.run_id) if r.metric == "fd"}
    assert fd["degraded"] > fd["reference"]


def test_rerun_is_idempotent_and_resume_is_byte_identical(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "a") == 0
    cfg = load_config(TOY, [*SMALL, f"out_dir={tmp_path / 'a'}"])
    full = RunDir(tmp_path / "a" / cfg.run_id)
    digest = tree_digest(full.root)
    n_studies = len(Repository.open().list_studies())
    assert run_cli(tmp_path, "a") == 0  # rerun: nothing new
    assert tree_digest(full.root) == digest
    assert len(Repository.open().list_studies()) == n_studies

    # an interrupted run: half the manifest (and a torn line) survived, one later PNG was half-written
    assert run_cli(tmp_path, "b") == 0
    part = RunDir(tmp_path / "b" / cfg.run_id)
    lines = part.manifest_path.read_bytes().splitlines(keepends=True)
    keep = len(lines) // 2
    part.manifest_path.write_bytes(b"".join(lines[:keep]) + lines[keep][:20])
    kept = {line.split(b'"sha256": "')[1][:64].decode() for line in lines[:keep]}
    for png in part.images_dir.glob("*.png"):
        if png.stem not in kept:
            png.unlink()
    assert run_cli(tmp_path, "b") == 0
    assert tree_digest(part.root) == digest


def test_run_with_missing_config_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "none.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]


def test_run_with_unknown_generator_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, "c", "systems.1.generator=degradd") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'degraded'" in err[0]
    assert not (tmp_path / "c").exists()  # nothing half-written


def test_caption_metrics_use_the_configured_clip(tmp_path: Path) -> None:
    """clip_score / r_precision come from `metrics.clip_extractor` (image and text towers), FD from `extractor`."""
    import numpy as np
    from PIL import Image

    from harness.prompts import load_prompts
    from harness.score.extractors import toy_clip

    extra = [
        'metrics.names=["fd","clip_score","r_precision"]',
        'metrics.clip_extractor="clip:toy"',
        'study.protocols=["photorealism"]',
        "simulate.enabled=false",
    ]
    assert run_cli(tmp_path, "runs", *extra) == 0
    cfg = load_config(TOY, [*SMALL, *extra, f"out_dir={tmp_path / 'runs'}"])
    results = {(r.metric, r.model_id): r for r in Repository.open().load_metric_results(cfg.run_id)}
    assert results[("fd", "reference")].extractor_id.startswith("pixels")
    clip = toy_clip()
    assert results[("clip_score", "reference")].extractor_id == clip.extractor_id
    # independent recomputation of the reference system's CLIP score from its PNGs
    run_dir = RunDir(Path(cfg.out_dir) / cfg.run_id)
    entries = [e for e in run_dir.entries() if e.system_id == "reference"]
    texts = {p.prompt_id: p.text for p in load_prompts(cfg.prompts)}
    images = np.stack([np.asarray(Image.open(run_dir.root / e.path).convert("RGB")) for e in entries])
    cos = (clip(images) * clip.encode_text([texts[e.prompt_id] for e in entries])).sum(axis=1)
    expected = float(np.mean(100 * np.maximum(cos, 0)))
    assert results[("clip_score", "reference")].value == pytest.approx(expected, rel=1e-4)
    assert results[("clip_score", "reference")].n == len(entries)
    assert 0.0 <= results[("r_precision", "degraded")].value <= 1.0
    assert results[("r_precision", "reference")].value > 1 / 3  # 3 captions: chance is 1/3


def test_per_metric_extractors_are_used_and_recorded(tmp_path: Path) -> None:
    """layout_diversity runs on the layout extractor it is defined on, metrics.extractors overrides per metric, and
    each result records the extractor it was computed on."""
    import numpy as np
    from PIL import Image

    from eval_protocols.features.pixels import LayoutExtractor
    from eval_protocols.metrics.diversity import layout_diversity

    extra = [
        'metrics.names=["fd","diversity","layout_diversity","vendi"]',
        'metrics.extractors={vendi="layout-g2"}',
        'study.protocols=["photorealism"]',
        "simulate.enabled=false",
    ]
    assert run_cli(tmp_path, "runs", *extra) == 0
    cfg = load_config(TOY, [*SMALL, *extra, f"out_dir={tmp_path / 'runs'}"])
    results = {(r.metric, r.model_id): r for r in Repository.open().load_metric_results(cfg.run_id)}
    ids = {metric: results[(metric, "reference")].extractor_id for metric in cfg.metrics.names}
    assert ids == {"fd": "pixels-v2-w4-g4", "diversity": "pixels-v2-w4-g4", "layout_diversity": "layout-g4",
                   "vendi": "layout-g2"}
    run_dir = RunDir(Path(cfg.out_dir) / cfg.run_id)
    entries = [e for e in run_dir.entries() if e.system_id == "reference"]
    images = np.stack([np.asarray(Image.open(run_dir.root / e.path).convert("RGB")) for e in entries])
    want = layout_diversity(LayoutExtractor()(images), [e.prompt_id for e in entries])
    got = results[("layout_diversity", "reference")]
    assert got.value == pytest.approx(want.value, rel=1e-5) and got.n == 3  # features cached as float32
    assert got.ci_low is not None and got.ci_low <= got.value <= got.ci_high


def test_caption_metrics_without_a_clip_fail_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, "runs", 'metrics.names=["fd","clip_score"]') == 2
    err = capsys.readouterr().err
    assert "metrics.clip_extractor" in err and "clip:toy" in err


def test_reference_as_an_image_folder_or_npz_statistics(tmp_path: Path) -> None:
    """`metrics.reference` set to a folder of the same renders gives the toyworld FD; an .npz of their mean
    and unbiased covariance (computed here with numpy from the images) gives it up to float error."""
    import shutil

    import numpy as np
    from PIL import Image

    from harness.score.extractors import build_extractor

    extra = ['metrics.names=["fd"]', 'study.protocols=["photorealism"]', "simulate.enabled=false"]
    assert run_cli(tmp_path, "runs", *extra) == 0
    cfg = load_config(TOY, [*SMALL, *extra, f"out_dir={tmp_path / 'runs'}"])

    def fd_now() -> dict[str, float]:
        return {r.model_id: r.value for r in Repository.open().load_metric_results(cfg.run_id) if r.metric == "fd"}

    toyworld = fd_now()
    assert set(toyworld) == {"reference", "degraded"} and toyworld["degraded"] > toyworld["reference"]
    folder = tmp_path / "my_reference"
    shutil.copytree(tmp_path / "runs" / cfg.run_id / "reference", folder)
    assert run_cli(tmp_path, "runs", *extra, f'metrics.reference="{folder}"') == 0
    assert fd_now() == pytest.approx(toyworld, rel=1e-6)  # same images; only the summation order differs

    files = sorted(folder.rglob("*.png"))
    features = build_extractor(cfg.metrics.extractor)(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]))
    stats = tmp_path / "reference_stats.npz"
    np.savez(stats, mu=features.astype(np.float64).mean(0), sigma=np.cov(features.astype(np.float64), rowvar=False))
    assert run_cli(tmp_path, "runs", *extra, f'metrics.reference="{stats}"') == 0
    assert fd_now() == pytest.approx(toyworld, rel=1e-4)
