"""Per-step overhead of the diffusion process code (not the network): run with
`.venv/bin/python benchmarks/diffusion_sampling.py`. Results are recorded in benchmarks/diffusion_sampling.md."""

from __future__ import annotations

import time

import torch

from models.diffusion import GaussianDiffusion, SpacedDiffusion, classifier_free_guidance, get_named_beta_schedule
from models.diffusion.samplers import generator_for, sample


def _net(x: torch.Tensor, t: torch.Tensor, cond_mask: torch.Tensor | None = None) -> torch.Tensor:
    return 0.9 * x  # near-free "network": what remains is the sampler's own cost


def main() -> None:
    torch.set_num_threads(1)
    diffusion = SpacedDiffusion.from_base(GaussianDiffusion(get_named_beta_schedule("cosine", 1000)), 50)
    batch, shape = 16, (16, 3, 32, 32)
    per_sample = [generator_for("a red cube", i) for i in range(batch)]
    for label, sampler, eta, guidance, generator in [
        ("DDIM eta=0, one generator", "ddim", 0.0, 1.0, torch.Generator().manual_seed(0)),
        ("DDIM eta=1, one generator", "ddim", 1.0, 1.0, torch.Generator().manual_seed(0)),
        ("DDIM eta=1, 16 per-sample generators", "ddim", 1.0, 1.0, per_sample),
        ("DDPM, 16 per-sample generators", "ddpm", 0.0, 1.0, per_sample),
        ("DDPM, 16 per-sample generators, CFG 3", "ddpm", 0.0, 3.0, per_sample),
    ]:
        model_fn = classifier_free_guidance(_net, guidance)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            sample(model_fn, shape, diffusion=diffusion, generator=generator, sampler=sampler, eta=eta)
            best = min(best, time.perf_counter() - start)
        print(f"| {label} | {1000 * best / diffusion.num_timesteps:.2f} |")


if __name__ == "__main__":
    main()
