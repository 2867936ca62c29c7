"""What every sampling loop shares: per-sample noise, the yielded step record, the starting state, the final sample.

Per-sample randomness: ``generator`` is either one ``torch.Generator`` (one draw for the whole batch, fast,
batch-dependent) or a sequence of B generators, one per image (e.g. :func:`generator_for` of (prompt, seed)).
With a sequence, each image's initial noise and every step's noise are drawn from its own generator in float32
on the generator's device, so image i is bit-identical whatever batch it is generated in — provided the
network's own output for a sample does not depend on its batch-mates (true for eval-mode networks up to the
batch-size dependence of some CPU/GPU kernels, which the caller controls).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import TypedDict

import torch
from torch import Tensor

GeneratorArg = torch.Generator | Sequence[torch.Generator]
"""One generator for the whole batch, or one per sample (batch-independent images)."""

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(steps_done, steps_total)`` after each step."""


class SampleStep(TypedDict):
    """What the progressive loops yield after each step."""

    step: int
    """0-based count of steps so far (0 = first step)."""
    t: int
    """The (spaced) step index just processed."""
    sample: Tensor
    """The new state: x_{t−1} when sampling, x_{t+1} when inverting; shape of x."""
    pred_x0: Tensor
    """x̂_0 predicted at this step."""


def generator_for(prompt: str, seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from (prompt, seed): sha256 of ``f"{seed}\\0{prompt}"``, first 63 bits.

    Args:
        prompt: the caption (or any per-image key).
        seed: the user-facing seed.
        device: where the generator lives (noise is drawn there, then moved).

    Returns:
        a freshly seeded ``torch.Generator``.
    """
    digest = hashlib.sha256(f"{int(seed)}\0{prompt}".encode()).digest()
    generator = torch.Generator(device=device)
    generator.manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return generator


def randn(
    shape: Sequence[int],
    generator: GeneratorArg,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise of ``shape`` (B, ...), per sample when given B generators.

    Noise is drawn in float32 on each generator's device and then moved to ``device``/``dtype``, so values
    do not depend on the target device or on the other samples in the batch.

    Raises:
        ValueError: a sequence of generators whose length is not B.
    """
    shape = tuple(int(s) for s in shape)
    if isinstance(generator, torch.Generator):
        noise = torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)
    else:
        generators = list(generator)
        if len(generators) != shape[0]:
            raise ValueError(f"got {len(generators)} generators for a batch of {shape[0]}; pass one per sample")
        noise = torch.stack(
            [torch.randn(shape[1:], generator=g, device=g.device, dtype=torch.float32) for g in generators]
        )
    return noise.to(device=device if device is not None else noise.device, dtype=dtype)


def initial_x(
    shape: Sequence[int],
    generator: GeneratorArg | None,
    noise: Tensor | None,
    device: torch.device | str,
    dtype: torch.dtype,
) -> Tensor:
    """The starting state: ``noise`` (checked against ``shape``) or a draw of N(0, I) from ``generator``.

    Raises:
        ValueError: ``noise`` of another shape, or neither ``noise`` nor ``generator``.
    """
    if noise is not None:
        if tuple(noise.shape) != tuple(shape):
            raise ValueError(f"noise shape {tuple(noise.shape)} must equal the sample shape {tuple(shape)}")
        return noise.to(device=device, dtype=dtype)
    if generator is None:
        raise ValueError("pass a generator (or one per sample) or the starting noise")
    return randn(shape, generator, device, dtype)


def step_tensor(x: Tensor, index: int) -> Tensor:
    """The step index ``index`` for every row of x: LongTensor (B,) on x's device."""
    return torch.full((x.shape[0],), index, device=x.device, dtype=torch.long)


def last_sample(steps: Iterator[SampleStep]) -> Tensor:
    """The ``sample`` of the last step a progressive loop yields."""
    final: Tensor | None = None
    for step in steps:
        final = step["sample"]
    assert final is not None, "a diffusion has at least one step"
    return final
