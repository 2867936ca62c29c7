"""Run directories: content-addressed PNGs, an append-only manifest, the resolved config and provenance.

Layout of ``<out_dir>/<run_id>/``::

    images/<sha256>.png     every image, named by the sha256 of its PNG bytes
    manifest.jsonl          one `ManifestEntry` per line (append-only; a torn last line is dropped on open)
    manifest.rank<k>.jsonl  only during a torchrun generation: rank k's lines, merged into manifest.jsonl in plan
                            order by rank 0 at the end (`RunDir.merge_parts`); left over only by a crash
    config.json             the resolved `RunConfig` and its sha256 (`prepare_run_dir`)
    provenance.json         git commit, package versions, device, seeds (`harness.provenance.collect`)

Writes are crash-safe: a PNG is written to a temporary file and renamed; a manifest line is appended and fsync'ed
only after its PNG exists. A rerun reads the manifest and skips every (system, prompt, seed, settings) already
recorded (in manifest.jsonl or a left-over part), so an interrupted run resumes and ends byte-identical to an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from harness import provenance
from harness.config import RunConfig
from harness.errors import HarnessError


@dataclass(frozen=True)
class ManifestEntry:
    """One generated image.

    Attributes:
        sha256: sha256 of the PNG bytes (also the file name).
        path: path relative to the run dir (``images/<sha256>.png``).
        system_id: the system (model) id of the run config.
        model_id: the generator's own id (e.g. ``unclip-toy``), with ``checkpoint_sha256`` pinning its weights.
        prompt_id: stable id of the prompt.
        prompt: the caption text.
        sample_index: seed index ``k`` within (system, prompt, settings).
        seed: the image seed, derived from (run seed, prompt id, k).
        settings: sampling settings (guidance scales, steps, sampler) — part of the key.
        checkpoint_sha256: hash of the weights that made the image (``None`` for weight-free generators).
    """

    sha256: str
    path: str
    system_id: str
    model_id: str
    prompt_id: str
    prompt: str
    sample_index: int
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    checkpoint_sha256: str | None = None

    @property
    def key(self) -> tuple[str, str, int, str]:
        """What identifies the work unit: (system, prompt id, seed index, canonical settings)."""
        return work_key(self.system_id, self.prompt_id, self.sample_index, self.settings)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def work_key(system_id: str, prompt_id: str, sample_index: int, settings: dict[str, Any]) -> tuple[str, str, int, str]:
    """The resume key of one image."""
    return (system_id, prompt_id, int(sample_index), json.dumps(settings, sort_keys=True))


def derive_seed(run_seed: int, prompt_id: str, sample_index: int) -> int:
    """Image seed from (run seed, prompt id, seed index): a 31-bit int, identical for every system of a run."""
    digest = hashlib.sha256(f"{run_seed}:{prompt_id}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def encode_png(image: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 RGB array as PNG bytes (deterministic: no timestamps, fixed compression)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    """A run directory on disk (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.images_dir = self.root / "images"
        self.manifest_path = self.root / "manifest.jsonl"

    def create(self) -> RunDir:
        """Create the directory tree; an unwritable location is a one-line `HarnessError`."""
        try:
            self.images_dir.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise HarnessError(
                f"cannot write the run directory {self.root} ({exc.strerror}); choose a writable out_dir "
                "(--set out_dir=PATH)"
            ) from None
        return self

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_bytes(self.root / name, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def read_json(self, name: str) -> Any:
        path = self.root / name
        if not path.is_file():
            raise HarnessError(f"{path} not found; is {self.root} a run directory made by `harness generate`?")
        return json.loads(path.read_text(encoding="utf-8"))

    def part_path(self, rank: int) -> Path:
        """Rank ``rank``'s manifest part of a torchrun generation."""
        return self.root / f"manifest.rank{rank}.jsonl"

    def part_paths(self) -> list[Path]:
        """Existing manifest parts, in rank order."""
        parts = [(int(m.group(1)), p) for p in self.root.glob("manifest.rank*.jsonl") if (m := _PART.match(p.name))]
        return [p for _, p in sorted(parts)]

    def add_image(self, image: np.ndarray, entry_fields: dict[str, Any], *, part: int | None = None) -> ManifestEntry:
        """Store one image (content-addressed) and append its manifest line.

        Args:
            image: (H, W, 3) uint8 RGB.
            entry_fields: every `ManifestEntry` field except ``sha256`` and ``path``.
            part: append to rank ``part``'s manifest part instead of manifest.jsonl (torchrun generation).
        """
        data = encode_png(image)
        sha = hashlib.sha256(data).hexdigest()
        path = self.images_dir / f"{sha}.png"
        if not path.exists():  # two ranks writing one PNG both leave the same complete file (rename is atomic)
            atomic_write_bytes(path, data)
        entry = ManifestEntry(sha256=sha, path=f"images/{sha}.png", **entry_fields)
        _append_lines(self.manifest_path if part is None else self.part_path(part), [entry.to_json()])
        return entry

    def entries(self) -> list[ManifestEntry]:
        """All manifest entries, in write order; a torn last line (crash mid-append) is removed from the file."""
        return _read_entries(self.manifest_path)

    def part_entries(self) -> list[ManifestEntry]:
        """Entries of the manifest parts, rank by rank, each in write order (torn last lines removed)."""
        return [e for path in self.part_paths() for e in _read_entries(path)]

    def merge_parts(self, order: Sequence[tuple[str, str, int, str]]) -> int:
        """Append the parts' entries to manifest.jsonl in the order of their keys in ``order``; delete the parts.

        Entries whose key is not in ``order`` follow, in part order; keys already in manifest.jsonl are skipped (a
        crash between the append and the deletion leaves nothing twice), and within the parts the last line of a key
        wins. The lines go out in one fsync'ed append, so manifest.jsonl ends exactly as a one-process run that made
        the same units in plan order would have written it.

        Returns:
            The number of lines appended.
        """
        merged: dict[tuple[str, str, int, str], ManifestEntry] = {}
        for entry in self.part_entries():
            merged[entry.key] = entry
        for entry in self.entries():
            merged.pop(entry.key, None)
        position = {key: i for i, key in enumerate(order)}
        ordered = sorted(merged.values(), key=lambda e: position.get(e.key, len(position)))  # stable sort
        if ordered:
            _append_lines(self.manifest_path, [e.to_json() for e in ordered])
        for path in self.part_paths():
            path.unlink()
        return len(ordered)

    def done_keys(self) -> set[tuple[str, str, int, str]]:
        """Keys of the work units already recorded, in manifest.jsonl or a left-over part (those whose PNG exists)."""
        return {e.key for e in self.entries() + self.part_entries() if (self.root / e.path).is_file()}

    def load_image(self, entry: ManifestEntry) -> np.ndarray:
        """The image of an entry as (H, W, 3) uint8 RGB."""
        with Image.open(self.root / entry.path) as im:
            return np.asarray(im.convert("RGB"))

    def iter_images(self, entries: list[ManifestEntry]) -> Iterator[np.ndarray]:
        for e in entries:
            yield self.load_image(e)


_PART = re.compile(r"^manifest\.rank(\d+)\.jsonl$")


def _append_lines(path: Path, lines: Sequence[str]) -> None:
    """Append JSON lines to a manifest file in one write, then flush and fsync."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())


def _read_entries(path: Path) -> list[ManifestEntry]:
    """The entries of one manifest file, in write order; a torn last line (crash mid-append) is cut off the file."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):  # torn tail from an interrupted append: drop it, the unit is redone
        raw = raw[: raw.rfind(b"\n") + 1]
        with open(path, "r+b") as fh:
            fh.truncate(len(raw))
    entries: list[ManifestEntry] = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(ManifestEntry(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            raise HarnessError(
                f"{path}: line {lineno} is not a manifest entry; restore the file or delete the run dir"
            ) from None
    return entries

def prepare_run_dir(cfg: RunConfig) -> RunDir:
    """Create ``<out_dir>/<run_id>`` and write the resolved config and provenance (kept from the first attempt)."""
    if not cfg.systems:
        raise HarnessError("the run config defines no [[systems]]; add at least one (see configs/toy.toml)")
    ids = [s.id for s in cfg.systems]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise HarnessError(f"system id {dupes[0]!r} is used twice in [[systems]]; system ids must be unique")
    run_dir = RunDir(Path(cfg.out_dir) / cfg.run_id).create()
    run_dir.write_json("config.json", {"config": cfg.to_dict(), "config_sha256": cfg.config_hash()})
    if not (run_dir.root / "provenance.json").exists():
        seeds = {"run": cfg.seed, "prompts": cfg.prompts.seed, "study": cfg.study.seed}
        run_dir.write_json("provenance.json", provenance.collect(cfg.config_hash(), seeds))
    return run_dir
