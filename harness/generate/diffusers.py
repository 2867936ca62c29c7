"""The ``diffusers`` external generator: a local pipeline directory saved with ``save_pretrained``.

Registered when the package `harness.generate` is imported; documented in `harness.generate.external`.
diffusers is an optional extra (``pip install 'unclip-harness[diffusers]'``), imported only when this generator is
built, so the rest of the harness runs without it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError, HarnessError
from harness.generate.external import DIFFUSERS_INSTALL, normalise_images
from harness.generate.registry import Generator, check_options, register_generator, str_option

TORCH_DTYPES = ("float32", "float16", "bfloat16")

# run setting -> the pipeline-call parameters that can take it, first match wins
SETTING_KWARGS: dict[str, tuple[str, ...]] = {
    "guidance_scale": ("guidance_scale", "decoder_guidance_scale"),
    "prior_guidance_scale": ("prior_guidance_scale",),
    "steps": ("num_inference_steps", "decoder_num_inference_steps"),
}
MANAGED_KWARGS = {"prompt", "generator", "output_type", "return_dict"}


def import_diffusers() -> Any:
    """The diffusers module, or a `HarnessError` naming the install command."""
    try:
        import diffusers
    except ImportError as exc:
        raise HarnessError(
            f"generator 'diffusers' needs the diffusers package ({exc}); install it with: {DIFFUSERS_INSTALL}"
        ) from None
    return diffusers


@lru_cache(maxsize=16)
def _tree_sha256_cached(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for rel, _size, _mtime in stamp:
        file_hash = hashlib.sha256()
        with open(Path(folder) / rel, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                file_hash.update(chunk)
        h.update(f"{rel}\t{file_hash.hexdigest()}\n".encode())
    return h.hexdigest()


def tree_sha256(folder: Path) -> str:
    """sha256 over every file below ``folder``: sorted lines ``<relative path>\\t<sha256 of content>``.

    Cached in-process by each file's (path, size, mtime), so building the same generator twice reads the weights once.
    """
    files = sorted(f for f in folder.rglob("*") if f.is_file())
    stamp = tuple((f.relative_to(folder).as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _tree_sha256_cached(str(folder.resolve()), stamp)


@dataclass
class DiffusersGenerator:
    """A local diffusers pipeline (module docstring); loaded on the first ``generate`` call."""

    path: Path
    setting_kwargs: Mapping[str, str]  # run setting -> the pipeline-call parameter that takes it
    call_kwargs: Mapping[str, Any]
    takes_output_type: bool
    device: str
    dtype: str
    model_id: str
    checkpoint_sha256: str
    uses_guidance: bool
    _pipeline: Any = field(default=None, repr=False)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any]) -> list[np.ndarray]:
        """One image per (prompt, seed), each from its own call seeded with ``torch.Generator().manual_seed(seed)``."""
        import torch

        pipe = self._load()
        kwargs = {**self.call_kwargs, **self._setting_values(settings)}
        if self.takes_output_type:
            kwargs["output_type"] = "np"
        who = f"diffusers pipeline {self.path}"
        images = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            out = pipe(prompt=prompt, generator=torch.Generator().manual_seed(int(seed)), **kwargs)
            images += normalise_images(getattr(out, "images", out), 1, who)
        return images

    def _setting_values(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The pipeline-call keyword arguments of a run's settings (guidance scales as floats, steps as an int)."""
        values: dict[str, Any] = {}
        for setting, param in self.setting_kwargs.items():
            value = settings.get(setting)
            if value is None:
                continue
            if setting != "steps":
                values[param] = float(value)
            elif str(value).isdigit():
                values[param] = int(value)
            else:
                raise HarnessError(
                    f"diffusers pipeline {self.path}: sampling.steps = {value!r}; diffusers takes a step count, "
                    'e.g. --set sampling.steps="50"'
                )
        return values

    def _load(self) -> Any:
        if self._pipeline is None:
            import torch

            diffusers = import_diffusers()
            try:
                with warnings.catch_warnings():  # newer diffusers renamed torch_dtype to dtype; older ones lack dtype
                    warnings.filterwarnings("ignore", message=".*torch_dtype.*deprecated", category=FutureWarning)
                    pipe = diffusers.DiffusionPipeline.from_pretrained(
                        str(self.path), local_files_only=True, torch_dtype=getattr(torch, self.dtype)
                    )
            except (OSError, ValueError, ImportError) as exc:
                raise HarnessError(
                    f"cannot load the diffusers pipeline {self.path} ({exc}); save it with pipeline.save_pretrained "
                    f"and check its dependencies ({DIFFUSERS_INSTALL})"
                ) from None
            pipe = pipe.to(self.device)
            pipe.set_progress_bar_config(disable=True)
            self._pipeline = pipe
        return self._pipeline


def _pipeline_call_parameters(path: Path) -> tuple[dict[str, inspect.Parameter], bool]:
    """The pipeline class's ``__call__`` parameters (from model_index.json, without loading weights) and **kwargs."""
    index = path / "model_index.json"
    if not index.is_file():
        raise ConfigError(
            f"generator 'diffusers': {path} has no model_index.json; point options.path at a folder written by "
            "pipeline.save_pretrained"
        )
    class_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    cls = getattr(import_diffusers(), str(class_name), None)
    if not isinstance(cls, type) or not callable(cls):
        raise ConfigError(
            f"generator 'diffusers': pipeline class {class_name!r} of {index} is not in the installed diffusers; "
            "upgrade it (pip install -U diffusers)"
        )
    params = dict(inspect.signature(cls.__call__).parameters)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {k: p for k, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}, var_kw


@register_generator("diffusers")
def _diffusers(options: Mapping[str, Any]) -> Generator:
    name = "diffusers"
    check_options(name, options, {"path", "device", "dtype", "model_id", "call_kwargs"})
    path = Path(str_option(name, options, "path"))
    if not path.is_dir():
        raise ConfigError(f"generator {name!r}: pipeline folder {path} not found; set options.path")
    dtype = str_option(name, options, "dtype", "float32")
    if dtype not in TORCH_DTYPES:
        raise ConfigError(f"generator {name!r}: dtype {dtype!r} is not one of {', '.join(TORCH_DTYPES)}")
    params, var_kw = _pipeline_call_parameters(path)
    if "prompt" not in params:
        raise ConfigError(f"generator {name!r}: the pipeline in {path} takes no text prompt; use a text-to-image one")
    setting_kwargs = {
        s: next(p for p in cands if p in params)
        for s, cands in SETTING_KWARGS.items()
        if any(p in params for p in cands)
    }
    call_kwargs = options.get("call_kwargs", {})
    if not isinstance(call_kwargs, Mapping):
        raise ConfigError(f"generator {name!r}: options.call_kwargs must be a table, e.g. {{height = 512}}")
    for key in call_kwargs:
        if key in MANAGED_KWARGS or key in setting_kwargs.values():
            raise ConfigError(f"generator {name!r}: call_kwargs.{key} is set by the harness; use [sampling] instead")
        if key not in params and not var_kw:
            raise ConfigError(f"generator {name!r}: the pipeline's call takes no {key!r}; remove it from call_kwargs")
    return DiffusersGenerator(
        path=path,
        setting_kwargs=setting_kwargs,
        call_kwargs=dict(call_kwargs),
        takes_output_type="output_type" in params,
        device=str_option(name, options, "device", "cpu"),
        dtype=dtype,
        model_id=str_option(name, options, "model_id", f"diffusers:{path.resolve().name}"),
        checkpoint_sha256=tree_sha256(path),
        uses_guidance="guidance_scale" in setting_kwargs or "steps" in setting_kwargs,
    )
