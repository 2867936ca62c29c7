"""The report leads with the answer: P(unCLIP beats GLIDE) per protocol, Table 1 at matched guidance, Fig. 10 and
Fig. 9 style plots, readable labels, the all-pairs tables in an appendix and as CSV, byte-identical on rewrite.

The votes are `paper_votes.COUNTS`, cast through the store; every expected number below is written out by hand
from those counts (ties half a win, p̂ ± z·sqrt(Var(s)/n) with Var(s) = (W + T/4)/n − p̂², the paper's
normal-approximation interval) or taken from statsmodels where there are no ties.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from paper_votes import CONFIG, COUNTS, GLIDE, UAR, UDP, build_paper_store, sid
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint
from test_vote_table import cast, make_study

from eval_protocols.human.analysis import AnalysisOptions, analyze_votes
from eval_protocols.human.headline import headline
from eval_protocols.human.labels import Labeller
from harness.config import RunConfig, from_dict
from harness.report.document import Document, to_html, to_markdown
from harness.report.headline import answer_sections, table1
from harness.report.studies import StudyAnalysis, analyze_studies, human_sections
from harness.report.write import write_report
from harness.rundir import RunDir
from harness.storage.records import MetricResultRecord
from harness.storage.repository import Repository

D1, D3 = "unCLIP (diffusion prior), g = 1", "unCLIP (diffusion prior), g = 3"
A1, A3 = "unCLIP (AR prior), g = 1", "unCLIP (AR prior), g = 3"
G1, G3 = "GLIDE, g = 1", "GLIDE, g = 3"
TABLE1: dict[tuple[str, str], dict[str, tuple[int, int, int]]] = {
    (D1, G1): {"photorealism": (18, 20, 2), "caption_similarity": (14, 24, 2)},
    (D3, G3): {"photorealism": (25, 12, 3), "caption_similarity": (16, 22, 2), "diversity": (28, 10, 2)},
    (A1, G1): {"photorealism": (15, 22, 3), "caption_similarity": (12, 28, 0)},
    (A3, G3): {"photorealism": (20, 18, 2), "caption_similarity": (13, 25, 2), "diversity": (24, 14, 2)},
}
"""unCLIP's (W, L, T) against GLIDE per row and protocol, read off `paper_votes.COUNTS` by hand (the g = 3
photorealism pair is stored GLIDE first, so its counts are swapped here)."""
PROTOCOLS = ("photorealism", "caption_similarity", "diversity")


def paper_cell(wins: int, losses: int, ties: int) -> str:
    """``xx.x% ± y.y%``: ties half a win, tie-aware normal-approximation interval at 95%."""
    n = wins + losses + ties
    p = (wins + ties / 2) / n
    half = norm.ppf(0.975) * math.sqrt(((wins + ties / 4) / n - p * p) / n)
    return f"{100 * p:.1f}% ± {100 * half:.1f}%"


@pytest.fixture(scope="module")
def paper_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[int]]:
    root = tmp_path_factory.mktemp("paper")
    url = f"sqlite:///{root / 'store.db'}"
    return url, build_paper_store(url, root)


@pytest.fixture(scope="module")
def analysis(paper_store: tuple[str, list[int]]) -> StudyAnalysis:
    url, study_ids = paper_store
    with Repository.open(url) as repo:
        return analyze_studies(repo, study_ids, n_bootstrap=20)


def labeller_of(analysis: StudyAnalysis) -> Labeller:
    systems = set(analysis.votes["model_a"]) | set(analysis.votes["model_b"])
    return Labeller.from_config(CONFIG, systems)


def test_paper_cell_is_the_papers_wald_interval_without_ties() -> None:
    low, high = proportion_confint(12, 40, alpha=0.05, method="normal")
    assert paper_cell(12, 28, 0) == f"30.0% ± {100 * (high - low) / 2:.1f}%"
    assert paper_cell(489, 511, 0) == "48.9% ± 3.1%" and paper_cell(705, 295, 0) == "70.5% ± 2.8%"  # unCLIP Table 1


def test_table1_rows_and_cells_match_the_hand_computation(analysis: StudyAnalysis, tmp_path: Path) -> None:
    labeller = labeller_of(analysis)
    sections, head = answer_sections(analysis, labeller, tmp_path)
    assert head is not None and head.protocols == PROTOCOLS
    table = table1(head, labeller)
    assert table.header == ("comparison", "Photorealism", "Caption similarity", "Diversity")
    want_rows = [(f"P({a} beats {b})", *(paper_cell(*TABLE1[(a, b)][p]) if p in TABLE1[(a, b)] else "—"
                                         for p in PROTOCOLS)) for a, b in TABLE1]
    assert [tuple(r) for r in table.rows] == want_rows  # only unCLIP vs GLIDE at the same scale, diffusion prior first
    assert table.notes[1][3] == "n = 40" and table.notes[2][3] == ""
    titles = [s.title for s in sections]
    assert titles[0] == "The answer: P(unCLIP beats GLIDE)"
    assert any("Table 1" in t for t in titles)
    csv = pd.read_csv(tmp_path / "table1.csv")
    assert len(csv) == sum(len(v) for v in TABLE1.values()) == 10
    row = csv[(csv["protocol"] == "photorealism") & (csv["guidance_scale"] == 3.0)
              & (csv["challenger_model"] == "unCLIP (diffusion prior)")].iloc[0]
    assert (row["wins"], row["losses"], row["ties"], row["n"]) == (25, 12, 3, 40)
    assert row["win_rate"] == pytest.approx(26.5 / 40) and row["votes"] == "simulated"
    assert row["challenger"] == sid(UDP, 3.0) and row["opponent"] == sid(GLIDE, 3.0)


def test_headline_paragraphs_pool_the_matched_votes_and_say_who_voted(analysis: StudyAnalysis, tmp_path: Path) -> None:
    sections, head = answer_sections(analysis, labeller_of(analysis), tmp_path)
    assert head is not None
    photo, caption, diversity = sections[0].paragraphs
    # photorealism: W = 18 + 25 + 15 + 20, L = 20 + 12 + 22 + 18, T = 2 + 3 + 3 + 2 over n = 160
    assert photo.startswith(f"**Photorealism** (simulated votes): P(unCLIP beats GLIDE) = **{paper_cell(78, 72, 10)}**")
    assert "n = 160 votes" in photo and "guidance scales 1, 3" in photo and "No clear preference" in photo
    assert f"unCLIP (diffusion prior) {paper_cell(43, 32, 5)} (n = 80)" in photo
    assert f"unCLIP (AR prior) {paper_cell(35, 40, 5)} (n = 80)" in photo
    assert caption.startswith(f"**Caption similarity** (human votes): P(unCLIP beats GLIDE) = **{paper_cell(55, 99, 6)}**")
    assert "GLIDE is preferred" in caption
    assert diversity.startswith(f"**Diversity** (simulated votes): P(unCLIP beats GLIDE) = **{paper_cell(52, 24, 4)}**")
    assert "guidance scale 3 " in diversity and "unCLIP is preferred" in diversity
    assert [f.path.name for f in sections[0].figures] == ["headline.png"]
    # diffusion prior vs AR prior, its own table: photorealism at g = 1 and 3, caption similarity only at g = 3
    (priors,) = next(s for s in sections if s.title.startswith("unCLIP priors")).tables
    assert [r[0] for r in priors.rows] == [f"P({D1} beats {A1})", f"P({D3} beats {A3})"]
    assert priors.rows[0][1:] == (paper_cell(22, 16, 2), "—") and priors.rows[1][1:] == (paper_cell(21, 17, 2),
                                                                                        paper_cell(24, 14, 2))


def test_no_glide_no_table1_in_one_line(tmp_path: Path) -> None:
    repo = Repository.open(f"sqlite:///{tmp_path / 'store.db'}")
    sid_ = make_study(repo, n_items=6, votes_per_item=4)  # unclip vs glide by name only: no generators known
    cast(repo, sid_, {"alice": "left", "bob": "right", "carol": "left", "dave": "tie"})
    analysis = analyze_studies(repo, [sid_], n_bootstrap=20)
    labeller = Labeller.from_config({}, {"unclip", "glide"})
    sections, head = answer_sections(analysis, labeller, tmp_path)
    assert head is None and len(sections) == 1 and len(sections[0].paragraphs) == 1
    assert sections[0].paragraphs[0].startswith("No Table 1: this run compares no unCLIP system with a GLIDE system")
    assert pd.read_csv(tmp_path / "table1.csv").empty  # the CSV is still written, header only
    # the study's baseline names the opponent when generators are unknown
    sections, head = answer_sections(analysis, labeller, tmp_path, baseline="glide")
    assert head is not None and [r.challenger for r in head.rows] == ["unclip"]
    assert sections[0].title == "The answer: P(each system beats glide)"


def test_human_sections_ratings_chart_appendix_and_csvs(paper_store: tuple[str, list[int]], analysis: StudyAnalysis,
                                                        tmp_path: Path) -> None:
    url, study_ids = paper_store
    labeller = labeller_of(analysis)
    with Repository.open(url) as repo:
        body, appendix = human_sections(repo, study_ids, analysis, labeller, tmp_path)
    md = to_markdown(Document("t", tuple(body + appendix)), tmp_path)
    assert "![Bradley–Terry ratings" in md and (tmp_path / "ratings.png").read_bytes()[:4] == b"\x89PNG"
    assert [s.title.split(":")[0] for s in appendix] == ["Appendix A", "Appendix B", "Appendix C"]
    assert "Holm correction over the 15 comparisons" in md and "@g=" not in md
    assert f"P({D1} beats {G3})" in md and "P(GLIDE, g = 1 beats real renders)" in md  # every pair, in the appendix
    assert "| sim-01 | simulated |" in md and "| alice | human |" in md
    rates = pd.read_csv(tmp_path / "win_rates.csv")
    signs = pd.read_csv(tmp_path / "sign_tests.csv")
    assert len(rates) == len(signs) == sum(len(p) for p in COUNTS.values())
    # read unCLIP first, then GLIDE, then real renders (stored as real renders vs GLIDE: 35 / 5 / 0)
    row = rates[(rates["protocol"] == "photorealism") & (rates["system_b"] == "reference")].iloc[0]
    assert (row["wins"], row["losses"], row["ties"], row["win_rate"]) == (5, 35, 0, 5 / 40)
    assert row["label_a"] == G1 and row["label_b"] == "real renders"
    assert row["ci_low"] == pytest.approx(5 / 40 - norm.ppf(0.975) * math.sqrt(5 / 40 * 35 / 40 / 40))
    sign = signs[(signs["protocol"] == "photorealism") & (signs["system_b"] == "reference")].iloc[0]
    from scipy.stats import binomtest
    assert sign["p_value"] == pytest.approx(binomtest(5, 40).pvalue) and sign["decisive"] == 40


def test_cells_show_n_in_markdown_and_as_a_tooltip_in_html(analysis: StudyAnalysis, tmp_path: Path) -> None:
    sections, _ = answer_sections(analysis, labeller_of(analysis), tmp_path)
    doc = Document("t", tuple(sections))
    md, page = to_markdown(doc, tmp_path), to_html(doc)
    cell = paper_cell(28, 10, 2)
    assert f"| {cell} (n = 40) |" in md
    assert f'<td title="n = 40">{cell}<small>n = 40</small></td>' in page
    assert "<b>Photorealism</b> (simulated votes)" in page and "**" not in page


def _toy_run(tmp_path: Path) -> tuple[RunConfig, RunDir]:
    """A run dir with tiny images for every (system, guidance scale) of `paper_votes.CONFIG` and its provenance."""
    cfg = from_dict(RunConfig, {**CONFIG, "out_dir": str(tmp_path / "runs"),
                                "sampling": {**CONFIG["sampling"], "seeds_per_prompt": 2}}, source="test")  # type: ignore[dict-item]
    run_dir = RunDir(tmp_path / "runs" / cfg.run_id).create()
    rng = np.random.default_rng(0)
    groups = [("reference", {})] + [(s, {"guidance_scale": g, "prior_guidance_scale": 1.0, "steps": "20"})
                                    for s in (UDP, UAR, GLIDE) for g in (1.0, 3.0)]
    for system, settings in groups:
        for prompt in ("p0", "p1"):
            for k in range(2):
                run_dir.add_image(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), {
                    "system_id": system, "model_id": f"{system}-toy", "prompt_id": prompt, "prompt": "a red circle",
                    "sample_index": k, "seed": k, "settings": settings, "checkpoint_sha256": "0" * 64})
    run_dir.write_json("provenance.json", {"created_at": "2026-01-01T00:00:00+00:00", "git": {"commit": "abc"},
                                           "packages": {}, "seeds": {}, "device": {"device": "cpu"}, "python": "3"})
    return cfg, run_dir


def _metrics(run_id: str) -> list[MetricResultRecord]:
    out = []
    for metric, higher, base in (("fd", False, 40.0), ("clip_score", True, 20.0), ("diversity", True, 0.2)):
        out.append(MetricResultRecord(run_id, metric, "reference", {}, base / 4, base / 5, base / 3, 4, "pixels", "r",
                                      {"higher_is_better": higher}))
        for k, system in enumerate((UDP, UAR, GLIDE)):
            for g in (1.0, 3.0):
                value = base * (1 + 0.1 * k) * (1 + 0.2 * g)
                out.append(MetricResultRecord(
                    run_id, metric, system, {"guidance_scale": g, "prior_guidance_scale": 1.0, "steps": "20"}, value,
                    0.9 * value, 1.1 * value, 4, "pixels", f"{system}{g}", {"higher_is_better": higher}))
    return out


def test_report_leads_with_the_answer_and_rewrites_byte_identical(paper_store: tuple[str, list[int]],
                                                                  tmp_path: Path) -> None:
    url, study_ids = paper_store
    cfg, run_dir = _toy_run(tmp_path)
    with Repository.open(url) as repo:
        md_path, html_path = write_report(cfg, run_dir, repo, results=_metrics(cfg.run_id), study_ids=study_ids)
    md, page = md_path.read_text(), html_path.read_text()
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## The answer: P(unCLIP beats GLIDE)", "## Run", "## Samples"]
    assert headings.index("## Provenance") < headings.index("## Appendix A: every pair, mixed: 400 simulated + 200 "
                                                            "human votes")
    assert "### Table 1: P(unCLIP beats GLIDE), votes: Photorealism simulated; Caption similarity human; " \
           "Diversity simulated" in md
    table1_lines = [line for line in md.split("### Table 1")[1].split("###")[0].splitlines() if line.startswith("| P(")]
    assert len(table1_lines) == 4 and all("beats GLIDE, g = " in line for line in table1_lines)
    # readable labels everywhere: no study-system ids, no prior guidance (one value, and GLIDE has none), no steps
    assert "@g=" not in md and "prior g =" not in md and "steps =" not in md
    report_dir = md_path.parent
    for name in ("headline.png", "ratings.png", "metrics_vs_guidance.png", "fd_vs_clip_score.png", "samples.png"):
        assert (report_dir / name).read_bytes()[:4] == b"\x89PNG", name
        assert f"]({name})" in md, name
    assert page.count('src="data:image/png;base64,') == 5
    assert 'alt="P(unCLIP beats GLIDE) against the decoder guidance scale' in page
    for name in ("table1.csv", "win_rates.csv", "sign_tests.csv"):
        assert f"`{name}`" in md and (report_dir / name).stat().st_size > 100
    assert "| unCLIP (AR prior), g = 3 | 70.4 [63.36, 77.44] (n = 4) | 35.2 [31.68, 38.72] (n = 4) |" in md
    first = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(report_dir.iterdir())}
    with Repository.open(url) as repo:
        write_report(cfg, run_dir, repo, results=_metrics(cfg.run_id), study_ids=study_ids)
    again = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(report_dir.iterdir())}
    assert again == first and len(first) == 11
    assert json.loads((report_dir / "metrics.json").read_text())[0]["metric"] == "clip_score"


def test_report_of_a_run_without_studies_says_so(tmp_path: Path) -> None:
    cfg, run_dir = _toy_run(tmp_path)
    md_path, _ = write_report(cfg, run_dir, None, results=[])
    md = md_path.read_text()
    assert "No human study for this run yet" in md and "No metrics computed yet." in md


def test_table1_from_analyze_votes_on_a_plain_vote_table() -> None:
    """A vote table without a store: the labeller from generators alone, ties counted half."""
    rows = []
    for (a, b), (w, l, t) in {(sid(UDP, 3.0), sid(GLIDE, 3.0)): (489, 511, 0),
                              (sid(GLIDE, 1.0), sid(UDP, 1.0)): (295, 705, 0)}.items():
        rows += [{"model_a": a, "model_b": b, "winner": "model_a"}] * w + [
            {"model_a": a, "model_b": b, "winner": "model_b"}] * l + [{"model_a": a, "model_b": b, "winner": "tie"}] * t
    votes = pd.DataFrame(rows).assign(protocol="photorealism", expected=None, simulated=False)
    result = analyze_votes(votes, AnalysisOptions(n_bootstrap=0))
    labeller = Labeller.from_config(CONFIG, set(votes["model_a"]) | set(votes["model_b"]))
    head = headline([w for p in result.protocols for w in p.win_rates], labeller)
    assert head is not None
    assert [r[1] for r in table1(head, labeller).rows] == ["70.5% ± 2.8%", "48.9% ± 3.1%"]  # unCLIP Table 1's cells
    assert [r[0] for r in table1(head, labeller).rows] == [f"P({D1} beats {G1})", f"P({D3} beats {G3})"]
