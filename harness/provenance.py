"""Provenance attached to every run: git commit, package versions, device, Python, time and config hash."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES: tuple[str, ...] = (
    "unclip-harness",
    "torch",
    "torchvision",
    "open_clip_torch",
    "torchmetrics",
    "numpy",
    "scipy",
    "pandas",
    "sqlalchemy",
    "streamlit",
    "pillow",
)


def git_commit(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool}`` of the checkout containing ``cwd`` (the harness source by default)."""
    where = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=where,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha, "dirty": dirty}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info() -> dict[str, Any]:
    """The compute device: CUDA device name and count when available, else the CPU."""
    info: dict[str, Any] = {"machine": platform.machine(), "processor": platform.processor() or None}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["device"] = "cuda"
            info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        else:
            info["device"] = "cpu"
    except ImportError:
        info["device"] = "cpu"
    return info


def collect(config_hash: str, seeds: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to say where a number came from."""
    return {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config_hash": config_hash,
        "seeds": seeds or {},
        "git": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_info(),
    }
