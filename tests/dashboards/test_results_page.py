"""The Results page on the paper's comparison (`paper_votes`): headline per protocol, the Fig. 10 plot, Table 1 and
the prior table, simulated votes marked, every pair behind an expander; under AppTest against a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from paper_votes import build_paper_store
from streamlit.testing.v1 import AppTest

from dashboards.results import rows_frame, run_results
from harness.storage.repository import Repository

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
SECRET = "results-secret"


@pytest.fixture(scope="module")
def paper_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("paper")
    url = f"sqlite:///{root / 'store.db'}"
    build_paper_store(url, root)
    return url


@pytest.fixture
def _env(paper_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HARNESS_DB_URL", paper_url)
    monkeypatch.setenv("HARNESS_ADMIN_SECRET", SECRET)
    yield
    st.cache_resource.clear()


def test_run_results_pick_table1_with_the_pages_interval(paper_url: str) -> None:
    with Repository.open(paper_url) as repo:
        studies = repo.list_studies()
        res = run_results(repo, "paperrun", studies, ci="normal", ties="half", exclude=False)
    assert res.head is not None and res.kinds == {"caption_similarity": "human", "diversity": "simulated",
                                                  "photorealism": "simulated"}
    frame = rows_frame(res.head.rows, res.head.protocols, res.labeller)
    assert list(frame.columns) == ["comparison", "Photorealism", "Caption similarity", "Diversity"]
    assert frame["comparison"].tolist() == [
        "P(unCLIP (diffusion prior), g = 1 beats GLIDE, g = 1)", "P(unCLIP (diffusion prior), g = 3 beats GLIDE, g = 3)",
        "P(unCLIP (AR prior), g = 1 beats GLIDE, g = 1)", "P(unCLIP (AR prior), g = 3 beats GLIDE, g = 3)"]
    assert frame.loc[2, "Caption similarity"] == "30.0% ± 14.2% (n = 40)"  # 12 of 40, no ties: p ± 1.96·sqrt(pq/n)
    assert frame.loc[0, "Diversity"] == "—"


def test_by_default_the_page_shows_the_reports_table1(paper_url: str, tmp_path: Path) -> None:
    from harness.report.headline import answer_sections, table1
    from harness.report.studies import analyze_studies

    with Repository.open(paper_url) as repo:
        studies = repo.list_studies()
        page = run_results(repo, "paperrun", studies)
        analysis = analyze_studies(repo, [s.study_id for s in studies], n_bootstrap=0)
    _, head = answer_sections(analysis, page.labeller, tmp_path)
    assert head is not None and page.head is not None
    report = table1(head, page.labeller)
    frame = rows_frame(page.head.rows, page.head.protocols, page.labeller)
    for i, row in enumerate(report.rows):
        shown = [f"{c} ({report.note(i, j)})" if report.note(i, j) else c for j, c in enumerate(row)]
        assert frame.iloc[i].tolist() == shown


@pytest.mark.usefixtures("_env")
def test_results_page_shows_the_headline_table1_and_marks_simulated_votes() -> None:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["page"] = "results"
    at.query_params["admin"] = SECRET
    at.run()
    assert not at.exception
    assert [h.value for h in at.header] == ["Run paperrun"]
    assert any("Simulated votes" in w.value and "400 of 600" in w.value for w in at.warning)
    markdown = "\n".join(m.value for m in at.markdown)
    assert "**Photorealism** (simulated votes): P(unCLIP beats GLIDE)" in markdown
    assert "**Caption similarity** (human votes)" in markdown
    assert not any(m.value.startswith("- ") for m in at.markdown)  # no bullet lists
    table1, priors = at.table
    assert table1.value.shape == (4, 4) and priors.value.shape == (2, 3)
    assert "Table 1: P(unCLIP beats GLIDE)" in [s.value for s in at.subheader]
    (plot,) = at.image  # the Fig. 10 plot
    assert len(plot.value) == 1
    every_pair = at.dataframe[0].value
    assert len(every_pair) == 15 and "unCLIP (diffusion prior), g = 1" in set(every_pair["system A"])
