"""The trained pipelines as harness generators: ``unclip-diffusion-prior``, ``unclip-ar-prior``, ``glide``.

Registered when the package `harness.generate` is imported. Options of
each (a run config's ``[[systems]] options``):

* ``checkpoint_dir`` (default: `harness.paths.toy_checkpoint_dir`, ``$HARNESS_TOY_CHECKPOINTS`` or the shipped
  ``checkpoints/toy``): the folder of the stage
  checkpoints (`models.factory`); a relative path is relative to the working directory;
* ``device`` (``cpu``); ``upsample`` (true: 64×64 images; false: the 32×32 base);
* ``upsampler_start`` (the pipeline's default, 0.4: the upsampler runs the last 40% of its chain from the noised
  bilinear upsample; 1.0: from pure noise, see `models.pipelines.stages.upsample_images`), ``eta`` (DDIM η of the
  decoder, default 0), ``batch_size`` (16, rows per network call — part of the settings, see `models.pipelines.base`);
* ``precision`` (``"fp32"``; ``"bf16"``, or ``"fp16"`` on CUDA only), ``channels_last`` (false),
  ``upsampler_channels_last`` (unset: as ``channels_last``; the toy configs set it, 2× faster upsampling on a CPU),
  ``compile`` (false): how the networks run (`models.pipelines.execution`); fp32 and the defaults reproduce earlier
  images, a memory format changes at most the last bit of a few pixels.

Sampling settings come from the run's ``[sampling]`` table (`harness.config.SamplingConfig`): ``guidance_scale`` →
the decoder's guidance, ``prior_guidance_scale``, the samplers (``sampler`` or per stage) and ``steps`` (decoder),
``prior_steps``, ``upsampler_steps``; what is not given keeps the pipeline's default
(`models.pipelines.base.SamplingConfig`, the one place for them). `PipelineGenerator.resolve_settings` writes the
values used into each image's settings, so the manifest says how every image was sampled. ``model_id`` is the pipeline name and ``checkpoint_sha256``
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
OPTIONS = {"checkpoint_dir", "device", "upsample", "upsampler_start", "eta", "batch_size", "precision",
           "channels_last", "upsampler_channels_last", "compile"}
MOVED_TO_SAMPLING = {"prior_steps", "upsampler_steps"}
"""Former options, now ``[sampling]`` keys for every system (one place for sampling settings)."""
RUN_KEYS: dict[str, str] = {
    "guidance_scale": "decoder_guidance_scale",
    "prior_guidance_scale": "prior_guidance_scale",
    "sampler": "sampler",
    "prior_sampler": "prior_sampler",
    "decoder_sampler": "decoder_sampler",
    "upsampler_sampler": "upsampler_sampler",
    "steps": "decoder_steps",
    "prior_steps": "prior_steps",
    "upsampler_steps": "upsampler_steps",
}
"""An image's setting (``[sampling]`` key) → the `models.pipelines.base.SamplingConfig` field it sets."""


@dataclass
class PipelineGenerator:
    """A `models.factory` pipeline behind the `Generator` protocol (module docstring)."""

    name: str
    checkpoint_dir: str = ""  # empty: the toy checkpoints (`harness.paths.toy_checkpoint_dir`)
    device: str = "cpu"
    upsample: bool = True
    upsampler_start: float | None = None  # None: the pipeline's default
    eta: float | None = None
    batch_size: int = 16
    precision: str = "fp32"
    channels_last: bool = False
    upsampler_channels_last: bool | None = None
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

    @property
    def stages(self) -> tuple[str, ...]:
        """The sampled stages of this pipeline (`models.pipelines.base.STAGES` it runs)."""
        prior = ("prior",) if self.name == "unclip-diffusion-prior" else ()
        return (*prior, "decoder", *(("upsampler",) if self.upsample else ()))

    def sampling_config(self, settings: Mapping[str, Any]) -> Any:
        """The pipeline's `SamplingConfig` for an image's settings and this system's options; what neither gives
        keeps the pipeline's default.

        Raises:
            ConfigError: an unknown sampler (with a did-you-mean) or a malformed steps string or value.
        """
        from models.pipelines.base import SamplingConfig

        given: dict[str, Any] = {RUN_KEYS[k]: v for k, v in settings.items() if k in RUN_KEYS and v is not None}
        options: dict[str, Any] = {"upsampler_start": self.upsampler_start, "eta": self.eta}
        try:
            return SamplingConfig(
                **given,
                **{k: v for k, v in options.items() if v is not None},
                upsample=self.upsample,
                batch_size=int(self.batch_size),
                precision=str(self.precision),
                channels_last=bool(self.channels_last),
                upsampler_channels_last=(
                    None if self.upsampler_channels_last is None else bool(self.upsampler_channels_last)
                ),
                compile=bool(self.compile),
            )
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"generator {self.name!r}: sampling: {exc}") from None

    def resolve_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The settings an image is made with: the decoder guidance scale, the prior guidance (unCLIP), and the
        sampler and steps of each stage this pipeline runs, defaults filled in (`harness.generate.registry.
        SettingsResolver`); keys of stages it does not run are left out (GLIDE has no prior)."""
        config = self.sampling_config(settings)
        out: dict[str, Any] = {"guidance_scale": settings.get("guidance_scale", config.decoder_guidance_scale)}
        if self.name.startswith("unclip"):
            out["prior_guidance_scale"] = config.prior_guidance_scale
        for stage in self.stages:
            out[f"{stage}_sampler"] = config.stage_sampler(stage)
            out["steps" if stage == "decoder" else f"{stage}_steps"] = getattr(config, f"{stage}_steps")
        return out

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
        if moved := sorted(MOVED_TO_SAMPLING & set(options)):
            raise ConfigError(
                f"generator {name!r}: option {moved[0]!r} is now a [sampling] key (one place for the sampling settings "
                f"of every system); move it there: [sampling] {moved[0]} = {options[moved[0]]!r}"
            )
        check_options(name, options, OPTIONS)
        kwargs = {k: options[k] for k in OPTIONS if k in options}
        return PipelineGenerator(name=name, **kwargs)

    return build


for _name in MODEL_GENERATORS:
    register_generator(_name)(_factory(_name))
