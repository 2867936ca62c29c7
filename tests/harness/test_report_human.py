"""The human-evaluation part of the report: Table 1 with intervals, Fig. 10 style sweep plot, annotators."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from statsmodels.stats.proportion import proportion_confint
from test_vote_table import cast, make_study

from eval_protocols.human.analysis import AnalysisOptions, analyze_votes
from eval_protocols.human.winrates import win_rates
from harness.report.document import Document, to_html, to_markdown
from harness.report.figures import guidance_series, split_guidance, win_rate_vs_guidance
from harness.report.studies import human_sections, table1
from harness.storage.repository import Repository


def votes_frame(pairs: dict[tuple[str, str], tuple[int, int]], protocol: str = "photorealism") -> pd.DataFrame:
    rows = []
    for (a, b), (wins, losses) in pairs.items():
        rows += [{"model_a": a, "model_b": b, "winner": "model_a", "protocol": protocol}] * wins
        rows += [{"model_a": a, "model_b": b, "winner": "model_b", "protocol": protocol}] * losses
    return pd.DataFrame(rows)


def test_table1_cells_are_normal_intervals_with_n() -> None:
    votes = pd.concat([votes_frame({("unclip", "glide"): (489, 511)}),
                       votes_frame({("unclip", "glide"): (705, 295)}, "diversity")])
    result = analyze_votes(votes, AnalysisOptions(baseline="glide", n_bootstrap=0))
    table = table1(result)
    assert table.header == ("comparison", "Photorealism", "Diversity")
    (row,) = table.rows
    low, high = proportion_confint(489, 1000, alpha=0.05, method="normal")
    assert row[0] == "P(unclip beats glide)"
    assert row[1] == f"48.9% ± {100 * (high - low) / 2:.1f}% (n = 1000)"  # unCLIP Table 1: 48.9% ± 3.1%
    assert row[1].startswith("48.9% ± 3.1%") and row[2].startswith("70.5% ± 2.8%")


def test_split_guidance_reads_decoder_scale_only() -> None:
    assert split_guidance("glide@g=3.0 steps=50") == ("glide", 3.0)
    assert split_guidance("unclip@g=1.5 prior g=4.0 steps=50") == ("unclip", 1.5)
    assert split_guidance("unclip@prior g=4.0 steps=50") == ("unclip@prior g=4.0 steps=50", None)
    assert split_guidance("reference") == ("reference", None)


def test_win_rate_vs_guidance_plot(tmp_path: Path) -> None:
    votes = votes_frame({
        ("glide@g=1.0 steps=50", "unclip"): (30, 70),
        ("unclip", "glide@g=3.0 steps=50"): (40, 60),
        ("glide@g=1.0 steps=50", "glide@g=3.0 steps=50"): (50, 50),  # both swept: not on the plot
    })
    rates = win_rates(votes, n_bootstrap=0)
    series = guidance_series(rates)
    points = series["photorealism"][("glide", "unclip")]
    assert [(g, round(p, 3)) for g, p, _, _ in points] == [(1.0, 0.3), (3.0, 0.6)]
    assert all(lo <= p <= hi for _, p, lo, hi in points)
    path = win_rate_vs_guidance(rates, tmp_path / "fig.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert win_rate_vs_guidance(win_rates(votes_frame({("a", "b"): (3, 4)}), n_bootstrap=0), tmp_path / "x.png") is None


def test_human_sections_from_the_store(tmp_path: Path) -> None:
    repo = Repository.open(f"sqlite:///{tmp_path / 'store.db'}")
    sid = make_study(repo, n_items=6, votes_per_item=4)  # 2 checks each: too few to judge anyone
    cast(repo, sid, {"alice": "left", "bob": "right", "carol": "left", "dave": "tie"})
    sections, analysis = human_sections(repo, [sid], tmp_path / "report", n_bootstrap=20)
    assert analysis.source == "human annotators" and analysis.result is not None
    doc = Document("t", tuple(sections))
    md = to_markdown(doc, tmp_path)
    assert "### Table 1: P(A beats B), human annotators" in md
    assert "P(glide beats unclip)" in md and " ± " in md and "(n = " in md
    assert "Holm correction over the 1 comparisons" in md
    assert "| alice | human |" in md and "simulated annotators" not in md
    assert "Krippendorff" in md and "left-win rate" in md
    assert "<table>" in to_html(doc)


def test_human_sections_without_votes(tmp_path: Path) -> None:
    repo = Repository.open(f"sqlite:///{tmp_path / 'store.db'}")
    sid = make_study(repo)
    sections, analysis = human_sections(repo, [sid], tmp_path)
    assert analysis.result is None
    assert any("No votes yet" in p for s in sections for p in s.paragraphs)


def test_everyone_excluded_is_reported_not_raised(tmp_path: Path) -> None:
    repo = Repository.open(f"sqlite:///{tmp_path / 'store.db'}")
    sid = make_study(repo, n_items=12, votes_per_item=2)  # 4 checks each; constant answers pass only half
    cast(repo, sid, {"alice": "left", "bob": "right"})
    sections, analysis = human_sections(repo, [sid], tmp_path, n_bootstrap=0)
    assert analysis.result is None and "no votes left" in analysis.problem
    assert any("cannot be analysed" in p for s in sections for p in s.paragraphs)


def test_tradeoff_plots_need_several_guidance_scales(tmp_path: Path) -> None:
    from harness.report.figures import metric_tradeoff
    from harness.report.write import _tradeoff_sections
    from harness.storage.records import MetricResultRecord

    def rec(metric: str, system: str, g: float, value: float) -> MetricResultRecord:
        return MetricResultRecord("run", metric, system, {"guidance_scale": g}, value, value - 0.1, value + 0.1, 10,
                                  "pixels", "h")

    results = [rec(m, s, g, v * g) for s, v in (("glide", 1.0), ("unclip", 0.8)) for g in (1.0, 2.0, 4.0)
               for m in ("fd", "clip_score", "vendi")]
    sections = _tradeoff_sections(results, tmp_path)
    (section,) = sections
    names = sorted(f.path.name for f in section.figures)
    assert names == ["clip_score_vs_guidance.png", "fd_vs_clip_score.png", "fd_vs_guidance.png",
                     "vendi_vs_guidance.png"]
    assert all(f.path.read_bytes()[:4] == b"\x89PNG" for f in section.figures)
    one_scale = [r for r in results if r.group["guidance_scale"] == 1.0]
    assert _tradeoff_sections(one_scale, tmp_path) == []
    assert metric_tradeoff(results, "clip_score", "kid", tmp_path / "none.png") is None


def test_unguided_systems_are_reference_lines_and_metrics_json(tmp_path: Path) -> None:
    import json

    from harness.report.figures import _unguided, metric_tradeoff, metric_vs_guidance
    from harness.report.write import metrics_payload
    from harness.storage.records import MetricResultRecord

    guided = [MetricResultRecord("run", m, "glide", {"guidance_scale": g}, v * g, None, None, 10, "pixels", "h")
              for g in (1.0, 3.0) for m, v in (("fd", 2.0), ("clip_score", 20.0))]
    real = [MetricResultRecord("run", "fd", "reference", {}, 0.5, 0.4, 0.6, 10, "pixels", "r"),
            MetricResultRecord("run", "clip_score", "reference", {}, 30.0, None, None, 10, "pixels", "r")]
    assert set(_unguided(guided + real, "fd")) == {"reference"} and _unguided(guided, "fd") == {}
    with_line = metric_vs_guidance(guided + real, "fd", tmp_path / "with.png")
    without = metric_vs_guidance(guided, "fd", tmp_path / "without.png")
    assert with_line and without and with_line.read_bytes() != without.read_bytes()
    assert metric_tradeoff(guided + real, "clip_score", "fd", tmp_path / "t.png") is not None
    assert metric_vs_guidance(real, "fd", tmp_path / "none.png") is None  # nothing swept: nothing to plot
    payload = metrics_payload(guided + real)
    assert [(p["metric"], p["system"]) for p in payload][:3] == [
        ("clip_score", "glide"), ("clip_score", "glide"), ("clip_score", "reference")]
    assert json.loads(json.dumps(payload)) == payload


def test_an_interval_beside_its_estimate_is_plotted(tmp_path: Path) -> None:
    """A percentile bootstrap of a biased metric (FD) can lie wholly above the estimate: drawn as it is, no crash."""
    from harness.report.figures import metric_vs_guidance
    from harness.storage.records import MetricResultRecord

    records = [MetricResultRecord("run", "fd", "glide", {"guidance_scale": g}, v, lo, hi, 64, "pixels", f"h{g}")
               for g, v, lo, hi in ((1.0, 0.50, 0.55, 0.70), (3.0, 0.40, 0.30, 0.38), (5.0, 0.45, 0.40, 0.50))]
    path = metric_vs_guidance(records, "fd", tmp_path / "fd.png")
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG"
