"""Run-config validation: defaults < TOML < --set, unknown keys with did-you-mean, wrong types, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.config import RunConfig, load_config
from harness.errors import ConfigError

TOY = Path(__file__).resolve().parents[2] / "configs" / "toy_quick.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_toy_config_loads_into_frozen_dataclasses() -> None:
    cfg = load_config(TOY)
    assert isinstance(cfg, RunConfig)
    assert [s.id for s in cfg.systems] == ["reference", "degraded"]
    assert cfg.sampling.guidance_scales == (1.0, 3.0)
    with pytest.raises(AttributeError):
        cfg.name = "other"  # type: ignore[misc]


def test_defaults_then_file_then_set(tmp_path: Path) -> None:
    path = write(tmp_path, '[sampling]\nsteps = "25"\n[[systems]]\nid = "r"\ngenerator = "reference"\n')
    cfg = load_config(path)
    assert cfg.sampling.steps == "25"
    assert cfg.sampling.seeds_per_prompt == 4  # built-in default
    cfg = load_config(path, ["sampling.steps=10", "sampling.guidance_scales=[1, 2.5]", "systems.0.id=mine", "name=x"])
    assert cfg.sampling.steps == "10"  # ints given for a string field are converted
    assert cfg.sampling.guidance_scales == (1.0, 2.5)
    assert cfg.systems[0].id == "mine"
    assert cfg.name == "x"


def test_unknown_key_names_key_file_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "[sampling]\nguidance_scale = [1.0]\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "sampling.guidance_scale" in msg and str(path) in msg and "did you mean 'guidance_scales'" in msg


def test_unknown_top_level_key_and_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'sed'.*did you mean 'seed'"):
        load_config(write(tmp_path, "sed = 1\n"))


def test_wrong_type_names_expected_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'sampling.seeds_per_prompt' must be an integer"):
        load_config(write(tmp_path, '[sampling]\nseeds_per_prompt = "four"\n'))
    with pytest.raises(ConfigError, match="must be an integer"):
        load_config(write(tmp_path, "seed = true\n"))


def test_missing_required_system_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing required key 'generator'"):
        load_config(write(tmp_path, '[[systems]]\nid = "a"\n'))


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "name = \n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_bad_override_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(path, ["sampling.steps"])
    with pytest.raises(ConfigError, match="out of range"):
        load_config(path, ["systems.3.id=x"])


def test_run_id_depends_only_on_resolved_config(tmp_path: Path) -> None:
    a = load_config(TOY)
    b = load_config(TOY)
    c = load_config(TOY, ["seed=1"])
    assert a.run_id == b.run_id != c.run_id
    assert a.run_id.startswith("toy-")


def test_cli_reports_config_error_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[sampling]\nstep = 3\n")
    assert main(["generate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "did you mean 'steps'" in err[0]


@pytest.mark.parametrize("path", sorted((TOY.parent).glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path: Path) -> None:
    from harness.generate.run import build_generators

    cfg = load_config(path)
    assert cfg.systems and len({s.id for s in cfg.systems}) == len(cfg.systems)
    build_generators(cfg)  # generator names, options and checkpoint files resolve


PAPER_TOY = TOY.parent / "toy.toml"


def test_toy_config_asks_the_papers_question() -> None:
    study = load_config(PAPER_TOY).study
    assert study.comparisons == "paper" and study.baseline == "glide"
    assert study.half_width == {"photorealism": 0.05, "caption_similarity": 0.05, "diversity": 0.10}
    assert study.votes_per_item is None  # the planner decides; an explicit value would override it


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('study.baseline=""', 'study.baseline is not set; set it to a [[systems]] id, e.g. baseline = "glide"'),
        ('study.baseline="glid"', "study.baseline = 'glid' is not a [[systems]] id; did you mean 'glide'?"),
        ('study.comparisons="papers"', 'is not one of "all_pairs", "vs_baseline", "paper"'),
        ("study.half_width.photo=0.05", "names protocol 'photo', which is not in study.protocols"),
        ("study.half_width.diversity=0.5", "study.half_width.diversity = 0.5 must be a number in (0, 0.5)"),
        ('study.half_width.diversity="wide"', "must be a number in (0, 0.5)"),
        ("study.exclusion_share=1.0", "study.exclusion_share = 1.0 must be in [0, 1)"),
        ("study.votes_per_item=0", "study.votes_per_item = 0 must be an integer >= 1"),
        ("study.min_grid_pairs=0", "study.min_grid_pairs = 0 must be an integer >= 1"),
    ],
)
def test_study_config_errors_are_one_line_naming_file_and_fix(
    override: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(PAPER_TOY, [override])
    assert message in str(err.value) and str(PAPER_TOY) in str(err.value)
    assert main(["study", "create", str(PAPER_TOY), "--set", override]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_votes_per_item_and_half_width_may_be_given_together() -> None:
    study = load_config(PAPER_TOY, ["study.votes_per_item=2"]).study
    assert study.votes_per_item == 2 and study.half_width["photorealism"] == 0.05  # votes_per_item wins (plan.py)


@pytest.mark.parametrize(
    ("extractors", "message"),
    [
        ('{layout_diversty="layout"}',
         "metrics.extractors names metric 'layout_diversty', which is not in metrics.names; did you mean "
         + "'layout_diversity'?"),
        ('{layout_diversity="layuot"}',
         "metrics.extractors.layout_diversity: unknown feature extractor 'layuot'; did you mean 'layout'?"),
        ('{layout_diversity="layout-g0"}', "unknown feature extractor 'layout-g0'"),
        ('{layout_diversity=8}', "metrics.extractors.layout_diversity = 8 must be a string"),
        ('{clip_score="layout"}', "clip_score compares image and caption embeddings of metrics.clip_extractor"),
    ],
)
def test_per_metric_extractor_errors_are_one_line(
    extractors: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ['metrics.names=["fd","layout_diversity","clip_score"]', 'metrics.clip_extractor="clip:toy"']
    with pytest.raises(ConfigError) as err:
        load_config(TOY, [*names, f"metrics.extractors={extractors}"])
    assert message in str(err.value) and str(TOY) in str(err.value)
    args = [a for s in [*names, f"metrics.extractors={extractors}"] for a in ("--set", s)]
    assert main(["score", str(TOY), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_per_metric_extractor_resolution() -> None:
    from eval_protocols.metrics.registry import get_metric
    from harness.score.extractors import metric_extractor_name

    cfg = load_config(TOY, ['metrics.names=["fd","diversity","layout_diversity","clip_score"]',
                            'metrics.clip_extractor="clip:toy"', 'metrics.extractors={fd="layout-g8"}']).metrics
    use = {n: metric_extractor_name(get_metric(n), cfg) for n in cfg.names}
    assert use == {"fd": "layout-g8", "diversity": "clip:toy", "layout_diversity": "layout", "clip_score": "clip:toy"}
    plain = load_config(TOY, ['metrics.names=["diversity","layout_diversity"]']).metrics
    assert [metric_extractor_name(get_metric(n), plain) for n in plain.names] == ["pixels", "layout"]
