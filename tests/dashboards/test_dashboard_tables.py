"""Record → table conversions of the admin/results pages, checked against brute-force recomputation."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from dashboards.tables import expected_winner, ordinary_vote_table, vote_table, win_rate_table
from eval_protocols.human.votes import validate_votes
from eval_protocols.human.winrates import win_rates
from harness.storage.records import ItemRecord, VoteRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _item(item_id: int, left: str, expected: str | None) -> ItemRecord:
    return ItemRecord(item_id, 1, item_id, "p", "cap", "A", "B", ("0" * 64,), ("1" * 64,), left,  # type: ignore[arg-type]
                      is_attention_check=expected is not None, expected=expected)  # type: ignore[arg-type]


def test_expected_winner_maps_screen_side_to_model_space() -> None:
    # brute force over the four combinations: the system on the expected side
    for left in ("a", "b"):
        for side in ("left", "right"):
            shown = {"left": "A" if left == "a" else "B", "right": "B" if left == "a" else "A"}
            want = "model_a" if shown[side] == "A" else "model_b"
            assert expected_winner(_item(1, left, side)) == want
    assert expected_winner(_item(1, "a", None)) is None


def test_vote_table_and_win_rates() -> None:
    items = {1: _item(1, "a", None), 2: _item(2, "b", None), 3: _item(3, "a", "left")}
    winners = ["model_a", "model_a", "model_b", "tie", "model_a"]
    votes = [
        VoteRecord(k + 1, k + 1, 1, 1 + k % 2, 10 + k, "photorealism", "left", w, "A", "B", "A", "cap", 100 * k, NOW)
        for k, w in enumerate(winners)
    ] + [VoteRecord(9, 9, 1, 3, 10, "photorealism", "left", "model_a", "A", "B", "A", "cap", 50, NOW)]
    table = validate_votes(vote_table(votes, items, {}))
    assert len(table) == 6 and table["expected"].notna().sum() == 1
    ordinary = ordinary_vote_table(table)
    assert len(ordinary) == 5
    (rate,) = win_rates(ordinary, ci="wilson")
    assert (rate.wins, rate.losses, rate.ties) == (3, 1, 1)
    assert rate.win_rate == (3 + 0.5) / 5
    frame = win_rate_table([rate])
    assert frame.loc[0, "P(A beats B) %"] == 70.0 and frame.loc[0, "n"] == 5
    assert isinstance(frame, pd.DataFrame)
