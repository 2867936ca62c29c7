"""Every record survives a round trip through the store unchanged, on both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from storage_helpers import make_items, make_study

from harness.errors import HarnessError
from harness.storage.records import ImageRecord, MetricResultRecord, RunRecord
from harness.storage.repository import Repository, token_hash

T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def make_run(run_id: str = "run-1", created_at: datetime = T0) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        name="toy sweep",
        created_at=created_at,
        run_dir=f"/data/runs/{run_id}",
        config={"models": ["unclip", "glide"], "guidance_scales": [1.0, 3.0], "nested": {"seed": 0}},
        provenance={"git": "abc123", "versions": {"torch": "2.14.1"}, "device": "cpu"},
    )


def make_image(k: int, run_id: str = "run-1") -> ImageRecord:
    return ImageRecord(
        sha256=f"{k:064x}",
        run_id=run_id,
        prompt_id=f"p{k // 2}",
        prompt="a red cube left of a blue ball",
        model_id="unclip" if k % 2 else "glide",
        seed=2**40 + k,
        settings={"sampler": "ddim", "steps": 25, "guidance_scale": 3.0},
        path=f"images/{k:064x}.png",
    )


def test_run_round_trip_and_order(repo: Repository) -> None:
    second = make_run("run-2", created_at=T0 + timedelta(hours=1))
    first = make_run("run-1")
    assert repo.create_run(second) == second
    repo.create_run(first)
    assert repo.get_run("run-1") == first
    assert repo.get_run("missing") is None
    assert repo.list_runs() == [first, second]
    assert repo.get_run("run-1").created_at.tzinfo is not None  # type: ignore[union-attr]


def test_duplicate_run_is_refused_unless_exist_ok(repo: Repository) -> None:
    repo.create_run(make_run())
    with pytest.raises(HarnessError, match="already in the store"):
        repo.create_run(replace(make_run(), name="other"))
    assert repo.create_run(replace(make_run(), name="other"), exist_ok=True).name == "toy sweep"


def test_add_images_is_idempotent(repo: Repository) -> None:
    repo.create_run(make_run())
    first = [make_image(k) for k in range(6)]
    assert repo.add_images(first) == 6
    assert repo.add_images(first) == 0
    assert repo.add_images([make_image(k) for k in range(4, 9)] + [make_image(8)]) == 3
    stored = repo.list_images("run-1")
    assert sorted(stored, key=lambda r: r.sha256) == [make_image(k) for k in range(9)]
    assert repo.list_images("other") == []


def test_same_image_in_two_runs_and_paths(repo: Repository) -> None:
    repo.create_run(make_run("run-1"))
    repo.create_run(make_run("run-2"))
    assert repo.add_images([make_image(1, "run-1"), make_image(1, "run-2")]) == 2
    paths = repo.image_paths([f"{1:064x}", "f" * 64])
    assert set(paths) == {f"{1:064x}"}
    assert paths[f"{1:064x}"].name == f"{1:064x}.png"


def test_images_of_an_unknown_run_are_refused(repo: Repository) -> None:
    with pytest.raises(HarnessError, match="not in the store; create the run first"):
        repo.add_images([make_image(0, "nope")])


def test_metric_results_upsert_by_key(repo: Repository) -> None:
    repo.create_run(make_run())
    fid = MetricResultRecord(
        run_id="run-1",
        metric="fid",
        model_id="unclip",
        group={"steps": 25, "guidance_scale": 3.0},
        value=12.5,
        ci_low=11.0,
        ci_high=14.0,
        n=500,
        extractor_id="inception-toy",
        inputs_hash="h1",
        details={"k": [1, 2]},
    )
    other_group = replace(fid, group={"guidance_scale": 1.0, "steps": 25}, value=20.0, ci_low=None, ci_high=None)
    clip = replace(fid, metric="clip_score", extractor_id="", value=0.31, details={})
    assert repo.save_metric_results([fid, other_group, clip]) == 3
    updated = replace(fid, group={"guidance_scale": 3.0, "steps": 25}, value=11.9, inputs_hash="h2")
    repo.save_metric_results([updated])  # same key: group compared by content, not key order
    loaded = repo.load_metric_results("run-1")
    assert len(loaded) == 3
    assert updated in loaded and other_group in loaded and clip in loaded
    assert repo.load_metric_results() == loaded
    assert repo.load_metric_results("other") == []
    with pytest.raises(HarnessError, match="not in the store"):
        repo.save_metric_results([replace(fid, run_id="nope")])


def test_study_items_and_annotators_round_trip(repo: Repository) -> None:
    study = make_study("photo-1", votes_per_item=3)
    items = make_items(5, attention_every=5, votes_target=0)
    items[1] = replace(items[1], votes_target=7, images_a=tuple(f"{k:064x}" for k in range(16)))
    study_id = repo.create_study(study, items)
    assert repo.get_study(study_id) == replace(study, study_id=study_id)
    assert repo.find_study("photo-1") == replace(study, study_id=study_id)
    assert repo.list_studies() == [replace(study, study_id=study_id)]
    stored = repo.list_items(study_id)
    expected_targets = [3, 7, 3, 3, 3]
    assert [replace(i, item_id=0, study_id=0) for i in stored] == [
        replace(i, votes_target=t) for i, t in zip(items, expected_targets)
    ]
    assert repo.get_item(stored[1].item_id) == stored[1]
    assert repo.get_item(10**6) is None
    assert repo.set_study_status(study_id, "closed").status == "closed"
    assert repo.get_study(study_id).status == "closed"  # type: ignore[union-attr]

    annotator, token = repo.create_annotator(study_id, "alice")
    assert len(token) >= 32 and annotator.name == "alice" and annotator.study_id == study_id
    assert repo.annotator_for_token(token) == annotator
    assert repo.annotator_for_token(token + "x") is None and repo.annotator_for_token("") is None
    assert repo.list_annotators(study_id) == [annotator]
    with repo.engine.connect() as conn:  # the token itself is never stored
        dump = "".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM annotators"))
    assert token not in dump and token_hash(token) in dump


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"system_b": "unclip"}, "with itself"),
        ({"images_b": ()}, "no images"),
        ({"left": "c"}, "left is 'c'"),
        ({"expected": "left"}, "attention check"),
    ],
)
def test_malformed_items_are_refused(repo: Repository, change: dict[str, object], message: str) -> None:
    items = make_items(2)
    items[0] = replace(items[0], **change)  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match=message):
        repo.create_study(make_study(), items)
    assert repo.list_studies() == []


def test_duplicate_study_name_and_unknown_study(repo: Repository) -> None:
    repo.create_study(make_study("s"), make_items(1))
    with pytest.raises(HarnessError, match="named 's' exists"):
        repo.create_study(make_study("s"), make_items(1))
    with pytest.raises(HarnessError, match="does not exist"):
        repo.create_annotator(999, "bob")
    with pytest.raises(HarnessError, match="status 'paused'"):
        repo.set_study_status(1, "paused")  # type: ignore[arg-type]
