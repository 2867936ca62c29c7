"""Voting-app latency: server-side stimulus rendering, and click → next item in a real headless Chromium.

1. ``stimulus_uri`` uncached: decode, compose (1 image or a 4×4 grid of 64×64 toy renders), fit to 512×512,
   re-encode as PNG, base64 — what each side of an item costs the server the first time it is shown.
2. End to end: ``streamlit run dashboards/app.py`` on a loopback port against a temp SQLite store, Debian's
   Chromium driven by Playwright; an annotator votes ``--votes`` times with the ← key, and each vote is timed
   from the key press to the moment the next item's images and progress text are on screen.

    .venv/bin/python benchmarks/bench_app.py --votes 20

Results and the machine they came from: ``benchmarks/app.md``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "dashboards")]

from voting_store import build_store

from dashboards.images import stimulus_uri
from harness.data.toyworld import render_caption
from harness.rundir import encode_png
from harness.storage.repository import Repository

PROMPTS = ("a small red circle above a blue square", "a green triangle", "a large yellow star left of a red circle")


def _render(model: str, prompt: str, k: int) -> bytes:
    seed = (zlib.crc32(model.encode()) % 1000) * 100 + k
    return encode_png(render_caption(prompt, seed=seed, size=64)[0])


def bench_stimuli(root: Path, repeats: int) -> None:
    paths = []
    for k in range(16):
        path = root / f"cell{k}.png"
        path.write_bytes(_render("bench", PROMPTS[0], k))
        paths.append(str(path))
    for label, chosen, grid in (("1 image 64x64", paths[:1], None), ("4x4 grid of 64x64", paths, (4, 4))):
        times = []
        for _ in range(repeats):
            stimulus_uri.cache_clear()
            t0 = time.perf_counter()
            uri = stimulus_uri(tuple(chosen), grid)
            times.append(time.perf_counter() - t0)
        print(f"stimulus {label:<18} median {1000 * np.median(times):6.1f} ms  data URI {len(uri) / 1024:6.1f} KiB")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_browser(root: Path, protocol: str, votes: int) -> None:
    from playwright.sync_api import expect, sync_playwright

    store = build_store(root / protocol, n_items=votes + 1, protocol=protocol, attention=False, prompts=PROMPTS,
                        render=_render)
    with Repository.open(store.url) as repo:
        annotator, token = repo.create_annotator(store.study_id, "bench")
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "app.py"), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--", "--db", store.url]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        for _ in range(200):
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
            page.goto(f"http://127.0.0.1:{port}/?token={token}")
            page.get_by_role("button", name="Start").click()
            stimuli = page.locator("img[alt$=' image']")
            times = []
            for k in range(votes):
                expect(page.get_by_text(f"{k} of {store.n_items} items done")).to_be_visible(timeout=30_000)
                expect(stimuli).to_have_count(2)
                with Repository.open(store.url) as repo:  # the item on screen is the pending assignment
                    aid = repo.next_item_for(annotator.annotator_id, store.study_id)[0].assignment_id  # type: ignore[index]
                expect(page.locator(f".st-key-vote-{aid}-left button")).to_be_visible()  # rerun has settled
                src = stimuli.first.get_attribute("src") or ""
                t0 = time.perf_counter()
                page.keyboard.press("ArrowLeft")
                expect(page.get_by_text(f"{k + 1} of {store.n_items} items done")).to_be_visible(timeout=30_000)
                expect(stimuli.first).not_to_have_attribute("src", src, timeout=30_000)
                times.append(time.perf_counter() - t0)
            browser.close()
    finally:
        proc.terminate()
        proc.wait()
    ms = 1000 * np.asarray(times)
    print(f"browser {protocol:<14} {votes} votes: key → next item median {np.median(ms):6.0f} ms, "
          f"p90 {np.percentile(ms, 90):6.0f} ms, max {ms.max():6.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench_stimuli(root, args.repeats)
        for protocol in ("photorealism", "diversity"):
            bench_browser(root, protocol, args.votes)


if __name__ == "__main__":
    main()
