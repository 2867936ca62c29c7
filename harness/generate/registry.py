"""The generator registry: anything that turns (prompts, seeds, settings) into images, behind one interface.

A generator is built by name from a run config's ``[[systems]]`` entry (``generator = "..."`` plus ``options``) with
`build_generator`. This module holds the interface and the registry only and imports no generator: the built-ins
register themselves when the package `harness.generate` imports them (`harness.generate.toyworld`: ``reference``,
``degraded``; `harness.generate.external`: ``image-folder``, ``callable``; `harness.generate.diffusers`:
``diffusers``; `harness.generate.pipelines`: ``unclip-diffusion-prior``, ``unclip-ar-prior``, ``glide``), and a
plugin registers its own with `register_generator` (README, "Your own model").

Contract: ``generate(prompts, seeds, settings)`` returns one (H, W, 3) uint8 RGB image per (prompt, seed) pair, and
the image for a pair depends only on (generator, options, prompt, seed, settings) — never on batch composition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from harness.errors import ConfigError, did_you_mean


@runtime_checkable
class Generator(Protocol):
    """What `harness generate` needs from a model.

    Attributes:
        model_id: the generator's own id (stored with every image).
        checkpoint_sha256: sha256 of the weights (``None`` for weight-free generators).
        uses_guidance: whether sampling settings (guidance scales, steps) change the output; if not, a run
            generates each (prompt, seed) once instead of once per setting.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def checkpoint_sha256(self) -> str | None: ...

    @property
    def uses_guidance(self) -> bool: ...

    def generate(
        self, prompts: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any]
    ) -> list[np.ndarray]: ...


GeneratorFactory = Callable[[Mapping[str, Any]], Generator]
_REGISTRY: dict[str, GeneratorFactory] = {}


def register_generator(name: str) -> Callable[[GeneratorFactory], GeneratorFactory]:
    """Register a factory ``options -> Generator`` under ``name`` (re-registration is an error)."""

    def deco(factory: GeneratorFactory) -> GeneratorFactory:
        if name in _REGISTRY:
            raise ValueError(f"generator {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def list_generators() -> list[str]:
    """Names of the registered generators, sorted."""
    return sorted(_REGISTRY)


def build_generator(name: str, options: Mapping[str, Any]) -> Generator:
    """Build a generator by name.

    Raises:
        ConfigError: unknown generator (did-you-mean) or invalid options.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown generator {name!r}{did_you_mean(name, _REGISTRY)}")
    return _REGISTRY[name](options)


def check_options(name: str, options: Mapping[str, Any], allowed: set[str]) -> None:
    """Refuse an option of generator ``name`` that is not in ``allowed`` (`ConfigError` with a did-you-mean)."""
    for key in options:
        if key not in allowed:
            raise ConfigError(f"generator {name!r}: unknown option {key!r}{did_you_mean(key, allowed)}")


def str_option(name: str, options: Mapping[str, Any], key: str, default: str | None = None) -> str:
    """Option ``key`` of generator ``name`` as a non-empty string (``default`` when absent; `ConfigError` when
    missing without a default or not a non-empty string)."""
    value = options.get(key, default)
    if value is None:
        raise ConfigError(f"generator {name!r}: missing option {key!r}; add it to the system's options table")
    if not isinstance(value, str) or not value:
        raise ConfigError(f"generator {name!r}: option {key!r} must be a non-empty string, got {value!r}")
    return value


@runtime_checkable
class SettingsResolver(Protocol):
    """A generator that fills in the defaults of the sampling settings it was given (the model pipelines): the
    settings recorded with each image (and keying it in the run's manifest) are then the ones it was made with."""

    def resolve_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The complete settings an image made with ``settings`` uses: only keys that change this generator's
        images, defaults filled in.

        Raises:
            ConfigError: a setting this generator cannot use (unknown sampler, malformed steps).
        """
        ...


@dataclass(frozen=True)
class SampleKey:
    """Which image of a run is asked for: the prompt's stable id and the seed index ``k``."""

    prompt_id: str
    sample_index: int


@runtime_checkable
class KeyedGenerator(Protocol):
    """A generator that looks images up by (prompt id, seed index) instead of making them from the seed
    (an image folder); `harness.generate.run` hands it each unit's `SampleKey` through ``generate_keyed``."""

    def generate_keyed(
        self, keys: Sequence[SampleKey], prompts: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any]
    ) -> list[np.ndarray]: ...
