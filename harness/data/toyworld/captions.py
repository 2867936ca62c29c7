"""The toy world's caption grammar: what a caption says (`CaptionSpec`), its paraphrases, and a parser back.

Grammar (``[x]`` optional, ``|`` alternatives, words from `vocab`)::

    caption  := [prefix] body
    prefix   := "there is" | "a scene with" | "a picture of" | "an image showing"
    body     := np                                     one object
              | np "and" np                            two objects
              | np rel np                              two objects and their relation
              | np "," np ("and" | "," "and") np       three objects
              | np rel np "," ("and" | "plus") np      three objects, a relation between the first two
    np       := ("a" | "an") [size] [colour] shape
    rel      := "to the left of" | "left of" | "on the left of" | "to the right of" | "right of"
              | "on the right of" | "above" | "over" | "below" | "under" | "beneath"

A caption names every object of its scene, in the scene's object order, always with its shape; colour and size
are named or left open (then drawn at random by the scene sampler). A relation, when present, is between the
first object (subject) and the second. `caption_text` draws one paraphrase of a `CaptionSpec`; `parse_caption`
inverts every paraphrase (case and a final full stop are ignored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from harness.data.toyworld.vocab import COLOUR_NAMES, RELATIONS, SHAPES, SIZES, check_word

MAX_OBJECTS: Final[int] = 3

PREFIXES_SINGULAR: Final[tuple[str, ...]] = ("", "there is ", "a picture of ", "an image showing ")
PREFIXES_PLURAL: Final[tuple[str, ...]] = ("", "a scene with ", "a picture of ", "an image showing ")
RELATION_PHRASES: Final[dict[str, tuple[str, ...]]] = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
THIRD_OBJECT_JOINS: Final[tuple[str, ...]] = (" and ", ", and ")
THIRD_AFTER_RELATION_JOINS: Final[tuple[str, ...]] = (", and ", ", plus ")

EXAMPLE: Final[str] = "'a small red circle to the left of a blue star'"


@dataclass(frozen=True)
class ObjectMention:
    """One object as a caption names it.

    Attributes:
        shape: a word of `vocab.SHAPES` (always named).
        colour: a word of `vocab.COLOURS`, or None when the caption leaves it open.
        size: a word of `vocab.SIZES`, or None when the caption leaves it open.
    """

    shape: str
    colour: str | None = None
    size: str | None = None

    def __post_init__(self) -> None:
        check_word("shape", self.shape, SHAPES)
        if self.colour is not None:
            check_word("colour", self.colour, COLOUR_NAMES)
        if self.size is not None:
            check_word("size", self.size, SIZES)

    def fixed(self) -> tuple[str, ...]:
        """Names of the attributes this mention fixes, e.g. ``("shape", "colour")``."""
        return ("shape",) + (("colour",) if self.colour else ()) + (("size",) if self.size else ())

    def phrase(self) -> str:
        """The noun phrase, with its article: ``"a small red circle"``, ``"an orange star"``."""
        words = [w for w in (self.size, self.colour, self.shape) if w]
        article = "an" if words[0][0] in "aeiou" else "a"
        return " ".join([article, *words])


@dataclass(frozen=True)
class CaptionSpec:
    """What a caption asserts about a scene (independent of its wording).

    Attributes:
        objects: 1 to `MAX_OBJECTS` mentions, in the scene's object order.
        relation: a word of `vocab.RELATIONS` relating ``objects[0]`` (subject) to ``objects[1]``, or None.
    """

    objects: tuple[ObjectMention, ...]
    relation: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise ValueError(f"a toy-world caption names 1 to {MAX_OBJECTS} objects, got {len(self.objects)}")
        if self.relation is not None:
            check_word("relation", self.relation, RELATIONS)
            if len(self.objects) < 2:
                raise ValueError("a relation needs at least two objects in the caption")

    def fixed(self) -> dict[str, Any]:
        """Which attributes the caption fixes: ``{"count": True, "objects": [[...], ...], "relation": bool}``."""
        return {
            "count": True,
            "objects": [list(m.fixed()) for m in self.objects],
            "relation": self.relation is not None,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; `from_dict` inverts it."""
        return {
            "objects": [{"shape": m.shape, "colour": m.colour, "size": m.size} for m in self.objects],
            "relation": self.relation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptionSpec:
        """Inverse of `to_dict`."""
        objects = tuple(ObjectMention(o["shape"], o.get("colour"), o.get("size")) for o in data["objects"])
        return cls(objects=objects, relation=data.get("relation"))


def caption_text(spec: CaptionSpec, rng: np.random.Generator) -> str:
    """One paraphrase of ``spec``, drawn with ``rng`` (lower case, no final full stop).

    Args:
        spec: what the caption must say.
        rng: source of the paraphrase choices (prefix, relation wording, list punctuation).

    Returns:
        A caption that `parse_caption` maps back to ``spec``.
    """
    phrases = [m.phrase() for m in spec.objects]
    if spec.relation is not None:
        rel = _choose(rng, RELATION_PHRASES[spec.relation])
        body = f"{phrases[0]} {rel} {phrases[1]}"
        if len(phrases) == 3:
            body += _choose(rng, THIRD_AFTER_RELATION_JOINS) + phrases[2]
        prefixes = PREFIXES_SINGULAR
    elif len(phrases) == 1:
        body, prefixes = phrases[0], PREFIXES_SINGULAR
    elif len(phrases) == 2:
        body, prefixes = f"{phrases[0]} and {phrases[1]}", PREFIXES_PLURAL
    else:
        body = f"{phrases[0]}, {phrases[1]}{_choose(rng, THIRD_OBJECT_JOINS)}{phrases[2]}"
        prefixes = PREFIXES_PLURAL
    return _choose(rng, prefixes) + body


def _choose(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


# --- parsing -------------------------------------------------------------------------------------------------------

_PREFIX_TOKENS: Final[tuple[tuple[str, ...], ...]] = tuple(
    tuple(p.split()) for p in sorted(set(PREFIXES_SINGULAR + PREFIXES_PLURAL), key=len, reverse=True) if p
)
_RELATION_TOKENS: Final[tuple[tuple[tuple[str, ...], str], ...]] = tuple(
    sorted(
        ((tuple(phrase.split()), rel) for rel, phrases in RELATION_PHRASES.items() for phrase in phrases),
        key=lambda item: len(item[0]),
        reverse=True,
    )
)
_ALLOWED_TEXT = re.compile(r"[a-z ,]*")


class _Parser:
    """Recursive-descent parser over the caption's words (and commas)."""

    def __init__(self, text: str) -> None:
        self.text = text
        cleaned = text.strip().lower().removesuffix(".").strip()
        if not cleaned:
            raise ValueError(f"not a toy-world caption: empty text; captions look like {EXAMPLE}")
        if not _ALLOWED_TEXT.fullmatch(cleaned):
            bad = next(ch for ch in cleaned if not _ALLOWED_TEXT.fullmatch(ch))
            raise self.error(f"unexpected character {bad!r}")
        self.tokens: list[str] = re.findall(r"[a-z]+|,", cleaned)
        self.pos = 0

    def error(self, problem: str) -> ValueError:
        return ValueError(f"not a toy-world caption: {self.text!r}: {problem}; captions look like {EXAMPLE}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def accept(self, words: tuple[str, ...]) -> bool:
        if tuple(self.tokens[self.pos : self.pos + len(words)]) == words:
            self.pos += len(words)
            return True
        return False

    def expect(self, what: str) -> ValueError:
        word = self.peek()
        found = f"found {word!r} (word {self.pos + 1})" if word is not None else "found the end of the text"
        return self.error(f"expected {what}, {found}")

    def parse(self) -> CaptionSpec:
        for prefix in _PREFIX_TOKENS:
            if self.accept(prefix):
                break
        objects = [self.noun_phrase()]
        relation = self.relation()
        if relation is not None:
            objects.append(self.noun_phrase())
            if self.peek() is not None:
                if not (self.accept((",", "and")) or self.accept((",", "plus"))):
                    raise self.expect("', and' or ', plus' before a third object")
                objects.append(self.noun_phrase())
        elif self.accept(("and",)):
            objects.append(self.noun_phrase())
        elif self.accept((",",)):
            objects.append(self.noun_phrase())
            if not (self.accept(("and",)) or self.accept((",", "and"))):
                raise self.expect("'and' before the third object")
            objects.append(self.noun_phrase())
        if self.peek() is not None:
            raise self.expect("the end of the caption")
        return CaptionSpec(objects=tuple(objects), relation=relation)

    def relation(self) -> str | None:
        for words, rel in _RELATION_TOKENS:
            if self.accept(words):
                return rel
        return None

    def noun_phrase(self) -> ObjectMention:
        if not (self.accept(("a",)) or self.accept(("an",))):
            raise self.expect("'a' or 'an'")
        size = self.word(SIZES)
        colour = self.word(COLOUR_NAMES)
        shape = self.word(SHAPES)
        if shape is None:
            raise self.expect(f"a shape ({', '.join(SHAPES)})")
        return ObjectMention(shape=shape, colour=colour, size=size)

    def word(self, options: tuple[str, ...]) -> str | None:
        token = self.peek()
        if token in options:
            self.pos += 1
            return token
        return None


def parse_caption(text: str) -> CaptionSpec:
    """The `CaptionSpec` a caption of the toy-world grammar asserts.

    Args:
        text: a caption such as ``"there is a small blue square to the left of a green star"``; case and a final
            full stop are ignored.

    Returns:
        The spec; ``parse_caption(caption_text(spec, rng)) == spec`` for every spec and paraphrase.

    Raises:
        ValueError: ``text`` is outside the grammar; the message names the first word that does not fit.
    """
    return _Parser(text).parse()
