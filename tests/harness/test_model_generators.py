"""The trained-pipeline generators through `harness.generate.run`, on tiny random checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "pipelines"))
from pipeline_fixtures import write_tiny_stack

from harness.config import load_config
from harness.errors import ConfigError
from harness.generate.registry import build_generator, list_generators
from harness.generate.run import generate_run
from harness.prompts import load_prompts
from harness.rundir import RunDir
from models.factory import pipeline_checkpoint_sha256

MODELS = ("glide", "unclip-diffusion-prior", "unclip-ar-prior")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tiny_stack")
    write_tiny_stack(folder)
    return folder


def write_config(path: Path, tiny_dir: Path, batch_size: int) -> Path:
    systems = "\n".join(
        f'[[systems]]\nid = "{m}"\ngenerator = "{m}"\n'
        f'options = {{ checkpoint_dir = "{tiny_dir}", prior_steps = "3", upsampler_steps = "2", '
        f"upsampler_start = 0.4, batch_size = 2 }}\n"
        for m in MODELS
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'name = "tiny"\nseed = 0\nout_dir = "{path.parent}"\n[prompts]\nsource = "toyworld"\nsplit = "test"\nn = 2\n'
        f'{systems}[sampling]\nseeds_per_prompt = 2\nguidance_scales = [1.0, 2.0]\nsteps = "3"\n'
        f"batch_size = {batch_size}\n"
    )
    return path


def test_generators_are_registered_with_hashes_from_the_checkpoints(tiny_dir: Path) -> None:
    assert set(MODELS) <= set(list_generators())
    for name in MODELS:
        gen = build_generator(name, {"checkpoint_dir": str(tiny_dir)})
        assert gen.model_id == name and gen.uses_guidance
        assert gen.checkpoint_sha256 == pipeline_checkpoint_sha256(name, tiny_dir)


def test_bad_options_and_missing_checkpoints_are_config_errors(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'checkpoint_dir'"):
        build_generator("glide", {"checkpoint_dirs": str(tiny_dir)})
    with pytest.raises(ConfigError, match="not found; train it with: harness train glide"):
        build_generator("glide", {"checkpoint_dir": str(tmp_path)})


def test_generate_run_is_identical_whatever_the_batch_size(tiny_dir: Path, tmp_path: Path) -> None:
    entries = {}
    for batch_size in (3, 1):
        cfg = load_config(write_config(tmp_path / f"b{batch_size}" / "run.toml", tiny_dir, batch_size))
        run_dir = RunDir(tmp_path / f"b{batch_size}" / "run").create()
        entries[batch_size] = generate_run(cfg, run_dir, load_prompts(cfg.prompts), progress=False)
    assert len(entries[3]) == 3 * 2 * 2 * 2  # systems × guidance scales × prompts × seeds
    assert [e.sha256 for e in entries[3]] == [e.sha256 for e in entries[1]]
    by_model = {e.model_id: e.checkpoint_sha256 for e in entries[3]}
    assert by_model == {m: pipeline_checkpoint_sha256(m, tiny_dir) for m in MODELS}
    # guidance changes the images of a guided pipeline
    glide = [e for e in entries[3] if e.model_id == "glide"]
    by_scale = {}
    for e in glide:
        by_scale.setdefault(e.settings["guidance_scale"], []).append(e.sha256)
    assert by_scale[1.0] != by_scale[2.0]


def test_precision_options_reach_the_pipeline_and_fp16_off_cuda_is_a_config_error(tiny_dir: Path) -> None:
    gen = build_generator("glide", {"checkpoint_dir": str(tiny_dir), "precision": "bf16", "channels_last": True})
    config = gen.sampling_config({"guidance_scale": 2.0, "steps": "3"})
    assert (config.precision, config.channels_last, config.compile) == ("bf16", True, False)
    assert len(gen.generate(["a red circle"], [0], {"guidance_scale": 2.0, "steps": "3"})) == 1
    with pytest.raises(ConfigError, match="precision 'fp16' needs a CUDA device"):
        build_generator("glide", {"checkpoint_dir": str(tiny_dir), "precision": "fp16"})
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        build_generator("glide", {"checkpoint_dir": str(tiny_dir), "precision": "half"})
