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

from models.diffusion import check_respacing, parse_sampler
from models.pipelines.execution import check_precision

STAGES: tuple[str, ...] = ("prior", "decoder", "upsampler")
"""The sampled stages, in order; each has a sampler (``<stage>_sampler`` or the shared ``sampler``) and steps."""


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings of a text-to-image pipeline (stages without a setting ignore it). The defaults here are
    the only defaults of the pipelines' sampling options, chosen by measured quality (``benchmarks/sampling.md``): per
    stage the cheapest sampler and steps whose attribute-oracle accuracy (all three attributes) stays within 2 points
    of DDIM 50 on every toy model (n = 128, paired), checked on whole pipelines against the demo's DDIM 20:
    DPM-Solver++ 2M with 15 prior steps, 8 "trailing" decoder steps (6 passed the stage check but lost 3 points on
    the whole unCLIP pipeline) and 4 log-SNR upsampler steps from 0.4 of the chain: 15 + 8 + 4 network evaluations
    per image where the demo's DDIM took 32 + 20 + 10.

    Attributes:
        prior_guidance_scale: classifier-free guidance s of the unCLIP prior (1 = conditional model, the paper's
            choice: "guiding the prior hurt results"); a configured 0 stays 0 (the unconditional prior).
        decoder_guidance_scale: s of the base image model (unCLIP decoder or GLIDE base).
        sampler: the sampler of every stage that does not name its own (`models.diffusion.SAMPLER_NAMES`:
            ``"ddpm"``, ``"ddim"``, ``"dpm++2m"``, ``"dpm++3m"``, ``"dpm++2m-sde"``, ``"euler-a"``, ``"heun"``).
        prior_sampler: the diffusion prior's sampler; None = ``sampler`` (the AR prior has none).
        decoder_sampler: the base model's sampler (unCLIP decoder, GLIDE base); None = ``sampler``.
        upsampler_sampler: the upsampler's sampler; None = ``sampler``.
        prior_steps: kept steps of the diffusion prior: a respacing string (`models.diffusion.respace`:
            ``"32"``, ``"ddim25"``, ``"trailing8"``, ``"karras10"``, ``"logsnr10"``, ``"10,10,3,2,2"``, ``"fast27"``).
        decoder_steps: kept steps of the base model (same forms).
        upsampler_steps: kept steps of the upsampler, spread over its (possibly truncated) chain.
        upsampler_start: fraction of the upsampler's chain run, in (0, 1]: 1 starts from pure noise (the paper);
            below 1 from the noised bilinear upsample at t = start · (T − 1) (`stages.upsample_images`), for every
            sampler. 0.4 (the toy ε-prediction upsampler's setting): ``upsampler_steps`` ``"logsnr4"`` is chosen
            for it; from 1.0 that spacing puts its nodes at extreme noise levels (measured: ``benchmarks/sampling.md``),
            so set the steps with the start.
        eta: DDIM η of the base model (0 = deterministic given x_T); non-zero only with a DDIM decoder.
        upsample: run the upsampler stage (False returns base-resolution images).
        prior_candidates: unCLIP diffusion prior: candidates z_i drawn per image, keeping the largest z_i·z_t (2).
        ar_top_fraction: unCLIP AR prior: the dot-product token is drawn uniformly from this top fraction (0.5).
        batch_size: rows per network call (a setting: see the module docstring).
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (CUDA only): autocast of the denoising networks,
            process kept in float32 (`models.pipelines.execution`).
        channels_last: run the UNets' 4-D inputs and weights in ``torch.channels_last``.
        upsampler_channels_last: the upsampler's memory format when it differs from the decoder's (None: as
            ``channels_last``). Measured on 2 CPU cores (``benchmarks/generation.md``): channels-last makes the toy
            convolution-only upsampler ~2× faster per call and the attention-bearing toy GLIDE base ~1.7× slower,
            so the demo sets it for the upsampler alone.
        compile: call a ``torch.compile`` of each UNet stage (compiled on the first call, then reused).

    ``SamplingConfig(sampler="ddim", prior_steps=..., decoder_steps="20", upsampler_steps="10")`` reproduces the
    images made before per-stage samplers existed (every stage sampled with DDIM), bit for bit.

    Raises:
        ValueError: an unknown sampler (with a did-you-mean), a malformed steps string, η ≠ 0 without a DDIM
            decoder, or an out-of-range number.
    """

    prior_guidance_scale: float = 1.0
    decoder_guidance_scale: float = 3.0
    sampler: str = "dpm++2m"
    prior_sampler: str | None = None
    decoder_sampler: str | None = None
    upsampler_sampler: str | None = None
    prior_steps: str = "15"
    decoder_steps: str = "trailing8"
    upsampler_steps: str = "logsnr4"
    upsampler_start: float = 0.4
    eta: float = 0.0
    upsample: bool = True
    prior_candidates: int = 2
    ar_top_fraction: float = 0.5
    batch_size: int = 16
    precision: str = "fp32"
    channels_last: bool = False
    upsampler_channels_last: bool | None = None
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
        for stage in STAGES:
            try:
                parse_sampler(self.stage_sampler(stage))
            except ValueError as exc:
                field_name = "sampler" if getattr(self, f"{stage}_sampler") is None else f"{stage}_sampler"
                raise ValueError(f"{field_name}: {exc}") from None
            try:
                check_respacing(getattr(self, f"{stage}_steps"))
            except ValueError as exc:
                raise ValueError(f"{stage}_steps: {exc}") from None
        if self.eta != 0 and self.stage_sampler("decoder") != "ddim":
            raise ValueError(
                f"eta applies to a DDIM decoder only, got decoder sampler {self.stage_sampler('decoder')!r}; "
                "set decoder_sampler = 'ddim' or eta = 0"
            )

    def stage_sampler(self, stage: str) -> str:
        """The sampler name of ``stage`` (one of :data:`STAGES`): its own, else the shared ``sampler``.

        Raises:
            ValueError: an unknown stage.
        """
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; use one of: {', '.join(STAGES)}")
        own: str | None = getattr(self, f"{stage}_sampler")
        return self.sampler if own is None else own

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
