"""Strided sampling: run a T-step diffusion with a subset of its steps (guided-diffusion's ``respace.py``).

Keeping steps S = {s_0 < s_1 < … < s_{K−1}} ⊂ {0..T−1} defines a new K-step chain with the same ᾱ at the
kept steps: ᾱ'_k = ᾱ_{s_k}, hence β'_k = 1 − ᾱ_{s_k} / ᾱ_{s_{k−1}} (ᾱ_{s_{−1}} = 1). :class:`SpacedDiffusion`
is a :class:`GaussianDiffusion` over those betas, and it calls the network through
:class:`TimestepMappedModel`, which maps the spaced index k back to the original step s_k (optionally
rescaled to the 0..1000 range that networks trained with ``rescale_timesteps`` expect), so one network serves
every step count.

Step-count strings (:func:`space_timesteps`), as in guided-diffusion / GLIDE:
    * ``"N"`` or ``N``: N steps evenly spread over the chain, both endpoints 0 and T−1 included.
    * ``"a,b,c,…"``: the chain is cut into equal segments (the first T mod n are one step longer); segment i
      gets the given number of evenly spread steps, including both of its ends when its count is > 1.
      GLIDE's upsampler uses ``"10,10,3,2,2"`` (27 steps; 10 in the least noisy fifth).
    * ``"ddimN"``: the fixed stride i with ``len(range(0, T, i)) == N`` (guided-diffusion's DDIM spacing:
      starts at 0, does **not** include T−1 in general).
    * ``"trailingN"``: N steps t_k = round(T − k·T/N) − 1, k = 0..N−1 (Lin et al. 2024, "Common Diffusion Noise
      Schedules and Sample Steps are Flawed", Table 2; diffusers' ``timestep_spacing="trailing"``): starts at T−1
      and stops at ≈ T/N − 1, so the last network call is at a moderately noisy step and the sampler's final move
      to the clean end returns its x̂_0; not the nearly noise-free step 0 (σ/α ≈ 0.006 on the cosine chain), where
      a multistep solver's step from the previous node is long in log-SNR (h ≈ 4 at N = 5) and its extrapolation
      amplifies the difference of the last two x̂_0 (measured in ``benchmarks/sampling.md``).
    * ``"fast27"``: ``"10,10,3,2,2"`` with step T−1 replaced by T−3, GLIDE's released upsampler setting
      ("to reduce DDIM artifacts from noisiest timesteps").
    * ``"karrasN"``: N noise levels spaced as Karras et al. 2022 (eq. 5, ρ = 7) in s = σ/α = √((1 − ᾱ)/ᾱ) between
      the chain's last and first steps, s_i = (s_max^{1/ρ} + i/(N−1) (s_min^{1/ρ} − s_max^{1/ρ}))^ρ: dense at low
      noise. Needs the chain's ᾱ.
    * ``"logsnrN"``: N levels uniform in log-SNR λ = log(α/σ) = −log s between the chain's ends (DPM-Solver's
      "logSNR" spacing, Lu et al. 2022 §3.3). Needs the chain's ᾱ.

    Karras and log-SNR levels are continuous; each is mapped to a trained step by diffusers' rule (linear
    interpolation of t in log s between neighbouring steps, then rounding), so the kept steps equal the
    ``timesteps`` of diffusers' ``DPMSolverMultistepScheduler(use_karras_sigmas=True)`` /
    ``(use_lu_lambdas=True)`` for the same betas. **Choice:** the samplers then run on those discrete steps (their
    exact ᾱ), where diffusers keeps the unrounded level in the update. Levels that round to the same step count once,
    so a dense request on a short chain can keep fewer than N steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.diffusion.gaussian import GaussianDiffusion, ModelFn, ModelMeanType, ModelVarType

_SPACING_HELP = (
    'use an int N, "N", "ddimN", "trailingN", "karrasN", "logsnrN", "fast27" or segment counts like "10,10,3,2,2"'
)
KARRAS_RHO = 7.0
"""ρ of the Karras spacing (Karras et al. 2022, the value diffusers and k-diffusion use)."""
_LEVEL_SPACINGS = ("karras", "logsnr")


def space_timesteps(
    num_timesteps: int,
    section_counts: int | str | Sequence[int],
    *,
    alphas_cumprod: np.ndarray | None = None,
) -> set[int]:
    """The original steps to keep when sampling with fewer steps.

    Args:
        num_timesteps: T of the original chain.
        section_counts: an int N, or a string ``"N"``, ``"a,b,c"``, ``"ddimN"``, ``"karrasN"``, ``"logsnrN"`` or
            ``"fast27"``, or a sequence of per-segment counts (see the module docstring).
        alphas_cumprod: ᾱ of the chain's T steps, shape (T,); needed by ``"karrasN"`` and ``"logsnrN"`` only.

    Returns:
        the kept step indices, a subset of range(T).

    Raises:
        ValueError: a malformed string, a count < 1, a segment asked for more steps than it has, a ddimN
            with no exact integer stride, or a karras/logsnr spacing without ``alphas_cumprod``.
    """
    if isinstance(section_counts, str):
        spec = section_counts.strip()
        if spec.startswith(_LEVEL_SPACINGS):
            return _level_steps(num_timesteps, spec, alphas_cumprod)
        if spec.startswith("trailing"):
            return _trailing_steps(num_timesteps, _count(spec, "trailing"))
        if spec == "fast27":
            steps = space_timesteps(num_timesteps, "10,10,3,2,2")
            steps.discard(num_timesteps - 1)
            steps.add(num_timesteps - 3)
            return steps
        if spec.startswith("ddim"):
            return _ddim_stride_steps(num_timesteps, spec)
        try:
            counts = [int(part) for part in spec.split(",")]
        except ValueError:
            raise ValueError(f"bad timestep respacing {section_counts!r}; {_SPACING_HELP}") from None
    elif isinstance(section_counts, (int, np.integer)):
        counts = [int(section_counts)]
    else:
        counts = [int(c) for c in section_counts]
    return _segment_steps(num_timesteps, counts)


def check_respacing(spec: int | str | Sequence[int]) -> None:
    """Check a step-count spec's syntax without a chain (configs validate early; counts are checked on use).

    Raises:
        ValueError: a malformed spec, naming the forms that are accepted.
    """
    if isinstance(spec, str):
        text = spec.strip()
        if text == "fast27":
            return
        for prefix in ("ddim", "trailing", *_LEVEL_SPACINGS):
            if text.startswith(prefix):
                _count(text, prefix)
                return
        try:
            counts = [int(part) for part in text.split(",")]
        except ValueError:
            raise ValueError(f"bad timestep respacing {spec!r}; {_SPACING_HELP}") from None
    elif isinstance(spec, (int, np.integer)):
        counts = [int(spec)]
    else:
        counts = [int(c) for c in spec]
    if not counts or any(c < 1 for c in counts):
        raise ValueError(f"step counts must be positive integers, got {spec!r}; {_SPACING_HELP}")


def _count(spec: str, prefix: str) -> int:
    """N of ``"<prefix>N"`` (a positive integer)."""
    try:
        count = int(spec[len(prefix) :])
    except ValueError:
        raise ValueError(f"bad timestep respacing {spec!r}; {_SPACING_HELP}") from None
    if count < 1:
        raise ValueError(f"step counts must be positive integers, got {spec!r}; {_SPACING_HELP}")
    return count


def _trailing_steps(num_timesteps: int, count: int) -> set[int]:
    """Kept steps of ``"trailingN"``: round(T − k·T/N) − 1 for k = 0..N−1 (module docstring)."""
    if count > num_timesteps:
        raise ValueError(f"cannot take {count} steps from a chain of {num_timesteps}; lower the trailing count")
    ks = np.arange(count)
    return {int(t) for t in np.round(num_timesteps - ks * (num_timesteps / count)) - 1}


def _level_steps(num_timesteps: int, spec: str, alphas_cumprod: np.ndarray | None) -> set[int]:
    """Kept steps of ``"karrasN"`` / ``"logsnrN"`` (module docstring)."""
    kind = "karras" if spec.startswith("karras") else "logsnr"
    count = _count(spec, kind)
    if alphas_cumprod is None:
        raise ValueError(f"the {kind!r} spacing {spec!r} needs the chain's alphas_cumprod (noise levels)")
    alpha_bar = np.asarray(alphas_cumprod, dtype=np.float64)
    if alpha_bar.shape != (num_timesteps,):
        raise ValueError(f"alphas_cumprod must have shape ({num_timesteps},), got {alpha_bar.shape}")
    if count > num_timesteps:
        raise ValueError(f"cannot take {count} steps from a chain of {num_timesteps}; lower the count in {spec!r}")
    if num_timesteps == 1:
        return {0}
    log_s = 0.5 * np.log((1.0 - alpha_bar) / alpha_bar)  # log of s = σ/α, increasing with t
    ramp = np.linspace(0.0, 1.0, count)
    if kind == "karras":
        s_min, s_max = np.exp(log_s[0]) ** (1 / KARRAS_RHO), np.exp(log_s[-1]) ** (1 / KARRAS_RHO)
        levels = np.log((s_max + ramp * (s_min - s_max)) ** KARRAS_RHO)
    else:
        levels = log_s[-1] + ramp * (log_s[0] - log_s[-1])
    return {int(t) for t in np.round(_level_to_step(levels, log_s))}


def _level_to_step(levels: np.ndarray, log_s: np.ndarray) -> np.ndarray:
    """Fractional steps t of log-levels: linear interpolation in log s between the neighbouring trained steps."""
    low = np.clip(np.searchsorted(log_s, levels, side="right") - 1, 0, len(log_s) - 2)
    w = np.clip((log_s[low] - levels) / (log_s[low] - log_s[low + 1]), 0.0, 1.0)
    steps: np.ndarray = (1.0 - w) * low + w * (low + 1)
    return steps


def _ddim_stride_steps(num_timesteps: int, spec: str) -> set[int]:
    try:
        desired = int(spec[len("ddim") :])
    except ValueError:
        raise ValueError(f"bad timestep respacing {spec!r}; {_SPACING_HELP}") from None
    for stride in range(1, num_timesteps):
        if len(range(0, num_timesteps, stride)) == desired:
            return set(range(0, num_timesteps, stride))
    raise ValueError(
        f"cannot create exactly {desired} steps with an integer stride over {num_timesteps}; "
        f'use "{desired}" (even spacing) instead'
    )


def _segment_steps(num_timesteps: int, counts: list[int]) -> set[int]:
    if not counts or any(c < 1 for c in counts):
        raise ValueError(f"step counts must be positive integers, got {counts}; {_SPACING_HELP}")
    size_per = num_timesteps // len(counts)
    extra = num_timesteps % len(counts)
    if size_per == 0:
        raise ValueError(f"{len(counts)} segments do not fit in {num_timesteps} steps; use fewer segments")
    kept: list[int] = []
    start = 0
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if count > size:
            raise ValueError(f"cannot take {count} steps from a segment of {size} steps; lower that segment's count")
        stride = (size - 1) / (count - 1) if count > 1 else 1.0
        position = 0.0  # accumulated like guided-diffusion, so the chosen steps match it exactly
        for _ in range(count):
            kept.append(start + round(position))
            position += stride
        start += size
    return set(kept)


def spaced_betas(base_alphas_cumprod: np.ndarray, use_timesteps: Iterable[int]) -> tuple[np.ndarray, list[int]]:
    """Betas of the sub-chain that keeps ᾱ at the given steps.

    β'_k = 1 − ᾱ_{s_k} / ᾱ_{s_{k−1}} with ᾱ_{s_{−1}} = 1.

    Args:
        base_alphas_cumprod: ᾱ of the original chain, shape (T,).
        use_timesteps: kept step indices.

    Returns:
        (betas of shape (K,), timestep map: sorted kept original indices, length K).

    Raises:
        ValueError: empty set or indices outside range(T).
    """
    timestep_map = sorted(int(s) for s in set(use_timesteps))
    num = len(base_alphas_cumprod)
    if not timestep_map or timestep_map[0] < 0 or timestep_map[-1] >= num:
        raise ValueError(f"kept timesteps must be a non-empty subset of range({num}), got {timestep_map[:5]}…")
    kept = base_alphas_cumprod[timestep_map]
    previous = np.append(1.0, kept[:-1])
    return 1.0 - kept / previous, timestep_map


class TimestepMappedModel:
    """``model_fn`` wrapper for a spaced chain: spaced index k → original step s_k (→ s_k · 1000/T if rescaled).

    Args:
        model_fn: the network, trained on the original chain's step indices.
        timestep_map: original step of each spaced index, length K.
        original_num_steps: T of the original chain.
        rescale_timesteps: pass float steps s_k · 1000/T instead of integer s_k (for networks trained so).
    """

    def __init__(
        self,
        model_fn: ModelFn,
        timestep_map: Sequence[int],
        original_num_steps: int,
        rescale_timesteps: bool = False,
    ) -> None:
        self.model_fn = model_fn
        self.timestep_map = list(timestep_map)
        self.original_num_steps = int(original_num_steps)
        self.rescale_timesteps = rescale_timesteps

    def map_timesteps(self, t: Tensor) -> Tensor:
        """Spaced indices (B,) → original steps (B,), long, or float in [0, 1000) if rescaling."""
        table = torch.tensor(self.timestep_map, device=t.device, dtype=torch.long)
        mapped = table[t.long()]
        if self.rescale_timesteps:
            return mapped.float() * (1000.0 / self.original_num_steps)
        return mapped

    def __call__(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        return self.model_fn(x, self.map_timesteps(t), **cond)


class SpacedDiffusion(GaussianDiffusion):
    """A :class:`GaussianDiffusion` over a subset of another chain's steps.

    Its methods take spaced indices 0..K−1 and call the network with original steps (see
    :class:`TimestepMappedModel`). Sampling loops need nothing else: ``diffusion.num_timesteps`` is K.

    Args:
        use_timesteps: kept original steps (e.g. from :func:`space_timesteps`).
        base_betas: betas of the original chain, shape (T,).
        model_mean_type: as for :class:`GaussianDiffusion`.
        model_var_type: as for :class:`GaussianDiffusion` (learned ranges are re-derived from the new betas,
            as in guided-diffusion).
        rescale_timesteps: see :class:`TimestepMappedModel`.
        vlb_weight: as for :class:`GaussianDiffusion`.
    """

    def __init__(
        self,
        use_timesteps: Iterable[int],
        base_betas: np.ndarray,
        model_mean_type: ModelMeanType = ModelMeanType.EPSILON,
        model_var_type: ModelVarType = ModelVarType.FIXED_SMALL,
        rescale_timesteps: bool = False,
        vlb_weight: float = 0.001,
    ) -> None:
        base = GaussianDiffusion(base_betas, model_mean_type, model_var_type, vlb_weight)
        betas, self.timestep_map = spaced_betas(base.alphas_cumprod, use_timesteps)
        self.original_num_steps = base.num_timesteps
        self.rescale_timesteps = rescale_timesteps
        super().__init__(betas, model_mean_type, model_var_type, vlb_weight)

    @classmethod
    def from_base(
        cls,
        base: GaussianDiffusion,
        section_counts: int | str | Sequence[int],
        rescale_timesteps: bool = False,
    ) -> SpacedDiffusion:
        """Respace an existing diffusion, e.g. ``SpacedDiffusion.from_base(decoder_diffusion, "fast27")``."""
        return cls(
            space_timesteps(base.num_timesteps, section_counts, alphas_cumprod=base.alphas_cumprod),
            base.betas,
            base.model_mean_type,
            base.model_var_type,
            rescale_timesteps,
            base.vlb_weight,
        )

    def wrap_model(self, model_fn: ModelFn) -> TimestepMappedModel:
        """The network as called by this chain's methods (idempotent for an already wrapped model)."""
        if isinstance(model_fn, TimestepMappedModel) and model_fn.timestep_map == self.timestep_map:
            return model_fn
        return TimestepMappedModel(model_fn, self.timestep_map, self.original_num_steps, self.rescale_timesteps)

    def call_model(self, model_fn: ModelFn, x: Tensor, t: Tensor, cond: Mapping[str, Any] | None = None) -> Tensor:
        """``model_fn(x, timestep_map[t], **cond)``."""
        return self.wrap_model(model_fn)(x, t, **dict(cond or {}))
