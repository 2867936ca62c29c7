"""Opt-in device check: CPU generators drive CUDA sampling, and samples stay batch-independent there."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from models.diffusion.gaussian import GaussianDiffusion
from models.diffusion.guidance import classifier_free_guidance
from models.diffusion.respace import SpacedDiffusion
from models.diffusion.samplers import generator_for, randn, sample
from models.diffusion.schedules import get_named_beta_schedule

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _net(x: Tensor, t: Tensor, *, label: Tensor, cond_mask: Tensor | None = None) -> Tensor:
    emb = label.float().reshape(-1, 1, 1, 1) / 10
    if cond_mask is not None:
        emb = torch.where(cond_mask.reshape(-1, 1, 1, 1), emb, torch.zeros_like(emb))
    return 0.5 * torch.tanh(x + emb)


def test_cuda_sampling_matches_cpu_and_is_batch_independent() -> None:
    diffusion = SpacedDiffusion.from_base(GaussianDiffusion(get_named_beta_schedule("cosine", 1000)), 10)
    model_fn = classifier_free_guidance(_net, 3.0)
    labels = torch.tensor([1, 4, 2])

    def run(device: str, indices: list[int]) -> Tensor:
        return sample(
            model_fn,
            (len(indices), 3, 8, 8),
            diffusion=diffusion,
            sampler="ddim",
            eta=1.0,
            generator=[generator_for("p", i) for i in indices],
            cond={"label": labels[indices].to(device)},
            device=device,
        )

    gens = [generator_for("p", i) for i in range(3)]
    assert torch.equal(randn((3, 2), gens, "cuda").cpu(), randn((3, 2), [generator_for("p", i) for i in range(3)]))
    on_gpu = run("cuda", [0, 1, 2])
    torch.testing.assert_close(on_gpu.cpu(), run("cpu", [0, 1, 2]), atol=1e-4, rtol=1e-4)
    assert torch.equal(run("cuda", [1])[0], on_gpu[1])
