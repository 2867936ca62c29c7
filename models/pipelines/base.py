"""The one interface every text-to-image pipeline offers: prompts, seeds and sampling settings → images + metadata.

``pipeline(prompts, seeds, SamplingConfig(...)) -> GenerationOutput``. The image for (prompt, seed, settings) is
bit-identical whatever batch it was generated in: every image draws all its randomness (prior noise, candidates,
decoder noise, upsampler noise) from its own generator seeded by (prompt, seed) (`generator_for`), and networks
run on fixed-size chunks of ``batch_size`` rows (see `models.pipelines.stages`). ``batch_size`` is therefore a
setting: the same images come back for any number of prompts, in any order, at one ``batch_size``. So are
``precision``, ``channels_last`` and ``compile`` (how the networks run: `models.pipelines.execution`); the
defaults (fp32, default layout, eager) reproduce the images made before those settings existed, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from models.pipelines.execution import check_precision


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings of a text-to-image pipeline (stages without a setting ignore it).

    Attributes:
        prior_guidance_scale: classifier-free guidance s of the unCLIP prior (1 = conditional model).
        decoder_guidance_scale: s of the base image model (unCLIP decoder or GLIDE base).
        prior_steps: respacing of the diffusion prior (e.g. ``"64"``; paper Table 3).
        decoder_steps: respacing of the base model (``"50"``, ``"ddim25"``, ``"10,10,3,2,2"``).
        upsampler_steps: respacing of the upsampler (few DDIM steps, e.g. ``"10"`` or ``"fast27"``).
        upsampler_start: fraction of the upsampler's chain run, in (0, 1]: 1 starts from pure noise (the paper);
            below 1 from the noised bilinear upsample at t = start · (T − 1) (`stages.upsample_images`; 0.4 for
            the toy ε-prediction upsampler).
        sampler: ``"ddim"`` or ``"ddpm"`` for the base model (the upsampler always uses DDIM).
        eta: DDIM η of the base model (0 = deterministic given x_T).
        upsample: run the upsampler stage (False returns base-resolution images).
        prior_candidates: unCLIP diffusion prior: candidates z_i drawn per image, keeping the largest z_i·z_t (2).
        ar_top_fraction: unCLIP AR prior: the dot-product token is drawn uniformly from this top fraction (0.5).
        batch_size: rows per network call (a setting: see the module docstring).
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (CUDA only): autocast of the denoising networks,
            process kept in float32 (`models.pipelines.execution`).
        channels_last: run the UNets' 4-D inputs and weights in ``torch.channels_last``.
        compile: call a ``torch.compile`` of each UNet stage (compiled on the first call, then reused).
    """

    prior_guidance_scale: float = 2.0
    decoder_guidance_scale: float = 3.0
    prior_steps: str = "64"
    decoder_steps: str = "50"
    upsampler_steps: str = "10"
    upsampler_start: float = 1.0
    sampler: str = "ddim"
    eta: float = 0.0
    upsample: bool = True
    prior_candidates: int = 2
    ar_top_fraction: float = 0.5
    batch_size: int = 16
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0.0 < self.upsampler_start <= 1.0:
            raise ValueError(f"upsampler_start must lie in (0, 1], got {self.upsampler_start}; 1 = from pure noise")
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if self.prior_candidates < 1:
            raise ValueError(f"prior_candidates must be at least 1, got {self.prior_candidates}")
        if not 0.0 < self.ar_top_fraction <= 1.0:
            raise ValueError(f"ar_top_fraction must lie in (0, 1], got {self.ar_top_fraction}")
        if self.sampler not in ("ddim", "ddpm"):
            raise ValueError(f"unknown sampler {self.sampler!r}; use 'ddim' or 'ddpm'")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (stored in each image's metadata)."""
        return asdict(self)


DEFAULT_SAMPLING = SamplingConfig()
"""The defaults, as one shared instance (a default argument of the pipelines)."""


@dataclass(frozen=True)
class GenerationOutput:
    """What a pipeline returns.

    Attributes:
        images: (N, H, W, 3) uint8 RGB, one per (prompt, seed), in input order.
        metadata: one dict per image (prompt, seed, model id, sampler settings, and stage-specific facts such as
            the prior's chosen candidate score z_i·z_t).
    """

    images: np.ndarray
    metadata: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)


@runtime_checkable
class Pipeline(Protocol):
    """A text-to-image pipeline (see the module docstring).

    Attributes:
        model_id: stable id of the model (e.g. ``"glide-toy"``).
        checkpoint_sha256: sha256 of the pipeline's weights (the hashes of its stages' files joined in order).
    """

    model_id: str
    checkpoint_sha256: str

    def __call__(
        self, prompts: Sequence[str], seeds: Sequence[int], config: SamplingConfig = DEFAULT_SAMPLING
    ) -> GenerationOutput: ...


def check_inputs(prompts: Sequence[str], seeds: Sequence[int]) -> None:
    """Raise ValueError unless there is one integer seed per prompt."""
    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts and {len(seeds)} seeds; pass one seed per prompt")
    for seed in seeds:
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seeds must be non-negative integers, got {seed!r}")


def stack_images(images: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """(N, H, W, 3) uint8 array from a tensor/array/list."""
    return np.ascontiguousarray(np.asarray(images, dtype=np.uint8))
