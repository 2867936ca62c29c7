"""Protocol definitions: bundled data files, snapshot round-trip, options, the tie switch, errors."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from eval_protocols.human.protocol import (
    PROTOCOLS_DIR,
    Example,
    Option,
    Protocol,
    get_protocol,
    list_protocols,
    load_protocol_file,
)

QUESTIONS = {
    "photorealism": "Which image is more photorealistic?",
    "caption_similarity": "Which image better matches the caption?",
    "diversity": "Which set of images is more diverse?",
}


def test_bundled_protocols_are_the_papers_three() -> None:
    assert list_protocols() == sorted(QUESTIONS)
    for name, question in QUESTIONS.items():
        protocol = get_protocol(name)
        assert protocol.name == name and protocol.question == question
        assert protocol.version >= 1 and protocol.allow_tie
        assert 1 <= len(protocol.examples) <= 2


def test_title_is_the_question_and_the_shapes_are_the_toy_worlds() -> None:
    from harness.data.toyworld.captions import parse_caption
    from harness.data.toyworld.vocab import SHAPES

    plural = {s + ("es" if s.endswith("s") else "s") for s in SHAPES}
    for name in QUESTIONS:
        protocol = get_protocol(name)
        assert protocol.title == protocol.question  # the instructions' heading is the item's question
        for listed in re.findall(r"shapes \(([^)]*)\)", protocol.instructions):
            assert set(re.split(r",\s*|\s+or\s+", listed)) == plural, (name, listed)
        for example in protocol.examples:
            if example.caption is not None:
                parse_caption(example.caption)  # a caption the toy world can draw
    assert "shapes (" in get_protocol("photorealism").instructions


def test_what_each_protocol_shows() -> None:
    photo, caption, diversity = (get_protocol(n) for n in ("photorealism", "caption_similarity", "diversity"))
    assert (photo.shows_caption, photo.grid, photo.images_per_side) == (False, None, 1)
    assert (caption.shows_caption, caption.grid, caption.images_per_side) == (True, None, 1)
    assert diversity.grid == (4, 4) and diversity.images_per_side == 16
    assert photo.attention_check_kind == "corrupted_render"
    assert caption.attention_check_kind == "contradicting_caption"
    assert diversity.attention_check_kind == "collapsed_grid"
    assert all(example.caption is not None for example in caption.examples)
    assert all(example.caption is None for example in photo.examples + diversity.examples)


@pytest.mark.parametrize("name", sorted(QUESTIONS))
def test_options_are_left_right_not_sure_on_arrow_keys(name: str) -> None:
    protocol = get_protocol(name)
    assert [(o.key, o.shortcut) for o in protocol.options] == [
        ("left", "ArrowLeft"),
        ("right", "ArrowRight"),
        ("tie", "ArrowDown"),
    ]
    assert protocol.option("tie").label == "Not sure"
    assert [o.shortcut_symbol for o in protocol.options] == ["←", "→", "↓"]
    assert protocol.answer_keys == ("left", "right", "tie")


@pytest.mark.parametrize("name", sorted(QUESTIONS))
def test_snapshot_round_trips_through_json(name: str) -> None:
    protocol = get_protocol(name)
    snapshot = json.loads(json.dumps(protocol.to_dict()))
    restored = Protocol.from_dict(snapshot)
    assert restored == protocol
    assert restored.fingerprint() == protocol.fingerprint()
    assert isinstance(restored.grid, tuple) or restored.grid is None
    assert all(isinstance(o, Option) for o in restored.options)
    assert all(isinstance(e, Example) for e in restored.examples)


def test_fingerprint_changes_with_the_wording() -> None:
    protocol = get_protocol("photorealism")
    reworded = dataclasses.replace(protocol, question="Which image looks more real?")
    assert reworded.fingerprint() != protocol.fingerprint()
    assert len({get_protocol(n).fingerprint() for n in QUESTIONS}) == 3


def test_data_files_are_named_after_their_protocol() -> None:
    for path in PROTOCOLS_DIR.glob("*.json"):
        assert json.loads(path.read_text(encoding="utf-8"))["name"] == path.stem


def test_with_tie_false_switches_not_sure_off_and_back() -> None:
    protocol = get_protocol("photorealism")
    strict = protocol.with_tie(False)
    assert not strict.allow_tie and protocol.allow_tie  # the original is untouched
    assert strict.answer_keys == ("left", "right")
    assert [o.key for o in strict.active_options] == ["left", "right"]
    assert all(example.answer != "tie" for example in strict.active_examples)
    assert len(strict.active_examples) < len(protocol.active_examples)  # its "Not sure" example is hidden
    with pytest.raises(ValueError, match="no active option 'tie'"):
        strict.option("tie")
    assert Protocol.from_dict(json.loads(json.dumps(strict.to_dict()))) == strict
    assert strict.fingerprint() != protocol.fingerprint()
    assert strict.with_tie(True) == protocol


def test_with_tie_true_needs_a_tie_option() -> None:
    protocol = get_protocol("diversity").with_tie(False)
    no_tie = dataclasses.replace(protocol, options=protocol.active_options)
    with pytest.raises(ValueError, match="no 'tie' option"):
        no_tie.with_tie(True)


def test_protocols_are_frozen() -> None:
    protocol = get_protocol("diversity")
    with pytest.raises(dataclasses.FrozenInstanceError):
        protocol.allow_tie = False  # type: ignore[misc]


def test_unknown_protocol_suggests_the_closest_name() -> None:
    with pytest.raises(ValueError, match="did you mean 'photorealism'"):
        get_protocol("photorealsm")
    with pytest.raises(ValueError, match="known protocols are"):
        get_protocol("zzz")


def _snapshot() -> dict[str, object]:
    return get_protocol("caption_similarity").to_dict()


def test_from_dict_rejects_unknown_and_missing_keys() -> None:
    data = _snapshot()
    data["questoin"] = data.pop("question")
    with pytest.raises(ValueError, match="unknown key 'questoin'; did you mean 'question'"):
        Protocol.from_dict(data)
    data = _snapshot()
    del data["grid"]
    with pytest.raises(ValueError, match=r"missing key\(s\) \['grid'\]"):
        Protocol.from_dict(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["options"][0].update(key="up"), "option key 'up'"),
        (lambda d: d["options"].pop(1), "'left' and 'right'"),
        (lambda d: d["options"][1].update(shortcut="ArrowLeft"), "share a shortcut"),
        (lambda d: d["examples"][0].update(caption=None), "must have one"),
        (lambda d: d.update(grid=[4, 0]), "grid must be"),
        (lambda d: d.update(version=0), "version must be"),
        (lambda d: d.update(attention_check_kind="gold"), "attention_check_kind 'gold'"),
        (lambda d: d.update(examples=[]), "at least one worked example"),
        (lambda d: d.update(question="  "), "'question' must be a non-empty string"),
    ],
)
def test_from_dict_rejects_invalid_values(change: object, message: str) -> None:
    data = _snapshot()
    change(data)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        Protocol.from_dict(data)


def test_tie_answer_needs_a_tie_option() -> None:
    data = get_protocol("photorealism").to_dict()
    data["options"] = data["options"][:2]
    data["allow_tie"] = False
    with pytest.raises(ValueError, match="example answer 'tie' is not an option"):
        Protocol.from_dict(data)


def test_load_protocol_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json: invalid JSON"):
        load_protocol_file(bad)
    good = tmp_path / "mine.json"
    good.write_text(json.dumps(get_protocol("diversity").to_dict()), encoding="utf-8")
    assert load_protocol_file(good) == get_protocol("diversity")
