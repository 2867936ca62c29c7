"""The GenAI-Arena test data in tests/data/genai_arena are the byte-for-byte copies its README names."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "genai_arena"


def _readme_digests() -> dict[str, str]:
    """``{file: sha256}`` from the README's source table (rows ``| `file` | `path` | `sha256` |``)."""
    rows = re.findall(r"^\| `([^`]+)` \| `[^`]+` \| `([0-9a-f]{64})` \|$", (DATA / "README.md").read_text(), re.MULTILINE)
    return dict(rows)


def test_readme_names_every_data_file() -> None:
    data_files = {p.name for p in DATA.iterdir() if p.suffix in (".json", ".csv")}
    assert set(_readme_digests()) == data_files == {"clean_battle_20240220.json", "t2i_lb.csv", "ie_lb.csv"}


@pytest.mark.parametrize("name", ["clean_battle_20240220.json", "t2i_lb.csv", "ie_lb.csv"])
def test_data_files_match_their_published_digests(name: str) -> None:
    assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == _readme_digests()[name]
