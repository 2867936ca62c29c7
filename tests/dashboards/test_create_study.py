"""The admin page's "Create a study" form (`dashboards.create_study`), under AppTest against a real SQLite store."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from run_store import RUN_ID, store_attention_run, store_generated_run
from streamlit.testing.v1 import AppTest
from voting_store import page_text

from dashboards.create_study import StudyRequest, build_study, create_study, design_runs, run_inputs
from eval_protocols.human.design_inputs import attention_pool
from eval_protocols.human.pairing import design_study
from eval_protocols.human.protocol import get_protocol
from harness.storage.records import ItemRecord
from harness.storage.repository import HarnessError, Repository
from harness.study.design import study_systems

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
SECRET = "s3cret-admin-key"
UNCLIP, GLIDE_1, GLIDE_3 = "unclip", "glide@g=1.0 steps=25", "glide@g=3.0 steps=25"


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("HARNESS_DB_URL", url)
    monkeypatch.setenv("HARNESS_ADMIN_SECRET", SECRET)
    yield url
    st.cache_resource.clear()  # drop this test's Repository (one per URL)


@pytest.fixture
def repo(url: str) -> Iterator[Repository]:
    with Repository.open(url) as repository:
        yield repository


def _admin() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["admin"] = SECRET
    return at.run()


def _assert_counterbalanced(items: list[ItemRecord]) -> None:
    """Within each comparison, system a is on the left in ceil(n/2) or floor(n/2) of its items."""
    sides: dict[tuple[str, str], Counter[str]] = {}
    for item in items:
        if not item.is_attention_check:
            sides.setdefault((item.system_a, item.system_b), Counter())[item.left] += 1
    assert sides
    for count in sides.values():
        assert abs(count["a"] - count["b"]) <= 1, count


def test_store_inputs_match_the_cli_grouping_and_attention_pool(tmp_path: Path, repo: Repository) -> None:
    entries = store_generated_run(repo, tmp_path)
    pools = store_attention_run(repo, tmp_path, ("photorealism", "caption_similarity", "diversity"))
    assert [r.run_id for r in design_runs(repo)] == [RUN_ID]  # the attention run is not offered
    inputs = run_inputs(repo, RUN_ID)
    assert inputs.systems == study_systems(entries)  # what `harness study create` designs from
    assert sorted(inputs.systems) == [GLIDE_1, GLIDE_3, UNCLIP]
    assert inputs.prompts == {e.prompt_id: e.prompt for e in entries}
    for name, pool in pools.items():
        assert attention_pool(get_protocol(name), inputs.attention) == pool  # the rendered cases, rebuilt from the store


def test_build_study_equals_design_study(tmp_path: Path, repo: Repository) -> None:
    store_generated_run(repo, tmp_path)
    inputs = run_inputs(repo, RUN_ID)
    request = StudyRequest(RUN_ID, "caption_similarity", (UNCLIP, GLIDE_3), votes_per_item=2, seed=5)
    study, items = build_study(inputs, request, created_at=repo.clock())
    design = design_study(get_protocol("caption_similarity"), {s: inputs.systems[s] for s in (UNCLIP, GLIDE_3)},
                          inputs.prompts, votes_per_item=2, seed=5)
    assert items == [ItemRecord.from_designed(i) for i in design.items]
    assert (study.name, study.status, study.votes_per_item, study.seed) == (f"{RUN_ID}/caption_similarity", "draft", 2, 5)
    with pytest.raises(ValueError, match="no system"):
        build_study(inputs, StudyRequest(RUN_ID, "photorealism", (UNCLIP, "glide")), created_at=repo.clock())


def test_form_creates_a_counterbalanced_study_with_stored_attention_checks(tmp_path: Path, repo: Repository) -> None:
    store_generated_run(repo, tmp_path)
    store_attention_run(repo, tmp_path, ("photorealism",))
    at = _admin()
    assert not at.exception and not repo.list_studies()
    assert at.selectbox(key="create_run").options == [RUN_ID]
    at.selectbox(key="create_protocol").select("photorealism").run()
    at.number_input(key="create_votes").set_value(2)
    at.number_input(key="create_seed").set_value(11)
    at.radio(key="create_status").set_value("open")
    at.number_input(key="create_attention_rate").set_value(0.2)
    at.button(key="create_submit").click().run()
    assert not at.exception and not at.error
    (study,) = repo.list_studies()
    assert (study.name, study.protocol_name, study.status, study.votes_per_item, study.seed) == (
        f"{RUN_ID}/photorealism", "photorealism", "open", 2, 11)
    assert study.protocol == get_protocol("photorealism").to_dict()
    items = repo.list_items(study.study_id)
    regular = [i for i in items if not i.is_attention_check]
    checks = [i for i in items if i.is_attention_check]
    # 3 pairs x 3 prompts x 4 shared seed indices, each image pair once; checks: round(0.2 * 36 / 0.8) = 9
    assert len(regular) == 36 and len(checks) == 9
    assert Counter((i.system_a, i.system_b) for i in regular) == {
        (GLIDE_1, GLIDE_3): 12, (GLIDE_1, UNCLIP): 12, (GLIDE_3, UNCLIP): 12}
    assert all(i.votes_target == 2 for i in items)
    _assert_counterbalanced(items)
    stored_checks = {img.image_id for img in run_inputs(repo, RUN_ID).attention}
    assert all(set(i.images_a + i.images_b) <= stored_checks for i in checks)  # reused, not re-rendered
    assert any(f"Created study {study.study_id}" in s.value for s in at.success)
    assert at.selectbox(key="admin_study").value == study.study_id  # the new study is listed and selected
    assert any(study.name in str(o) for o in at.selectbox(key="admin_study").options)


def test_form_vs_baseline_with_chosen_systems_and_no_attention_run(tmp_path: Path, repo: Repository) -> None:
    store_generated_run(repo, tmp_path)
    at = _admin()
    at.selectbox(key="create_protocol").select("caption_similarity")
    at.run()
    assert "this study gets no attention checks" in page_text(at)
    assert not any(w.key == "create_attention_rate" for w in at.number_input)  # rate 0, not offered
    assert at.selectbox(key=f"create_baseline-{RUN_ID}").disabled  # until "vs a baseline" is picked
    at.radio(key="create_comparisons").set_value("vs_baseline").run()
    at.selectbox(key=f"create_baseline-{RUN_ID}").select(GLIDE_1)
    at.text_input(key="create_name").input("my study")
    at.checkbox(key="create_tie").uncheck()
    at.button(key="create_submit").click().run()
    assert not at.exception and not at.error
    (study,) = repo.list_studies()
    assert (study.name, study.status, study.allow_tie) == ("my study", "draft", False)
    items = repo.list_items(study.study_id)
    assert not any(i.is_attention_check for i in items)
    assert Counter((i.system_a, i.system_b) for i in items) == {(GLIDE_3, GLIDE_1): 12, (UNCLIP, GLIDE_1): 12}
    _assert_counterbalanced(items)


def test_bad_requests_show_one_error_and_store_nothing(tmp_path: Path, repo: Repository) -> None:
    store_generated_run(repo, tmp_path)  # 4 images per prompt: too few for 4x4 diversity grids
    at = _admin()
    at.selectbox(key="create_protocol").select("diversity")
    at.button(key="create_submit").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "needs 16 per side" in at.error[0].value
    assert repo.list_studies() == []
    at.selectbox(key="create_protocol").select("photorealism")
    at.multiselect(key=f"create_systems-{RUN_ID}").set_value([UNCLIP])
    at.button(key="create_submit").click().run()
    assert len(at.error) == 1 and "at least two systems" in at.error[0].value
    assert repo.list_studies() == []


def test_taken_name_is_an_error_and_nothing_else_is_stored(tmp_path: Path, repo: Repository) -> None:
    store_generated_run(repo, tmp_path)
    first = create_study(repo, StudyRequest(RUN_ID, "photorealism", (UNCLIP, GLIDE_1)))
    with pytest.raises(HarnessError, match="exists"):
        create_study(repo, StudyRequest(RUN_ID, "photorealism", (UNCLIP, GLIDE_3)))
    at = _admin()
    at.selectbox(key="create_protocol").select("photorealism")
    at.button(key="create_submit").click().run()
    assert len(at.error) == 1 and "exists; choose another name" in at.error[0].value
    assert [s.study_id for s in repo.list_studies()] == [first.study_id]
    assert len(repo.list_items(first.study_id)) == 12


def test_empty_store_says_how_to_get_a_run(url: str) -> None:
    at = _admin()
    assert not at.exception
    assert "No runs in the store yet" in page_text(at)
