"""The voting app: ``streamlit run dashboards/app.py -- --db URL [--admin-secret S] [--min-response-ms MS]``
(or `harness app`).

Configuration: the store URL from ``--db`` or ``HARNESS_DB_URL`` (default: the SQLite file under the data dir); the
admin secret from ``--admin-secret`` or ``HARNESS_ADMIN_SECRET`` (no secret: admin and results pages stay closed);
the shortest answer time counted, in ms, from ``--min-response-ms`` or ``HARNESS_MIN_RESPONSE_MS`` (default
`dashboards.vote.DEFAULT_MIN_RESPONSE_MS`, 300: a second key press within 300 ms of the item it lands on is not
stored; 0 stores every answer).

Routing by query parameters (they survive reruns and are what invite links carry):

- ``?token=TOKEN`` → the annotator's page (`dashboards.vote`); a missing or unknown token gets a refusal with no
  study content;
- ``?admin=SECRET`` or ``?page=admin`` → the admin page; ``?page=results`` → live results (both need the secret);
- anything else → the refusal page.

One `Repository` per process and store URL (`st.cache_resource`; it is thread-safe). Reads are never cached with
`st.cache_data`, so every page shows the store as it is now.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

import streamlit as st

from dashboards import admin, results, vote
from harness.storage.repository import HarnessError, Repository


def _script_args() -> argparse.Namespace:
    """``--db`` / ``--admin-secret`` given after ``--`` to ``streamlit run`` (unknown arguments are ignored)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--db", default=None)
    parser.add_argument("--admin-secret", default=None)
    parser.add_argument("--min-response-ms", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args


@st.cache_resource(show_spinner=False)
def freeze_startup_heap() -> bool:
    """Once per process: collect, then `gc.freeze` everything allocated so far (Streamlit, SQLAlchemy, PIL, pandas,
    the repository), so later garbage collections skip it.

    Without it each answer triggered a full (generation-2) collection that walked all those objects for
    100-220 ms in the middle of the rerun, most of the key → next item latency (benchmarks/app.md). Only objects
    alive now are frozen; garbage made later is still collected.
    """
    gc.collect()
    gc.freeze()
    return True


@st.cache_resource(show_spinner=False)
def open_repository(url: str | None) -> Repository:
    """The process-wide repository of a store URL (``None``: `HARNESS_DB_URL` or the default SQLite file)."""
    return Repository.open(url)


def min_response_ms(value: str | None) -> int:
    """The configured shortest counted answer time (``None``: the default).

    Raises:
        HarnessError: not a whole number of milliseconds >= 0.
    """
    if value is None or not value.strip():
        return vote.DEFAULT_MIN_RESPONSE_MS
    try:
        ms = int(value)
    except ValueError:
        ms = -1
    if ms < 0:
        raise HarnessError(f"--min-response-ms / HARNESS_MIN_RESPONSE_MS {value!r} is not a whole number of "
                           f"milliseconds >= 0; use e.g. {vote.DEFAULT_MIN_RESPONSE_MS}")
    return ms


def main() -> None:
    """Configure the page, connect to the store and route to the requested page."""
    st.set_page_config(page_title="Image comparison", page_icon=None, layout="wide", menu_items={})
    args = _script_args()
    try:
        repo = open_repository(args.db or os.environ.get("HARNESS_DB_URL") or None)
    except HarnessError as exc:
        st.error(f"The store cannot be opened: {exc}")
        return
    freeze_startup_heap()
    params = st.query_params
    if "token" in params:
        try:
            min_ms = min_response_ms(args.min_response_ms or os.environ.get("HARNESS_MIN_RESPONSE_MS"))
        except HarnessError as exc:
            st.error(str(exc))
            return
        vote.render_vote_page(repo, params.get("token"), min_response_ms=min_ms)
        return
    page = params.get("page", "admin" if "admin" in params else "")
    if page not in ("admin", "results"):
        vote.render_refusal()
        return
    secret = args.admin_secret or os.environ.get("HARNESS_ADMIN_SECRET") or None
    if not admin.require_admin(secret, params.get("admin")):
        return
    views = ("Admin", "Results")
    view = st.sidebar.radio("Page", views, index=0 if page == "admin" else 1, key="admin_view")
    if view == "Results":
        results.render_results(repo)
    else:
        admin.render_admin(repo)


main()
