"""Building blocks shared by the UNet, the text transformer and the priors.

The UNet blocks follow ADM / GLIDE (Dhariwal & Nichol 2021; Nichol et al. 2021, `glide_text2im/unet.py`):
scale-shift residual blocks, attention blocks that also attend to extra context tokens (GLIDE's ``encoder_kv``),
residual up/down-sampling. The transformer blocks follow GPT-2 / GLIDE ``xf.py`` (pre-LayerNorm, 4× MLP, GELU).

Choices where the references are silent or fragile:

* GroupNorm uses ``min(32, C // 4)`` groups (rounded down to a divisor of C), not a fixed 32: at the toy widths
  (32 channels) 32 groups would be one channel per group, which the issue observed to hurt training.
* Zero-initialised output convolutions in residual and attention branches, as ADM, so every block starts as the
  identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep embedding (Vaswani et al. 2017; ADM's ``timestep_embedding``).

    ``emb[:, i] = cos(t · f_i)`` for ``i < dim/2`` and ``sin(t · f_i)`` after, with
    ``f_i = max_period^(−i / (dim/2))``; an odd ``dim`` gets one zero column.

    Args:
        t: (B,) timesteps, int or float (fractional values allowed, e.g. respaced and rescaled steps).
        dim: embedding width.
        max_period: lowest frequency's period.

    Returns:
        (B, dim) float32 embedding, values in [−1, 1].
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def group_count(channels: int, max_groups: int = 32, min_channels_per_group: int = 4) -> int:
    """Number of GroupNorm groups for ``channels``: ``min(max_groups, C // min_channels_per_group)``, then the
    largest divisor of C not above that (at least 1).

    Examples: 32 → 8 groups of 4; 64 → 16; 96 → 24; 512 → 32; 3 → 1.
    """
    groups = max(1, min(max_groups, channels // min_channels_per_group))
    while channels % groups:
        groups -= 1
    return groups


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm over ``channels`` with :func:`group_count` groups (eps 1e-5, affine)."""
    return nn.GroupNorm(group_count(channels), channels)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero every parameter of ``module`` in place and return it (ADM's zero-initialised output layers)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def combine_masks(batch: int, *masks: torch.Tensor | None) -> torch.Tensor | None:
    """AND of the given (B,) boolean masks, ignoring None; None when all are None.

    Raises:
        ValueError: a mask is not a (B,) bool tensor.
    """
    out = None
    for mask in masks:
        if mask is None:
            continue
        if mask.dtype != torch.bool or mask.shape != (batch,):
            raise ValueError(f"condition masks must be ({batch},) bool tensors, got {mask.dtype} {tuple(mask.shape)}")
        out = mask if out is None else out & mask
    return out


class Downsample(nn.Module):
    """Halve H and W: strided 3×3 convolution, or 2×2 average pooling when ``use_conv`` is False.

    Shapes: (B, C, H, W) → (B, C_out, H/2, W/2); ``C_out = C`` without a convolution.
    """

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = out_channels or channels
        if use_conv:
            self.op: nn.Module = nn.Conv2d(channels, out_channels, 3, stride=2, padding=1)
        else:
            if out_channels != channels:
                raise ValueError("Downsample without a convolution cannot change the channel count")
            self.op = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.op(x)
        return out


class Upsample(nn.Module):
    """Double H and W by nearest-neighbour interpolation, optionally followed by a 3×3 convolution.

    Shapes: (B, C, H, W) → (B, C_out, 2H, 2W).
    """

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1) if use_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.conv is not None else x


class ResBlock(nn.Module):
    """ADM residual block conditioned on an embedding (timestep + class/text/CLIP), optionally resampling.

    ``h = conv(SiLU(GN(x)))``; with scale-shift norm ``h = GN(h)·(1 + scale) + shift`` where
    ``(scale, shift) = Linear(SiLU(emb))``, else ``h = GN(h + Linear(SiLU(emb)))``; then SiLU, dropout, zero-init conv;
    output ``skip(x) + h``. With ``up``/``down`` both paths are resampled (no convolution) inside the block.

    Shapes: x (B, C, H, W), emb (B, E) → (B, C_out, H', W').
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_scale_shift_norm: bool = True,
        up: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_norm = group_norm(channels)
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.resample: nn.Module = nn.Identity()
        if up:
            self.resample = Upsample(channels, use_conv=False)
        elif down:
            self.resample = Downsample(channels, use_conv=False)
        self.emb_proj = nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels)
        self.out_norm = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip: nn.Module = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.in_norm(x))
        h = self.in_conv(self.resample(h))
        x = self.resample(x)
        cond = self.emb_proj(F.silu(emb))[:, :, None, None].to(h.dtype)
        if self.use_scale_shift_norm:
            scale, shift = cond.chunk(2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:
            h = self.out_norm(h + cond)
        out: torch.Tensor = self.out_conv(self.dropout(F.silu(h)))
        skip: torch.Tensor = self.skip(x)
        return skip + out


class AttentionBlock(nn.Module):
    """Spatial self-attention that can also attend to extra context tokens (GLIDE's ``encoder_kv``).

    Queries come from the H·W positions; keys/values are the context tokens' projections **prepended** to the
    spatial ones, so every position attends to [context tokens, positions]. Output ``x + proj(attn)``, with a
    zero-initialised projection.

    Shapes: x (B, C, H, W), context (B, T, D) or None → (B, C, H, W).
    """

    def __init__(self, channels: int, num_heads: int, context_dim: int = 0) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention width {channels} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.context_kv = nn.Conv1d(context_dim, 2 * channels, 1) if context_dim else None
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, *spatial = x.shape
        heads, head_dim = self.num_heads, c // self.num_heads
        qkv = self.qkv(self.norm(x).reshape(b, c, -1))  # (B, 3C, N)
        q, k, v = qkv.reshape(b, 3, heads, head_dim, -1).unbind(1)  # each (B, heads, head_dim, N)
        if self.context_kv is not None:
            if context is None:
                raise ValueError("this attention block was built with context tokens; pass context")
            ctx_kv = self.context_kv(context.transpose(1, 2).to(x.dtype))  # (B, 2C, T)
            ck, cv = ctx_kv.reshape(b, 2, heads, head_dim, -1).unbind(1)
            k, v = torch.cat([ck, k], dim=-1), torch.cat([cv, v], dim=-1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        out = out.transpose(-1, -2).reshape(b, c, -1)
        projected: torch.Tensor = self.proj_out(out)
        return x + projected.reshape(b, c, *spatial)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block (GPT-2 / GLIDE ``ResidualAttentionBlock``).

    ``x = x + Attn(LN(x)); x = x + MLP(LN(x))`` with a 4× GELU MLP.

    Shapes: (B, S, W) → (B, S, W).
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"transformer width {width} is not divisible by heads={heads}")
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.c_qkv = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        b, s, w = x.shape
        q, k, v = self.c_qkv(self.ln_1(x)).reshape(b, s, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + self.c_proj(attn.transpose(1, 2).reshape(b, s, w))
        mlp: torch.Tensor = self.mlp(self.ln_2(x))
        return x + mlp


class Transformer(nn.Module):
    """A stack of :class:`TransformerBlock` s, causal (each position sees itself and earlier ones) or bidirectional.

    Shapes: (B, S, W) → (B, S, W).
    """

    def __init__(self, width: int, layers: int, heads: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.blocks = nn.ModuleList(TransformerBlock(width, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, self.causal)
        return x
