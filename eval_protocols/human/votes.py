"""The vote table: the one data contract of the human-evaluation statistics.

A vote table is a `pandas.DataFrame` with one row per pairwise judgement:

| column | required | values |
|---|---|---|
| `model_a`, `model_b` | yes | system ids (strings); never equal in one row |
| `winner` | yes | `"model_a"`, `"model_b"` or `"tie"` (FastChat's `"tie (bothbad)"` is read as `"tie"`) |
| `annotator` | no | who voted (FastChat/GenAI-Arena `judge`) |
| `prompt` | no | the caption / item id the two images were made for |
| `protocol` | no | the question asked, e.g. `photorealism`, `caption_similarity`, `diversity` |
| `left` | no | the system shown on the left (a system id, or the literal `model_a` / `model_b`) |
| `expected` | no | attention checks only: the correct `winner`; empty for ordinary votes |
| `latency_ms` | no | response time of the vote in milliseconds |

Other columns (e.g. GenAI-Arena's `anony`, `tstamp`) are kept untouched. CSV, Parquet and JSON (a list of
objects, as FastChat and GenAI-Arena write it, or JSON lines) are read by `load_votes`; every loaded table
goes through `validate_votes`, which raises a one-line `ValueError` naming the bad rows and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS: tuple[str, ...] = ("model_a", "model_b", "winner")
OPTIONAL_COLUMNS: tuple[str, ...] = ("annotator", "prompt", "protocol", "left", "expected", "latency_ms")
WINNERS: tuple[str, ...] = ("model_a", "model_b", "tie")
WINNER_ALIASES: dict[str, str] = {"tie (bothbad)": "tie", "both_bad": "tie", "not_sure": "tie", "not sure": "tie"}
DEFAULT_PROTOCOL = "default"
SCORE_OF_WINNER: dict[str, float] = {"model_a": 1.0, "tie": 0.5, "model_b": 0.0}
"""Per-vote score s of `model_a`: 1 win, ½ tie, 0 loss (GLIDE A.1: a tie is half a win for each model)."""


def load_votes(path: str | Path) -> pd.DataFrame:
    """Read a vote table from CSV, Parquet or JSON and validate it.

    JSON may be a list of objects (FastChat / GenAI-Arena ``clean_battle_*.json``) or JSON lines. ``judge``
    becomes ``annotator``; for FastChat records (with ``judge`` or ``anony``) without a ``left`` column,
    ``left = model_a`` (FastChat shows ``model_a`` on the left); ``anony`` and any other fields are kept.

    Args:
        path: a ``.csv``, ``.parquet``/``.pq`` or ``.json``/``.jsonl`` file.

    Returns:
        The normalised, validated vote table (see `normalize_votes`).

    Raises:
        ValueError: missing or unreadable file, unknown format, or a table `validate_votes` rejects.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"votes file {path} does not exist; pass the path of a CSV, Parquet or JSON vote table")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype={"model_a": str, "model_b": str, "winner": str})
        elif suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix in (".json", ".jsonl"):
            df = _read_json_votes(path)
        else:
            raise ValueError(
                f"votes file {path}: unknown format '{suffix}'; use .csv, .parquet or .json (a list of vote objects)"
            )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, pd.errors.ParserError, ImportError) as exc:
        raise ValueError(f"votes file {path} cannot be read ({type(exc).__name__}: {exc}); check its format") from exc
    if "judge" in df.columns and "annotator" not in df.columns:
        df = df.rename(columns={"judge": "annotator"})
    return validate_votes(normalize_votes(df), source=str(path))


def _read_json_votes(path: Path) -> pd.DataFrame:
    """Read a JSON array of vote objects or JSON lines; FastChat records get ``left = model_a``."""
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("["):
        records = json.loads(text)
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"votes file {path}: expected a JSON list of objects with model_a, model_b, winner")
    df = pd.DataFrame.from_records(records)
    fastchat = {"judge", "anony"} & set(df.columns)
    if fastchat and "left" not in df.columns and "model_a" in df.columns:
        df["left"] = df["model_a"]
    return df


def normalize_votes(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with canonical winner values and string system ids.

    ``winner`` is stripped and lower-cased, and aliases (``"tie (bothbad)"``, ``"not sure"``) map to ``"tie"``.
    A missing ``protocol`` column is not added here (see `protocols_of`).
    """
    out = df.copy()
    if "winner" in out.columns:
        winner = out["winner"].astype("string").str.strip().str.lower()
        out["winner"] = winner.replace(WINNER_ALIASES)
    for col in ("model_a", "model_b"):
        if col in out.columns:
            out[col] = out[col].astype("string").str.strip()
    return out


def validate_votes(df: pd.DataFrame, *, source: str = "vote table") -> pd.DataFrame:
    """Check the vote-table contract; return ``df`` unchanged when it holds.

    Args:
        df: a (normalised) vote table.
        source: how to name the table in error messages (e.g. its file path).

    Returns:
        ``df`` itself.

    Raises:
        ValueError: no rows, missing required columns, empty system ids, a winner outside
            {model_a, model_b, tie}, identical-system pairs, or a ``left`` value that is neither system of its row.
            The message names the first offending rows (0-based positions) and the fix.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)}; a vote table needs model_a, model_b and winner "
            f"(found: {', '.join(map(str, df.columns)) or 'none'})"
        )
    if len(df) == 0:
        raise ValueError(f"{source}: no votes; collect votes or pass a non-empty vote table")
    empty = df["model_a"].isna().to_numpy() | df["model_b"].isna().to_numpy()
    empty |= (df["model_a"].astype(str).str.len() == 0).to_numpy() | (
        df["model_b"].astype(str).str.len() == 0
    ).to_numpy()
    _raise_for_rows(empty, source, "empty model_a/model_b", "fill in both system ids")
    bad_winner = ~df["winner"].isin(WINNERS).to_numpy()
    if bad_winner.any():
        values = sorted({str(v) for v in df["winner"][bad_winner]})[:5]
        _raise_for_rows(
            bad_winner, source, f"unknown winner value(s) {values}", "use model_a, model_b or tie (or 'tie (bothbad)')"
        )
    same = (df["model_a"].astype(str) == df["model_b"].astype(str)).to_numpy()
    _raise_for_rows(
        same,
        source,
        "identical-system pairs (model_a == model_b)",
        "drop these rows; a system cannot be compared with itself",
    )
    if "left" in df.columns:
        left = df["left"]
        known = left.isna().to_numpy() | left.isin(["model_a", "model_b"]).to_numpy()
        known |= (left.astype(str) == df["model_a"].astype(str)).to_numpy()
        known |= (left.astype(str) == df["model_b"].astype(str)).to_numpy()
        _raise_for_rows(~known, source, "'left' is neither system of its row", "set left to model_a's or model_b's id")
    return df


def _raise_for_rows(mask: np.ndarray, source: str, problem: str, fix: str) -> None:
    """Raise a one-line ValueError naming up to five offending row positions, if ``mask`` has any."""
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return
    shown = ", ".join(str(r) for r in rows[:5]) + (f" (and {rows.size - 5} more)" if rows.size > 5 else "")
    raise ValueError(f"{source}: {problem} in row(s) {shown}; {fix}")


def protocols_of(df: pd.DataFrame) -> pd.Series:
    """The protocol of every vote as strings; `DEFAULT_PROTOCOL` when the column is absent or empty."""
    if "protocol" not in df.columns:
        return pd.Series(DEFAULT_PROTOCOL, index=df.index, dtype="string")
    return df["protocol"].astype("string").fillna(DEFAULT_PROTOCOL)


def scores_of(df: pd.DataFrame) -> np.ndarray:
    """Per-vote score s ∈ {1, ½, 0} of ``model_a`` (win, tie, loss); shape [n_votes], float64."""
    scores: np.ndarray = df["winner"].map(SCORE_OF_WINNER).to_numpy(dtype=np.float64)
    return scores


def left_sign(df: pd.DataFrame) -> np.ndarray:
    """Side of ``model_a`` per vote: +1 shown left, −1 shown right, 0 unknown; shape [n_votes], float64."""
    if "left" not in df.columns:
        return np.zeros(len(df))
    left = df["left"].astype("string")
    a_left: np.ndarray = ((left == "model_a") | (left == df["model_a"].astype("string"))).fillna(False).to_numpy(bool)
    b_left: np.ndarray = ((left == "model_b") | (left == df["model_b"].astype("string"))).fillna(False).to_numpy(bool)
    return a_left.astype(np.float64) - b_left.astype(np.float64)


def ordinary_votes(df: pd.DataFrame) -> pd.DataFrame:
    """The votes that compare systems: rows whose ``expected`` (attention-check answer) is empty."""
    if "expected" not in df.columns:
        return df
    return df[df["expected"].isna().to_numpy()]


def orient(df: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Rewrite every vote as (system_a, system_b, score of system_a), one orientation per unordered pair.

    system_a is the alphabetically first system of the pair, except that ``baseline``, when given, is
    always system_b, so win rates read P(system beats baseline).

    Returns:
        A frame with columns ``system_a, system_b, score`` (s ∈ {1, ½, 0}) and ``protocol``, same index as ``df``.
    """
    a = df["model_a"].astype(str).to_numpy()
    b = df["model_b"].astype(str).to_numpy()
    s = scores_of(df)
    flip = a > b
    if baseline is not None:
        flip = np.where(a == baseline, True, np.where(b == baseline, False, flip))
    return pd.DataFrame(
        {
            "system_a": np.where(flip, b, a),
            "system_b": np.where(flip, a, b),
            "score": np.where(flip, 1.0 - s, s),
            "protocol": protocols_of(df).to_numpy(),
        },
        index=df.index,
    )


def require_columns(df: pd.DataFrame, columns: Sequence[str], purpose: str) -> None:
    """Raise ValueError naming the optional columns ``purpose`` needs but ``df`` lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{purpose} needs column(s) {', '.join(missing)} in the vote table; record them with each vote"
        )
