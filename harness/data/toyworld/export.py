"""Writing the toy world to disk: folders of content-addressed PNGs with a manifest, and prompt sets.

Layout written by `export_renders`::

    <out>/images/<sha256>.png   one file per distinct image, named by the sha256 of its PNG bytes
    <out>/manifest.jsonl        one object per scene: sha256, path, index, split, seed, size, caption, scene

Nothing half-written is left behind: each PNG and the manifest go to a temporary file in the same folder and are
renamed into place, the manifest last, so a manifest names only images that exist. Rerunning with the same
arguments rewrites byte-identical files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from harness.data.toyworld.render import RENDER_SIZES, render_scene
from harness.data.toyworld.scene import sample_scene
from harness.data.toyworld.splits import SPLITS
from harness.errors import HarnessError, did_you_mean
from harness.rundir import atomic_write_bytes, encode_png

MANIFEST_NAME = "manifest.jsonl"
IMAGES_DIR = "images"


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        path: the manifest (renders) or the prompt file (prompts).
        count: number of records written.
        distinct_images: number of distinct PNGs (renders only; equal scenes share one file).
    """

    path: Path
    count: int
    distinct_images: int = 0


def check_request(n: int, split: str, seed: int, size: int | None = None) -> None:
    """Validate user arguments of an export.

    Raises:
        HarnessError: ``n < 1``, a negative seed, an unknown split or an unsupported size, with the fix.
    """
    if n < 1:
        raise HarnessError(f"--n must be a positive number of scenes, got {n}")
    if seed < 0:
        raise HarnessError(f"--seed must be a non-negative integer, got {seed}")
    if split not in SPLITS:
        raise HarnessError(f"unknown toy-world split {split!r}{did_you_mean(split, SPLITS)}")
    if size is not None and size not in RENDER_SIZES:
        raise HarnessError(f"--size must be one of {', '.join(map(str, RENDER_SIZES))}, got {size}")


def export_renders(
    out_dir: str | Path, n: int, split: str, seed: int = 0, size: int = 64, progress: bool = True
) -> ExportResult:
    """Render scenes ``0 .. n-1`` of ``split`` under ``seed`` into ``out_dir`` (see the module docstring).

    Args:
        out_dir: output folder (created if missing).
        n: number of scenes (>= 1).
        split: ``train`` | ``val`` | ``test``.
        seed: dataset seed (>= 0).
        size: 64 or 32.
        progress: show a progress bar (counts and ETA) on stderr.

    Returns:
        The manifest path and counts.

    Raises:
        HarnessError: bad arguments, or ``out_dir`` cannot be created or written.
    """
    check_request(n, split, seed, size)
    out = Path(out_dir)
    images_dir = out / IMAGES_DIR
    _make_writable_dir(images_dir, what="output directory")
    seen: set[str] = set()
    with _atomic_text(out / MANIFEST_NAME) as manifest:
        for index in tqdm(range(n), desc=f"toy {split}", unit="scene", disable=not progress):
            scene = sample_scene(seed, index, split)
            data = encode_png(render_scene(scene, size))
            sha = hashlib.sha256(data).hexdigest()
            if sha not in seen:
                path = images_dir / f"{sha}.png"
                if not path.exists():
                    atomic_write_bytes(path, data)
                seen.add(sha)
            record = {
                "sha256": sha,
                "path": f"{IMAGES_DIR}/{sha}.png",
                "index": index,
                "split": split,
                "seed": seed,
                "size": size,
                "caption": scene.caption,
                "scene": scene.to_dict(),
            }
            manifest.write(json.dumps(record, sort_keys=True) + "\n")
    return ExportResult(path=out / MANIFEST_NAME, count=n, distinct_images=len(seen))


def prompt_records(n: int, split: str, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Prompt-set records ``{"prompt_id": "toy-<split>-<seed>-<index>", "text": caption, "scene": {...}}``."""
    for index in range(n):
        scene = sample_scene(seed, index, split)
        yield {"prompt_id": f"toy-{split}-{seed}-{index}", "text": scene.caption, "scene": scene.to_dict()}


def export_prompts(out_file: str | Path, n: int, split: str, seed: int = 0) -> ExportResult:
    """Write the captions of scenes ``0 .. n-1`` of ``split`` as a JSONL prompt set (atomically).

    Raises:
        HarnessError: bad arguments, or ``out_file`` cannot be written.
    """
    check_request(n, split, seed)
    path = Path(out_file)
    if path.is_dir():
        raise HarnessError(f"--out {path} is a directory; pass a file name such as {path / 'prompts.jsonl'}")
    _make_writable_dir(path.parent, what="directory of --out")
    with _atomic_text(path) as fh:
        for record in prompt_records(n, split, seed):
            fh.write(json.dumps(record, sort_keys=True) + "\n")
    return ExportResult(path=path, count=n)


def _make_writable_dir(path: Path, what: str) -> None:
    """Create ``path`` and prove it writable, or raise a one-line `HarnessError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise HarnessError(f"cannot write to {what} {path}: {reason}; choose a writable --out") from None


@contextlib.contextmanager
def _atomic_text(path: Path) -> Iterator[IO[str]]:
    """A text file that appears at ``path`` (fsync'ed, renamed) only if the block completes without error."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
