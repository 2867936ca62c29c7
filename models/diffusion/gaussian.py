"""Gaussian diffusion: the forward process q, the learned reverse process p_θ, and the training losses.

The process is kept apart from the network (guided-diffusion's split): :class:`GaussianDiffusion` is a
plain class holding float64 numpy buffers derived from the betas, and every method that needs the network
takes it as an argument, ``model_fn(x_t, t, **cond) -> Tensor``. Conditioning passes through unseen.
Respacing, timestep rescaling and classifier-free guidance are wrappers around ``model_fn``
(:mod:`models.diffusion.respace`, :mod:`models.diffusion.guidance`); the sampling loops live in
:mod:`models.diffusion.samplers`.

Conventions:
    * ``t`` is a LongTensor of shape (B,) of indices 0..T−1; index t is the paper's step t + 1, so
      q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) with ᾱ_t = ``alphas_cumprod[t]``.
    * ``x`` has the batch in dim 0 and channels in dim 1: images (B, C, H, W) in [−1, 1], or embedding
      vectors (B, D) for the unCLIP prior (scaled as the prior chooses; pass ``clip_denoised=False`` or a
      ``denoised_fn`` there, since [−1, 1] clipping is for pixels).
    * The network predicts the mean parameterisation named by :class:`ModelMeanType`; with
      :attr:`ModelVarType.LEARNED_RANGE` it outputs 2·C channels, the second C being v ∈ [−1, 1] (roughly)
      that interpolates the log variance (Nichol & Dhariwal 2021, eq. 15):
      Σ_θ = exp(v' log β_t + (1 − v') log β̃_t), v' = (v + 1)/2.

Maths (Ho et al. 2020; Nichol & Dhariwal 2021; Salimans & Ho 2022 for v):
    x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε
    x_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t
    v   = √ᾱ_t ε − √(1 − ᾱ_t) x_0,    x_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v,    ε = √(1 − ᾱ_t) x_t + √ᾱ_t v
    q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I),
        μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t,
        β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor


class ModelFn(Protocol):
    """The network as the process sees it: ``model_fn(x_t, t, **cond) -> Tensor`` (batch in dim 0)."""

    def __call__(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor: ...


class ModelMeanType(enum.Enum):
    """What the network's (first C) output channels predict."""

    EPSILON = "epsilon"
    """The noise ε (Ho et al.; GLIDE, unCLIP decoder and upsamplers)."""
    START_X = "start_x"
    """The clean sample x_0 (unCLIP diffusion prior: "predicts the un-noised z_i directly")."""
    VELOCITY = "velocity"
    """v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022); cleaner toy-scale backgrounds (issue 3 trial)."""


class ModelVarType(enum.Enum):
    """How the reverse-process variance Σ_θ(x_t, t) is obtained."""

    FIXED_SMALL = "fixed_small"
    """Σ = β̃_t, the posterior variance (lower bound for deterministic x_0)."""
    FIXED_LARGE = "fixed_large"
    """Σ = β_t (β̃_1 at t = 0 for a finite log), the upper bound for x_0 ~ N(0, I)."""
    LEARNED_RANGE = "learned_range"
    """Network outputs v; log Σ = v' log β_t + (1 − v') log β̃_t, v' = (v + 1)/2 (Nichol & Dhariwal)."""


@dataclass(frozen=True)
class PMeanVariance:
    """p_θ(x_{t−1} | x_t) = N(mean, variance) and the predictions behind it; every field has x's shape."""

    mean: Tensor
    variance: Tensor
    log_variance: Tensor
    pred_x0: Tensor
    """x̂_0, after ``denoised_fn`` and clipping when requested."""
    pred_eps: Tensor
    """ε̂ consistent with ``pred_x0`` (what DDIM steps use)."""


VLB_WEIGHT = 0.001
"""λ of the hybrid loss L_simple + λ L_vlb (Nichol & Dhariwal 2021, §3.1)."""


class GaussianDiffusion:
    """A T-step Gaussian diffusion defined by its betas; the network is an argument of each method.

    Args:
        betas: float array of shape (T,) with values in (0, 1] (see :mod:`models.diffusion.schedules`).
        model_mean_type: what the network predicts.
        model_var_type: fixed or learned reverse variance.
        vlb_weight: λ of the hybrid loss (used only with :attr:`ModelVarType.LEARNED_RANGE`).

    Raises:
        ValueError: betas not 1-D or outside (0, 1].
    """

    def __init__(
        self,
        betas: np.ndarray,
        model_mean_type: ModelMeanType = ModelMeanType.EPSILON,
        model_var_type: ModelVarType = ModelVarType.FIXED_SMALL,
        vlb_weight: float = VLB_WEIGHT,
    ) -> None:
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size == 0:
            raise ValueError(f"betas must be a non-empty 1-D array, got shape {betas.shape}")
        if not (np.all(betas > 0) and np.all(betas <= 1)):
            raise ValueError("betas must lie in (0, 1]; build them with models.diffusion.schedules")
        self.model_mean_type = ModelMeanType(model_mean_type)
        self.model_var_type = ModelVarType(model_var_type)
        self.vlb_weight = float(vlb_weight)
        self.betas = betas
        self.num_timesteps = int(betas.shape[0])

        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.alphas_cumprod_next = np.append(self.alphas_cumprod[1:], 0.0)
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)

        # β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t; zero at t = 0, so the log is clipped to β̃_1 there.
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        first = self.posterior_variance[1] if self.num_timesteps > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.append(first, self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)

    # ------------------------------------------------------------------ forward process q

    def q_mean_variance(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I).

        Args:
            x0: clean data, shape (B, ...).
            t: step indices, shape (B,).

        Returns:
            (mean, variance, log_variance), each broadcast to x0's shape.
        """
        mean = extract(self.sqrt_alphas_cumprod, t, x0) * x0
        variance = extract(1.0 - self.alphas_cumprod, t, x0).expand_as(x0)
        log_variance = extract(np.log(1.0 - self.alphas_cumprod), t, x0).expand_as(x0)
        return mean, variance, log_variance

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Draw x_t ~ q(x_t | x_0): x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε.

        Args:
            x0: clean data, shape (B, ...), images in [−1, 1].
            t: step indices, shape (B,).
            noise: ε ~ N(0, I), same shape as x0 (explicit, so callers own the randomness).

        Returns:
            x_t, shape of x0.
        """
        if noise.shape != x0.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} must equal x0 shape {tuple(x0.shape)}")
        return (
            extract(self.sqrt_alphas_cumprod, t, x0) * x0 + extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise
        )

    def q_posterior_mean_variance(self, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The forward posterior q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I) (Ho et al. eq. 6–7).

        μ̃_t = √ᾱ_{t−1} β_t/(1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) · x_t;
        β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t (log clipped at t = 0, where β̃ = 0).

        Args:
            x0: (predicted) clean data, shape (B, ...).
            x_t: noisy data at step t, same shape.
            t: step indices, shape (B,).

        Returns:
            (mean, variance, log_variance), each of x_t's shape.
        """
        mean = extract(self.posterior_mean_coef1, t, x_t) * x0 + extract(self.posterior_mean_coef2, t, x_t) * x_t
        variance = extract(self.posterior_variance, t, x_t).expand_as(x_t)
        log_variance = extract(self.posterior_log_variance_clipped, t, x_t).expand_as(x_t)
        return mean, variance, log_variance

    # ------------------------------------------------------------------ parameterisation conversions

    def predict_x0_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t = √(1/ᾱ_t) x_t − √(1/ᾱ_t − 1) ε."""
        return (
            extract(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t
            - extract(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps
        )

    def predict_eps_from_x0(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """ε̂ = (√(1/ᾱ_t) x_t − x_0) / √(1/ᾱ_t − 1), the inverse of :meth:`predict_x0_from_eps`."""
        return (extract(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0) / extract(
            self.sqrt_recipm1_alphas_cumprod, t, x_t
        )

    def get_v(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """The velocity target v = √ᾱ_t ε − √(1 − ᾱ_t) x_0."""
        return extract(self.sqrt_alphas_cumprod, t, x0) * eps - extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * x0

    def predict_x0_from_v(self, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
        """x̂_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v."""
        return extract(self.sqrt_alphas_cumprod, t, x_t) * x_t - extract(self.sqrt_one_minus_alphas_cumprod, t, x_t) * v

    def predict_eps_from_v(self, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
        """ε̂ = √(1 − ᾱ_t) x_t + √ᾱ_t v."""
        return extract(self.sqrt_one_minus_alphas_cumprod, t, x_t) * x_t + extract(self.sqrt_alphas_cumprod, t, x_t) * v

    # ------------------------------------------------------------------ reverse process p_θ

    def call_model(self, model_fn: ModelFn, x: Tensor, t: Tensor, cond: Mapping[str, Any] | None = None) -> Tensor:
        """Run the network: ``model_fn(x, t, **cond)``. :class:`~models.diffusion.respace.SpacedDiffusion`
        overrides this to map its step indices to the original chain's."""
        return model_fn(x, t, **dict(cond or {}))

    def p_mean_variance(
        self,
        model_fn: ModelFn,
        x: Tensor,
        t: Tensor,
        cond: Mapping[str, Any] | None = None,
        clip_denoised: bool = True,
        denoised_fn: Callable[[Tensor], Tensor] | None = None,
    ) -> PMeanVariance:
        """Apply the network to get p_θ(x_{t−1} | x_t) and the implied x̂_0, ε̂.

        Args:
            model_fn: the network, ``model_fn(x, t, **cond)``; output shape x's, or (B, 2C, ...) for
                :attr:`ModelVarType.LEARNED_RANGE`.
            x: x_t, shape (B, C, ...).
            t: step indices, shape (B,).
            cond: keyword conditioning passed to ``model_fn`` unchanged.
            clip_denoised: clamp x̂_0 to [−1, 1] (pixels).
            denoised_fn: applied to x̂_0 before clipping (e.g. a wider clamp for prior embeddings).

        Returns:
            :class:`PMeanVariance`; mean = μ̃_t(x̂_0, x_t).
        """
        model_output = self.call_model(model_fn, x, t, cond)
        return self.p_mean_variance_from_output(model_output, x, t, clip_denoised, denoised_fn)

    def p_mean_variance_from_output(
        self,
        model_output: Tensor,
        x: Tensor,
        t: Tensor,
        clip_denoised: bool = True,
        denoised_fn: Callable[[Tensor], Tensor] | None = None,
    ) -> PMeanVariance:
        """:meth:`p_mean_variance` for an already computed network output (see there for the arguments)."""
        mean_output, var_values = self.split_output(model_output, x)
        log_variance = self._log_variance(var_values, x, t)
        if self.model_mean_type is ModelMeanType.EPSILON:
            raw_x0 = self.predict_x0_from_eps(x, t, mean_output)
        elif self.model_mean_type is ModelMeanType.START_X:
            raw_x0 = mean_output
        else:
            raw_x0 = self.predict_x0_from_v(x, t, mean_output)
        pred_x0 = raw_x0
        if denoised_fn is not None:
            pred_x0 = denoised_fn(pred_x0)
        if clip_denoised:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
        if pred_x0 is raw_x0 and self.model_mean_type is ModelMeanType.EPSILON:
            pred_eps = mean_output
        else:
            pred_eps = self.predict_eps_from_x0(x, t, pred_x0)
        mean, _, _ = self.q_posterior_mean_variance(pred_x0, x, t)
        # Fixed variances are (B, 1, ..., 1) here: exponentiate before broadcasting.
        variance = log_variance.exp().expand_as(x)
        return PMeanVariance(mean, variance, log_variance.expand_as(x), pred_x0, pred_eps)

    def split_output(self, model_output: Tensor, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Split the network output into (mean part, variance values or None), checking shapes.

        Raises:
            ValueError: the output's shape does not fit x and the variance type.
        """
        if self.model_var_type is ModelVarType.LEARNED_RANGE:
            channels = x.shape[1]
            expected = (x.shape[0], 2 * channels, *x.shape[2:])
            if tuple(model_output.shape) != expected:
                raise ValueError(
                    f"learned-range variance needs a model output of shape {expected} (2×C channels), "
                    f"got {tuple(model_output.shape)}; set out_channels = 2 × in_channels in the network"
                )
            return model_output[:, :channels], model_output[:, channels:]
        if model_output.shape != x.shape:
            raise ValueError(
                f"model output shape {tuple(model_output.shape)} must equal x shape {tuple(x.shape)} "
                f"for fixed variance ({self.model_var_type.value}); use LEARNED_RANGE for 2×C outputs"
            )
        return model_output, None

    def _log_variance(self, var_values: Tensor | None, x: Tensor, t: Tensor) -> Tensor:
        """log Σ_θ: (B, 1, ..., 1) for fixed variances, x's shape when learned."""
        if self.model_var_type is ModelVarType.FIXED_SMALL:
            return extract(self.posterior_log_variance_clipped, t, x)
        if self.model_var_type is ModelVarType.FIXED_LARGE:
            large = np.append(self.posterior_variance[1] if self.num_timesteps > 1 else self.betas[0], self.betas[1:])
            return extract(np.log(large), t, x)
        assert var_values is not None
        min_log = extract(self.posterior_log_variance_clipped, t, x)
        max_log = extract(np.log(self.betas), t, x)
        frac = (var_values + 1.0) / 2.0
        return frac * max_log + (1.0 - frac) * min_log

    # ------------------------------------------------------------------ training

    def training_losses(
        self,
        model_fn: ModelFn,
        x0: Tensor,
        t: Tensor,
        noise: Tensor,
        cond: Mapping[str, Any] | None = None,
    ) -> dict[str, Tensor]:
        """Per-sample training losses at steps t.

        L_simple = mean over non-batch dims of (target − f_θ(x_t, t))², target = ε, x_0 or v by
        :attr:`model_mean_type`. With learned variance the hybrid loss L_simple + λ L_vlb is returned, where
        L_vlb = T · L_t (L_t in bits per dimension: KL(q(x_{t−1}|x_t,x_0) ‖ p_θ(x_{t−1}|x_t)) for t > 0 and the
        discretised decoder NLL at t = 0) is computed with the network's mean **detached**, so the VLB only
        trains Σ_θ (Nichol & Dhariwal §3.1). With T = 1000 this equals guided-diffusion's RESCALED_MSE.

        Args:
            model_fn: the network.
            x0: clean data, shape (B, C, ...); images in [−1, 1] (the t = 0 NLL assumes 8-bit pixels).
            t: step indices, shape (B,).
            noise: ε, shape of x0.
            cond: keyword conditioning for ``model_fn``.

        Returns:
            dict of (B,) tensors: ``loss``, ``mse`` and, with learned variance, ``vb``.
        """
        x_t = self.q_sample(x0, t, noise)
        model_output = self.call_model(model_fn, x_t, t, cond)
        mean_output, var_values = self.split_output(model_output, x_t)
        if self.model_mean_type is ModelMeanType.EPSILON:
            target = noise
        elif self.model_mean_type is ModelMeanType.START_X:
            target = x0
        else:
            target = self.get_v(x0, noise, t)
        terms = {"mse": mean_flat((target - mean_output) ** 2)}
        terms["loss"] = terms["mse"]
        if var_values is not None:
            frozen = torch.cat([mean_output.detach(), var_values], dim=1)
            terms["vb"] = self.vb_terms_bpd(frozen, x0, x_t, t)
            terms["loss"] = terms["mse"] + self.vlb_weight * self.num_timesteps * terms["vb"]
        return terms

    def vb_terms_bpd(self, model_output: Tensor, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """One term L_t of the variational bound, in bits per dimension, shape (B,).

        L_t = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) for t > 0; −log p_θ(x_0 | x_1) (discretised
        Gaussian over 256 bins in [−1, 1]) for t = 0. No clipping of x̂_0.
        """
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x0, x_t, t)
        p = self.p_mean_variance_from_output(model_output, x_t, t, clip_denoised=False)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, p.mean, p.log_variance)) / math.log(2.0)
        nll = -mean_flat(discretized_gaussian_log_likelihood(x0, p.mean, 0.5 * p.log_variance)) / math.log(2.0)
        return torch.where(t == 0, nll, kl)


# ---------------------------------------------------------------------- pure helpers


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """Elementwise KL(N(mean1, e^{logvar1}) ‖ N(mean2, e^{logvar2})) in nats.

    KL = ½ (−1 + logvar2 − logvar1 + e^{logvar1 − logvar2} + (mean1 − mean2)² e^{−logvar2}).
    Arguments broadcast against each other.
    """
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x: Tensor, means: Tensor, log_scales: Tensor) -> Tensor:
    """Elementwise log-likelihood of 8-bit data under a Gaussian discretised into 256 bins on [−1, 1].

    Bin i is centred on x with half width 1/255; the outermost bins extend to ±∞ (Ho et al. §3.3):
    log P(x) = log(Φ((x + 1/255 − μ)/σ) − Φ((x − 1/255 − μ)/σ)), with Φ(·) → 1 above 0.999 and → 0 below −0.999.

    Args:
        x: data in [−1, 1] on the 8-bit grid, shape (B, ...).
        means: μ, broadcastable to x.
        log_scales: log σ, broadcastable to x.

    Returns:
        log-probabilities in nats, shape of x.
    """
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = torch.special.ndtr(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = torch.special.ndtr(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_cdf_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))


def mean_flat(x: Tensor) -> Tensor:
    """Mean over all non-batch dimensions: (B, ...) → (B,)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


def extract(values: np.ndarray, t: Tensor, like: Tensor) -> Tensor:
    """Gather ``values[t]`` as a tensor of ``like``'s dtype/device, shaped (B, 1, ..., 1) to broadcast against it."""
    dtype = like.dtype if like.is_floating_point() else torch.float32
    out = torch.from_numpy(values).to(device=t.device)[t.long()].to(device=like.device, dtype=dtype)
    return out.reshape(out.shape[0], *([1] * (like.ndim - 1)))
