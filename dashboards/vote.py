"""The annotator's pages: refusal, instructions with worked examples, one blinded item at a time, thank-you.

Flow for ``?token=TOKEN``: unknown token → refusal (no study content); study not open → a short notice; first
visit → the protocol snapshot's instructions and worked examples with a "Start" button; then items until
`Repository.next_item_for` returns ``None`` → "finished, thank you".

Votes are written by button callbacks (they run before the rerun that shows the next item) with the assignment id
*that was rendered* in the button's ``args``, never "the current one": a double click, a rerun or a second tab hits
`Repository.record_vote_and_next` again with the same id, which returns the first vote and stores nothing (the
vote and the next assignment are one transaction, so a crash loses at most the click being saved). The response
time runs from the first time this session rendered the assignment (`time.monotonic`, kept in session state by
assignment id) to the click.

Blinding: the page shows the protocol's wording, the caption (when the protocol shows one), two re-encoded
``data:`` images (`dashboards.images`) and an opaque item number (the assignment id). Study names, system ids,
model ids, run ids and sha256s never reach the page; store errors are shown as fixed sentences, not their text.
"""

from __future__ import annotations

import html
import time
from typing import Any

import streamlit as st

from dashboards.images import stimulus_uri
from eval_protocols.human.protocol import OptionKey, Protocol
from harness.storage.records import AnnotatorRecord, AssignmentRecord, ItemRecord
from harness.storage.repository import AssignmentError, Repository, StudyNotOpenError

_STARTED = "vote_started"
"""Session-state key: annotator ids that pressed "Start" in this session."""
_SHOWN_AT = "vote_shown_at"
"""Session-state key: assignment id → `time.monotonic` when this session first rendered it."""
_FLASH = "vote_flash"
"""Session-state key: one notice to show on the next render (e.g. an expired item)."""

REFUSAL_TEXT = (
    "This page needs a valid invite link. If you were invited to a study, open the link you received "
    "(it ends in `?token=...`); otherwise ask the study's organiser for one."
)
EXPIRED_TEXT = "Your answer to the previous item could not be counted (it expired or was already closed). Here is the next one."
CLOSED_TEXT = "This study is not open for answers right now. Please come back later; your answers so far are saved."


def _state(key: str, default: Any) -> Any:
    if key not in st.session_state:
        st.session_state[key] = default
    return st.session_state[key]


def render_refusal() -> None:
    """The page for a missing or unknown token: no study content at all."""
    st.title("Invite link required")
    st.warning(REFUSAL_TEXT)


def render_vote_page(repo: Repository, token: str | None) -> None:
    """Render the annotator page for an invite token (refusal when it is missing or unknown)."""
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
    flash = st.session_state.pop(_FLASH, None)
    if flash:
        st.info(flash)
    if study.status != "open":
        st.title(protocol.title)
        st.info(CLOSED_TEXT)
        return
    started: set[int] = _state(_STARTED, set())
    if annotator.annotator_id not in started and _is_new(repo, annotator):
        render_instructions(protocol, annotator)
        return
    try:
        nxt = repo.next_item_for(annotator.annotator_id, study.study_id)
    except StudyNotOpenError:
        st.info(CLOSED_TEXT)
        return
    if nxt is None:
        render_finished(repo, annotator)
        return
    assignment, item = nxt
    render_item(repo, protocol, annotator, assignment, item)


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
        st.title(protocol.title)
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


def _response_ms(assignment_id: int) -> int:
    shown = _state(_SHOWN_AT, {}).get(assignment_id)
    return 0 if shown is None else max(0, round((time.monotonic() - shown) * 1000))


def _answer(repo: Repository, annotator_id: int, assignment_id: int, choice: str) -> None:
    """Button callback: record the answer to the *rendered* assignment and assign the next item, in one transaction
    (idempotent in the repository: a repeated call returns the first vote and the same next item)."""
    try:
        repo.record_vote_and_next(assignment_id, choice, _response_ms(assignment_id), annotator_id=annotator_id)
    except StudyNotOpenError:
        st.session_state[_FLASH] = CLOSED_TEXT
    except AssignmentError:
        st.session_state[_FLASH] = EXPIRED_TEXT


def _close(repo: Repository, annotator_id: int, assignment_id: int, broken: bool) -> None:
    """Button callback: skip the rendered assignment, or report its images broken (idempotent)."""
    try:
        if broken:
            repo.report_broken(assignment_id, annotator_id=annotator_id)
            st.session_state[_FLASH] = "Thank you for the report. Here is the next item."
        else:
            repo.skip(assignment_id, annotator_id=annotator_id)
    except AssignmentError:
        st.session_state[_FLASH] = EXPIRED_TEXT


def _progress_bar(repo: Repository, annotator_id: int) -> None:
    p = repo.annotator_progress(annotator_id)
    handled = p.completed + p.skipped + p.broken
    total = handled + p.pending + p.remaining
    st.progress(handled / total if total else 1.0, text=f"{handled} of {total} items done")


def _stimuli(repo: Repository, protocol: Protocol, item: ItemRecord) -> tuple[str, str] | None:
    """``(left, right)`` data URIs of the item, or ``None`` when an image file is missing or unreadable."""
    left_shas, right_shas = (item.images_a, item.images_b) if item.left == "a" else (item.images_b, item.images_a)
    paths = repo.image_paths([*left_shas, *right_shas])
    try:
        return tuple(  # type: ignore[return-value]
            stimulus_uri(tuple(str(paths[sha]) for sha in shas), protocol.grid) for shas in (left_shas, right_shas)
        )
    except (KeyError, OSError, ValueError):
        return None


def _image_html(uri: str, side: str) -> str:
    return (
        f'<img src="{uri}" alt="{side} image" draggable="false" '
        'style="width:100%;max-width:min(640px,62vh);aspect-ratio:1/1;image-rendering:pixelated;display:block;margin:auto;'
        'border-radius:4px;"/>'
    )


def render_item(
    repo: Repository,
    protocol: Protocol,
    annotator: AnnotatorRecord,
    assignment: AssignmentRecord,
    item: ItemRecord,
) -> None:
    """One item: progress, question, caption, the two stimuli, answer buttons (with ← → ↓), skip and report."""
    aid = assignment.assignment_id
    _state(_SHOWN_AT, {}).setdefault(aid, time.monotonic())
    _progress_bar(repo, annotator.annotator_id)
    st.subheader(protocol.question)
    if protocol.shows_caption:
        st.markdown(
            f'<p style="font-size:1.35rem;margin:0 0 .5rem 0">Caption: <b>“{html.escape(item.prompt)}”</b></p>',
            unsafe_allow_html=True,
        )
    stimuli = _stimuli(repo, protocol, item)
    if stimuli is None:
        st.error("The images of this item could not be loaded. Please report it with the button below.")
    else:
        left_col, right_col = st.columns(2, gap="medium")
        left_col.markdown(_image_html(stimuli[0], "left"), unsafe_allow_html=True)
        right_col.markdown(_image_html(stimuli[1], "right"), unsafe_allow_html=True)
        _answer_buttons(repo, protocol, annotator.annotator_id, aid)
    extra = st.columns([1, 1, 3])
    extra[0].button("Skip this item", key=f"skip-{aid}", type="tertiary", on_click=_close,
                    args=(repo, annotator.annotator_id, aid, False))
    extra[1].button("Report a broken image", key=f"broken-{aid}", type="tertiary", on_click=_close,
                    args=(repo, annotator.annotator_id, aid, True))
    extra[2].caption(f"Item {aid}")
    with st.expander("Instructions"):
        render_instructions(protocol, annotator, with_start=False)


def _answer_buttons(repo: Repository, protocol: Protocol, annotator_id: int, aid: int) -> None:
    """Left / Not sure / Right buttons, each bound to its protocol shortcut (native `st.button(shortcut=...)`, which
    also shows the key, e.g. ``←``, on the button)."""
    by_key = {o.key: o for o in protocol.active_options}
    slots: tuple[OptionKey, ...] = ("left", "tie", "right")
    cols = st.columns(len(slots))
    for col, key in zip(cols, slots):
        option = by_key.get(key)
        if option is None:
            continue
        col.button(option.label, key=f"vote-{aid}-{key}", type="primary" if key != "tie" else "secondary",
                   width="stretch", shortcut=option.shortcut, on_click=_answer, args=(repo, annotator_id, aid, key))


def render_finished(repo: Repository, annotator: AnnotatorRecord) -> None:
    """The page after the last item."""
    p = repo.annotator_progress(annotator.annotator_id)
    st.title("Finished, thank you!")
    st.success(f"You answered {p.completed} item{'s' if p.completed != 1 else ''}. There is nothing left for you "
               "in this study; you can close this page.")
    st.balloons()
