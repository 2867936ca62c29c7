"""End to end in a real browser: `streamlit run` on a loopback port, Debian's headless Chromium driven by Playwright.

An annotator opens an invite link, reads the instructions, votes once with the keyboard (←) and once with the
mouse; the test checks the rows in the store and that nothing identifying a system (system ids, run id, image
sha256s) is in the page HTML, in any image ``src`` or in any URL the browser requested. The admin opens the Results
page of the paper's comparison (`paper_votes`) at 1280×900: the headline plot is shown, Table 1 is there, the votes
are marked simulated, and the page does not scroll sideways.

Set ``HARNESS_SCREENSHOT_DIR`` to keep screenshots of the vote page and the Results page there.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paper_votes import build_paper_store
from voting_store import VotingStore, build_store

from harness.storage.repository import Repository

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT_S = 45
ADMIN_SECRET = "browser-test-secret"
LOOK_MS = 400
"""How long the tests' evaluator looks at an item before answering (more than the page's 300 ms minimum)."""


def _require_browser() -> None:
    """Skip without Chromium/Playwright locally; fail in CI, where the setup step installs them."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the Python package playwright"
    else:
        missing = "" if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK) else CHROMIUM
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{missing} is missing; CI must install it (apt-get install chromium, pip install playwright)")
        pytest.skip(f"{missing} is missing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}: {proc.stdout.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"streamlit did not answer on {base} within {START_TIMEOUT_S} s")


@contextlib.contextmanager
def _serve(url: str, tmp_path: Path) -> Iterator[str]:
    """`streamlit run dashboards/app.py` on a free loopback port against the store at ``url``; yields its base URL."""
    port = _free_port()
    env = {**os.environ, "HARNESS_ADMIN_SECRET": ADMIN_SECRET, "HARNESS_HOME": str(tmp_path / "home")}
    env.pop("HARNESS_DB_URL", None)
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "app.py"),
           "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--", "--db", url]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _launch(pw: Any) -> Any:
    return pw.chromium.launch(
        executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, VotingStore]]:
    _require_browser()
    store = build_store(tmp_path)
    with _serve(store.url, tmp_path) as base:
        yield base, store


def test_vote_with_keyboard_and_mouse_in_chromium(served: tuple[str, VotingStore], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, store = served
    with Repository.open(store.url) as repo:
        annotator, token = repo.create_annotator(store.study_id, "browser")
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = _launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            page.on("request", lambda r: requested.append(r.url))

            page.goto(f"{base}/?token={token}")
            page.get_by_role("button", name="Start").click()
            expect(page.get_by_text(f"Item 1 of {store.n_items}", exact=True)).to_be_visible()
            stimuli = page.locator("img[alt$=' image']")
            expect(stimuli).to_have_count(2)
            first_srcs = [stimuli.nth(k).get_attribute("src") or "" for k in range(2)]
            _assert_blind(page.content(), page, store)
            shot_dir = Path(os.environ.get("HARNESS_SCREENSHOT_DIR") or tmp_path)
            shot_dir.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot_dir / "vote_page.png"), full_page=True)

            with Repository.open(store.url) as repo:
                shown = repo.next_item_for(annotator.annotator_id, store.study_id)
            assert shown is not None
            expect(page.locator(f".st-key-vote-{shown[0].assignment_id}-left button")).to_be_visible()
            page.wait_for_timeout(LOOK_MS)  # an evaluator looks before answering (min_response_ms is 300)
            page.keyboard.press("ArrowLeft")  # keyboard vote
            expect(page.get_by_text(f"Item 2 of {store.n_items}", exact=True)).to_be_visible()
            expect(stimuli.first).not_to_have_attribute("src", first_srcs[0])  # the next item is shown
            expect(stimuli).to_have_count(2)
            _assert_blind(page.content(), page, store)

            with Repository.open(store.url) as repo:  # the item now shown is the annotator's pending assignment
                pending = repo.next_item_for(annotator.annotator_id, store.study_id)
            assert pending is not None
            # click once the rerun has replaced the buttons (a click on the previous item's stale button would,
            # rightly, not count a second vote for it)
            button = page.locator(f".st-key-vote-{pending[0].assignment_id}-right button")
            expect(button).to_have_text(re.compile("Right image"))
            page.wait_for_timeout(LOOK_MS)
            button.click()  # mouse vote
            expect(page.get_by_text(f"Item 3 of {store.n_items}", exact=True)).to_be_visible()
            _assert_blind(page.content(), page, store)
        finally:
            browser.close()

    with Repository.open(store.url) as repo:
        votes = repo.load_votes(store.study_id)
    assert [v.choice for v in votes] == ["left", "right"]
    assert {v.annotator_id for v in votes} == {annotator.annotator_id}
    assert [v.assignment_id for v in votes] == [shown[0].assignment_id, pending[0].assignment_id]  # what was on screen
    assert all(v.response_ms > 0 for v in votes)
    for v in votes:
        shown_left = v.left_model
        assert v.winner == ("tie" if v.choice == "tie" else
                            ("model_a" if (v.choice == "left") == (shown_left == v.model_a) else "model_b"))
    leaks = [u for u in requested if any(s in u for s in store.secrets)]
    assert not leaks, leaks


def _item_shown(page: Any, k: int) -> None:
    """Wait until the evaluator's item k is fully shown: its two stimuli decoded and the rerun finished."""
    page.wait_for_function(
        """k => { const imgs = document.querySelectorAll(`img[data-item="${k}"]`);
                  return imgs.length === 2 && [...imgs].every(i => i.complete && i.naturalWidth > 0)
                         && !document.querySelector('[data-testid="stElementContainer"][data-stale="true"]'); }""",
        arg=k, polling="raf")


def test_double_press_stores_one_vote_and_keeps_the_next_item(served: tuple[str, VotingStore]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, store = served
    with Repository.open(store.url) as repo:
        annotator, token = repo.create_annotator(store.study_id, "double")
    with sync_playwright() as pw:
        browser = _launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            page.goto(f"{base}/?token={token}")
            page.get_by_role("button", name="Start").click()
            _item_shown(page, 1)
            page.wait_for_timeout(LOOK_MS)
            page.keyboard.press("ArrowLeft")
            page.wait_for_timeout(250)  # the second press of a double press, 250 ms later
            page.keyboard.press("ArrowLeft")
            _item_shown(page, 2)
            # whichever item the second press landed on (item 2 too soon, or item 1 again), it is not stored
            # and says so
            expect(page.get_by_text(re.compile("too soon to have looked at them|had already been answered"))
                   ).to_be_visible()
            page.wait_for_timeout(LOOK_MS)
            with Repository.open(store.url) as repo:
                assert len(repo.load_votes(store.study_id)) == 1
                pending = repo.next_item_for(annotator.annotator_id, store.study_id)
                assert pending is not None and repo.annotator_progress(annotator.annotator_id).completed == 1
            expect(page.get_by_text(f"Item 2 of {store.n_items}", exact=True)).to_be_visible()  # not consumed
            expect(page.locator(f".st-key-vote-{pending[0].assignment_id}-right button")).to_be_visible()
            page.keyboard.press("ArrowRight")  # a considered answer to item 2 counts
            _item_shown(page, 3)
            expect(page.get_by_text(re.compile("too soon|already been answered"))).to_have_count(0)
        finally:
            browser.close()
    with Repository.open(store.url) as repo:
        votes = repo.load_votes(store.study_id)
    assert [v.choice for v in votes] == ["left", "right"]
    assert votes[1].assignment_id == pending[0].assignment_id and all(v.response_ms >= 300 for v in votes)


def test_stale_tab_shows_that_its_answer_was_not_counted(served: tuple[str, VotingStore]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, store = served
    with Repository.open(store.url) as repo:
        _, token = repo.create_annotator(store.study_id, "two-tabs")
    with sync_playwright() as pw:
        browser = _launch(pw)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(20_000)
            first, second = context.new_page(), context.new_page()
            first.goto(f"{base}/?token={token}")
            first.get_by_role("button", name="Start").click()
            _item_shown(first, 1)
            second.goto(f"{base}/?token={token}")  # a second tab on the same item
            _item_shown(second, 1)
            first.wait_for_timeout(LOOK_MS)
            first.keyboard.press("ArrowLeft")  # answered in the first tab
            _item_shown(first, 2)
            second.bring_to_front()
            second.keyboard.press("ArrowRight")  # the stale tab answers the same item
            _item_shown(second, 2)
            expect(second.get_by_text(re.compile("had already been answered .* not counted"))).to_be_visible()
            expect(first.get_by_text(re.compile("already been answered"))).to_have_count(0)
        finally:
            browser.close()
    with Repository.open(store.url) as repo:
        assert [v.choice for v in repo.load_votes(store.study_id)] == ["left"]


def _assert_blind(html: str, page: object, store: VotingStore) -> None:
    """No system id, run id or sha256 in the DOM; every stimulus is an inline PNG."""
    found = [s for s in store.secrets if s in html]
    assert not found, f"page HTML reveals {found[:3]}"
    srcs = page.eval_on_selector_all("img", "els => els.map(e => e.getAttribute('src') || '')")  # type: ignore[attr-defined]
    for src in srcs:
        assert not any(s in src for s in store.secrets)
    stimuli = page.eval_on_selector_all("img[alt$=' image']", "els => els.map(e => e.src)")  # type: ignore[attr-defined]
    assert stimuli and all(s.startswith("data:image/png;base64,") for s in stimuli)


def test_results_page_shows_the_headline_plot_at_1280_without_horizontal_scroll(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    _require_browser()
    url = f"sqlite:///{tmp_path / 'paper.db'}"
    build_paper_store(url, tmp_path)
    with _serve(url, tmp_path) as base, sync_playwright() as pw:
        browser = _launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(f"{base}/?page=results&admin={ADMIN_SECRET}")
            plot = page.locator("img[alt^='P(unCLIP beats GLIDE) against the guidance scale']")
            expect(plot).to_be_visible(timeout=120_000)  # the first run imports pandas, scipy, matplotlib
            plot.scroll_into_view_if_needed()
            size = plot.evaluate("img => [img.complete, img.naturalWidth, img.getBoundingClientRect().width]")
            assert size[0] and size[1] > 400 and size[2] > 400, size  # a real picture, shown large enough to read
            expect(page.get_by_text("Table 1: P(unCLIP beats GLIDE)")).to_be_visible()
            expect(page.get_by_text("P(unCLIP (diffusion prior), g = 3 beats GLIDE, g = 3)").first).to_be_visible()
            expect(page.get_by_text("Simulated votes").first).to_be_visible()
            widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert widths[0] <= widths[1], f"the Results page scrolls sideways at 1280 px: {widths}"
            main = page.evaluate("(() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                                 " return m ? [m.scrollWidth, m.clientWidth] : null; })()")
            assert main is not None and main[0] <= main[1], f"the app's main block scrolls sideways: {main}"
            shot_dir = Path(os.environ.get("HARNESS_SCREENSHOT_DIR") or tmp_path)
            shot_dir.mkdir(parents=True, exist_ok=True)
            page.set_viewport_size({"width": 1280, "height": 2400})  # the app scrolls inside its main block
            expect(plot).to_be_visible()
            page.screenshot(path=str(shot_dir / "results_page.png"), full_page=True)
        finally:
            browser.close()

