"""Human-evaluation protocols: what an annotator is asked, how, and with which worked examples.

A protocol is a frozen value object in the spirit of HEIM's ``CritiqueTaskTemplate``: the question, the instructions
(Markdown), one or two worked examples, the answer options with their keyboard shortcuts, what is shown (one image or
a ``rows × cols`` grid per side, with or without the caption) and which attention check fits it. The three protocols of
unCLIP §5.2 (photorealism, caption similarity, diversity over two 4×4 grids) are data files in ``protocols/``; every
one offers left / right / "Not sure" (← → ↓), and a study can switch "Not sure" off with `Protocol.with_tie`.

A study stores ``protocol.to_dict()`` as its snapshot, and the voting app renders from ``Protocol.from_dict(snapshot)``
only, so every vote stays pinned to the exact wording its annotator saw, even after a data file changes. A snapshot
may also carry the study's vote plan under `STUDY_PLAN_KEY` (written by `harness study create`: comparisons, target
half-width, votes per cell); it is no part of what annotators see, and `Protocol.from_dict` leaves it out.

This module is pure Python (stdlib only) so that the dashboards may import it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

OptionKey = Literal["left", "right", "tie"]
"""An answer in screen space: the left side won, the right side won, or "Not sure"."""

AttentionCheckKind = Literal["corrupted_render", "contradicting_caption", "collapsed_grid"]
"""Which attention check fits a protocol (the correct side is always the unaltered one):

- ``corrupted_render``: a real render against a visibly corrupted copy (photorealism);
- ``contradicting_caption``: a render of the shown caption against a render of a contradicting caption (caption);
- ``collapsed_grid``: 16 varied renders against 16 copies of one render (diversity).
"""

OPTION_KEYS: tuple[str, ...] = get_args(OptionKey)
ATTENTION_CHECK_KINDS: tuple[str, ...] = get_args(AttentionCheckKind)
PROTOCOLS_DIR = Path(__file__).with_name("protocols")

STUDY_PLAN_KEY = "study_plan"
"""Key of a study's protocol snapshot that holds the study's vote plan (not a protocol field; see `study_plan`)."""

SHORTCUT_SYMBOLS: dict[str, str] = {"ArrowLeft": "←", "ArrowRight": "→", "ArrowDown": "↓", "ArrowUp": "↑"}
"""Display glyphs for the ``KeyboardEvent.key`` names used as shortcuts; other keys display as themselves."""


def _check_text(owner: str, field: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{owner}: '{field}' must be a non-empty string, got {value!r}; fill it in")


@dataclass(frozen=True)
class Option:
    """One answer button."""

    key: OptionKey
    """Answer in screen space; the vote stores it together with which system was on the left."""
    label: str
    """Button text, e.g. ``"Left image"`` or ``"Not sure"``."""
    shortcut: str
    """``KeyboardEvent.key`` name of the keyboard shortcut, e.g. ``"ArrowLeft"``."""

    def __post_init__(self) -> None:
        if self.key not in OPTION_KEYS:
            raise ValueError(f"option key {self.key!r} is not one of {list(OPTION_KEYS)}; use one of those")
        _check_text(f"option {self.key!r}", "label", self.label)
        _check_text(f"option {self.key!r}", "shortcut", self.shortcut)

    @property
    def shortcut_symbol(self) -> str:
        """The shortcut as shown on the button, e.g. ``"←"``."""
        return SHORTCUT_SYMBOLS.get(self.shortcut, self.shortcut)


@dataclass(frozen=True)
class Example:
    """A worked example shown with the instructions: two described stimuli, the right answer and why."""

    caption: str | None
    """The caption shown with the example; ``None`` exactly when the protocol does not show captions."""
    description: str
    """What the example is about, one sentence."""
    left_desc: str
    """What the left image (or grid) shows."""
    right_desc: str
    """What the right image (or grid) shows."""
    answer: OptionKey
    """The answer an attentive annotator gives."""
    why: str
    """The reasoning, in one or two sentences."""

    def __post_init__(self) -> None:
        if self.caption is not None:
            _check_text("example", "caption", self.caption)
        for field in ("description", "left_desc", "right_desc", "why"):
            _check_text("example", field, getattr(self, field))
        if self.answer not in OPTION_KEYS:
            raise ValueError(f"example answer {self.answer!r} is not one of {list(OPTION_KEYS)}; use one of those")


@dataclass(frozen=True)
class Protocol:
    """A pairwise human-evaluation protocol (frozen; serialised into every study as its snapshot)."""

    name: str
    """Registry name and file stem, e.g. ``"photorealism"``."""
    version: int
    """Bumped whenever wording, options or examples change, so votes under different wordings stay apart."""
    title: str
    """Short page title."""
    question: str
    """The question shown above the two stimuli."""
    instructions: str
    """Markdown shown before the first item and on demand."""
    examples: tuple[Example, ...]
    """Worked examples (one or two)."""
    options: tuple[Option, ...]
    """Every defined option, tie included; render `active_options`, which honours `allow_tie`."""
    shows_caption: bool
    """Whether the caption is shown with the stimuli."""
    grid: tuple[int, int] | None
    """``(rows, cols)`` of the grid shown per side, e.g. ``(4, 4)``; ``None`` for one image per side."""
    allow_tie: bool
    """Whether the tie ("Not sure") option is offered in this study."""
    attention_check_kind: AttentionCheckKind
    """Which attention check fits the protocol."""

    def __post_init__(self) -> None:
        owner = f"protocol {self.name!r}"
        _check_text("protocol", "name", self.name)
        for field in ("title", "question", "instructions"):
            _check_text(owner, field, getattr(self, field))
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"{owner}: version must be an integer >= 1, got {self.version!r}")
        keys = [option.key for option in self.options]
        if len(set(keys)) != len(keys) or not {"left", "right"} <= set(keys):
            raise ValueError(f"{owner}: options must hold 'left' and 'right' once each (and 'tie' at most once), got {keys}")
        shortcuts = [option.shortcut for option in self.options]
        if len(set(shortcuts)) != len(shortcuts):
            raise ValueError(f"{owner}: two options share a shortcut in {shortcuts}; give each its own key")
        if self.allow_tie and "tie" not in keys:
            raise ValueError(f"{owner}: allow_tie is true but no 'tie' option is defined; add one or set allow_tie false")
        if self.grid is not None and (len(self.grid) != 2 or any(not isinstance(n, int) or n < 1 for n in self.grid)):
            raise ValueError(f"{owner}: grid must be (rows, cols) of positive integers or null, got {self.grid!r}")
        if self.attention_check_kind not in ATTENTION_CHECK_KINDS:
            raise ValueError(
                f"{owner}: attention_check_kind {self.attention_check_kind!r} is not one of {list(ATTENTION_CHECK_KINDS)}"
            )
        if not self.examples:
            raise ValueError(f"{owner}: needs at least one worked example")
        for example in self.examples:
            if (example.caption is not None) != self.shows_caption:
                state = "shows" if self.shows_caption else "does not show"
                raise ValueError(f"{owner} {state} captions, so every example must {'' if self.shows_caption else 'not '}"
                                 f"have one: fix example {example.description!r}")
            if example.answer not in keys:
                raise ValueError(f"{owner}: example answer {example.answer!r} is not an option in {keys}")

    # -- derived views -------------------------------------------------------------------------------------------

    @property
    def images_per_side(self) -> int:
        """Images shown per side: ``rows * cols`` for a grid, else 1."""
        return 1 if self.grid is None else self.grid[0] * self.grid[1]

    @property
    def active_options(self) -> tuple[Option, ...]:
        """The options to render in this study: all of them, minus the tie when `allow_tie` is false."""
        return tuple(option for option in self.options if self.allow_tie or option.key != "tie")

    @property
    def active_examples(self) -> tuple[Example, ...]:
        """The examples to show in this study: those whose answer is an active option."""
        return tuple(example for example in self.examples if example.answer in self.answer_keys)

    @property
    def answer_keys(self) -> tuple[OptionKey, ...]:
        """Keys of `active_options`: the answers a vote may record."""
        return tuple(option.key for option in self.active_options)

    def option(self, key: str) -> Option:
        """Return the active option with this key.

        Raises:
            ValueError: if ``key`` is not an active option (e.g. ``"tie"`` after ``with_tie(False)``).
        """
        for option in self.active_options:
            if option.key == key:
                return option
        raise ValueError(f"protocol {self.name!r} has no active option {key!r}; valid answers are {list(self.answer_keys)}")

    def with_tie(self, allow: bool) -> Protocol:
        """Return a copy that offers (``True``) or withholds (``False``) the "Not sure" option.

        Raises:
            ValueError: if ``allow`` is true and the protocol defines no tie option.
        """
        return dataclasses.replace(self, allow_tie=bool(allow))

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the canonical JSON snapshot: equal exactly when everything an annotator sees is equal."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    # -- serialisation -------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready snapshot (tuples become lists); ``Protocol.from_dict`` inverts it exactly."""
        data = dataclasses.asdict(self)
        data["examples"] = [dict(example) for example in data["examples"]]
        data["options"] = [dict(option) for option in data["options"]]
        data["grid"] = None if self.grid is None else list(self.grid)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Protocol:
        """Build a protocol from a snapshot or a data file's contents.

        A study snapshot's `STUDY_PLAN_KEY` entry is left out (it is the study's, not the protocol's).

        Raises:
            ValueError: on missing or unknown keys (with a did-you-mean) or invalid values.
        """
        if isinstance(data, Mapping) and STUDY_PLAN_KEY in data:
            data = {key: value for key, value in data.items() if key != STUDY_PLAN_KEY}
        fields = _checked_fields(cls, data, "protocol")
        examples = tuple(Example(**_checked_fields(Example, item, "example")) for item in fields["examples"])
        options = tuple(Option(**_checked_fields(Option, item, "option")) for item in fields["options"])
        grid = fields["grid"]
        return cls(
            **{
                **fields,
                "examples": examples,
                "options": options,
                "grid": None if grid is None else tuple(grid),
            }
        )


def study_plan(snapshot: Mapping[str, Any]) -> dict[str, Any] | None:
    """The vote plan a study's protocol snapshot carries (`STUDY_PLAN_KEY`), or ``None`` for studies made without one
    (older studies, the admin page)."""
    plan = snapshot.get(STUDY_PLAN_KEY)
    return dict(plan) if isinstance(plan, Mapping) else None


def _checked_fields(cls: type, data: object, what: str) -> dict[str, Any]:
    """Return ``data`` as a dict after checking its keys are exactly the dataclass fields of ``cls``."""
    if not isinstance(data, Mapping):
        # A JSON value of the wrong shape is bad data, reported like every other protocol-file error.
        raise ValueError(f"{what} must be a mapping (JSON object), got {type(data).__name__}")  # noqa: TRY004
    names = [field.name for field in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys are {names}"
            raise ValueError(f"{what}: unknown key {key!r}; {hint}")
    missing = [name for name in names if name not in data]
    if missing:
        raise ValueError(f"{what}: missing key(s) {missing}; add them")
    return dict(data)


# -- registry of bundled protocols ------------------------------------------------------------------------------


def load_protocol_file(path: str | Path) -> Protocol:
    """Load and validate one protocol JSON file.

    Raises:
        ValueError: if the file is not valid JSON or not a valid protocol.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"protocol file {path}: invalid JSON ({exc}); fix the file") from exc
    try:
        return Protocol.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"protocol file {path}: {exc}") from exc


@functools.lru_cache(maxsize=1)
def _bundled() -> dict[str, Protocol]:
    protocols: dict[str, Protocol] = {}
    for path in sorted(PROTOCOLS_DIR.glob("*.json")):
        protocol = load_protocol_file(path)
        if protocol.name != path.stem:
            raise ValueError(f"protocol file {path}: name {protocol.name!r} differs from the file stem; rename one")
        protocols[protocol.name] = protocol
    return protocols


def list_protocols() -> list[str]:
    """Return the names of the bundled protocols, sorted."""
    return sorted(_bundled())


def get_protocol(name: str) -> Protocol:
    """Return the bundled protocol called ``name``.

    Raises:
        ValueError: for an unknown name, with the closest known name or the list of known names.
    """
    protocols = _bundled()
    if name in protocols:
        return protocols[name]
    close = difflib.get_close_matches(name, list(protocols), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known protocols are {sorted(protocols)}"
    raise ValueError(f"unknown protocol {name!r}; {hint}")
