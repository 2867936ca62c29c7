"""Kill `harness run` with SIGKILL mid-generation, mid-scoring and mid-voting; rerun it; the outputs are byte-identical
to those of an uninterrupted run, and the store holds every image, metric result and vote exactly once.

The runs are real subprocesses (``python -m harness.cli run``), each in its own folder with its own data dir (feature
cache), SQLite store and run dir. The kills come from `harness.faults` (``HARNESS_FAULT_AFTER=<stage>:<count>``): the
process sends itself SIGKILL right after a durable unit of work, so no exception handler, ``finally`` or ``atexit``
runs; the test checks the exit status is death by SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import load_config
from harness.faults import FAULT_ENV
from harness.storage.records import SIMULATED_PREFIX
from harness.storage.repository import Repository

# weight-free systems; guidance scales do not apply to them (one setting each); 2 × 2 captions × 3 seeds = 12 images,
# batches of 4 so the generation kill lands inside a batch
CONFIG = """
name = "resume"
seed = 0
out_dir = "runs"

[prompts]
source = "toyworld"
split = "test"
n = 2
seed = 0

[[systems]]
id = "reference"
generator = "reference"

[[systems]]
id = "degraded"
generator = "degraded"
options = { blur = 1.2, noise = 0.06 }

[sampling]
seeds_per_prompt = 3
guidance_scales = [1.0, 3.0]
batch_size = 4

[metrics]
names = ["fd"]
extractor = "pixels"
reference = "toyworld"
reference_per_prompt = 2
bootstrap = 5

[study]
protocols = ["photorealism", "caption_similarity"]
votes_per_item = 3
attention_rate = 0.1
seed = 0

[simulate]
enabled = true
annotators = 4
seed = 0
"""
N_IMAGES = 12
STORE = "store.db"

# Outputs that legitimately differ between two runs started at different times. Both are read from the run's own
# provenance.json, written once at the run's first start (a resumed run keeps its first attempt's values):
#   created_at - wall-clock time of the first start;
#   git        - commit and dirty flag of the checkout at the first start (a developer may commit in between).
# report.md / report.html print both in their provenance paragraph. Nothing else is normalised.
TIME_DEPENDENT = ("created_at", "git")
# Not compared as bytes: the SQLite store (its pages hold vote/assignment timestamps and random invite-token hashes;
# a killed run may leave -wal/-shm files). Its records are compared one by one instead.
NOT_COMPARED = (STORE, f"{STORE}-wal", f"{STORE}-shm", f"{STORE}-journal")


def harness_run(folder: Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    """``harness run run.toml`` in ``folder`` (data dir and store inside it); ``fault`` kills it at that point."""
    env = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, "HARNESS_DB_URL")}
    env.update(HARNESS_HOME=str(folder / "home"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "run.toml", "--db", f"sqlite:///{STORE}"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def killed(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == -signal.SIGKILL


def new_folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "run.toml").write_text(CONFIG)
    return folder


def outputs(folder: Path, run_id: str) -> dict[str, bytes]:
    """Every file a run wrote (run dir, feature cache), by relative path, time-dependent values normalised."""
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in NOT_COMPARED
    }
    prov_path = f"runs/{run_id}/provenance.json"
    prov = json.loads(files[prov_path])
    created, git = prov["created_at"], prov["git"]
    files[prov_path] = json.dumps({k: "<normalised>" if k in TIME_DEPENDENT else v for k, v in prov.items()}).encode()
    for name, code in (("report.md", "`{}`"), ("report.html", "<code>{}</code>")):  # HTML renders `x` as code
        commit_text = f"git commit {code.format(git['commit'])}{' (uncommitted changes)' if git['dirty'] else ''}"
        key = f"runs/{run_id}/report/{name}"
        text = files[key].decode("utf-8")
        assert f"created {created};" in text and commit_text in text
        files[key] = text.replace(f"created {created};", "created <normalised>;").replace(commit_text, "<git>").encode()
    return files


def store_state(folder: Path, run_id: str) -> dict[str, object]:
    """What the store holds about the run, free of ids and timestamps; asserts nothing is there twice."""
    repo = Repository.open(f"sqlite:///{folder / STORE}")
    images = repo.list_images(run_id)
    assert len({i.sha256 for i in images}) == len(images)
    metrics = [(r.metric, r.model_id, json.dumps(r.group), r.value, r.ci_low, r.ci_high, r.n, r.inputs_hash)
               for r in repo.load_metric_results(run_id)]
    studies = {}
    for study in repo.list_studies():
        items = {i.item_id: i for i in repo.list_items(study.study_id)}
        names = {a.annotator_id: a.name for a in repo.list_annotators(study.study_id)}
        votes = repo.load_votes(study.study_id)
        assert len({(v.annotator_id, v.item_id) for v in votes}) == len(votes)  # nobody voted twice on an item
        assert len({v.assignment_id for v in votes}) == len(votes)
        assert len(votes) == sum(i.votes_target for i in items.values())  # every quota met, not exceeded
        assert all(name.startswith(SIMULATED_PREFIX) for name in names.values())
        studies[study.name] = {
            "items": sorted((i.position, i.system_a, i.system_b, i.images_a, i.images_b, i.left) for i in items.values()),
            "annotators": sorted(names.values()),
            "votes": sorted((names[v.annotator_id], items[v.item_id].position, v.choice, v.winner, v.response_ms)
                            for v in votes),
        }
    return {
        "images": sorted(i.sha256 for i in images),
        "attention_images": sorted(i.sha256 for i in repo.list_images(f"{run_id}-attention")),
        "metrics": sorted(metrics),
        "studies": studies,
        "runs": sorted(r.run_id for r in repo.list_runs()),
    }


def metric_rows(folder: Path) -> dict[str, str]:
    """``{system: updated_at}`` of the stored metric results (read directly: the repository does not expose it)."""
    with contextlib.closing(sqlite3.connect(folder / STORE)) as conn:
        return {model: str(updated) for model, updated in conn.execute("SELECT model_id, updated_at FROM metric_results")}


@pytest.mark.slow  # five `harness run` processes: about 40 s of CPU on 2 cores
def test_killed_run_resumes_to_identical_outputs_and_store(tmp_path: Path) -> None:
    run_id = load_config(new_folder(tmp_path, "cfg") / "run.toml").run_id

    full = new_folder(tmp_path, "full")
    done = harness_run(full)
    assert done.returncode == 0, done.stderr[-2000:]
    for bar in (f"generate: 100%|██████████| {N_IMAGES}/{N_IMAGES}", "score: 100%", "study: 100%",
                "judge photorealism: 100%", "votes photorealism: 100%", "votes caption_similarity: 100%",
                "report: 100%|██████████| 4/4"):
        assert bar in done.stderr, f"no finished progress bar {bar!r}"
    assert "<" in done.stderr.split("generate:")[1][:80]  # tqdm shows elapsed<remaining (the ETA)

    part = new_folder(tmp_path, "resumed")
    run_dir = part / "runs" / run_id
    # 1. killed during generation, inside the second batch
    first = harness_run(part, "generate:5")
    assert killed(first), (first.returncode, first.stderr[-2000:])
    assert len((run_dir / "manifest.jsonl").read_text().splitlines()) == 5
    assert not (run_dir / "report").exists()
    # 2. killed during scoring: every image made, the feature cache filling, one metric result stored
    second = harness_run(part, "score:1")
    assert killed(second), (second.returncode, second.stderr[-2000:])
    assert len((run_dir / "manifest.jsonl").read_text().splitlines()) == N_IMAGES
    cached = list((part / "home" / "features").rglob("*.npy"))
    assert 0 < len(cached) < len(list((full / "home" / "features").rglob("*.npy")))
    stored_before = metric_rows(part)
    assert list(stored_before) == ["degraded"]  # the first group's result survived the kill
    # 3. killed during the simulated votes
    third = harness_run(part, "vote:7")
    assert killed(third), (third.returncode, third.stderr[-2000:])
    assert 7 <= len(Repository.open(f"sqlite:///{part / STORE}").load_votes()) < 7 + 4  # whole batches of <= 4
    assert not (run_dir / "report").exists()
    # 4. finished
    last = harness_run(part)
    assert last.returncode == 0, last.stderr[-2000:]
    assert metric_rows(part)["degraded"] == stored_before["degraded"]  # skipped by its inputs hash, not recomputed

    expected, got = outputs(full, run_id), outputs(part, run_id)
    assert sorted(got) == sorted(expected)  # no file missing, none left over (e.g. a half-written temporary)
    differing = [name for name in expected if got[name] != expected[name]]
    assert not differing, f"files differ after the resume: {differing}"
    assert any(name.endswith(".npy") for name in expected) and f"runs/{run_id}/report/metrics.json" in expected

    state = store_state(part, run_id)
    assert state == store_state(full, run_id)
    assert len(state["images"]) == N_IMAGES and len(state["metrics"]) == 2  # type: ignore[arg-type]
    assert set(state["studies"]) == {f"{run_id}/photorealism", f"{run_id}/caption_similarity"}  # type: ignore[arg-type]
