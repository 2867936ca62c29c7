"""The annotator's pages: refusal, instructions with worked examples, one blinded item at a time, thank-you.

Flow for ``?token=TOKEN``: unknown token → refusal (no study content); study not open → a short notice; first
visit → the protocol snapshot's instructions and worked examples with a "Start" button; then items until
`Repository.next_item_for` returns ``None`` → "finished, thank you".

Speed (issue 14): the item (progress, question, caption, stimuli, buttons, notices) is an `st.fragment`, so an
answer reruns only the item, not the page; the answer's transaction (`Repository.submit`) also hands out the next
item, which the rerun shows without asking the store again; the stimuli are native-size PNGs encoded once per item
(`dashboards.images.item_stimuli`).

Votes are written by button callbacks (they run before the rerun that shows the next item) with the assignment id
*that was rendered* in the button's ``args``, never "the current one". Three answers are not counted, each with a
visible notice and without moving past the item on screen unless it was already answered:

- too early: less than ``min_response_ms`` (default `DEFAULT_MIN_RESPONSE_MS`, `harness app --min-response-ms`)
  after this session first rendered the item: a second key press landing on the item that the first press brought
  up; nothing is stored and the same item stays, its clock still running from its first render;
- already answered: a double press landing on the previous item's buttons, or a stale second tab; the repository
  stores nothing (`Submission.counted` is false) and the page says so, then shows the next item;
- expired or closed: the item went to someone else, or the study closed.

The response time runs from the first time this session rendered the assignment (`CLOCK`, kept in session state
by assignment id) to the click.

Blinding: the page shows the protocol's wording, the caption (when the protocol shows one), two re-encoded
``data:`` images (`dashboards.images`) and the evaluator's own position ("Item 12 of 213": their handled items + 1
of their total), never a store id. Study names, system ids, model ids, run ids and sha256s never reach the page;
store errors are shown as fixed sentences, not their text.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from dashboards.images import Stimuli, item_stimuli
from eval_protocols.human.protocol import OptionKey, Protocol
from harness.storage.records import AnnotatorRecord, Answer, AssignmentRecord, ItemRecord
from harness.storage.repository import AssignmentError, NextItem, Repository, StudyNotOpenError

DEFAULT_MIN_RESPONSE_MS = 300
"""Answers given sooner than this after the item first appeared are not stored (a double key press)."""

CLOCK: Callable[[], float] = time.monotonic
"""Seconds on a monotonic clock, for response times (tests replace it)."""

_STARTED = "vote_started"
"""Session-state key: annotator ids that pressed "Start" (or had started before) in this session."""
_SHOWN_AT = "vote_shown_at"
"""Session-state key: assignment id → `CLOCK` when this session first rendered it."""
_FLASH = "vote_flash"
"""Session-state key: one notice to show on the next render of the item, ``(kind, text)``."""
_NEXT = "vote_next"
"""Session-state key: ``(annotator id, next item)`` handed from an answer's transaction to the rerun that shows it."""

REFUSAL_TEXT = (
    "This page needs a valid invite link. If you were invited to a study, open the link you received "
    "(it ends in `?token=...`); otherwise ask the study's organiser for one."
)
EXPIRED_TEXT = "Your answer to the previous item could not be counted (it expired or was already closed). Here is the next one."
CLOSED_TEXT = "This study is not open for answers right now. Please come back later; your answers so far are saved."
ALREADY_TEXT = (
    "That item had already been answered (in another tab, or by an earlier key press), so this answer was not "
    "counted; the first one stands. Here is your next item."
)
TOO_EARLY_TEXT = (
    "That answer came {ms} ms after the images appeared, too soon to have looked at them, so it was not counted. "
    "Please look at the images and answer again."
)
def _state(key: str, default: Any) -> Any:
    if key not in st.session_state:
        st.session_state[key] = default
    return st.session_state[key]


def render_refusal() -> None:
    """The page for a missing or unknown token: no study content at all."""
    st.title("Invite link required")
    st.warning(REFUSAL_TEXT)


def render_vote_page(repo: Repository, token: str | None, *, min_response_ms: int = DEFAULT_MIN_RESPONSE_MS) -> None:
    """Render the annotator page for an invite token (refusal when it is missing or unknown).

    Args:
        min_response_ms: answers sooner than this after an item first appeared are not stored (0: all are).
    """
    annotator = repo.annotator_for_token(token) if token else None
    if annotator is None:
        render_refusal()
        return
    study = repo.get_study(annotator.study_id)
    if study is None:
        render_refusal()
        return
    try:
        protocol = Protocol.from_dict(study.protocol)
    except (TypeError, ValueError):
        st.error("This study is misconfigured (its question could not be loaded). Please tell the organiser.")
        return
    if study.status != "open":
        st.title(protocol.question)
        st.info(CLOSED_TEXT)
        return
    started: set[int] = _state(_STARTED, set())
    if annotator.annotator_id not in started:
        if _is_new(repo, annotator):
            render_instructions(protocol, annotator)
            return
        started.add(annotator.annotator_id)
    try:
        nxt = _next_item(repo, annotator.annotator_id, study.study_id)
    except StudyNotOpenError:
        st.info(CLOSED_TEXT)
        return
    if nxt is None:
        st.session_state.pop(_FLASH, None)
        render_finished(repo, annotator)
        return
    st.session_state[_NEXT] = (annotator.annotator_id, nxt)
    _item_fragment(repo, protocol, annotator, study.study_id, min_response_ms)
    with st.expander("Instructions"):
        render_instructions(protocol, annotator, with_start=False)


def _is_new(repo: Repository, annotator: AnnotatorRecord) -> bool:
    """Whether the annotator has not started yet (no assignment of theirs in the store)."""
    p = repo.annotator_progress(annotator.annotator_id)
    return p.completed + p.skipped + p.broken + p.pending == 0


def _start(annotator_id: int) -> None:
    _state(_STARTED, set()).add(annotator_id)


def render_instructions(protocol: Protocol, annotator: AnnotatorRecord, *, with_start: bool = True) -> None:
    """The protocol snapshot's instructions and worked examples, then "Start" (title and button only when
    ``with_start``; without them it is the "Instructions" panel of an item page)."""
    if with_start:
        st.title(protocol.question)  # the same words as above every item
    st.markdown(protocol.instructions)
    labels = {o.key: f"{o.label} ({o.shortcut_symbol})" for o in protocol.active_options}
    for k, ex in enumerate(protocol.active_examples, start=1):
        with st.container(border=True):
            st.markdown(f"**Example {k}: {ex.description}**")
            if ex.caption is not None:
                st.markdown(f"Caption: *{ex.caption}*")
            left, right = st.columns(2)
            left.markdown(f"**Left:** {ex.left_desc}")
            right.markdown(f"**Right:** {ex.right_desc}")
            st.markdown(f"**Answer: {labels.get(ex.answer, ex.answer)}**. {ex.why}")
    if with_start:
        st.button("Start", key="start", type="primary", on_click=_start, args=(annotator.annotator_id,))


def _response_ms(assignment_id: int) -> int | None:
    """Milliseconds since this session first rendered the assignment (``None``: it never rendered it)."""
    shown = _state(_SHOWN_AT, {}).get(assignment_id)
    return None if shown is None else max(0, round((CLOCK() - shown) * 1000))


def _answer(repo: Repository, annotator_id: int, assignment_id: int, choice: str, min_response_ms: int) -> None:
    """Button callback: record the answer to the *rendered* assignment and assign the next item, in one transaction
    (`Repository.submit`); refuse it, storing nothing, when it comes sooner than ``min_response_ms`` after the item
    first appeared in this session."""
    ms = _response_ms(assignment_id)
    if ms is None or ms < min_response_ms:
        st.session_state[_FLASH] = ("warning", TOO_EARLY_TEXT.format(ms=0 if ms is None else ms))
        return
    try:
        done = repo.submit(Answer(assignment_id, choice, ms, annotator_id))
    except StudyNotOpenError:
        st.session_state[_FLASH] = ("info", CLOSED_TEXT)
    except AssignmentError:
        st.session_state[_FLASH] = ("info", EXPIRED_TEXT)
    else:
        st.session_state[_NEXT] = (annotator_id, done.next)
        if not done.counted:
            st.session_state[_FLASH] = ("warning", ALREADY_TEXT)


def _close(repo: Repository, annotator_id: int, assignment_id: int, broken: bool) -> None:
    """Button callback: skip the rendered assignment, or report its images broken (idempotent)."""
    try:
        if broken:
            repo.report_broken(assignment_id, annotator_id=annotator_id)
            st.session_state[_FLASH] = ("info", "Thank you for the report. Here is the next item.")
        else:
            repo.skip(assignment_id, annotator_id=annotator_id)
    except AssignmentError:
        st.session_state[_FLASH] = ("info", EXPIRED_TEXT)


def _next_item(repo: Repository, annotator_id: int, study_id: int) -> NextItem:
    """The item to show: the one the answer's transaction handed out (once), else the store's answer now."""
    handed = st.session_state.pop(_NEXT, None)
    if handed is not None and handed[0] == annotator_id:
        return handed[1]
    return repo.next_item_for(annotator_id, study_id)


def _position(repo: Repository, annotator_id: int) -> tuple[int, int]:
    """``(k, n)``: the evaluator is on their k-th item of n (their own count, never a store id)."""
    p = repo.annotator_progress(annotator_id)
    handled = p.completed + p.skipped + p.broken
    return handled + 1, max(handled + p.pending + p.remaining, handled + 1)


def _stimuli(repo: Repository, protocol: Protocol, item: ItemRecord) -> Stimuli | None:
    """The item's two blinded sides, or ``None`` when an image file is missing or unreadable."""
    left_shas, right_shas = (item.images_a, item.images_b) if item.left == "a" else (item.images_b, item.images_a)
    paths = repo.image_paths([*left_shas, *right_shas])
    try:
        return item_stimuli(tuple(str(paths[sha]) for sha in left_shas), tuple(str(paths[sha]) for sha in right_shas),
                            protocol.grid)
    except (KeyError, OSError, ValueError):
        return None


def item_html(protocol: Protocol, prompt: str, stimuli: Stimuli | None, k: int, n: int) -> str:
    """The item as one HTML element (one delta per rerun, not seven): "Item k of n" with a progress bar, the
    question, the caption (when the protocol shows one) and the two stimuli side by side, each tagged
    ``data-item="k"`` (the evaluator's position; the benchmark waits for it)."""
    done = 100.0 * (k - 1) / n
    parts = [
        ('<div style="display:flex;align-items:center;gap:.75rem;margin:0 0 .25rem 0">'
        f'<span style="white-space:nowrap">Item {k} of {n}</span>'
        f'<div role="progressbar" aria-label="Item {k} of {n}" aria-valuenow="{k - 1}" aria-valuemin="0" '
        f'aria-valuemax="{n}" style="flex:1;height:.4rem;border-radius:.2rem;background:rgba(128,128,128,.25)">'
        f'<div style="width:{done:.1f}%;height:100%;border-radius:.2rem;background:#ff4b4b"></div></div></div>'),
        f'<h3 style="margin:.25rem 0 .5rem 0;padding:0">{html.escape(protocol.question)}</h3>',
    ]
    if protocol.shows_caption:
        parts.append(f'<p style="font-size:1.35rem;margin:0 0 .5rem 0">Caption: <b>“{html.escape(prompt)}”</b></p>')
    if stimuli is not None:
        imgs = "".join(
            f'<img src="{uri}" alt="{side} image" data-item="{k}" draggable="false" width="{stimuli.display_px}" '
            f'height="{stimuli.display_px}" style="width:{stimuli.display_px}px;max-width:calc(50% - .75rem);'
            'height:auto;aspect-ratio:1/1;image-rendering:pixelated;border-radius:4px"/>'
            for side, uri in (("left", stimuli.left), ("right", stimuli.right))
        )
        parts.append(f'<div style="display:flex;justify-content:space-around;gap:1.5rem">{imgs}</div>')
    return "".join(parts)


@st.fragment
def _item_fragment(repo: Repository, protocol: Protocol, annotator: AnnotatorRecord, study_id: int,
                   min_response_ms: int) -> None:
    """The item part of the page; an answer reruns only this."""
    try:
        nxt = _next_item(repo, annotator.annotator_id, study_id)
    except StudyNotOpenError:
        st.info(CLOSED_TEXT)
        return
    if nxt is None:
        st.rerun()  # the whole page: "finished"
    assignment, item = nxt
    render_item(repo, protocol, annotator, assignment, item, min_response_ms=min_response_ms)


def render_item(
    repo: Repository,
    protocol: Protocol,
    annotator: AnnotatorRecord,
    assignment: AssignmentRecord,
    item: ItemRecord,
    *,
    min_response_ms: int = DEFAULT_MIN_RESPONSE_MS,
) -> None:
    """One item: notice, "Item k of n", question, caption, the two stimuli, answer buttons (with ← → ↓), skip and
    report."""
    aid = assignment.assignment_id
    _state(_SHOWN_AT, {}).setdefault(aid, CLOCK())
    flash = st.session_state.pop(_FLASH, None)
    if flash:
        (st.warning if flash[0] == "warning" else st.info)(flash[1])
    k, n = _position(repo, annotator.annotator_id)
    stimuli = _stimuli(repo, protocol, item)
    st.html(item_html(protocol, item.prompt, stimuli, k, n))
    if stimuli is None:
        st.error("The images of this item could not be loaded. Please report it with the button below.")
    else:
        _answer_buttons(repo, protocol, annotator.annotator_id, aid, min_response_ms)
    with st.container(horizontal=True):
        st.button("Skip this item", key=f"skip-{aid}", type="tertiary", on_click=_close,
                  args=(repo, annotator.annotator_id, aid, False))
        st.button("Report a broken image", key=f"broken-{aid}", type="tertiary", on_click=_close,
                  args=(repo, annotator.annotator_id, aid, True))


def _answer_buttons(repo: Repository, protocol: Protocol, annotator_id: int, aid: int, min_response_ms: int) -> None:
    """Left / Not sure / Right buttons, each bound to its protocol shortcut (native `st.button(shortcut=...)`, which
    also shows the key, e.g. ``←``, on the button)."""
    by_key = {o.key: o for o in protocol.active_options}
    slots: tuple[OptionKey, ...] = ("left", "tie", "right")
    with st.container(horizontal=True, gap="medium"):
        for key in slots:
            option = by_key.get(key)
            if option is not None:
                st.button(option.label, key=f"vote-{aid}-{key}", type="primary" if key != "tie" else "secondary",
                          width="stretch", shortcut=option.shortcut, on_click=_answer,
                          args=(repo, annotator_id, aid, key, min_response_ms))


def render_finished(repo: Repository, annotator: AnnotatorRecord) -> None:
    """The page after the last item."""
    p = repo.annotator_progress(annotator.annotator_id)
    st.title("Finished, thank you!")
    st.success(f"You answered {p.completed} item{'s' if p.completed != 1 else ''}. There is nothing left for you "
               "in this study; you can close this page.")
