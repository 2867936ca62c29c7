"""One diffusion stage = a network + its process; the sampling and image helpers both pipelines share.

A :class:`Stage` joins a network from ``models.networks`` and a :class:`~models.diffusion.DiffusionConfig` from
``models.diffusion`` (the only place the two packages meet, DESIGN.md rule 2). :func:`sample_stage` draws samples
with classifier-free guidance, any sampler of `models.diffusion.SAMPLER_NAMES` (DDPM, DDIM, DPM-Solver++, Euler
ancestral, Heun) and respaced steps. The sampler and steps of each stage come from the pipeline's
:class:`~models.pipelines.base.SamplingConfig`; these functions take them as required arguments (no second set of
defaults; `upsample_images` without a sampler takes the config's upsampler default).

How the networks run (autocast precision, channels-last, ``torch.compile``) is an
:class:`~models.pipelines.execution.Execution` passed to :func:`sample_stage`; its defaults call the network as it
is. A :class:`Stage` keeps its compiled network once made, so only its first compiled call pays the compilation.

Per-sample determinism (DESIGN.md): every sample owns a ``torch.Generator`` seeded from (prompt, seed) by
:func:`~models.diffusion.generator_for`, so its noise never depends on its batch-mates; and :func:`sample_stage`
runs the network on chunks of exactly ``chunk`` rows, padding the last chunk with copies of its first row, so
the kernels see the same batch shape whatever the number of prompts (some CPU/GPU kernels pick their algorithm
from the batch size, which would change the last bits). An image for (prompt, seed, settings) is therefore
bit-identical whatever batch it was requested in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.diffusion import ClassifierFreeGuidance, DiffusionConfig, randn, sample
from models.pipelines.base import DEFAULT_SAMPLING
from models.pipelines.execution import Execution, running

SEED_KEY_SEPARATOR = "\0"


@dataclass(frozen=True)
class Stage:
    """A trained diffusion stage: the network and the process it was trained with.

    Attributes:
        network: the denoiser ``network(x_t, t, **cond)`` (eval mode).
        diffusion: its process.
    """

    network: nn.Module
    diffusion: DiffusionConfig
    _compiled: dict[str, Callable[..., Tensor]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def compile_network(self, **options: Any) -> Callable[..., Tensor]:
        """Compile the network now, ``torch.compile(network, **options)`` (e.g. ``mode="max-autotune"``), and keep
        it: the stage's compiled calls use it from then on."""
        self._compiled["network"] = torch.compile(self.network, **options)
        return self._compiled["network"]

    def compiled_network(self) -> Callable[..., Tensor]:
        """The kept compiled network; made with the default options on the first request."""
        if "network" not in self._compiled:
            return self.compile_network()
        return self._compiled["network"]


def network_image_size(network: nn.Module) -> int:
    """The output side of a UNet stage network (its ``config.image_size``)."""
    return int(getattr(network, "config").image_size)  # noqa: B009 - nn.Module attributes are untyped


def sample_stage(
    stage: Stage,
    shape: Sequence[int],
    cond: Mapping[str, Any],
    generators: Sequence[torch.Generator],
    *,
    respacing: str,
    sampler: str,
    guidance_scale: float = 1.0,
    eta: float = 0.0,
    noise: Tensor | None = None,
    chunk: int | None = None,
    clip_denoised: bool = True,
    mask_keys: Sequence[str] = ("cond_mask",),
    device: torch.device | str = "cpu",
    execution: Execution | None = None,
    last_step: int | None = None,
) -> Tensor:
    """Sample B items of one stage, in fixed-size chunks (module docstring).

    Args:
        stage: network + process.
        shape: (B, ...) of the samples.
        cond: conditioning keywords; tensors with first dim B are split across chunks, others passed whole.
        generators: B per-sample generators.
        respacing: step count string (``"50"``, ``"ddim25"``, ``"karras10"``, ``"10,10,3,2,2"``...).
        sampler: a sampler name (`models.diffusion.SAMPLER_NAMES`).
        guidance_scale: classifier-free guidance s (1 = conditional model, no unconditional pass).
        eta: DDIM η (DDIM only).
        noise: optional starting x_T (B, ...) (e.g. from DDIM inversion).
        chunk: rows per network call (None: B, i.e. one chunk).
        clip_denoised: clamp x̂_0 to [−1, 1] (images); False for CLIP embeddings.
        mask_keys: condition-mask keywords the guidance wrapper toggles.
        device: where to sample (ignored when ``execution`` is given).
        execution: how the network runs (precision, channels-last, compile); None: fp32 eager on ``device``.
        last_step: start the chain at this original step instead of T − 1 (`DiffusionConfig.build`); ``noise``
            is then x_{last_step}.

    Returns:
        (B, ...) float32 samples.
    """
    batch = int(shape[0])
    if len(generators) != batch:
        raise ValueError(f"got {len(generators)} generators for {batch} samples; pass one per sample")
    chunk = batch if chunk is None else max(1, int(chunk))
    execution = execution or Execution(device=str(device))
    diffusion = stage.diffusion.build(respacing=respacing, last_step=last_step)
    compiled = stage.compiled_network() if execution.compile else None
    outputs = []
    with running(stage.network, execution, compiled) as network:
        model_fn: Callable[..., Tensor] = network
        if guidance_scale != 1.0:
            model_fn = ClassifierFreeGuidance(network, guidance_scale, mask_keys=mask_keys)
        for index, real in padded_chunks(batch, chunk):
            sub_cond = {key: _take(value, index, batch, execution.device) for key, value in cond.items()}
            gens = [generators[int(r)] for r in index[:real]] + [_dummy_generator() for _ in range(chunk - real)]
            out = sample(
                model_fn,
                (chunk, *shape[1:]),
                diffusion=diffusion,
                generator=gens,
                sampler=sampler,
                eta=eta,
                cond=sub_cond,
                noise=None if noise is None else noise[index].to(execution.device),
                clip_denoised=clip_denoised,
                device=execution.device,
            )
            outputs.append(out[:real].float().cpu())
    return torch.cat(outputs)


def padded_chunks(batch: int, chunk: int) -> list[tuple[Tensor, int]]:
    """Row indices of each chunk of ``chunk`` rows over ``batch`` rows, the last padded with its first row.

    Returns:
        ``[(index (chunk,) int64, real rows in it), ...]``.
    """
    chunks = []
    for lo in range(0, batch, chunk):
        hi = min(batch, lo + chunk)
        chunks.append((torch.tensor(list(range(lo, hi)) + [lo] * (chunk - (hi - lo)), dtype=torch.long), hi - lo))
    return chunks


def _take(value: Any, index: Tensor, batch: int, device: torch.device | str) -> Any:
    if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch:
        return value[index.to(value.device)].to(device)
    return value


def _dummy_generator() -> torch.Generator:
    """Noise source of padding rows (their samples are discarded)."""
    return torch.Generator().manual_seed(0)


# ---------------------------------------------------------------------- images


def to_uint8(images: Tensor) -> Tensor:
    """(B, 3, H, W) float in [−1, 1] → (B, H, W, 3) uint8: round((x + 1) · 127.5), clamped."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def from_uint8(images: Tensor) -> Tensor:
    """(B, H, W, 3) uint8 → (B, 3, H, W) float32 in [−1, 1]: x / 127.5 − 1."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def gaussian_blur(images: Tensor, kernel: int = 3, sigma: float = 0.6) -> Tensor:
    """Depthwise Gaussian blur with reflect padding: the upsamplers' conditioning augmentation (unCLIP §2.1).

    Args:
        images: (B, C, H, W) float.
        kernel: odd kernel side (3 in the paper's toy-size setting).
        sigma: σ in pixels (0.6).
    """
    if kernel % 2 == 0 or kernel < 1:
        raise ValueError(f"blur kernel must be an odd positive size, got {kernel}")
    radius = kernel // 2
    grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
    weights = torch.exp(-(grid**2) / (2 * sigma**2))
    weights = (weights / weights.sum()).to(images.dtype)
    c = images.shape[1]
    x = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, weights.view(1, 1, 1, -1).expand(c, 1, 1, kernel), groups=c)
    return F.conv2d(x, weights.view(1, 1, -1, 1).expand(c, 1, kernel, 1), groups=c)


def upsample_images(
    stage: Stage,
    low_res: Tensor,
    generators: Sequence[torch.Generator],
    *,
    respacing: str,
    sampler: str | None = None,
    eta: float = 0.0,
    chunk: int | None = None,
    device: torch.device | str = "cpu",
    execution: Execution | None = None,
    start: float = 1.0,
) -> Tensor:
    """Upsample (B, 3, h, w) images in [−1, 1] with an unconditional super-resolution stage (no guidance), with
    ``sampler`` (any of `models.diffusion.SAMPLER_NAMES`; None: the upsampler default of
    :class:`~models.pipelines.base.SamplingConfig`; η for DDIM only) over ``respacing`` steps.

    ``execution`` (precision, channels-last, compile) as in :func:`sample_stage`; None: fp32 eager on ``device``.

    ``start`` ∈ (0, 1] is the fraction of the chain that is run. 1 is the paper's sampler: x_T ~ N(0, I) and
    ``respacing`` steps over the whole chain. Below 1 the chain is truncated at t_s = round(start · (T − 1)):
    sampling starts from x_{t_s} = √ᾱ_{t_s} · up(low_res) + √(1 − ᾱ_{t_s}) · ε, ε ~ N(0, I) from each
    image's generator, up = bilinear upsampling (the mean an upsampler's x̂_0 starts from), and the
    ``respacing`` steps are spread over 0..t_s (as in SDEdit, Meng et al. 2021), for every sampler (the solvers'
    first node is t_s, whose ᾱ the start carries). Why: an ε-prediction network
    recovers x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, which multiplies its error by 1/√ᾱ_t → ∞ near t = T; with few
    DDIM steps those early x̂_0 are baked into the image as per-pixel speckle. Measured on the toy upsampler
    with `scripts/eval_toy_upsampler.py` (32 toy captions, true 32 px → 64 px, DDIM 10): pixel noise 4.81 from
    t = T, 0.70 from ``start`` 0.4 (true renders 0.25), MSE 0.0107 → 0.00018 (bilinear alone 0.00025). v- or x_0-prediction
    upsamplers have no such blow-up and can keep 1.

    Returns:
        (B, 3, S, S) float32 in [−1, 1], S = the stage network's ``config.image_size``.

    Raises:
        ValueError: ``start`` outside (0, 1].
    """
    if not 0.0 < start <= 1.0:
        raise ValueError(f"upsampler start must lie in (0, 1], got {start}; 1 starts from pure noise")
    size = network_image_size(stage.network)
    shape = (low_res.shape[0], low_res.shape[1], size, size)
    last_step, noise = None, None
    if start < 1.0:
        last_step = round(start * (stage.diffusion.num_timesteps - 1))
        alpha_bar = float(stage.diffusion.build().alphas_cumprod[last_step])
        mean = F.interpolate(low_res.float().cpu(), size=(size, size), mode="bilinear", align_corners=False)
        eps = randn(shape, generators, device="cpu")
        noise = alpha_bar**0.5 * mean + (1.0 - alpha_bar) ** 0.5 * eps
    return sample_stage(
        stage,
        shape,
        {"low_res": low_res},
        generators,
        respacing=respacing,
        sampler=DEFAULT_SAMPLING.stage_sampler("upsampler") if sampler is None else sampler,
        eta=eta,
        noise=noise,
        chunk=chunk,
        mask_keys=(),
        device=device,
        execution=execution,
        last_step=last_step,
    )


def chunked(fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int) -> Tensor:
    """``fn`` over ``x`` in chunks of exactly ``chunk`` rows (the last padded with its first row), concatenated.

    The batch-shape-invariant way to run any per-row network (see the module docstring).
    """
    return torch.cat([fn(x[index.to(x.device)])[:real] for index, real in padded_chunks(x.shape[0], chunk)])


def image_strip(images: Tensor, gap: int = 2, background: int = 255) -> Tensor:
    """(N, H, W, 3) uint8 → one (H, N·W + (N−1)·gap, 3) uint8 row (the paper's Fig. 3–5 layout)."""
    n, h, w, c = images.shape
    out = torch.full((h, n * w + (n - 1) * gap, c), background, dtype=torch.uint8)
    for k in range(n):
        out[:, k * (w + gap) : k * (w + gap) + w] = images[k]
    return out
