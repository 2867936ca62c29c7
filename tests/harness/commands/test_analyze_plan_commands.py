"""`harness analyze` and `harness plan` end to end through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval_protocols.human.simulate import SimulationSpec, simulate_votes
from harness.cli import main


@pytest.fixture
def votes_csv(tmp_path: Path) -> Path:
    spec = SimulationSpec(
        systems=("glide", "unclip", "dalle"),
        ratings=(1000.0, 1100.0, 1050.0),
        n_votes=600,
        tie_rate=0.2,
        attention_checks=2,
    )
    path = tmp_path / "votes.csv"
    simulate_votes(spec, 0).votes.to_csv(path, index=False)
    return path


def test_analyze_json(votes_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["analyze", str(votes_csv), "--json", "--ci", "wilson", "--bootstrap", "50", "--seed", "1"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    (proto,) = doc["protocols"]
    assert proto["protocol"] == "photorealism" and proto["n_votes"] == 600
    assert len(proto["pairs"]) == 3
    pair = proto["pairs"][0]
    assert {"wins", "losses", "ties", "win_rate", "ci_low", "ci_high", "p_value", "p_value_holm"} <= set(pair)
    assert pair["wins"] + pair["losses"] + pair["ties"] == pair["n"]
    ratings = proto["bradley_terry"]["ratings"]
    assert ratings[0]["system"] == "unclip" and ratings[0]["ci_low"] < ratings[0]["rating"] < ratings[0]["ci_high"]
    assert proto["position_bias"]["decisive"] > 0


def test_analyze_table(votes_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(votes_csv), "--bootstrap", "20", "--ties", "drop"]) == 0
    out = capsys.readouterr().out
    assert "protocol photorealism" in out and "ties dropped" in out and "Bradley–Terry" in out


def test_analyze_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("model_a,model_b,choice\nx,y,model_a\n")
    assert main(["analyze", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing column(s) winner" in err and "\n" not in err
    assert main(["analyze", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--win-rate", "0.55", "--power", "0.8", "--n", "1000", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_normal"] == 783 and 780 < doc["n_exact"] < 850
    assert doc["half_width"] == pytest.approx(0.0308, abs=1e-4)
    assert main(["plan", "--win-rate", "0.55"]) == 0
    assert "783" in capsys.readouterr().out
    assert main(["plan", "--win-rate", "1.5"]) == 2
