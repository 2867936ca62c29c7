"""Checkpoint files: safetensors weights beside a JSON config and a sha256 file, verified on load.

A checkpoint ``<stem>`` is three files written together:

- ``<stem>.safetensors``: the state dict (tensors only; optionally cast to fp16 to halve the size);
- ``<stem>.json``: the config needed to rebuild the module (any JSON object, e.g. an open_clip model config);
- ``<stem>.sha256``: ``"<hex>  <stem>.safetensors"`` (the ``sha256sum`` format) of the weights file.

Loading recomputes the sha256 of the weights and refuses a file whose digest differs from its ``.sha256`` (a
truncated download, a tampered or half-written file). Checkpoints of other projects (``.pt``, ``.pth``, ``.bin``,
``.ckpt``) are read with ``torch.load(weights_only=True)``, which cannot execute code from the file; their config
comes from a ``<stem>.json`` beside them when there is one. Nothing is ever downloaded: a missing file is one
`CheckpointError` naming the file.

Writes are atomic (a temporary file renamed into place), so an interrupted save never leaves a half-written
checkpoint under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

SAFETENSORS_SUFFIX = ".safetensors"
TORCH_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".bin", ".ckpt")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or fails its sha256 check."""


def checkpoint_paths(path: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """The ``(weights, config, sha256)`` paths of a checkpoint given its stem or any of its three files.

    Args:
        path: ``run/clip_toy``, ``run/clip_toy.safetensors``, ``run/clip_toy.json`` or ``run/clip_toy.sha256``;
            a ``.pt``/``.pth``/``.bin``/``.ckpt`` file names itself as the weights.

    Returns:
        ``(weights, config, sha256)`` paths (which need not exist).
    """
    path = Path(path)
    if path.suffix in TORCH_SUFFIXES:
        return path, path.with_suffix(".json"), path.with_suffix(".sha256")
    stem = path.with_suffix("") if path.suffix in (SAFETENSORS_SUFFIX, ".json", ".sha256") else path
    return (
        stem.with_name(stem.name + SAFETENSORS_SUFFIX),
        stem.with_name(stem.name + ".json"),
        stem.with_name(stem.name + ".sha256"),
    )


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    module: torch.nn.Module | Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    dtype: torch.dtype | None = None,
) -> str:
    """Write ``<stem>.safetensors``, ``<stem>.json`` and ``<stem>.sha256`` atomically.

    Args:
        module: a module (its ``state_dict()`` is saved) or a state dict.
        config: JSON-serialisable config written beside the weights.
        path: the stem (or the ``.safetensors`` path) of the checkpoint; parent folders are created.
        dtype: cast floating-point tensors to this dtype (e.g. ``torch.float16``); None keeps them.

    Returns:
        The hex sha256 of the weights file.
    """
    weights, config_path, sha_path = checkpoint_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = module.state_dict() if isinstance(module, torch.nn.Module) else dict(module)
    tensors = {
        name: (t.to(dtype) if dtype is not None and t.is_floating_point() else t).detach().cpu().contiguous()
        for name, t in state.items()
    }
    _shared_storage_copies(tensors)
    tmp = weights.with_name(weights.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.chmod(0o666 & ~_umask())  # safetensors creates 0600 files; give the checkpoint ordinary permissions
    digest = sha256_file(tmp)
    _write_text(config_path, json.dumps(dict(config), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, weights)
    _write_text(sha_path, f"{digest}  {weights.name}\n")
    return digest


def load_checkpoint(
    path: str | os.PathLike[str], *, verify: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """Read a checkpoint: its state dict, its config and the sha256 of its weights file.

    Args:
        path: the stem or any file of a safetensors checkpoint, or a ``.pt``/``.pth``/``.bin``/``.ckpt`` file
            (loaded with ``torch.load(weights_only=True)``; a ``state_dict``/``model`` entry is unwrapped and a
            ``module.`` prefix stripped).
        verify: compare the weights' sha256 with the ``.sha256`` file when there is one.

    Returns:
        ``(state_dict, config, sha256)``; ``config`` is ``{}`` when no ``.json`` lies beside a foreign checkpoint.

    Raises:
        CheckpointError: the weights file is missing or unreadable, the config is not a JSON object, or the sha256
            does not match.
    """
    weights, config_path, sha_path = checkpoint_paths(path)
    if not weights.is_file():
        raise CheckpointError(
            f"checkpoint weights not found: {weights}; train it (harness train ...) or point at an existing "
            "local file (nothing is downloaded)"
        )
    digest = sha256_file(weights)
    if verify and sha_path.is_file():
        expected = sha_path.read_text(encoding="utf-8").split()[:1]
        if expected != [digest]:
            raise CheckpointError(
                f"checkpoint {weights} fails its sha256 check (file {digest[:16]}..., {sha_path.name} "
                f"{(expected or ['<empty>'])[0][:16]}...): the file is corrupt or was modified; re-export or "
                "re-download it"
            )
    state = _read_weights(weights)
    config: dict[str, Any] = {}
    if config_path.is_file():
        loaded = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise CheckpointError(
                f"checkpoint config {config_path} must hold a JSON object, got {type(loaded).__name__}"
            )
        config = loaded
    elif weights.suffix == SAFETENSORS_SUFFIX:
        raise CheckpointError(f"checkpoint config not found: {config_path}; it is written beside the weights by save")
    return state, config, digest


def _read_weights(weights: Path) -> dict[str, torch.Tensor]:
    """The state dict of a safetensors or torch file (torch files with ``weights_only=True``)."""
    try:
        if weights.suffix == SAFETENSORS_SUFFIX:
            return load_file(str(weights))
        loaded = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {weights}: {exc}; is it a complete weights file?") from exc
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"checkpoint {weights} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in loaded.items()}


def _shared_storage_copies(tensors: dict[str, torch.Tensor]) -> None:
    """safetensors refuses tensors sharing memory (tied weights): give every such tensor its own copy."""
    seen: set[int] = set()
    for name, tensor in tensors.items():
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen:
            tensors[name] = tensor.clone()
        seen.add(pointer)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
