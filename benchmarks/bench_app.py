"""Voting-app latency: server-side stimulus encoding, and key press → next item fully shown in headless Chromium.

1. ``item_stimuli`` uncached: decode both sides of an item (1 image, or a 4×4 grid of 64×64 toy renders per side),
   compose, bring both to one size, re-encode as PNG, base64: what an item costs the server the first time.
2. End to end, per protocol (photorealism, caption similarity, diversity): ``streamlit run dashboards/app.py`` on a
   loopback port against a temp SQLite store of ``--items`` items, Debian's Chromium at 1280×900 driven by
   Playwright. An evaluator opens the invite link, presses Start, then answers ``--votes`` items with the ← key,
   each ``--look-ms`` after the item was fully shown (an evaluator looks before answering; it must exceed the
   page's ``min_response_ms``, 300 ms, or the answer is refused).

Latency is measured inside the page, on the page's clock: from the ``keydown`` event (a capture listener) to the
first animation frame at which the next item is *fully shown*: both stimuli of item k+1 (``img[data-item=k+1]``)
are decoded (``complete`` and ``naturalWidth > 0``) and no element of the page is stale (the rerun has finished,
so the answer buttons are the new item's). The check runs every animation frame (``polling="raf"``), so the
number is at most one frame (~17 ms) late. "Start → first item" is measured the same way from the click.

    flock /work/notes/cpu.lock .venv/bin/python benchmarks/bench_app.py --votes 30

Results and the machine they came from: ``benchmarks/app.md``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "dashboards")]

from voting_store import build_store

from dashboards.images import item_stimuli
from harness.data.toyworld import render_caption
from harness.rundir import encode_png
from harness.storage.repository import Repository

PROMPTS = ("a small red circle above a blue square", "a green triangle", "a large yellow star left of a red circle")
PROTOCOLS = ("photorealism", "caption_similarity", "diversity")

_SHOWN_JS = """
([k, t0]) => {
  const imgs = document.querySelectorAll(`img[data-item="${k}"]`);
  if (imgs.length !== 2 || ![...imgs].every(i => i.complete && i.naturalWidth > 0)) return false;
  if (document.querySelector('[data-testid="stElementContainer"][data-stale="true"]')) return false;
  return performance.now() - (t0 === null ? window.__keydown : t0);
}
"""
"""Page-side check of "item k fully shown"; returns ms since ``t0`` (or the last keydown), false until then."""

_KEYDOWN_JS = "window.addEventListener('keydown', () => { window.__keydown = performance.now(); }, true);"


_RENDERED = itertools.count()


def _render(model: str, prompt: str, k: int) -> bytes:
    """A 64×64 toy render; every call draws a new scene, so no two items share an image (no cache hits)."""
    seed = (zlib.crc32(model.encode()) % 1000) * 100_000 + next(_RENDERED) * 16 + k
    return encode_png(render_caption(prompt, seed=seed, size=64)[0])


def bench_stimuli(root: Path, repeats: int) -> None:
    paths = []
    for k in range(32):
        path = root / f"cell{k}.png"
        path.write_bytes(_render("bench", PROMPTS[0], k))
        paths.append(str(path))
    cases = (("1 image 64x64 per side", (paths[0],), (paths[1],), None),
             ("4x4 grid of 64x64 per side", tuple(paths[:16]), tuple(paths[16:]), (4, 4)))
    for label, left, right, grid in cases:
        times = []
        for _ in range(repeats):
            item_stimuli.cache_clear()
            t0 = time.perf_counter()
            stimuli = item_stimuli(left, right, grid)
            times.append(time.perf_counter() - t0)
        kib = (len(stimuli.left) + len(stimuli.right)) / 1024
        print(f"item_stimuli {label:<27} median {1000 * np.median(times):6.2f} ms  both data URIs {kib:6.1f} KiB  "
              f"{stimuli.size} px shown at {stimuli.display_px} px")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _shown(page: Any, k: int, t0: float | None = None) -> float:
    """Wait (every animation frame) until item k is fully shown; ms since ``t0`` (page clock) or the last keydown."""
    return float(page.wait_for_function(_SHOWN_JS, arg=[k, t0], polling="raf", timeout=60_000).json_value())


def bench_browser(root: Path, protocol: str, votes: int, n_items: int, look_ms: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    store = build_store(root / protocol, n_items=n_items, protocol=protocol, attention=False, prompts=PROMPTS,
                        render=_render)
    with Repository.open(store.url) as repo:
        _, token = repo.create_annotator(store.study_id, "bench")
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "app.py"), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--", "--db", store.url]
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_MIN_RESPONSE_MS"}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                         args=["--headless", "--no-sandbox", "--disable-gpu",
                                               "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(_KEYDOWN_JS)
            page.goto(f"http://127.0.0.1:{port}/?token={token}")
            start = page.get_by_role("button", name="Start")
            start.wait_for(timeout=60_000)
            page.wait_for_timeout(500)
            t0 = float(page.evaluate("performance.now()"))
            start.click()
            first = _shown(page, 1, t0)
            times = []
            for k in range(1, votes + 1):
                page.wait_for_timeout(look_ms)
                page.keyboard.press("ArrowLeft")
                times.append(_shown(page, k + 1))
            browser.close()
        with Repository.open(store.url) as repo:
            stored = len(repo.load_votes(store.study_id))
    finally:
        proc.terminate()
        proc.wait()
    if stored != votes:
        raise SystemExit(f"{protocol}: {stored} votes stored for {votes} key presses; the benchmark is invalid")
    ms = np.asarray(times)
    result = {"p50": float(np.median(ms)), "p90": float(np.percentile(ms, 90)), "max": float(ms.max()),
              "start": first}
    print(f"browser {protocol:<18} {votes} votes: key → next item shown p50 {result['p50']:5.0f} ms, "
          f"p90 {result['p90']:5.0f} ms, max {result['max']:5.0f} ms; Start → first item {first:5.0f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=30)
    parser.add_argument("--items", type=int, default=213, help="items in each study (default 213)")
    parser.add_argument("--look-ms", type=int, default=400, help="wait after an item is shown before answering")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    args = parser.parse_args()
    if args.items <= args.votes:
        raise SystemExit(f"--items {args.items} must exceed --votes {args.votes}; raise --items")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench_stimuli(root, args.repeats)
        for protocol in args.protocols.split(","):
            bench_browser(root, protocol, args.votes, args.items, args.look_ms)


if __name__ == "__main__":
    main()
