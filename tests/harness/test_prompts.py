"""Prompt sets: toy-world splits and caption files with stable ids and seeded subsets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import PromptsConfig
from harness.errors import ConfigError, HarnessError
from harness.prompts import file_prompts, load_prompts, text_prompt_id


def test_toyworld_prompts_are_deterministic_and_carry_scenes() -> None:
    a = load_prompts(PromptsConfig(source="toyworld", split="test", n=5, seed=3))
    b = load_prompts(PromptsConfig(source="toyworld", split="test", n=5, seed=3))
    assert a == b and len(a) == 5
    assert a[0].prompt_id == "toy-test-3-0" and "objects" in a[0].meta["scene"]
    with pytest.raises(ConfigError, match="unknown toy-world split"):
        load_prompts(PromptsConfig(source="toyworld", split="tset"))


def test_jsonl_csv_txt_and_stable_ids(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt_id": "coco-1", "text": "a dog"}) + "\n"
                                      + json.dumps({"caption": "a cat"}) + "\n")
    (tmp_path / "p.csv").write_text("text,source\na cat,x\na dog,y\n")
    (tmp_path / "p.txt").write_text("a dog\n\na cat\n")
    jsonl = file_prompts(tmp_path / "p.jsonl")
    assert [p.prompt_id for p in jsonl] == ["coco-1", text_prompt_id("a cat")]
    csv = file_prompts(tmp_path / "p.csv")
    txt = file_prompts(tmp_path / "p.txt")
    # reordering a file never renames a prompt
    assert {p.text: p.prompt_id for p in csv} == {p.text: p.prompt_id for p in txt}
    assert csv[0].meta == {"source": "x"}


def test_seeded_subset_keeps_file_order(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("\n".join(f"caption {i}" for i in range(50)))
    a = file_prompts(path, n=10, seed=1)
    assert a == file_prompts(path, n=10, seed=1) and a != file_prompts(path, n=10, seed=2)
    texts = [p.text for p in a]
    assert texts == sorted(texts, key=lambda t: int(t.split()[1]))
    with pytest.raises(ConfigError, match="holds only 50"):
        file_prompts(path, n=60)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        file_prompts(tmp_path / "none.jsonl")
    (tmp_path / "dup.txt").write_text("a\na\n")
    with pytest.raises(ConfigError, match="appears on rows 1 and 2"):
        file_prompts(tmp_path / "dup.txt")
    (tmp_path / "bad.jsonl").write_text("{not json}\n")
    with pytest.raises(ConfigError, match="line 1 is not valid JSON"):
        file_prompts(tmp_path / "bad.jsonl")
    (tmp_path / "x.md").write_text("a")
    with pytest.raises(ConfigError, match="unsupported extension"):
        file_prompts(tmp_path / "x.md")
    (tmp_path / "notext.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(HarnessError, match="no 'text'"):
        file_prompts(tmp_path / "notext.jsonl")


def test_json_list_and_ms_coco_captions(tmp_path: Path) -> None:
    coco = {
        "info": {}, "images": [{"id": 9, "file_name": "COCO_val2014_000000000009.jpg"}],
        "annotations": [{"image_id": 9, "id": 38, "caption": "A plate of food. "},
                        {"image_id": 9, "id": 41, "caption": "A plate of food."},  # same text, other annotation
                        {"image_id": 7, "id": 50, "caption": "A cat on a mat"}],
    }
    (tmp_path / "captions_val2014.json").write_text(json.dumps(coco))
    records = file_prompts(tmp_path / "captions_val2014.json")
    assert [(p.prompt_id, p.text) for p in records] == [
        ("coco-38", "A plate of food."), ("coco-41", "A plate of food."), ("coco-50", "A cat on a mat")]
    assert records[0].meta == {"image_id": 9, "file_name": "COCO_val2014_000000000009.jpg"}
    assert records[2].meta == {"image_id": 7}
    subset = load_prompts(PromptsConfig(source=str(tmp_path / "captions_val2014.json"), n=2, seed=0))
    assert len(subset) == 2 and subset == load_prompts(
        PromptsConfig(source=str(tmp_path / "captions_val2014.json"), n=2, seed=0))
    (tmp_path / "list.json").write_text(json.dumps([{"id": "a", "text": "a dog"}, {"caption": "a cat"}]))
    assert [p.prompt_id for p in file_prompts(tmp_path / "list.json")] == ["a", text_prompt_id("a cat")]
    (tmp_path / "bad.json").write_text('{"captions": []}')
    with pytest.raises(ConfigError, match="MS-COCO captions"):
        file_prompts(tmp_path / "bad.json")


def test_csv_with_byte_order_mark_and_negative_n(tmp_path: Path) -> None:
    (tmp_path / "excel.csv").write_bytes("\ufefftext,id\na dog,d1\n".encode())
    assert [(p.prompt_id, p.text) for p in file_prompts(tmp_path / "excel.csv")] == [("d1", "a dog")]
    with pytest.raises(ConfigError, match="negative"):
        file_prompts(tmp_path / "excel.csv", n=-1)
