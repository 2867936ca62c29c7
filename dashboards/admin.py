"""The admin page (studies, invites, progress, export), behind the secret; the results page is `dashboards.results`.

Access: the admin secret comes from ``HARNESS_ADMIN_SECRET`` (or ``--admin-secret`` after ``--``); it is checked
with `hmac.compare_digest` against ``?admin=SECRET`` or a password field, and a session that passed keeps access.
Without a configured secret both pages stay closed.

Every table is read from the store on every rerun (no `st.cache_data`): what the admin sees is the store now. The
vote export is built only when a download button is clicked.
"""

from __future__ import annotations

import functools
import hmac
import os
from urllib.parse import urlsplit

import streamlit as st

from dashboards import create_study, tables
from harness.storage.records import ItemRecord, StudyRecord
from harness.storage.repository import AssignmentError, Repository

_AUTH = "admin_ok"
"""Session-state key: this session has given the admin secret."""
_INVITES = "admin_invites"
"""Session-state key: the invite links created last (tokens are shown once, never stored in clear)."""

DEFAULT_BASE_URL = "http://localhost:8501"
PUBLIC_URL_ENV = "HARNESS_PUBLIC_URL"
"""Set by `harness app` (``--public-url``, else the address it serves on): the base of invite links."""


def served_base_url(public_url: str | None, page_url: str | None) -> str:
    """The default base of invite links: the app's public URL when configured, else the origin of the page the
    admin is looking at (``scheme://host:port`` as the browser reached it), else `DEFAULT_BASE_URL`."""
    if public_url and public_url.strip():
        return public_url.strip().rstrip("/")
    parts = urlsplit(page_url or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return DEFAULT_BASE_URL


def is_admin(secret: str | None, given: str | None) -> bool:
    """Whether this session may see the admin pages: a configured ``secret`` and a matching ``given`` (or a session
    that matched before)."""
    if not secret:
        return False
    if st.session_state.get(_AUTH):
        return True
    if given and hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8")):
        st.session_state[_AUTH] = True
        return True
    return False


def require_admin(secret: str | None, given: str | None) -> bool:
    """Render the refusal / sign-in form unless the session is admin; returns whether it is."""
    if is_admin(secret, given):
        return True
    st.title("Admin")
    if not secret:
        st.error("The admin pages are disabled: start the app with HARNESS_ADMIN_SECRET set (`harness app` does).")
        return False
    if given:
        st.error("Wrong admin secret.")
    with st.form("admin-login"):
        typed = st.text_input("Admin secret", type="password", key="admin_secret_input")
        submitted = st.form_submit_button("Sign in")
    if submitted and typed and hmac.compare_digest(typed.encode("utf-8"), secret.encode("utf-8")):
        st.session_state[_AUTH] = True
        st.rerun()
    elif submitted:
        st.error("Wrong admin secret.")
    return False


def invite_url(base_url: str, token: str) -> str:
    """``BASE/?token=TOKEN``.

    Raises:
        ValueError: ``base_url`` is not an http(s) URL with a host.
    """
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base URL {base_url!r} is not an http(s) URL; use e.g. {DEFAULT_BASE_URL}")
    return f"{base_url.strip().rstrip('/')}/?token={token}"


def _items_by_id(repo: Repository, studies: list[StudyRecord]) -> dict[int, ItemRecord]:
    return {i.item_id: i for s in studies for i in repo.list_items(s.study_id)}


def render_admin(repo: Repository) -> None:
    """Studies with status and open/close, the create-a-study form, invites, per-annotator and per-item progress,
    vote export."""
    st.title("Admin")
    studies = repo.list_studies()
    if studies:
        progress = {s.study_id: repo.progress(s.study_id) for s in studies}
        st.subheader("Studies")
        st.dataframe(tables.study_table(studies, progress), hide_index=True)
    else:
        st.info("No studies yet: create one below, or with `harness run CONFIG` / `harness study create CONFIG`.")
    with st.expander("Create a study", expanded=not studies):
        create_study.render_create_study(repo)
    if not studies:
        return

    names = {s.study_id: f"{s.study_id}: {s.name} ({s.status})" for s in studies}
    study_id = st.selectbox("Study", list(names), format_func=names.__getitem__, key="admin_study")
    study = next(s for s in studies if s.study_id == study_id)
    _status_controls(repo, study)
    _invite_controls(repo, study)
    items = {i.item_id: i for i in repo.list_items(study.study_id)}
    p = progress[study.study_id]
    st.subheader("Progress per annotator")
    checks = f"{p.attention_passed}/{p.attention_checks}" if p.attention_checks else "none yet"
    st.caption(f"{p.votes} of {p.votes_target} votes; attention checks passed: {checks}")
    st.dataframe(tables.annotator_table(p), hide_index=True)
    st.subheader("Progress per item")
    st.dataframe(tables.item_table(p, items), hide_index=True)
    _export(repo, sum(progress[s.study_id].votes for s in studies))


def _set_status(repo: Repository, study_id: int, status: str) -> None:
    try:
        repo.set_study_status(study_id, status)  # type: ignore[arg-type]
    except AssignmentError as exc:
        st.session_state["admin_flash"] = str(exc)


def _status_controls(repo: Repository, study: StudyRecord) -> None:
    flash = st.session_state.pop("admin_flash", None)
    if flash:
        st.error(flash)
    cols = st.columns([1, 1, 4])
    cols[0].button("Open study", key=f"open-{study.study_id}", disabled=study.status == "open",
                   on_click=_set_status, args=(repo, study.study_id, "open"))
    cols[1].button("Close study", key=f"close-{study.study_id}", disabled=study.status == "closed",
                   on_click=_set_status, args=(repo, study.study_id, "closed"))
    cols[2].caption(f"Status: **{study.status}**")


def _invite_controls(repo: Repository, study: StudyRecord) -> None:
    st.subheader("Invite annotators")
    cols = st.columns([2, 1, 3])
    name = cols[0].text_input("Name (label for you)", value="annotator", key="invite_name")
    n = int(cols[1].number_input("How many", min_value=1, max_value=500, value=1, step=1, key="invite_n"))
    default = served_base_url(os.environ.get(PUBLIC_URL_ENV), getattr(st.context, "url", None))
    base = cols[2].text_input("Base URL of this app", value=default, key="invite_base")
    if st.button("Create invite links", key="invite_create"):
        try:
            invite_url(base, "x")
        except ValueError as exc:
            st.error(str(exc))
        else:
            links = []
            for k in range(n):
                label = name if n == 1 else f"{name}-{k + 1}"
                record, token = repo.create_annotator(study.study_id, label)
                links.append(f"{record.name}\t{invite_url(base, token)}")
            st.session_state[_INVITES] = (study.study_id, links)
    shown = st.session_state.get(_INVITES)
    if shown and shown[0] == study.study_id:
        st.caption("Copy these now: tokens are stored only as hashes and cannot be shown again.")
        st.code("\n".join(shown[1]), language=None)


def export_bytes(repo: Repository, fmt: str) -> bytes:
    """Every vote of the store as the vote table (`tables.vote_table`), encoded as ``"csv"`` or ``"parquet"``."""
    studies = repo.list_studies()
    table = tables.vote_table(repo.load_votes(), _items_by_id(repo, studies), {s.study_id: s for s in studies})
    return tables.to_csv_bytes(table) if fmt == "csv" else tables.to_parquet_bytes(table)


def _export(repo: Repository, votes: int) -> None:
    """Download buttons whose files are built when clicked (Streamlit runs the callable then): reading and encoding
    every vote on each rerun made the admin page O(votes) — 2.7 of its 2.9 s per rerun on a store of 84,000 votes."""
    st.subheader("Export votes")
    st.caption(f"{votes} votes over all studies, in the vote-table format (model_a, model_b, winner, annotator, "
               "prompt, protocol, left, expected, latency_ms, ...); the file is built when you click.")
    cols = st.columns(2)
    cols[0].download_button("Download CSV", functools.partial(export_bytes, repo, "csv"), file_name="votes.csv",
                            mime="text/csv", key="export_csv")
    cols[1].download_button("Download Parquet", functools.partial(export_bytes, repo, "parquet"),
                            file_name="votes.parquet", mime="application/octet-stream", key="export_parquet")
