"""Simulated annotators vote through the repository: quotas met exactly, no double votes, idempotent, measured."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_vote_table import make_study

from eval_protocols.human.analysis import AnalysisOptions, analyze_votes
from harness.analyze.vote_table import run_study_ids, study_vote_table, votes_of_studies
from harness.config import SimulateConfig, load_config
from harness.errors import HarnessError
from harness.pipeline import run_pipeline
from harness.simulate.votes import careless_indices, decide, simulate_study
from harness.storage.repository import Repository

TOY = Path(__file__).resolve().parents[2] / "configs" / "toy_quick.toml"
QUALITY = {"unclip": 200.0, "glide": 60.0, "real": 255.0, "corrupted": 0.0}


class MeanJudge:
    """Scores a side by its mean pixel value (the fake images below encode each system's quality)."""

    judge_id = "mean-pixel"

    def __call__(self, images: np.ndarray, caption: str = "") -> float:
        return float(images.mean())


def fake_loader(repo: Repository, study_id: int):
    value = {}
    for item in repo.list_items(study_id):
        for sha in item.images_a:
            value[sha] = QUALITY[item.system_a]
        for sha in item.images_b:
            value[sha] = QUALITY[item.system_b]
    return lambda shas: np.stack([np.full((4, 4, 3), value[s], np.uint8) for s in shas])


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.open(f"sqlite:///{tmp_path / 'store.db'}")


def test_quotas_filled_exactly_without_double_votes_and_rerun_adds_nothing(repo: Repository) -> None:
    sid = make_study(repo, n_items=12, votes_per_item=3)
    cfg = SimulateConfig(annotators=5, careless_share=0.2, noise=0.5, seed=3)
    judges = {"photorealism": MeanJudge()}
    done = simulate_study(repo, sid, judges, cfg, load=fake_loader(repo, sid))
    votes = repo.load_votes(sid)
    assert done.votes_added == len(votes) == 36
    assert set(Counter(v.item_id for v in votes).values()) == {3}  # every item exactly at quota
    pairs = Counter((v.annotator_id, v.item_id) for v in votes)
    assert max(pairs.values()) == 1  # nobody voted twice on an item
    names = {a.name for a in repo.list_annotators(sid)}
    assert names == {f"sim-{k:02d}" for k in range(1, 6)} and len(done.careless) == 1
    again = simulate_study(repo, sid, judges, cfg, load=fake_loader(repo, sid))
    assert again.votes_added == 0 and len(repo.load_votes(sid)) == 36
    assert len(repo.list_annotators(sid)) == 5  # the same annotators, reused
    table = study_vote_table(repo, sid)
    assert table["simulated"].all()
    careful = table[~table["annotator"].isin(done.careless) & table["expected"].isna()]
    assert (careful["winner"] == "model_a").mean() > 0.8  # unclip (a) measurably better: chosen


class Interrupted(Exception):
    """Stands for the process dying right after a vote was committed."""


@pytest.mark.parametrize("stop_after", [1, 5, 6, 17])
def test_interrupted_simulation_resumes_to_the_same_votes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_after: int
) -> None:
    cfg = SimulateConfig(annotators=5, careless_share=0.2, noise=0.5, seed=3)
    judges = {"photorealism": MeanJudge()}

    def votes_of(repo: Repository, sid: int) -> list[tuple[str, int, str, int]]:
        names = {a.annotator_id: a.name for a in repo.list_annotators(sid)}
        position = {i.item_id: i.position for i in repo.list_items(sid)}
        return sorted((names[v.annotator_id], position[v.item_id], v.choice, v.response_ms)
                      for v in repo.load_votes(sid))

    whole = Repository.open(f"sqlite:///{tmp_path / 'whole.db'}")
    sid = make_study(whole, n_items=12, votes_per_item=3)
    simulate_study(whole, sid, judges, cfg, load=fake_loader(whole, sid))

    calls = []

    def stop(stage: str) -> None:
        calls.append(stage)
        if len(calls) == stop_after:
            raise Interrupted

    part = Repository.open(f"sqlite:///{tmp_path / 'part.db'}")
    sid = make_study(part, n_items=12, votes_per_item=3)
    monkeypatch.setattr("harness.simulate.votes.fault_point", stop)
    with pytest.raises(Interrupted):
        simulate_study(part, sid, judges, cfg, load=fake_loader(part, sid))
    stored = len(part.load_votes(sid))  # votes are committed a batch at a time: the dying batch is whole
    assert stop_after <= stored < stop_after + cfg.annotators and calls == ["vote"] * stop_after
    monkeypatch.undo()
    rest = simulate_study(part, sid, judges, cfg, load=fake_loader(part, sid))
    assert rest.votes_added == 36 - stored
    assert votes_of(part, sid) == votes_of(whole, sid)


def test_studies_with_human_votes_are_left_alone(repo: Repository) -> None:
    sid = make_study(repo, n_items=3, votes_per_item=2)
    person, _ = repo.create_annotator(sid, "alice")
    assignment, _ = repo.next_item_for(person.annotator_id, sid)  # type: ignore[misc]
    repo.record_vote(assignment.assignment_id, "left", 2000, annotator_id=person.annotator_id)
    done = simulate_study(repo, sid, {"photorealism": MeanJudge()}, SimulateConfig(), load=fake_loader(repo, sid))
    assert done.votes_added == 0 and done.skipped == "humans have voted"
    assert len(repo.load_votes(sid)) == 1


def test_too_few_annotators_is_a_clear_error(repo: Repository) -> None:
    sid = make_study(repo, n_items=3, votes_per_item=4)
    with pytest.raises(HarnessError, match="simulate.annotators"):
        simulate_study(repo, sid, {"photorealism": MeanJudge()}, SimulateConfig(annotators=3))


def test_decision_model_noise_bias_and_careless_share() -> None:
    cfg = SimulateConfig(position_bias=0.3, noise=1.0)
    rng = np.random.default_rng(0)
    choices = [decide(0.0, careless=False, allow_tie=False, cfg=cfg, rng=rng)[0] for _ in range(4000)]
    left = np.mean([c == "left" for c in choices])
    from scipy.stats import norm

    assert abs(left - norm.cdf(0.3)) < 0.03  # P(left) = Φ(β/η) on indistinguishable items
    fast = [decide(2.0, careless=True, allow_tie=True, cfg=cfg, rng=rng) for _ in range(500)]
    assert np.mean([c == "left" for c, _ in fast]) < 0.55 and np.median([ms for _, ms in fast]) < 1000
    assert len(careless_indices(20, 0.15, seed=1)) == 3
    assert careless_indices(20, 0.15, seed=1) == careless_indices(20, 0.15, seed=1)


@pytest.mark.slow
def test_toy_run_simulated_annotators_prefer_reference_and_report_says_so(tmp_path: Path) -> None:
    overrides = [
        f"out_dir={tmp_path / 'runs'}", "prompts.n=4", "sampling.seeds_per_prompt=4", "sampling.guidance_scales=[1.0]",
        'study.protocols=["photorealism"]', "metrics.reference_per_prompt=4", "metrics.bootstrap=20",
        "study.votes_per_item=3", "simulate.annotators=6",
    ]
    cfg = load_config(TOY, overrides)
    outcome = run_pipeline(cfg, progress=False)
    repo = Repository.open()
    ids = run_study_ids(repo, cfg.run_id)
    votes = votes_of_studies(repo, ids)
    target = sum(i.votes_target for sid in ids for i in repo.list_items(sid))
    assert len(votes) == target and votes["simulated"].all()
    result = analyze_votes(votes, AnalysisOptions(baseline="degraded", n_bootstrap=0))
    (pair,) = result.protocols[0].win_rates
    assert (pair.system_a, pair.system_b) == ("reference", "degraded")
    assert pair.ci_low > 0.5  # real renders beat blurred, noised ones, beyond noise
    run_pipeline(cfg, progress=False)  # rerun: no new votes
    assert len(votes_of_studies(repo, ids)) == target
    text = outcome.report_md.read_text()
    assert "No Table 1: this run compares no unCLIP system with a GLIDE system" in text  # real vs degraded renders
    assert "## Appendix A: every pair, simulated annotators" in text
    assert "P(degraded renders beats real renders)" in text and " ± " in text
    assert "simulated annotators" in (outcome.report_md.parent / "report.html").read_text()
    check_proxy_on_the_toy_study(repo, ids[0], outcome.run_dir, tmp_path)
    check_analyze_run(overrides)


def check_analyze_run(overrides: list[str]) -> None:
    """`harness analyze --run CONFIG --json` reads the run's studies from the store."""
    import contextlib
    import io
    import json

    from harness.cli import main

    args = ["analyze", "--run", str(TOY), "--json", "--bootstrap", "0", "--exclude"]
    for item in overrides:
        args += ["--set", item]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(args) == 0
    doc = json.loads(buffer.getvalue())
    (proto,) = doc["protocols"]
    assert proto["protocol"] == "photorealism" and proto["n_votes"] > 0
    assert doc["n_votes_in"] > proto["n_votes"]  # attention checks counted in, left out of the win rates


def check_proxy_on_the_toy_study(repo: Repository, study_id: int, run_root: Path, tmp_path: Path) -> None:
    """`harness proxy train` on the simulated votes, then the proxy ranks real renders above degraded ones."""
    import argparse

    from eval_protocols.human.proxy import PreferenceProxy
    from harness.analyze.proxy import score_images
    from harness.commands import proxy as command
    from harness.rundir import RunDir

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    out = tmp_path / "proxy" / "photo"
    args = parser.parse_args(["proxy", "train", "--study", str(study_id), "--out", str(out), "--extractor", "pixels",
                              "--k", "3", "--db", repo.engine.url.render_as_string(hide_password=False)])
    assert command.run(args) == 0
    proxy = PreferenceProxy.load(out)
    assert proxy.protocol == "photorealism" and proxy.metadata["extractor"] == "pixels"
    assert 0.0 <= proxy.metadata["cv_accuracy"] <= 1.0 and proxy.metadata["n_decisive"] > 0
    entries = RunDir(run_root).entries()
    real = [run_root / e.path for e in entries if e.system_id == "reference"][:8]
    degraded = [run_root / e.path for e in entries if e.system_id == "degraded"][:8]
    assert score_images(proxy, real).mean() > score_images(proxy, degraded).mean()


def test_batches_follow_the_one_vote_at_a_time_order() -> None:
    from harness.simulate.votes import next_turns

    work = {0: "item", 1: "item", 2: "item", 3: None}
    assert next_turns(work, {0: 5, 1: 5, 2: 6, 3: 0}) == [0, 1]  # then 0 again (6, 0) < (6, 2): the batch ends
    assert next_turns(work, {0: 6, 1: 6, 2: 6, 3: 0}) == [0, 1, 2]  # annotator 3 has no item
    assert next_turns({0: None}, {0: 0}) == []
