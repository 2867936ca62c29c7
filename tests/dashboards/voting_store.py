"""Builds a real SQLite store with one open study whose images exist on disk, for the app tests."""

from __future__ import annotations

import hashlib
import html
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from eval_protocols.human.protocol import get_protocol
from harness.storage.records import ImageRecord, ItemRecord, RunRecord, StudyRecord
from harness.storage.repository import Repository

SYSTEM_A = "unclipsecretmodel"
SYSTEM_B = "glidesecretmodel"
RUN_ID = "runsecretid"
CHECK_REAL = "attentionrealsys"
CHECK_FAKE = "attentionfakesys"


@dataclass(frozen=True)
class VotingStore:
    """What the tests need to know about the store they drive the app against."""

    url: str
    study_id: int
    n_items: int
    shas: tuple[str, ...]
    secrets: tuple[str, ...]
    """Strings that must never reach an annotator's page: system ids, run id, study name, image sha256s."""


def _png(rng: np.random.Generator, size: int, tag: str) -> bytes:
    """A random-colour PNG carrying a tell-tale text chunk (the app must strip it)."""
    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("model", tag)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def build_store(
    root: Path,
    *,
    n_items: int = 3,
    protocol: str = "photorealism",
    attention: bool = True,
    prompts: tuple[str, ...] = (),
    render: Callable[[str, str, int], bytes] | None = None,
    url: str | None = None,
) -> VotingStore:
    """Create ``root/store.db`` (or the store at ``url``) with a run of images under ``root`` and one open study
    (``n_items`` + 1 attention check).

    ``render(system, prompt, k)`` makes the PNG bytes of image ``k`` of a side (default: random pixels carrying a
    text chunk naming the system); ``prompts`` are cycled as the items' captions.
    """
    url = url or f"sqlite:///{root / 'store.db'}"
    rng = np.random.default_rng(0)
    proto = get_protocol(protocol)
    per_side = proto.images_per_side
    run_dir = root / RUN_ID
    (run_dir / "images").mkdir(parents=True)
    image_records: list[ImageRecord] = []

    def add(model: str, prompt_id: str, prompt: str, k: int) -> str:
        data = _png(rng, 32, model) if render is None else render(model, prompt, k)
        sha = hashlib.sha256(data).hexdigest()
        (run_dir / "images" / f"{sha}.png").write_bytes(data)
        image_records.append(ImageRecord(sha, RUN_ID, prompt_id, prompt, model, k, {}, f"images/{sha}.png"))
        return sha

    items = []
    for k in range(n_items + int(attention)):
        check = k == n_items
        a, b = (CHECK_REAL, CHECK_FAKE) if check else (SYSTEM_A, SYSTEM_B)
        prompt = prompts[k % len(prompts)] if prompts else f"a red circle above a blue square number {k}"
        items.append(ItemRecord(
            item_id=0, study_id=0, position=k, prompt_id=f"p{k}", prompt=prompt, system_a=a, system_b=b,
            images_a=tuple(add(a, f"p{k}", prompt, j) for j in range(per_side)),
            images_b=tuple(add(b, f"p{k}", prompt, j) for j in range(per_side)),
            left="a" if k % 2 == 0 else "b", is_attention_check=check,
            expected=("left" if k % 2 == 0 else "right") if check else None,
        ))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    study = StudyRecord(0, f"{RUN_ID}/{protocol}", protocol, proto.to_dict(), "open", 1, proto.allow_tie, now, 7)
    with Repository.open(url) as repo:
        repo.create_run(RunRecord(RUN_ID, "secret run", now, str(run_dir)))
        repo.add_images(image_records)
        study_id = repo.create_study(study, items)
    shas = tuple(r.sha256 for r in image_records)
    return VotingStore(url, study_id, len(items), shas, (SYSTEM_A, SYSTEM_B, RUN_ID, CHECK_REAL, CHECK_FAKE, *shas))


def page_text(at: object) -> str:
    """Every text an AppTest page shows (titles, markdown, captions, alerts, button labels, code), joined."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success",
                 "code", "text"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [str(b.label) for b in at.button]  # type: ignore[attr-defined]
    parts += [item_html(at)]
    return "\n".join(parts)


def item_html(at: object) -> str:
    """The HTML of the page's `st.html` elements (the voting page's item), joined."""
    return "\n".join(str(e.proto.body) for e in at.get("html"))  # type: ignore[attr-defined]


def item_position(at: object) -> str | None:
    """The item page's "Item k of n", or ``None`` when no item is shown."""
    found = re.search(r">(Item \d+ of \d+)<", item_html(at))
    return found.group(1) if found else None


def item_question(at: object) -> str | None:
    """The question above the item's stimuli, or ``None`` when no item is shown."""
    found = re.search(r"<h3[^>]*>([^<]*)</h3>", item_html(at))
    return html.unescape(found.group(1)) if found else None
