"""Load through real app processes: two ``streamlit run`` servers of the app against one PostgreSQL store, eight
headless-Chromium clients (four per server) voting at once, half with the keyboard and half with the mouse.

Each client opens its own invite link, presses "Start" and answers `VOTES_EACH` items; before every answer it
reads which assignment the page shows (the vote buttons' keys carry its id) and waits `ANSWER_AFTER_S` (a person
looks at the images; an answer faster than the app's double-press guard would rightly not count). Afterwards the
store must hold every one of those answers exactly once: one vote per shown assignment, each client's votes on
distinct items, no item past its quota, the per-item counters equal to the votes.

Sized for CI: 24 votes; on the shared 2-core development machine 27 s at load average 4 and 46 s at 15 (most of
it starting PostgreSQL and the two servers, and the first page load of eight tabs). The tabs share one browser
context, so Streamlit's frontend is fetched once per server; each tab is still its own Streamlit session.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from voting_store import VotingStore, build_store

from harness.storage.repository import Repository

pytestmark = [pytest.mark.postgres, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
N_SERVERS = 2
N_CLIENTS = 8
VOTES_EACH = 3
ANSWER_AFTER_S = 0.4
START_TIMEOUT_S = 60
_SHOWN = re.compile(r"st-key-vote-(\d+)-left")


def _require_browser() -> None:
    """Skip without Chromium/Playwright locally; fail in CI, where the setup step installs them."""
    try:
        import playwright.async_api  # noqa: F401
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
            output = proc.stdout.read().decode(errors="replace")[-2000:] if proc.stdout else ""
            raise AssertionError(f"streamlit on {base} exited with {proc.returncode}: {output}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"streamlit did not answer on {base} within {START_TIMEOUT_S} s")


@pytest.fixture
def servers(tmp_path: Path, postgres_url: str) -> Iterator[tuple[list[str], VotingStore]]:
    """Two app servers (separate processes) on one PostgreSQL store, with an item for every answer and for the item
    each client is shown after its last answer."""
    _require_browser()
    store = build_store(tmp_path, n_items=N_CLIENTS * (VOTES_EACH + 1), attention=False, url=postgres_url)
    env = {**os.environ, "HARNESS_HOME": str(tmp_path / "home")}
    env.pop("HARNESS_DB_URL", None)
    procs, bases = [], []
    try:
        for _ in range(N_SERVERS):
            port = _free_port()
            cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "app.py"),
                   "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
                   "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
                   "--", "--db", postgres_url]
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            bases.append(f"http://127.0.0.1:{port}")
        for base, proc in zip(bases, procs, strict=True):
            _wait_healthy(base, proc)
        yield bases, store
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _vote_through_the_page(context: object, base: str, token: str, keyboard: bool) -> list[int]:
    """One annotator in their own tab (their own Streamlit session): Start, then VOTES_EACH answers; returns the
    assignments that were shown."""
    page = await context.new_page()  # type: ignore[attr-defined]
    try:
        page.set_default_timeout(45_000)
        await page.goto(f"{base}/?token={token}")
        await page.get_by_role("button", name="Start").click()
        answered: list[int] = []
        for _ in range(VOTES_EACH):
            left = page.locator("[class*='st-key-vote-'][class*='-left'] button")
            await left.wait_for(state="visible")
            shown = _SHOWN.search(await page.locator("[class*='st-key-vote-'][class*='-left']").get_attribute("class") or "")
            assert shown is not None
            assignment_id = int(shown.group(1))
            await asyncio.sleep(ANSWER_AFTER_S)
            if keyboard:
                await page.keyboard.press("ArrowLeft")
            else:
                await left.click()
            answered.append(assignment_id)
            await page.locator(f".st-key-vote-{assignment_id}-left").wait_for(state="detached")  # the next page
        return answered
    finally:
        await page.close()


async def _run_clients(bases: list[str], tokens: list[str]) -> list[list[int]]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:  # one context: the tabs share the HTTP cache (Streamlit's frontend is fetched once per server)
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            return list(await asyncio.gather(*(
                _vote_through_the_page(context, bases[k % len(bases)], token, keyboard=k % 2 == 0)
                for k, token in enumerate(tokens)
            )))
        finally:
            await browser.close()


def test_eight_clients_on_two_app_servers_store_every_vote_once(servers: tuple[list[str], VotingStore]) -> None:
    bases, store = servers
    with Repository.open(store.url) as repo:
        invited = [repo.create_annotator(store.study_id, f"load-{k}") for k in range(N_CLIENTS)]

    answered = asyncio.run(_run_clients(bases, [token for _, token in invited]))

    with Repository.open(store.url) as repo:
        votes = repo.load_votes(store.study_id)
        progress = repo.progress(store.study_id)
    shown = [a for per_client in answered for a in per_client]
    assert len(shown) == len(set(shown)) == N_CLIENTS * VOTES_EACH
    assert sorted(v.assignment_id for v in votes) == sorted(shown)  # every answer stored, and stored once
    for (annotator, _), per_client in zip(invited, answered, strict=True):
        mine = [v for v in votes if v.annotator_id == annotator.annotator_id]
        assert sorted(v.assignment_id for v in mine) == sorted(per_client)
        assert len({v.item_id for v in mine}) == VOTES_EACH
    assert max(Counter(v.item_id for v in votes).values()) == 1  # votes_per_item = 1: no item past its quota
    assert sum(p.completed for p in progress.per_item) == len(votes)  # the counters agree with the votes
    assert all(p.pending == 0 or p.completed == 0 for p in progress.per_item)
