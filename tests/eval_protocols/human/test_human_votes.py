"""Vote-table contract: readers for CSV / Parquet / JSON and validation messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval_protocols.human.votes import left_sign, load_votes, normalize_votes, orient, scores_of, validate_votes

GENAI_ARENA = Path(__file__).resolve().parents[2] / "data" / "genai_arena"  # tests/data/genai_arena (README there)


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_a": ["unclip", "glide", "unclip", "glide"],
            "model_b": ["glide", "unclip", "glide", "unclip"],
            "winner": ["model_a", "model_a", "tie", "model_b"],
            "annotator": ["r1", "r2", "r1", "r3"],
            "prompt": ["p1", "p1", "p2", "p2"],
            "left": ["unclip", "unclip", "model_b", "glide"],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_round_trip_each_format(tmp_path: Path, suffix: str) -> None:
    df = _table()
    path = tmp_path / f"votes{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".parquet":
        df.to_parquet(path)
    else:
        path.write_text(json.dumps(df.to_dict(orient="records")))
    loaded = load_votes(path)
    pd.testing.assert_frame_equal(
        loaded[["model_a", "model_b", "winner"]].astype(str), df[["model_a", "model_b", "winner"]].astype(str)
    )
    assert list(scores_of(loaded)) == [1.0, 1.0, 0.5, 0.0]


def test_fastchat_json_maps_judge_bothbad_and_left(tmp_path: Path) -> None:
    records = [
        {"model_a": "x", "model_b": "y", "winner": "tie (bothbad)", "judge": "u1", "anony": True, "tstamp": 1.0},
        {"model_a": "y", "model_b": "x", "winner": "model_b", "judge": "u2", "anony": False, "tstamp": 2.0},
    ]
    path = tmp_path / "clean_battle.json"
    path.write_text(json.dumps(records))
    df = load_votes(path)
    assert list(df["winner"]) == ["tie", "model_b"]
    assert list(df["annotator"]) == ["u1", "u2"]
    assert list(df["anony"]) == [True, False]
    assert list(left_sign(df)) == [1.0, 1.0]  # FastChat shows model_a on the left
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([{"model_a": "x", "model_b": "y", "winner": "tie"}]))
    assert "left" not in load_votes(plain).columns  # no side is invented for non-FastChat records


def test_genai_arena_file_is_rejected_for_its_self_battle() -> None:
    with pytest.raises(ValueError, match=r"identical-system pairs .* row\(s\) \d+; drop these rows"):
        load_votes(GENAI_ARENA / "clean_battle_20240220.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns=["winner"]), "missing column.*winner"),
        (lambda d: d.assign(winner=["model_a", "left", "tie", "model_b"]), r"unknown winner.*'left'.* row\(s\) 1"),
        (lambda d: d.assign(model_b=["glide", "glide", "glide", "unclip"]), r"identical-system.* row\(s\) 1"),
        (lambda d: d.assign(left=["unclip", "dalle", "unclip", "glide"]), r"'left' is neither.* row\(s\) 1"),
        (lambda d: d.iloc[:0], "no votes"),
    ],
)
def test_validation_names_problem_rows_and_fix(change, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        validate_votes(normalize_votes(change(_table())))


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_votes(tmp_path / "none.csv")
    (tmp_path / "v.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown format"):
        load_votes(tmp_path / "v.txt")


def test_orient_uses_one_orientation_per_pair_and_baseline() -> None:
    o = orient(_table())
    assert set(zip(o.system_a, o.system_b)) == {("glide", "unclip")}
    assert list(o["score"]) == [0.0, 1.0, 0.5, 0.0]
    o = orient(_table(), baseline="glide")
    assert set(zip(o.system_a, o.system_b)) == {("unclip", "glide")}
    np.testing.assert_allclose(o["score"], [1.0, 0.0, 0.5, 1.0])
