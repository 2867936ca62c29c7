"""Image degradations like those generated samples show, for training and stress-testing the attribute oracle.

Each operation acts on ``float (N, 3, H, W)`` images in [0, 1], per image, with its strength drawn from a range
with a ``torch.Generator``; lengths are in pixels of a 32x32 image and scale with ``H / 32``.

- ``warp``: slight shape distortion: an area-preserving shear ``[[1, s], [0, 1]]``, a rotation of a few degrees
  (far below the 45 degrees that turn a square into a diamond) and a smooth random displacement field (a 4x4 grid
  of offsets upsampled bicubically), resampled bilinearly with border padding. No scaling: size is a label.
- ``blur``: Gaussian blur with standard deviation ``sigma`` (separable kernel, radius ``ceil(3 max sigma)``).
- ``colour``: per-channel gain ``x * g_c`` and offset ``+ o_c`` and a saturation change
  ``gray + s * (x - gray)``; small enough that no colour turns into its neighbour in the vocabulary.
- ``noise``: additive Gaussian noise ``x + sigma * eps``.
- ``quantise``: JPEG-ish losses: chroma subsampled 2x2 in YCbCr (as JPEG's 4:2:0) and posterised to ``L`` levels.

`degrade` applies each operation with probability ``p`` per image, in the order above, and clips to [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

OPERATIONS: tuple[str, ...] = ("warp", "blur", "colour", "noise", "quantise")


@dataclass(frozen=True)
class DegradeSpec:
    """Strength ranges of the degradations (module docstring); each operation has probability ``p``.

    Attributes:
        p: probability that an image gets each operation.
        shear: max ``|s|`` of the shear.
        rotation_deg: max rotation in degrees.
        warp_px: max displacement of the smooth warp field, in 32x32 pixels.
        blur_sigma: ``(min, max)`` blur standard deviation, in 32x32 pixels.
        gain: max ``|g_c - 1|``.
        offset: max ``|o_c|``.
        saturation: ``(min, max)`` saturation factor ``s``.
        noise_sigma: ``(min, max)`` noise standard deviation (in [0, 1] units).
        levels: ``(min, max)`` posterisation levels.
        operations: which operations may apply.
    """

    p: float = 0.5
    shear: float = 0.08
    rotation_deg: float = 5.0
    warp_px: float = 0.6
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    gain: float = 0.08
    offset: float = 0.05
    saturation: tuple[float, float] = (0.75, 1.25)
    noise_sigma: tuple[float, float] = (0.01, 0.08)
    levels: tuple[int, int] = (12, 64)
    operations: tuple[str, ...] = OPERATIONS

    def __post_init__(self) -> None:
        unknown = set(self.operations) - set(OPERATIONS)
        if unknown:
            raise ValueError(f"unknown degradations {sorted(unknown)}; choose from {', '.join(OPERATIONS)}")


def degrade(x: torch.Tensor, spec: DegradeSpec, generator: torch.Generator) -> torch.Tensor:
    """Apply the degradations of ``spec`` to ``float (N, 3, H, W)`` in [0, 1]; returns a new tensor in [0, 1]."""
    n = x.shape[0]
    scale = x.shape[2] / 32.0
    for name in OPERATIONS:
        chosen = torch.rand(n, generator=generator) < spec.p
        if name not in spec.operations or not bool(chosen.any()):
            continue
        index = chosen.nonzero().squeeze(1)
        x = x.clone()
        x[index] = _APPLY[name](x[index], spec, generator, scale)
    return x.clamp(0.0, 1.0)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _warp(x: torch.Tensor, spec: DegradeSpec, generator: torch.Generator, scale: float) -> torch.Tensor:
    n, _, h, w = x.shape
    shear = _uniform(n, -spec.shear, spec.shear, generator)
    angle = _uniform(n, -spec.rotation_deg, spec.rotation_deg, generator) * math.pi / 180
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin + shear * cos
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos + shear * sin
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    field = (torch.rand(n, 2, 4, 4, generator=generator) * 2 - 1) * (2 * spec.warp_px * scale / h)
    grid = grid + F.interpolate(field, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _blur(x: torch.Tensor, spec: DegradeSpec, generator: torch.Generator, scale: float) -> torch.Tensor:
    n, c, h, w = x.shape
    sigmas = _uniform(n, *spec.blur_sigma, generator) * scale
    radius = max(1, math.ceil(3 * float(sigmas.max())))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernels = torch.exp(-0.5 * (t.view(1, -1) / sigmas.view(-1, 1)) ** 2)
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (n * c, 2r + 1)
    img = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    img = F.conv2d(img, kernels.view(n * c, 1, 1, -1), groups=n * c)
    img = F.conv2d(img, kernels.view(n * c, 1, -1, 1), groups=n * c)
    return img.reshape(n, c, h, w)


def _colour(x: torch.Tensor, spec: DegradeSpec, generator: torch.Generator, scale: float) -> torch.Tensor:
    n = x.shape[0]
    gain = 1 + (torch.rand(n, 3, 1, 1, generator=generator) * 2 - 1) * spec.gain
    offset = (torch.rand(n, 3, 1, 1, generator=generator) * 2 - 1) * spec.offset
    saturation = _uniform(n, *spec.saturation, generator).view(n, 1, 1, 1)
    x = x * gain + offset
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
    return gray + saturation * (x - gray)


def _noise(x: torch.Tensor, spec: DegradeSpec, generator: torch.Generator, scale: float) -> torch.Tensor:
    sigma = _uniform(x.shape[0], *spec.noise_sigma, generator).view(-1, 1, 1, 1)
    return x + sigma * torch.randn(x.shape, generator=generator)


_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _quantise(x: torch.Tensor, spec: DegradeSpec, generator: torch.Generator, scale: float) -> torch.Tensor:
    ycc = torch.einsum("ij,njhw->nihw", _TO_YCBCR, x.clamp(0, 1))
    chroma = F.interpolate(F.avg_pool2d(ycc[:, 1:], 2), size=x.shape[2:], mode="nearest")
    rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(_TO_YCBCR), torch.cat([ycc[:, :1], chroma], dim=1))
    low, high = spec.levels
    levels = torch.randint(low, high + 1, (x.shape[0], 1, 1, 1), generator=generator).float() - 1
    return torch.round(rgb.clamp(0, 1) * levels) / levels


_APPLY = {"warp": _warp, "blur": _blur, "colour": _colour, "noise": _noise, "quantise": _quantise}
