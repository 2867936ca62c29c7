"""Prompt sets: the toy world's splits, or a caption file (JSONL, JSON, CSV or TXT) with stable prompt ids.

Files:

* ``.jsonl``: one object per line with ``text`` (or ``caption`` / ``prompt``) and optionally ``prompt_id`` (or
  ``id``); other fields are kept as metadata;
* ``.json``: a list of such objects, or an MS-COCO captions file as distributed (``captions_val2014.json``:
  ``{"images": [...], "annotations": [{"id", "image_id", "caption"}, ...]}``), whose captions get the ids
  ``coco-<annotation id>`` and keep ``image_id`` and the image's ``file_name``;
* ``.csv``: a header row with the same column names (a UTF-8 byte-order mark, as Excel writes, is fine);
* ``.txt``: one caption per line, blank lines skipped.

Ids are stable forever: a row may carry its own id; otherwise the id is ``p-`` followed by the first 12 hex digits
of the sha256 of the caption text, so reordering or extending a file never renames a prompt. A subset (``n`` > 0)
is drawn without replacement by ``seed`` and kept in file order.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import PromptsConfig
from harness.errors import ConfigError, HarnessError


@dataclass(frozen=True)
class PromptRecord:
    """One caption.

    Attributes:
        prompt_id: stable id (see module docstring).
        text: the caption.
        meta: extra fields (for the toy world: the structured scene description).
    """

    prompt_id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


def text_prompt_id(text: str) -> str:
    """Stable id of a caption without an explicit id."""
    return "p-" + hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:12]


def load_prompts(cfg: PromptsConfig) -> list[PromptRecord]:
    """Load the prompts a config asks for.

    Raises:
        ConfigError: unknown split, missing or malformed file, duplicate ids, or ``n`` larger than the file.
    """
    if cfg.source == "toyworld":
        return toyworld_prompts(cfg.split, cfg.n, cfg.seed)
    return file_prompts(Path(cfg.source), cfg.n, cfg.seed)


def toyworld_prompts(split: str, n: int, seed: int) -> list[PromptRecord]:
    """``n`` captions of the toy world's ``split``, deterministic in (split, seed)."""
    from harness.data import toyworld

    if split not in toyworld.SPLITS:
        raise ConfigError(f"unknown toy-world split {split!r}; use one of {', '.join(toyworld.SPLITS)}")
    if n <= 0:
        raise ConfigError(f"prompts.n must be positive for the toy world, got {n}")
    out: list[PromptRecord] = []
    for index, scene in enumerate(toyworld.iter_scenes(n, split=split, seed=seed)):
        out.append(
            PromptRecord(prompt_id=f"toy-{split}-{seed}-{index}", text=scene.caption, meta={"scene": scene.to_dict()})
        )
    return out


def file_prompts(path: Path, n: int = 0, seed: int = 0) -> list[PromptRecord]:
    """Captions from a JSONL, JSON (a list of rows or MS-COCO captions), CSV or TXT file (module docstring)."""
    if not path.is_file():
        raise ConfigError(
            f"prompt file {path} not found; set prompts.source to a JSONL, JSON, CSV or TXT caption file"
        )
    if n < 0:
        raise ConfigError(f"prompts.n = {n} is negative; use 0 for every caption of the file or a positive count")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = _jsonl_rows(path)
    elif suffix == ".json":
        rows = _json_rows(path)
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    elif suffix == ".txt":
        rows = [{"text": line} for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    else:
        raise ConfigError(f"prompt file {path}: unsupported extension {suffix!r}; use .jsonl, .json, .csv or .txt")
    records = [_record(row, path, i + 1) for i, row in enumerate(rows)]
    seen: dict[str, int] = {}
    for i, rec in enumerate(records):
        if rec.prompt_id in seen:
            raise ConfigError(
                f"prompt file {path}: prompt id {rec.prompt_id!r} appears on rows {seen[rec.prompt_id] + 1} and {i + 1}; "
                "ids (or captions without ids) must be unique"
            )
        seen[rec.prompt_id] = i
    if not records:
        raise ConfigError(f"prompt file {path} holds no captions")
    if n and n < len(records):
        keep = np.sort(np.random.default_rng(seed).choice(len(records), size=n, replace=False))
        records = [records[i] for i in keep]
    elif n > len(records):
        raise ConfigError(f"prompts.n = {n} but {path} holds only {len(records)} captions")
    return records


def _json_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.json`` file: a list of objects, or MS-COCO captions (``annotations`` with ``caption``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"prompt file {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        files = {img.get("id"): img.get("file_name") for img in data.get("images", []) if isinstance(img, dict)}
        rows = []
        for k, ann in enumerate(data["annotations"], start=1):
            if not isinstance(ann, dict) or "id" not in ann:
                raise ConfigError(f"prompt file {path}: annotation {k} has no 'id'; is this an MS-COCO captions file?")
            row = {"prompt_id": f"coco-{ann['id']}", "text": ann.get("caption"), "image_id": ann.get("image_id")}
            if files.get(ann.get("image_id")):
                row["file_name"] = files[ann.get("image_id")]
            rows.append(row)
        return rows
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return data
    raise ConfigError(
        f"prompt file {path}: expected a JSON list of objects with a 'text' field, or MS-COCO captions "
        "(an object with 'annotations')"
    )


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8-sig")
    return [obj for _, obj in jsonl_objects(text, f"prompt file {path}", "text")]


def jsonl_objects(text: str, source: str, required: str) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of each non-blank line of JSON Lines ``text``.

    Raises:
        ConfigError: one line naming ``source`` and the line: not valid JSON, or not a JSON object (which must
            carry the field ``required``).
    """
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: line {lineno} is not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{source}: line {lineno} must be a JSON object with a '{required}' field")
        rows.append((lineno, obj))
    return rows


def _record(row: dict[str, Any], path: Path, lineno: int) -> PromptRecord:
    text = row.get("text") or row.get("caption") or row.get("prompt")
    if not isinstance(text, str) or not text.strip():
        raise HarnessError(f"prompt file {path}: row {lineno} has no 'text' (or 'caption'/'prompt') field")
    pid = row.get("prompt_id") or row.get("id")
    meta = {k: v for k, v in row.items() if k not in {"text", "caption", "prompt", "prompt_id", "id"}}
    return PromptRecord(prompt_id=str(pid) if pid not in (None, "") else text_prompt_id(text), text=text.strip(), meta=meta)
