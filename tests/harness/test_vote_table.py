"""Votes from the store as the DESIGN.md vote table; `harness analyze --study/--run`; `harness study export`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from eval_protocols.human.votes import load_votes
from harness.analyze.vote_table import expected_winner, study_vote_table
from harness.cli import main
from harness.storage.records import ItemRecord, StudyRecord
from harness.storage.repository import Repository


def make_study(repo: Repository, n_items: int = 6, votes_per_item: int = 2) -> int:
    """A photorealism study of unclip vs glide with every third item an attention check (real vs corrupted)."""
    study = StudyRecord(0, "photo", "photorealism", {"question": "Which image is more photorealistic?"}, "open",
                        votes_per_item, True, datetime(2026, 1, 1, tzinfo=UTC), 7)
    items = []
    for k in range(n_items):
        check = k % 3 == 2
        items.append(ItemRecord(
            0, 0, k, f"p{k}", f"a red star {k}", "real" if check else "unclip", "corrupted" if check else "glide",
            (f"{k:064x}",), (f"{k + 1000:064x}",), "a" if k % 2 == 0 else "b", check,
            ("right" if k % 2 else "left") if check else None,
        ))
    return repo.create_study(study, items)


def cast(repo: Repository, study_id: int, choices: dict[str, str]) -> list[dict[str, object]]:
    """Every annotator votes ``choices[name]`` on everything they get; returns what they cast, in model space."""
    cast_votes = []
    for name, choice in choices.items():
        annotator, _ = repo.create_annotator(study_id, name)
        while (nxt := repo.next_item_for(annotator.annotator_id, study_id)) is not None:
            assignment, item = nxt
            repo.record_vote(assignment.assignment_id, choice, 1500, annotator_id=annotator.annotator_id)
            left_system = item.system_a if item.left == "a" else item.system_b
            right_system = item.system_b if item.left == "a" else item.system_a
            chosen = {"left": left_system, "right": right_system}.get(choice)
            winner = "tie" if chosen is None else ("model_a" if chosen == item.system_a else "model_b")
            cast_votes.append({"model_a": item.system_a, "model_b": item.system_b, "winner": winner,
                               "annotator": name, "prompt": item.prompt, "protocol": "photorealism",
                               "left": left_system, "check": item.is_attention_check, "item_id": item.item_id})
    return cast_votes


@pytest.fixture
def store(tmp_path: Path) -> tuple[Repository, str, int, list[dict[str, object]]]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    repo = Repository.open(url)
    sid = make_study(repo)
    return repo, url, sid, cast(repo, sid, {"alice": "left", "bob": "right"})


def test_vote_table_equals_the_votes_cast(store: tuple[Repository, str, int, list[dict[str, object]]]) -> None:
    repo, _, sid, cast_votes = store
    table = study_vote_table(repo, sid)
    assert len(table) == len(cast_votes) == 12
    key = ["annotator", "item_id"]
    got = table.sort_values(key).reset_index(drop=True)
    want = pd.DataFrame(cast_votes).sort_values(key).reset_index(drop=True)
    for col in ("model_a", "model_b", "winner", "annotator", "prompt", "protocol", "left", "item_id"):
        assert got[col].tolist() == want[col].tolist(), col
    # attention checks carry the right model-space answer, ordinary votes none
    assert got["expected"].notna().tolist() == want["check"].tolist()
    items = {i.item_id: i for i in repo.list_items(sid)}
    checks = got[got["expected"].notna()]
    for row in checks.itertuples():
        item = items[row.item_id]
        correct_side = "left" if (row.expected == "model_a") == (item.left == "a") else "right"
        assert correct_side == item.expected
    assert not got["simulated"].any() and set(got["latency_ms"]) == {1500}


def test_expected_winner_maps_screen_side_to_model_space() -> None:
    base = ItemRecord(0, 0, 0, "p", "c", "real", "bad", ("a" * 64,), ("b" * 64,), "a", True, "left")
    assert expected_winner(base) == "model_a"
    assert expected_winner(ItemRecord(**{**base.__dict__, "left": "b"})) == "model_b"
    assert expected_winner(ItemRecord(**{**base.__dict__, "expected": "right"})) == "model_b"
    assert expected_winner(ItemRecord(**{**base.__dict__, "is_attention_check": False, "expected": None})) is None


def test_analyze_study_json_matches_the_votes(
    store: tuple[Repository, str, int, list[dict[str, object]]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url, sid, cast_votes = store
    assert main(["analyze", "--study", str(sid), "--db", url, "--json", "--bootstrap", "20"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_votes_in"] == 12
    (proto,) = doc["protocols"]
    (pair,) = proto["pairs"]
    ordinary = [v for v in cast_votes if not v["check"]]
    glide_wins = sum(v["winner"] == "model_b" for v in ordinary)
    unclip_wins = sum(v["winner"] == "model_a" for v in ordinary)
    assert proto["protocol"] == "photorealism" and proto["n_votes"] == len(ordinary) == 8
    assert (pair["system_a"], pair["system_b"]) == ("glide", "unclip")  # alphabetical orientation
    assert (pair["wins"], pair["losses"], pair["ties"]) == (glide_wins, unclip_wins, 0)
    assert proto["position_bias"]["decisive"] == 8


def test_analyze_needs_exactly_one_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze"]) == 2
    assert "exactly one vote source" in capsys.readouterr().err


def test_analyze_study_without_votes_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    sid = make_study(Repository.open(url))
    assert main(["analyze", "--study", str(sid), "--db", url]) == 2
    assert "no votes yet" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", ["csv", "parquet", "json"])
def test_study_export_roundtrips_through_load_votes(
    store: tuple[Repository, str, int, list[dict[str, object]]], tmp_path: Path, suffix: str
) -> None:
    repo, url, sid, _ = store
    out = tmp_path / f"votes.{suffix}"
    assert main(["study", "export", str(sid), "--out", str(out), "--db", url]) == 0
    back = load_votes(out)
    table = study_vote_table(repo, sid)
    assert back["winner"].tolist() == table["winner"].tolist()
    assert back["left"].astype(str).tolist() == table["left"].tolist()
    assert back["expected"].isna().tolist() == table["expected"].isna().tolist()
