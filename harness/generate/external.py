"""External generators, so researchers can evaluate their own models: ``image-folder``, ``diffusers``, ``callable``.

Registered when the package `harness.generate` is imported (it imports this module). Each is a
``[[systems]]`` entry of a run config (``generator = "..."`` plus ``options``); a relative ``path`` or ``function``
file is relative to the working directory.

* ``image-folder`` — images made elsewhere. Options: ``path`` (the folder), then either ``pattern`` (a naming
  rule such as ``"{prompt_id}/{sample_index}.png"`` or ``"{prompt_id}_{seed:06d}.png"``; fields ``prompt_id``,
  ``sample_index``, ``seed``) or ``manifest`` (a JSONL or CSV file, relative to ``path``; default
  ``manifest.jsonl`` / ``manifest.csv`` in it) with a ``path`` column (image file, relative to the folder) plus
  ``prompt_id`` or ``prompt`` (caption text) and ``sample_index`` or ``seed``; the first of each pair present in
  the file decides the lookup for every row. ``sample_index`` is the run's seed index ``k`` (0 to
  seeds_per_prompt − 1); ``seed`` is the seed the harness derives for it (`harness.rundir.derive_seed`).
  Images of any size come back as they are, converted to RGB (alpha dropped). ``checkpoint_sha256`` = sha256 of
  the manifest bytes (or the pattern) and the listing (relative path, byte size) of the folder's image files, so
  adding, removing or resizing a file changes it. ``model_id`` (option) defaults to ``image-folder:<folder name>``.
* ``diffusers`` (in `harness.generate.diffusers`) — a pipeline directory saved with ``save_pretrained`` (needs
  ``pip install 'unclip-harness[diffusers]'``). Options: ``path``, ``device`` (``cpu``), ``dtype``
  (``float32``), ``model_id``, ``call_kwargs`` (extra keyword arguments of the pipeline call, e.g.
  ``{height = 512, width = 512}``). One call per image with ``generator = torch.Generator().manual_seed(seed)``,
  so an image never depends on its batch. Settings map to the call's own parameters: ``guidance_scale`` →
  ``guidance_scale`` (or ``decoder_guidance_scale``), ``prior_guidance_scale`` → ``prior_guidance_scale``,
  ``steps`` → ``num_inference_steps`` (or ``decoder_num_inference_steps``). ``checkpoint_sha256`` = sha256 over
  every file of the directory (relative path and content sha256).
* ``callable`` — ``function = "package.module:function"`` or ``"path/to/file.py:function"``, called as
  ``function(prompts, seeds, settings, **kwargs)`` with ``kwargs`` the option table of that name. It returns one
  image per (prompt, seed): a list of (H, W, 3) uint8 arrays, float arrays in [0, 1] or PIL images, or one
  (N, H, W, 3) uint8/float array. ``uses_guidance`` (false) says whether settings change its output.
  ``checkpoint_sha256`` = sha256 of the module's source file and the canonical JSON of the options.

An image folder looks images up by (prompt id, seed index), which the `Generator` protocol does not pass:
`harness.generate.run` hands them to any `KeyedGenerator` through ``generate_keyed``.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import importlib.util
import io
import json
import string
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from harness.errors import ConfigError, HarnessError
from harness.generate.registry import (
    Generator,
    SampleKey,
    check_options,
    register_generator,
    str_option,
)
from harness.prompts import jsonl_objects

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
PATTERN_FIELDS = ("prompt_id", "sample_index", "seed")
MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv")
DIFFUSERS_INSTALL = "pip install 'unclip-harness[diffusers]'"
FEWER_IMAGES = "or ask the run for fewer images (prompts.n, sampling.seeds_per_prompt)"




# ---------------------------------------------------------------------------------------------------------------
# Shared: images from whatever a model returns


def normalise_images(output: Any, n: int, who: str) -> list[np.ndarray]:
    """Turn a model's output into ``n`` (H, W, 3) uint8 RGB arrays.

    Args:
        output: a list/tuple of images (PIL images, (H, W, 3) uint8 arrays, or float arrays in [0, 1]; torch
            tensors are read through numpy) or one (N, H, W, 3) uint8/float array or tensor.
        n: how many images were asked for.
        who: names the producer in error messages (e.g. ``callable 'mymodel:sample'``).

    Raises:
        HarnessError: wrong container, count, shape, dtype or float range, naming ``who`` and the fix.
    """
    batch = _as_numpy(output)
    if batch is not None and batch.ndim == 4:
        items: list[Any] = list(batch)
    elif isinstance(output, list | tuple):
        items = list(output)
    else:
        shape = f" of shape {batch.shape}" if batch is not None else ""
        raise HarnessError(
            f"{who} returned {type(output).__name__}{shape}; return a list of (H, W, 3) images (uint8 arrays, "
            "float arrays in [0, 1] or PIL images) or one (N, H, W, 3) array"
        )
    if len(items) != n:
        raise HarnessError(
            f"{who} returned {len(items)} images for {n} (prompt, seed) pairs; return one per pair, in order"
        )
    return [_one_image(item, i, who) for i, item in enumerate(items)]


def _as_numpy(x: Any) -> np.ndarray | None:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch here
        t = x.detach().cpu()
        return (t.float() if t.is_floating_point() else t).numpy()
    return None


def _one_image(item: Any, i: int, who: str) -> np.ndarray:
    if isinstance(item, Image.Image):
        return np.asarray(item.convert("RGB"), dtype=np.uint8).copy()
    arr = _as_numpy(item)
    if arr is None:
        raise HarnessError(f"{who}: image {i} is a {type(item).__name__}; return numpy arrays or PIL images")
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise HarnessError(f"{who}: image {i} has shape {arr.shape}; return (H, W, 3) RGB images (channels last)")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        lo, hi = float(np.min(arr)), float(np.max(arr))
        if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0 and hi <= 1.0):
            raise HarnessError(f"{who}: float image {i} spans [{lo:.3g}, {hi:.3g}]; float images must lie in [0, 1]")
        return np.rint(arr * 255.0).astype(np.uint8)
    raise HarnessError(f"{who}: image {i} has dtype {arr.dtype}; return uint8 (0–255) or float (0–1) images")


def load_rgb(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (any size; RGBA, L, P… converted, alpha dropped)."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read image {path} ({exc}); replace it with a PNG, JPEG or WebP file") from None


def _canonical_json(options: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(options), sort_keys=True, separators=(",", ":"), default=str).encode()



# ---------------------------------------------------------------------------------------------------------------
# image-folder


@dataclass(frozen=True)
class FolderManifest:
    """A folder's manifest, parsed: (prompt key, sample key) → image file.

    Attributes:
        source: the manifest file (for messages).
        prompt_field: ``prompt_id`` or ``prompt`` — what the first key component is.
        sample_field: ``sample_index`` or ``seed`` — what the second key component is.
        files: key → (manifest row number, image path).
    """

    source: Path
    prompt_field: str
    sample_field: str
    files: Mapping[tuple[str, int], tuple[int, Path]]


def read_folder_manifest(path: Path, folder: Path) -> FolderManifest:
    """Parse a JSONL or CSV image manifest (module docstring); image paths are relative to ``folder``.

    Raises:
        ConfigError: unreadable file, missing columns, non-integer sample keys, duplicate keys.
    """
    rows = _manifest_rows(path)
    if not rows:
        raise ConfigError(f"image manifest {path} has no rows; add one row per image (path, prompt_id, sample_index)")
    columns = {k for _, row in rows for k, v in row.items() if v not in (None, "")}
    prompt_field = next((c for c in ("prompt_id", "prompt") if c in columns), None)
    sample_field = next((c for c in ("sample_index", "seed") if c in columns), None)
    if "path" not in columns or prompt_field is None or sample_field is None:
        raise ConfigError(
            f"image manifest {path} needs the columns 'path', 'prompt_id' (or 'prompt') and 'sample_index' (or "
            f"'seed'); found {', '.join(sorted(columns)) or 'none'}"
        )
    files: dict[tuple[str, int], tuple[int, Path]] = {}
    for lineno, row in rows:
        key = (_text_cell(row, prompt_field, path, lineno), _int_cell(row, sample_field, path, lineno))
        if key in files:
            raise ConfigError(
                f"image manifest {path}: rows {files[key][0]} and {lineno} both give {prompt_field}={key[0]!r}, "
                f"{sample_field}={key[1]}; keep one image per (prompt, sample)"
            )
        files[key] = (lineno, folder / _text_cell(row, "path", path, lineno))
    return FolderManifest(source=path, prompt_field=prompt_field, sample_field=sample_field, files=files)


def _manifest_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs of a JSONL or CSV file (CSV line numbers count the header as line 1)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read image manifest {path} ({exc}); point options.manifest at a UTF-8 JSONL or CSV file"
        ) from None
    if path.suffix.lower() == ".csv":
        return [(i + 2, row) for i, row in enumerate(csv.DictReader(io.StringIO(text)))]
    if path.suffix.lower() != ".jsonl":
        raise ConfigError(f"image manifest {path}: unsupported extension {path.suffix!r}; use .jsonl or .csv")
    return jsonl_objects(text, f"image manifest {path}", "path")


def _text_cell(row: Mapping[str, Any], column: str, path: Path, lineno: int) -> str:
    value = row.get(column)
    if value in (None, ""):
        raise ConfigError(f"image manifest {path}: line {lineno} has no {column!r}; fill it in or remove the row")
    return str(value).strip()


def _int_cell(row: Mapping[str, Any], column: str, path: Path, lineno: int) -> int:
    value = _text_cell(row, column, path, lineno)
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"image manifest {path}: line {lineno}: {column} = {value!r} is not an integer") from None


def folder_listing_sha256(folder: Path, head: bytes) -> str:
    """sha256 of ``head`` (manifest bytes or pattern) and each image file's (relative path, byte size), sorted."""
    h = hashlib.sha256(head + b"\0")
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    for f in files:
        h.update(f"{f.relative_to(folder).as_posix()}\t{f.stat().st_size}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ImageFolderGenerator:
    """Images already on disk, found by a naming rule or a manifest (module docstring)."""

    folder: Path
    pattern: str
    manifest: FolderManifest | None
    model_id: str
    checkpoint_sha256: str
    uses_guidance: bool = False

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any]) -> list[np.ndarray]:
        """Lookup without sample keys: only folders keyed by (caption, seed) can answer it."""
        if self._needs_keys():
            raise HarnessError(
                f"image folder {self.folder} finds images by prompt id or sample index, which only a run passes; "
                "use it through `harness generate` / `harness run`"
            )
        keys = [SampleKey(prompt_id="", sample_index=-1)] * len(prompts)
        return self.generate_keyed(keys, prompts, seeds, settings)

    def generate_keyed(
        self, keys: Sequence[SampleKey], prompts: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any]
    ) -> list[np.ndarray]:
        """One (H, W, 3) uint8 image per requested (prompt, seed), read from its file."""
        return [
            load_rgb(self._locate(key, prompt, int(seed)))
            for key, prompt, seed in zip(keys, prompts, seeds, strict=True)
        ]

    def _needs_keys(self) -> bool:
        if self.manifest is not None:
            return self.manifest.prompt_field == "prompt_id" or self.manifest.sample_field == "sample_index"
        return True  # a pattern always names the prompt id

    def _locate(self, key: SampleKey, prompt: str, seed: int) -> Path:
        what = f"prompt {key.prompt_id!r} ({prompt!r}), sample {key.sample_index} (seed {seed})"
        if self.manifest is None:
            path = self.folder / self.pattern.format(prompt_id=key.prompt_id, sample_index=key.sample_index, seed=seed)
            if not path.is_file():
                raise HarnessError(
                    f"image folder {self.folder}: no image for {what}: expected {path}; add that file "
                    f"(naming rule {self.pattern!r}) {FEWER_IMAGES}"
                )
            return path
        m = self.manifest
        wanted = (
            key.prompt_id if m.prompt_field == "prompt_id" else prompt.strip(),
            key.sample_index if m.sample_field == "sample_index" else seed,
        )
        if wanted not in m.files:
            raise HarnessError(
                f"image manifest {m.source}: no row with {m.prompt_field}={wanted[0]!r}, {m.sample_field}={wanted[1]} "
                f"(the run's {what}); add a row with that image's path {FEWER_IMAGES}"
            )
        lineno, path = m.files[wanted]
        if not path.is_file():
            raise HarnessError(
                f"image manifest {m.source}: line {lineno} names {path}, which does not exist; add the file or fix "
                "the row's path (relative to the folder)"
            )
        return path


@register_generator("image-folder")
def _image_folder(options: Mapping[str, Any]) -> Generator:
    name = "image-folder"
    check_options(name, options, {"path", "pattern", "manifest", "model_id"})
    folder = Path(str_option(name, options, "path"))
    if not folder.is_dir():
        raise ConfigError(f"generator {name!r}: folder {folder} not found; set options.path to your images' folder")
    model_id = str_option(name, options, "model_id", f"image-folder:{folder.resolve().name}")
    if "pattern" in options and "manifest" in options:
        raise ConfigError(f"generator {name!r}: give either options.pattern or options.manifest, not both")
    if "pattern" in options:
        pattern = _check_pattern(str_option(name, options, "pattern"))
        sha = folder_listing_sha256(folder, b"pattern:" + pattern.encode())
        return ImageFolderGenerator(folder, pattern, None, model_id, sha)
    manifest_path = _find_manifest(folder, options.get("manifest"))
    manifest = read_folder_manifest(manifest_path, folder)
    sha = folder_listing_sha256(folder, b"manifest:" + manifest_path.read_bytes())
    return ImageFolderGenerator(folder, "", manifest, model_id, sha)


def _check_pattern(pattern: str) -> str:
    try:
        fields = {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    except ValueError as exc:
        raise ConfigError(
            f"generator 'image-folder': options.pattern {pattern!r} is not a format string ({exc})"
        ) from None
    unknown = fields - set(PATTERN_FIELDS)
    if unknown or "prompt_id" not in fields or not fields & {"sample_index", "seed"}:
        raise ConfigError(
            f"generator 'image-folder': options.pattern {pattern!r} must use {{prompt_id}} and {{sample_index}} or "
            f'{{seed}} (and no other fields), e.g. "{{prompt_id}}/{{sample_index}}.png"'
            + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
        )
    return pattern


def _find_manifest(folder: Path, manifest: Any) -> Path:
    if manifest is not None:
        if not isinstance(manifest, str) or not manifest:
            raise ConfigError(f"generator 'image-folder': options.manifest must be a file name, got {manifest!r}")
        path = folder / manifest  # an absolute path stays absolute
        if not path.is_file():
            raise ConfigError(f"generator 'image-folder': manifest {path} not found; fix options.manifest")
        return path
    for name in MANIFEST_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(
        f"generator 'image-folder': {folder} has no {' or '.join(MANIFEST_NAMES)}; add one (columns path, "
        'prompt_id, sample_index) or set options.pattern, e.g. "{prompt_id}/{sample_index}.png"'
    )


# ---------------------------------------------------------------------------------------------------------------
# callable


def load_callable(spec: str) -> tuple[Callable[..., Any], Path]:
    """Import ``module:function`` or ``path/to/file.py:function``; returns the function and its source file.

    Raises:
        ConfigError: malformed spec, missing file or module, missing or non-callable attribute.
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise ConfigError(
            f"generator 'callable': function = {spec!r}; expected 'package.module:function' or "
            "'path/to/file.py:function'"
        )
    if target.endswith(".py"):
        module = _module_from_file(Path(target), spec)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(
                f"generator 'callable': cannot import {target!r} for {spec!r} ({exc}); install it or add its folder "
                f"to PYTHONPATH, or give a file path 'path/to/file.py:{attr}'"
            ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"generator 'callable': {target!r} has no function {attr!r}; fix options.function = {spec!r}")
    source = getattr(module, "__file__", None)
    if not source:
        raise ConfigError(f"generator 'callable': {target!r} has no source file to hash; wrap {attr!r} in a .py file")
    return fn, Path(source)


def _module_from_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise ConfigError(f"generator 'callable': file {path} of {spec!r} not found; fix options.function")
    name = "harness_external_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"generator 'callable': cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@dataclass(frozen=True)
class CallableGenerator:
    """A user function ``(prompts, seeds, settings, **kwargs) -> images`` (module docstring)."""

    spec: str
    function: Callable[..., Any]
    kwargs: Mapping[str, Any]
    model_id: str
    checkpoint_sha256: str
    uses_guidance: bool

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any]) -> list[np.ndarray]:
        """Call the function once for the batch and validate what it returns."""
        output = self.function(list(prompts), [int(s) for s in seeds], dict(settings), **self.kwargs)
        return normalise_images(output, len(prompts), f"callable {self.spec!r}")


@register_generator("callable")
def _callable(options: Mapping[str, Any]) -> Generator:
    name = "callable"
    check_options(name, options, {"function", "kwargs", "model_id", "uses_guidance"})
    spec = str_option(name, options, "function")
    kwargs = options.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"generator {name!r}: options.kwargs must be a table, e.g. {{temperature = 0.8}}")
    uses_guidance = options.get("uses_guidance", False)
    if not isinstance(uses_guidance, bool):
        raise ConfigError(f"generator {name!r}: options.uses_guidance must be true or false, got {uses_guidance!r}")
    fn, source = load_callable(spec)
    sha = hashlib.sha256(source.read_bytes() + b"\0" + _canonical_json(options)).hexdigest()
    return CallableGenerator(
        spec=spec,
        function=fn,
        kwargs=dict(kwargs),
        model_id=str_option(name, options, "model_id", spec),
        checkpoint_sha256=sha,
        uses_guidance=uses_guidance,
    )
