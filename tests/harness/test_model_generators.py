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
        f'options = {{ checkpoint_dir = "{tiny_dir}", upsampler_start = 0.4, batch_size = 2 }}\n'
        for m in MODELS
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'name = "tiny"\nseed = 0\nout_dir = "{path.parent}"\n[prompts]\nsource = "toyworld"\nsplit = "test"\nn = 2\n'
        f'{systems}[sampling]\nseeds_per_prompt = 2\nguidance_scales = [1.0, 2.0]\nsteps = "3"\n'
        f'prior_steps = "3"\nupsampler_steps = "2"\n'
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
    assert config.upsampler_channels_last is None
    split = build_generator("glide", {"checkpoint_dir": str(tiny_dir), "upsampler_channels_last": True})
    assert split.sampling_config({}).upsampler_channels_last is True
    assert len(gen.generate(["a red circle"], [0], {"guidance_scale": 2.0, "steps": "3"})) == 1
    with pytest.raises(ConfigError, match="precision 'fp16' needs a CUDA device"):
        build_generator("glide", {"checkpoint_dir": str(tiny_dir), "precision": "fp16"})
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        build_generator("glide", {"checkpoint_dir": str(tiny_dir), "precision": "half"})


def test_sampling_settings_come_from_one_place_and_are_recorded_resolved(tiny_dir: Path, tmp_path: Path) -> None:
    """[sampling] keys reach the pipeline; what is not given keeps the pipeline's default (models'
    SamplingConfig, the one place), and each image's settings say what was used (GLIDE without prior keys)."""
    from harness.config import load_config
    from harness.generate.run import build_generators, sampling_settings
    from models.pipelines.base import SamplingConfig

    cfg = load_config(write_config(tmp_path / "c.toml", tiny_dir, 2))
    gens = build_generators(cfg)
    glide, prior = sampling_settings(cfg, gens["glide"])[0], sampling_settings(cfg, gens["unclip-diffusion-prior"])[0]
    default = SamplingConfig()
    assert glide == {"guidance_scale": 1.0, "decoder_sampler": default.sampler, "steps": "3",
                     "upsampler_sampler": default.sampler, "upsampler_steps": "2"}
    assert prior == {**glide, "prior_guidance_scale": default.prior_guidance_scale, "prior_sampler": default.sampler,
                     "prior_steps": "3"}
    ar = sampling_settings(cfg, gens["unclip-ar-prior"])[0]
    assert "prior_steps" not in ar and "prior_sampler" not in ar and "prior_guidance_scale" in ar  # no AR steps
    # a configured 0 stays 0; per-stage samplers override the shared one
    zero = load_config(write_config(tmp_path / "z.toml", tiny_dir, 2),
                       ["sampling.prior_guidance_scale=0.0", 'sampling.sampler="ddim"', 'sampling.upsampler_sampler="heun"'])
    got = sampling_settings(zero, build_generators(zero)["unclip-diffusion-prior"])[0]
    assert got["prior_guidance_scale"] == 0.0 and got["decoder_sampler"] == "ddim" and got["upsampler_sampler"] == "heun"
    assert gens["unclip-diffusion-prior"].sampling_config(got).prior_guidance_scale == 0.0


def test_bad_sampling_settings_are_one_line_config_errors(tiny_dir: Path, tmp_path: Path) -> None:
    from harness.config import load_config
    from harness.generate.run import build_generators, plan_units
    from harness.prompts import load_prompts

    cfg = load_config(write_config(tmp_path / "c.toml", tiny_dir, 2), ['sampling.sampler="dpm++2n"'])
    with pytest.raises(ConfigError, match="did you mean 'dpm\\+\\+2m'") as info:
        plan_units(cfg, load_prompts(cfg.prompts), build_generators(cfg))
    assert "\n" not in str(info.value)
    cfg = load_config(write_config(tmp_path / "c.toml", tiny_dir, 2), ['sampling.steps="fast"'])
    with pytest.raises(ConfigError, match="steps"):
        plan_units(cfg, load_prompts(cfg.prompts), build_generators(cfg))
    with pytest.raises(ConfigError, match=r"now a \[sampling\] key"):
        build_generator("glide", {"checkpoint_dir": str(tiny_dir), "prior_steps": "8"})


def test_harness_generate_accepts_the_old_ddim_settings_and_records_them(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`harness generate` with [sampling] sampler = "ddim", steps = "20" (the old demo, benchmarks/sampling.md "The CLI
    check") runs, records DDIM and 20 steps in every image's settings, and makes other images than the default."""
    from harness.cli import main
    from models.pipelines.base import SamplingConfig

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    small = ["--set", "prompts.n=1", "--set", "sampling.seeds_per_prompt=1", "--set", "sampling.guidance_scales=[2.0]"]
    ddim = ["--set", 'sampling.sampler="ddim"', "--set", 'sampling.steps="20"']
    runs = {}
    for label, extra in (("ddim", ddim), ("default", [])):
        config = write_config(tmp_path / label / "run.toml", tiny_dir, 2)
        assert main(["generate", str(config), "--no-progress", *small, *extra]) == 0
        (run_dir,) = [p for p in config.parent.iterdir() if p.is_dir()]
        runs[label] = {(e.system_id, e.prompt_id): e for e in RunDir(run_dir).entries()}
    assert len(runs["ddim"]) == len(MODELS)
    for (system, _), entry in runs["ddim"].items():
        s = entry.settings
        assert (s["decoder_sampler"], s["steps"], s["upsampler_sampler"]) == ("ddim", "20", "ddim")
        assert s.get("prior_sampler", "ddim") == "ddim"
        assert ("prior_sampler" in s) == (system == "unclip-diffusion-prior")
    assert {e.settings["decoder_sampler"] for e in runs["default"].values()} == {SamplingConfig().sampler} != {"ddim"}
    assert all(runs["ddim"][k].sha256 != runs["default"][k].sha256 for k in runs["ddim"])
