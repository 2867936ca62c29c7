"""`harness study create` with the paper's comparisons and planned votes, end to end on a tiny weight-free run.

Three guided systems (``callable`` generators over toy-world renders, `tests/harness/guided_sampler.py`) at two
guidance scales plus the real renders; 4 captions × 16 seeds, so a one-image cell has 64 items and a diversity cell 4
grid pairs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from eval_protocols.human.protocol import Protocol, study_plan
from harness.cli import main
from harness.config import load_config
from harness.storage.repository import Repository

SAMPLER = Path(__file__).with_name("guided_sampler.py")
GUIDED = {"unclip-diffusion-prior": 0.05, "unclip-ar-prior": 0.08, "glide": 0.02}  # system: noise


def write_config(tmp_path: Path, systems: dict[str, float] = GUIDED) -> Path:
    blocks = ['[[systems]]\nid = "reference"\ngenerator = "reference"\n']
    for name, noise in systems.items():
        blocks.append(
            f'[[systems]]\nid = "{name}"\ngenerator = "callable"\noptions = {{ function = "{SAMPLER}:sample", '
            f"uses_guidance = true, kwargs = {{ noise = {noise} }} }}\n"
        )
    text = f"""
name = "paper-study"
out_dir = "{tmp_path / 'runs'}"

[prompts]
source = "toyworld"
n = 4

{chr(10).join(blocks)}
[sampling]
seeds_per_prompt = 16
guidance_scales = [1.0, 3.0]
steps = "20"
batch_size = 64

[study]
protocols = ["photorealism", "diversity"]
comparisons = "paper"
baseline = "glide"
half_width = {{ photorealism = 0.05, diversity = 0.10 }}
exclusion_share = 0.2
attention_rate = 0.1

[simulate]
annotators = 32
"""
    path = tmp_path / "paper.toml"
    path.write_text(text)
    return path


def sid(system: str, g: float) -> str:
    return f"{system}@g={g} steps=20"  # `<system>@<settings>`, as stored studies have them


def generated(root: Path, systems: dict[str, float] = GUIDED) -> Path:
    """Write the config under ``root`` and generate its images (with a store of its own); returns the config."""
    config = write_config(root, systems)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HOME", str(root / "generate-home"))
        assert main(["generate", str(config), "--no-progress"]) == 0
    return config


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated run shared by the tests of this module (each test still gets a store of its own)."""
    return generated(tmp_path_factory.mktemp("paper-run"))


def test_study_create_designs_the_papers_cells_with_planned_votes(
    paper_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = paper_run
    capsys.readouterr()
    assert main(["study", "create", str(config)]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "diversity: each cell shows 4 distinct grid pair(s)" in err
    assert "photorealism:" not in err  # the one-image cells are fine

    cfg = load_config(config)
    repo = Repository.open()
    studies = {s.protocol_name: s for s in repo.list_studies()}
    assert set(studies) == {"photorealism", "diversity"}
    expected = []
    for g in (1.0, 3.0):
        d, ar, glide = (sid(s, g) for s in ("unclip-diffusion-prior", "unclip-ar-prior", "glide"))
        expected += [(d, glide), (ar, glide), (d, ar)]

    photo = studies["photorealism"]
    assert photo.votes_per_item == 8  # ⌈⌈385 / 0.8⌉ / 64⌉ = ⌈482 / 64⌉
    items = repo.list_items(photo.study_id)
    regular = [i for i in items if not i.is_attention_check]
    cells = Counter((i.system_a, i.system_b) for i in regular)
    assert cells == dict.fromkeys(expected, 64)  # baseline second; real renders in no cell
    assert {i.votes_target for i in items} == {8}  # exact quotas, attention checks included
    for pair in expected:
        sides = Counter(i.left for i in regular if (i.system_a, i.system_b) == pair)
        assert sides["a"] == sides["b"] == 32
    checks = [i for i in items if i.is_attention_check]
    assert len(checks) == round(0.1 * len(regular) / 0.9)
    att_images = {img.sha256 for img in repo.list_images(cfg.run_id + "-attention")}
    assert {s for i in checks for s in (*i.images_a, *i.images_b)} <= att_images

    plan = study_plan(photo.protocol)
    assert plan is not None
    assert (plan["rule"], plan["half_width"], plan["exclusion_share"]) == ("half_width", 0.05, 0.2)
    assert (plan["n_planned"], plan["n_collect"], plan["items"], plan["votes_per_cell"]) == (385, 482, 64, 512)
    assert plan["expected_half_width"] <= 0.05 and plan["meets_target"] and plan["grid_pairs"] is None
    assert [(c["system_a"], c["system_b"]) for c in plan["cells"]] == expected
    assert [c["kind"] for c in plan["cells"]] == ["vs_baseline", "vs_baseline", "between"] * 2
    assert {c["base_b"] for c in plan["cells"] if c["kind"] == "vs_baseline"} == {"glide"}
    assert [c["guidance_scale"] for c in plan["cells"]] == [1.0] * 3 + [3.0] * 3
    assert Protocol.from_dict(photo.protocol).name == "photorealism"  # the voting page still reads the snapshot

    diversity = studies["diversity"]
    dplan = study_plan(diversity.protocol)
    assert dplan is not None and diversity.votes_per_item == dplan["votes_per_item"] == 31  # ⌈⌈97 / 0.8⌉ / 4⌉
    assert dplan["grid_pairs"] == 4 and dplan["min_grid_pairs"] == 16 and len(dplan["warnings"]) == 1
    assert Counter((i.system_a, i.system_b) for i in repo.list_items(diversity.study_id)
                   if not i.is_attention_check) == dict.fromkeys(expected, 4)

    assert main(["study", "create", str(config)]) == 0  # again: the same studies, nothing new, no warnings
    assert "warning" not in capsys.readouterr().err
    assert [s.study_id for s in repo.list_studies()] == [photo.study_id, diversity.study_id]


def test_too_few_simulated_annotators_cap_the_votes_and_say_so(
    paper_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["study", "create", str(paper_run), "--set", "simulate.annotators=20"]) == 0
    err = capsys.readouterr().err
    assert "diversity: the target ±0.1 needs 31 votes per item (4 items per cell)" in err and "capped at 20" in err
    diversity = next(s for s in Repository.open().list_studies() if s.protocol_name == "diversity")
    plan = study_plan(diversity.protocol)
    assert diversity.votes_per_item == 20 and plan is not None
    assert (plan["rule"], plan["votes_per_cell"], plan["meets_target"]) == ("simulated_annotators", 80, False)
    assert plan["expected_half_width"] > 0.10


def test_votes_per_item_overrides_the_plan_and_says_so(paper_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["study", "create", str(paper_run), "--set", "study.votes_per_item=2"]) == 0
    err = capsys.readouterr().err
    assert "photorealism: study.votes_per_item = 2 wins over study.half_width = 0.05" in err and "misses" in err
    photo = next(s for s in Repository.open().list_studies() if s.protocol_name == "photorealism")
    plan = study_plan(photo.protocol)
    assert photo.votes_per_item == 2 and plan is not None
    assert (plan["rule"], plan["n_collect"], plan["votes_per_cell"], plan["meets_target"]) == (
        "votes_per_item", 482, 128, False)


@pytest.mark.parametrize(
    ("only_glide", "overrides", "message"),
    [
        (True, [], "no other guided system; add one, or use 'all_pairs'"),
        (False, ["study.votes_per_item=40"], "set simulate.annotators >= 40 or lower study.votes_per_item"),
    ],
)
def test_plans_that_do_not_fit_the_run_are_one_line_errors_and_store_nothing(
    paper_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], only_glide: bool, overrides: list[str],
    message: str,
) -> None:
    config = generated(tmp_path, {"glide": 0.02}) if only_glide else paper_run
    capsys.readouterr()
    args = ["study", "create", str(config)]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert Repository.open().list_studies() == []  # the photorealism study fitted, yet was not stored alone


def test_study_create_refuses_overrides_it_would_ignore_and_adds_a_named_study(
    paper_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["study", "create", str(paper_run)]) == 0
    repo = Repository.open()
    first = {s.name: s.study_id for s in repo.list_studies()}
    capsys.readouterr()
    # the same config again reuses the studies; other settings are refused in one line instead of silently ignored
    assert main(["study", "create", str(paper_run), "--set", "study.votes_per_item=1"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "study.votes_per_item = null, not 1" in err[0] and "--name NAME" in err[0]
    assert {s.name: s.study_id for s in repo.list_studies()} == first  # nothing stored
    # a named second study of the run, with its own settings
    assert main(["study", "create", str(paper_run), "--name", "pilot", "--set", "study.votes_per_item=1",
                 "--set", 'study.protocols=["photorealism"]', "--set", "study.half_width={photorealism=0.05}"]) == 0
    cfg = load_config(paper_run)
    named = [s for s in repo.list_studies() if s.name not in first]
    assert [s.name for s in named] == [f"{cfg.run_id}/pilot/photorealism"] and named[0].votes_per_item == 1
    from harness.analyze.vote_table import run_study_ids

    assert run_study_ids(repo, cfg.run_id) == list(first.values())
    assert run_study_ids(repo, cfg.run_id, "pilot") == [named[0].study_id]
    assert main(["study", "create", str(paper_run), "--name", "a/b"]) == 2
    assert "study.name" in capsys.readouterr().err
