"""The voting app under Streamlit's AppTest, against a real SQLite store (HARNESS_DB_URL in a tmp dir).

The page's response-time clock (`dashboards.vote.CLOCK`) is a fake one: by default it moves 1 s per reading, so every
answer comes "1 s after the item appeared" and is counted; the double-press test steps it by hand.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from voting_store import (
    SYSTEM_A,
    SYSTEM_B,
    VotingStore,
    build_store,
    item_html,
    item_position,
    item_question,
    page_text,
)

from dashboards import vote
from eval_protocols.human.protocol import get_protocol
from eval_protocols.human.votes import validate_votes
from harness.storage.repository import Repository

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
SECRET = "s3cret-admin-key"
TIMEOUT = 60


class FakeClock:
    """Seconds; each reading adds ``step`` (1 s unless a test sets 0 and uses `advance`)."""

    def __init__(self) -> None:
        self.now, self.step = 1000.0, 1.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(vote, "CLOCK", fake)
    return fake


@pytest.fixture(autouse=True)
def _env(store: VotingStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HARNESS_DB_URL", store.url)
    monkeypatch.setenv("HARNESS_ADMIN_SECRET", SECRET)
    monkeypatch.delenv("HARNESS_MIN_RESPONSE_MS", raising=False)
    yield
    st.cache_resource.clear()  # drop this test's Repository (one per URL)


def _app(**params: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def _invite(repo: Repository, store: VotingStore) -> tuple[int, str]:
    record, token = repo.create_annotator(store.study_id, "alice")
    return record.annotator_id, token


def test_no_token_is_refused_without_study_content(store: VotingStore) -> None:
    for params in ({}, {"token": ""}, {"token": "not-a-real-token"}):
        at = _app(**params)
        assert not at.exception
        assert at.title[0].value == "Invite link required"
        text = page_text(at)
        assert "photorealistic" not in text and not at.button
        assert not any(s in text for s in store.secrets)


def test_invite_instructions_vote_progress_finished(store: VotingStore, repo: Repository) -> None:
    annotator_id, token = _invite(repo, store)
    at = _app(token=token)
    assert not at.exception
    assert at.title[0].value == "Which image is more photorealistic?"  # instructions from the protocol snapshot
    assert any("Example 1" in m.value for m in at.markdown)
    at.button(key="start").click().run()
    for k in range(store.n_items):
        assert not at.exception
        assert item_position(at) == f"Item {k + 1} of {store.n_items}"
        assert item_question(at) == "Which image is more photorealistic?"
        images = re.findall(r"<img [^>]*>", item_html(at))
        assert len(images) == 2 and all('src="data:image/png;base64,' in v for v in images)
        assert not any(s in page_text(at) for s in store.secrets)
        key = next(b.key for b in at.button if b.key and b.key.startswith("vote-") and b.key.endswith("-left"))
        at.button(key=key).click().run()
        assert len(repo.load_votes(store.study_id)) == k + 1
    assert at.title[0].value == "Finished, thank you!"
    votes = repo.load_votes(store.study_id)
    assert {v.annotator_id for v in votes} == {annotator_id} and {v.choice for v in votes} == {"left"}
    assert all(v.response_ms >= vote.DEFAULT_MIN_RESPONSE_MS for v in votes)
    assert len({v.item_id for v in votes}) == store.n_items


def test_stale_tab_is_told_its_answer_was_not_counted(store: VotingStore, repo: Repository) -> None:
    _, token = _invite(repo, store)
    tab1 = _app(token=token)
    tab1.button(key="start").click().run()
    tab2 = _app(token=token)  # a second tab: same pending assignment, straight to the item
    keys1 = {b.key for b in tab1.button if b.key and b.key.startswith("vote-")}
    keys2 = {b.key for b in tab2.button if b.key and b.key.startswith("vote-")}
    assert keys1 == keys2 and keys1
    shown = next(k for k in keys1 if k.endswith("-left"))
    tab1.button(key=shown).click().run()
    tab1.run()  # plain reruns
    tab1.run()
    assert len(repo.load_votes(store.study_id)) == 1
    # the stale page in tab 2 answers the same rendered assignment again (a late double click): still one vote
    assert not tab1.warning  # tab 1's own answer was counted: no notice
    tab2.button(key=shown.replace("-left", "-right")).click().run()
    assert not tab2.exception
    assert [w.value for w in tab2.warning] == [vote.ALREADY_TEXT]  # tab 2 is told its answer was not counted
    votes = repo.load_votes(store.study_id)
    assert [v.choice for v in votes] == ["left"]
    assert f"vote-{votes[0].assignment_id}-left" == shown
    # both tabs moved on to the same next item
    next1 = {b.key for b in tab1.button if b.key and b.key.startswith("vote-")}
    next2 = {b.key for b in tab2.button if b.key and b.key.startswith("vote-")}
    assert next1 == next2 and not next1 & keys1


def _vote_keys(at: AppTest) -> set[str]:
    return {b.key for b in at.button if b.key and b.key.startswith("vote-")}


def test_double_press_within_min_response_ms_is_not_stored(
    store: VotingStore, repo: Repository, clock: FakeClock
) -> None:
    annotator_id, token = _invite(repo, store)
    clock.step = 0.0
    at = _app(token=token)
    at.button(key="start").click().run()  # item 1 appears at clock.now
    first = _vote_keys(at)
    clock.advance(1.2)
    at.button(key=next(k for k in first if k.endswith("-left"))).click().run()  # counted; item 2 appears
    second = _vote_keys(at)
    assert second and not second & first and len(repo.load_votes(store.study_id)) == 1
    clock.advance(0.25)  # the second press of a double press, 250 ms after item 2 appeared
    at.button(key=next(k for k in second if k.endswith("-left"))).click().run()
    assert not at.exception
    assert len(repo.load_votes(store.study_id)) == 1  # not stored ...
    assert _vote_keys(at) == second  # ... and item 2 is still on screen, not consumed
    assert item_position(at) == f"Item 2 of {store.n_items}"
    assert [w.value for w in at.warning] == [vote.TOO_EARLY_TEXT.format(ms=250)]
    assert repo.annotator_progress(annotator_id).pending == 1
    clock.advance(0.4)  # a considered answer, 650 ms after item 2 appeared (its clock kept running)
    at.button(key=next(k for k in second if k.endswith("-right"))).click().run()
    votes = repo.load_votes(store.study_id)
    assert [(v.choice, v.response_ms) for v in votes] == [("left", 1200), ("right", 650)]
    assert not at.warning and item_position(at) == f"Item 3 of {store.n_items}"


def test_min_response_ms_is_configurable(
    store: VotingStore, repo: Repository, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = _invite(repo, store)
    clock.step = 0.0
    monkeypatch.setenv("HARNESS_MIN_RESPONSE_MS", "2000")
    at = _app(token=token)
    at.button(key="start").click().run()
    key = next(k for k in _vote_keys(at) if k.endswith("-left"))
    clock.advance(1.5)
    at.button(key=key).click().run()
    assert not repo.load_votes(store.study_id) and at.warning
    clock.advance(0.6)
    at.button(key=key).click().run()
    assert [v.response_ms for v in repo.load_votes(store.study_id)] == [2100]
    monkeypatch.setenv("HARNESS_MIN_RESPONSE_MS", "soon")
    bad = _app(token=token)
    assert any("HARNESS_MIN_RESPONSE_MS" in e.value for e in bad.error) and not _vote_keys(bad)


def test_item_numbers_are_the_evaluators_own(store: VotingStore, repo: Repository) -> None:
    bob, _ = repo.create_annotator(store.study_id, "bob")
    for _ in range(2):  # bob answers two items first (one vote per item): store ids run ahead of alice's count
        nxt = repo.next_item_for(bob.annotator_id, store.study_id)
        assert nxt is not None
        repo.record_vote(nxt[0].assignment_id, "left", 900, annotator_id=bob.annotator_id)
    annotator_id, token = _invite(repo, store)
    at = _app(token=token)
    at.button(key="start").click().run()
    left = store.n_items - 2
    for k in range(1, left + 1):
        aid = repo.next_item_for(annotator_id, store.study_id)[0].assignment_id  # type: ignore[index]
        assert aid > k  # a store id, which would tell alice about bob's answers
        assert item_position(at) == f"Item {k} of {left}"
        assert f"Item {aid}" not in page_text(at) and str(aid) not in str(item_position(at))
        at.button(key=f"vote-{aid}-left").click().run()
    assert at.title[0].value == "Finished, thank you!"


@pytest.mark.parametrize("protocol", ["photorealism", "caption_similarity", "diversity"])
def test_instructions_title_is_the_items_question(
    protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = build_store(tmp_path / protocol, n_items=1, protocol=protocol)
    monkeypatch.setenv("HARNESS_DB_URL", other.url)
    with Repository.open(other.url) as repository:
        _, token = repository.create_annotator(other.study_id, "carol")
    at = _app(token=token)
    heading = at.title[0].value
    at.button(key="start").click().run()
    assert not at.exception
    assert item_question(at) == heading == get_protocol(protocol).question
    st.cache_resource.clear()


def test_skip_and_report_broken_close_the_item(store: VotingStore, repo: Repository) -> None:
    annotator_id, token = _invite(repo, store)
    at = _app(token=token)
    at.button(key="start").click().run()
    skip = next(b.key for b in at.button if b.key and b.key.startswith("skip-"))
    at.button(key=skip).click().run()
    broken = next(b.key for b in at.button if b.key and b.key.startswith("broken-"))
    assert broken != skip.replace("skip", "broken")
    at.button(key=broken).click().run()
    p = repo.annotator_progress(annotator_id)
    assert (p.skipped, p.broken, p.completed) == (1, 1, 0)
    assert repo.load_votes(store.study_id) == []


def test_closed_study_shows_no_items(store: VotingStore, repo: Repository) -> None:
    _, token = _invite(repo, store)
    repo.set_study_status(store.study_id, "closed")
    at = _app(token=token)
    assert not at.exception
    assert "<img" not in item_html(at) and not at.button


def test_admin_without_secret_is_refused(store: VotingStore) -> None:
    for params in ({"page": "admin"}, {"admin": "wrong"}, {"page": "results"}):
        at = _app(**params)
        assert not at.exception
        assert not at.dataframe and not at.get("download_button")
        assert not any(s in page_text(at) for s in store.secrets)


def test_admin_with_secret_shows_studies_invites_and_export(store: VotingStore, repo: Repository) -> None:
    _, token = _invite(repo, store)
    nxt = repo.next_item_for(repo.annotator_for_token(token).annotator_id, store.study_id)  # type: ignore[union-attr]
    assert nxt is not None
    repo.record_vote(nxt[0].assignment_id, "left", response_ms=1200)
    at = _app(admin=SECRET)
    assert not at.exception
    studies = at.dataframe[0].value
    assert list(studies["name"]) == ["runsecretid/photorealism"] and list(studies["status"]) == ["open"]
    annotators = at.dataframe[1].value
    assert list(annotators["completed"]) == [1]
    items = at.dataframe[2].value
    assert len(items) == store.n_items and items["completed"].sum() == 1
    # export: CSV and Parquet download buttons, their files built on click from the vote table
    downloads = at.get("download_button")
    assert len(downloads) == 2
    from dashboards.admin import export_bytes

    exported = pd.read_csv(io.BytesIO(export_bytes(repo, "csv")))
    assert len(exported) == 1 and list(exported["winner"]) == ["model_a" if exported["left"][0] == exported["model_a"][0]
                                                               else "model_b"]
    assert len(pd.read_parquet(io.BytesIO(export_bytes(repo, "parquet")))) == 1
    # invites: the link carries a token that the store accepts
    at.text_input(key="invite_base").set_value("http://example.test:9000/").run()
    at.button(key="invite_create").click().run()
    link = at.code[0].value.split("\t")[1]
    assert link.startswith("http://example.test:9000/?token=")
    assert repo.annotator_for_token(link.split("token=")[1]) is not None
    # close and reopen
    at.button(key=f"close-{store.study_id}").click().run()
    assert repo.get_study(store.study_id).status == "closed"  # type: ignore[union-attr]
    at.button(key=f"open-{store.study_id}").click().run()
    assert repo.get_study(store.study_id).status == "open"  # type: ignore[union-attr]


def test_admin_password_field(store: VotingStore) -> None:
    at = _app(page="admin")
    at.text_input(key="admin_secret_input").set_value("nope")
    at.button[0].click().run()  # the form's "Sign in"
    assert not at.exception and not at.dataframe
    assert any(e.value == "Wrong admin secret." for e in at.error)
    at.text_input(key="admin_secret_input").set_value(SECRET)
    at.button[0].click().run()
    assert not at.exception
    assert at.title[0].value == "Admin" and at.dataframe


def test_export_is_the_vote_table(store: VotingStore, repo: Repository) -> None:
    from dashboards import tables

    annotator_id, _ = _invite(repo, store)
    while (nxt := repo.next_item_for(annotator_id, store.study_id)) is not None:
        choice = nxt[1].expected or "left"  # attention checks answered correctly
        repo.record_vote(nxt[0].assignment_id, choice, response_ms=10, annotator_id=annotator_id)
    studies = repo.list_studies()
    items = {i.item_id: i for i in repo.list_items(store.study_id)}
    table = tables.vote_table(repo.load_votes(), items, {s.study_id: s for s in studies})
    back = pd.read_parquet(io.BytesIO(tables.to_parquet_bytes(table)))
    csv = pd.read_csv(io.BytesIO(tables.to_csv_bytes(table)))
    for frame in (back, csv):
        validate_votes(frame)
        assert list(frame.columns[:7]) == ["model_a", "model_b", "winner", "annotator", "prompt", "protocol", "left"]
        assert len(frame) == store.n_items
    checks = back[back["expected"].notna()]
    assert len(checks) == 1  # the attention check, answered as expected
    assert (checks["winner"] == checks["expected"]).all()
    ordinary = back[back["expected"].isna()]
    left_is_a = ordinary["left"] == ordinary["model_a"]
    assert (ordinary["winner"] == left_is_a.map({True: "model_a", False: "model_b"})).all()


def test_results_update_after_a_vote(store: VotingStore, repo: Repository) -> None:
    at = _app(page="results", admin=SECRET)
    assert not at.exception
    assert at.title[0].value == "Results" and not at.dataframe
    annotator_id, _ = _invite(repo, store)
    nxt = repo.next_item_for(annotator_id, store.study_id)
    while nxt is not None and nxt[1].is_attention_check:
        repo.skip(nxt[0].assignment_id)
        nxt = repo.next_item_for(annotator_id, store.study_id)
    assert nxt is not None
    vote = repo.record_vote(nxt[0].assignment_id, "left", response_ms=900)
    at.run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert frame["n"].tolist() == [1]
    a_won = vote.winner == ("model_a" if frame["system A"][0] == vote.model_a else "model_b")
    assert frame["P(A beats B) %"][0] == (100.0 if a_won else 0.0)
    assert {frame["system A"][0], frame["system B"][0]} == {SYSTEM_A, SYSTEM_B}


def test_admin_pages_closed_when_no_secret_is_configured(
    store: VotingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARNESS_ADMIN_SECRET")
    for params in ({"page": "admin"}, {"admin": ""}, {"admin": "anything"}, {"page": "results"}):
        at = _app(**params)
        assert not at.exception and not at.dataframe and not at.text_input
        assert any("disabled" in e.value for e in at.error)
