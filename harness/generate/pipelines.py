"""The trained pipelines as harness generators: ``unclip-diffusion-prior``, ``unclip-ar-prior``, ``glide``.

Registered when the package `harness.generate` is imported. Options of
each (a run config's ``[[systems]] options``):

* ``checkpoint_dir`` (default: `harness.paths.toy_checkpoint_dir`, ``$HARNESS_TOY_CHECKPOINTS`` or the shipped
  ``checkpoints/toy``): the folder of the stage
  checkpoints (`models.factory`); a relative path is relative to the working directory;
* ``device`` (``cpu``); ``upsample`` (true: 64×64 images; false: the 32×32 base);
* ``prior_steps`` (``"64"``), ``upsampler_steps`` (``"10"``), ``upsampler_start`` (1.0: from pure noise; the toy
  configs use 0.4, see `models.pipelines.stages.upsample_images`), ``eta`` (0), ``batch_size`` (16, rows per network
  call — part of the settings, see `models.pipelines.base`);
* ``precision`` (``"fp32"``; ``"bf16"``, or ``"fp16"`` on CUDA only), ``channels_last`` (false), ``compile``
  (false): how the networks run (`models.pipelines.execution`); fp32 and the defaults reproduce earlier images.

Per-image settings from the run (``guidance_scale``, ``prior_guidance_scale``, ``steps``) map to the pipeline's
decoder guidance, prior guidance and decoder steps. ``model_id`` is the pipeline name and ``checkpoint_sha256``
the stages' weight hashes joined with ``+``, read from the ``.sha256`` files when the generator is built; the
weights themselves are loaded on the first ``generate`` call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import ConfigError, HarnessError
from harness.generate.registry import Generator, check_options, register_generator
from harness.paths import toy_checkpoint_dir

MODEL_GENERATORS: tuple[str, ...] = ("unclip-diffusion-prior", "unclip-ar-prior", "glide")
OPTIONS = {
    "checkpoint_dir",
    "device",
    "upsample",
    "prior_steps",
    "upsampler_steps",
    "upsampler_start",
    "eta",
    "batch_size",
    "precision",
    "channels_last",
    "compile",
}
DEFAULT_PRIOR_GUIDANCE = 1.0


@dataclass
class PipelineGenerator:
    """A `models.factory` pipeline behind the `Generator` protocol (module docstring)."""

    name: str
    checkpoint_dir: str = ""  # empty: the toy checkpoints (`harness.paths.toy_checkpoint_dir`)
    device: str = "cpu"
    upsample: bool = True
    prior_steps: str = "64"
    upsampler_steps: str = "10"
    upsampler_start: float = 1.0
    eta: float = 0.0
    batch_size: int = 16
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    model_id: str = ""
    checkpoint_sha256: str | None = None
    uses_guidance: bool = True
    _pipeline: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from models.factory import pipeline_checkpoint_sha256
        from models.pipelines.execution import Execution

        self.checkpoint_dir = self.checkpoint_dir or str(toy_checkpoint_dir())
        self.model_id = self.name
        try:  # a bad precision (or fp16 off CUDA) is a config error before any work
            Execution(self.device, str(self.precision), bool(self.channels_last), bool(self.compile))
        except ValueError as exc:
            raise ConfigError(f"generator {self.name!r}: {exc}") from None
        try:
            self.checkpoint_sha256 = pipeline_checkpoint_sha256(self.name, self.checkpoint_dir, upsampler=self.upsample)
        except ValueError as exc:
            raise ConfigError(f"generator {self.name!r}: {exc}") from None

    def sampling_config(self, settings: Mapping[str, Any]) -> Any:
        """The pipeline's `SamplingConfig` for a run's per-image settings."""
        from models.pipelines.base import SamplingConfig

        try:
            return SamplingConfig(
                prior_guidance_scale=float(settings.get("prior_guidance_scale") or DEFAULT_PRIOR_GUIDANCE),
                decoder_guidance_scale=float(settings.get("guidance_scale", 3.0)),
                prior_steps=str(self.prior_steps),
                decoder_steps=str(settings.get("steps", "50")),
                upsampler_steps=str(self.upsampler_steps),
                upsampler_start=float(self.upsampler_start),
                eta=float(self.eta),
                upsample=self.upsample,
                batch_size=int(self.batch_size),
                precision=str(self.precision),
                channels_last=bool(self.channels_last),
                compile=bool(self.compile),
            )
        except ValueError as exc:
            raise HarnessError(f"generator {self.name!r}: {exc}") from None

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any]) -> list[np.ndarray]:
        """One uint8 (S, S, 3) image per (prompt, seed)."""
        config = self.sampling_config(settings)
        try:
            if self._pipeline is None:
                from models.factory import create_pipeline

                self._pipeline = create_pipeline(
                    self.name, self.checkpoint_dir, device=self.device, upsampler=self.upsample
                )
            output = self._pipeline(list(prompts), [int(s) for s in seeds], config)
        except ValueError as exc:
            raise HarnessError(f"generator {self.name!r}: {exc}") from None
        return list(output.images)


def _factory(name: str) -> Any:
    def build(options: Mapping[str, Any]) -> Generator:
        check_options(name, options, OPTIONS)
        kwargs = {k: options[k] for k in OPTIONS if k in options}
        return PipelineGenerator(name=name, **kwargs)

    return build


for _name in MODEL_GENERATORS:
    register_generator(_name)(_factory(_name))
