"""Spherical interpolation for unCLIP's latent manipulations (paper §3).

slerp(a, b, θ) = sin((1 − θ)Ω)/sin Ω · a + sin(θΩ)/sin Ω · b, with cos Ω = â · b̂ (â = a/‖a‖),

taken over the *whole* vector (not element-wise: a known bug of a diffusers community pipeline, which used
``acos(a_hat * b_hat)`` without the sum). θ = 0 gives a, θ = 1 gives b; for unit vectors every point stays
on the unit sphere along the great circle. Used for interpolations (z_iθ = slerp(z_i1, z_i2, θ), and x_T
between two DDIM inversions) and text diffs (z_θ = slerp(z_i, z_d, θ), z_d = norm(z_t − z_t0), see
:func:`text_diff_direction`).

Near-parallel inputs (sin Ω below ``eps``) fall back to linear interpolation, which is the limit of the
formula as Ω → 0. Antiparallel inputs (Ω = π) have no unique great circle; the formula's limit is
undefined and we also fall back to linear interpolation there.
"""

from __future__ import annotations

import torch
from torch import Tensor


def slerp(a: Tensor, b: Tensor, theta: float | Tensor, *, start_dim: int = 0, eps: float = 1e-7) -> Tensor:
    """Great-circle interpolation between a and b.

    Args:
        a: shape (*batch, *vector); dims from ``start_dim`` on are flattened into the vector that is
            interpolated, the leading ones are a batch of independent interpolations.
        b: same shape as a.
        theta: θ, a number or a tensor broadcastable to the batch shape (e.g. (B,) for ``start_dim=1``).
            Values outside [0, 1] extrapolate along the circle.
        start_dim: first vector dim: 0 = the whole tensor is one vector; 1 = a batch of rows, e.g. CLIP
            embeddings (B, D) or noise maps (B, C, H, W) interpolated per sample.
        eps: sin Ω threshold below which linear interpolation is used.

    Returns:
        the interpolation, shape and dtype of a. Computed in float64.

    Raises:
        ValueError: a and b differ in shape, or ``start_dim`` is out of range.
    """
    if a.shape != b.shape:
        raise ValueError(f"slerp needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not 0 <= start_dim < max(a.ndim, 1):
        raise ValueError(f"start_dim must be in [0, {max(a.ndim, 1) - 1}] for a {a.ndim}-d tensor, got {start_dim}")
    batch_shape = a.shape[:start_dim]
    a64 = a.to(torch.float64).reshape(*batch_shape, -1)
    b64 = b.to(torch.float64).reshape(*batch_shape, -1)
    th = torch.as_tensor(theta, dtype=torch.float64, device=a.device)
    th = th.expand(batch_shape).unsqueeze(-1) if th.ndim > 0 else th

    a_hat = a64 / a64.norm(dim=-1, keepdim=True).clamp(min=1e-300)
    b_hat = b64 / b64.norm(dim=-1, keepdim=True).clamp(min=1e-300)
    cos_omega = (a_hat * b_hat).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos_omega)
    sin_omega = torch.sin(omega)
    degenerate = sin_omega.abs() < eps
    safe_sin = torch.where(degenerate, torch.ones_like(sin_omega), sin_omega)
    w_a = torch.where(degenerate, 1.0 - th, torch.sin((1.0 - th) * omega) / safe_sin)
    w_b = torch.where(degenerate, th + 0.0 * omega, torch.sin(th * omega) / safe_sin)
    return (w_a * a64 + w_b * b64).reshape(a.shape).to(a.dtype)


def text_diff_direction(z_t: Tensor, z_t0: Tensor) -> Tensor:
    """unCLIP's text-diff vector z_d = norm(z_t − z_t0) (paper §3), unit L2 norm along the last dim.

    Args:
        z_t: text embedding of the target caption, shape (..., D).
        z_t0: text embedding of a caption of the current image (or a dummy caption), same shape.

    Returns:
        z_d, shape (..., D).

    Raises:
        ValueError: the two embeddings are equal (no direction).
    """
    diff = z_t - z_t0
    norm = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        raise ValueError("the two text embeddings are identical, so they define no direction; use different captions")
    return torch.div(diff, norm)
