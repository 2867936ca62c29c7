"""Time one training step (forward + backward, AdamW) of each toy network config on the CPU.

Usage: ``python benchmarks/networks_step_time.py [--threads 1] [--batch 32] [--steps 5]``; results in
``benchmarks/networks.md``. Random inputs; what is timed is the network, not the diffusion process.
"""

from __future__ import annotations

import argparse
import time

import torch

from models.networks import build_network, load_config
from models.networks.config import ARPriorConfig, DiffusionPriorConfig, UNetConfig

# (config, training crop side or None for full size); the upsampler trains on crops a quarter of the target area
TOY = (
    ("unclip_decoder_toy", None),
    ("glide_base_toy", None),
    ("unclip_upsampler_toy", None),
    ("unclip_upsampler_toy", 32),
    ("unclip_prior_toy", None),
    ("unclip_ar_prior_toy", None),
)


def _loss(name: str, net: torch.nn.Module, batch: int, crop: int | None) -> torch.Tensor:
    cfg = load_config(name)
    t = torch.randint(0, 1000, (batch,))
    if isinstance(cfg, UNetConfig):
        size = crop or cfg.image_size
        cond: dict[str, torch.Tensor] = {}
        if cfg.text_encoder is not None:
            cond["tokens"] = torch.randint(0, cfg.text_encoder.vocab_size, (batch, cfg.text_encoder.context_length))
            cond["text_mask"] = torch.rand(batch) > 0.5
        if cfg.clip_embed_dim:
            cond["clip_emb"] = torch.randn(batch, cfg.clip_embed_dim)
            cond["clip_mask"] = torch.rand(batch) > 0.1
        if cfg.super_res:
            cond["low_res"] = torch.randn(batch, 3, size // 2, size // 2)
        return net(torch.randn(batch, 3, size, size), t, **cond).square().mean()
    text = {
        "text_tokens": torch.randint(0, cfg.vocab_size, (batch, cfg.text_context)),
        "text_emb": torch.randn(batch, cfg.embed_dim),
        "cond_mask": torch.rand(batch) > 0.1,
    }
    if isinstance(cfg, DiffusionPriorConfig):
        return net(torch.randn(batch, cfg.embed_dim), t, **text).square().mean()
    assert isinstance(cfg, ARPriorConfig)
    comps = torch.randint(0, cfg.num_buckets, (batch, cfg.num_components - 1))
    return net(comps, dot_token=torch.randint(0, cfg.num_dot_buckets, (batch,)), **text).logsumexp(-1).mean()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"| network | params | s/step (batch {args.batch}, {args.threads} thread(s), median of {args.steps}) |")
    print("|---|---|---|")
    for name, crop in TOY:
        net = build_network(name)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        times = []
        for _ in range(args.steps + 1):
            start = time.perf_counter()
            opt.zero_grad()
            _loss(name, net, args.batch, crop).backward()
            opt.step()
            times.append(time.perf_counter() - start)
        med = sorted(times[1:])[len(times[1:]) // 2]
        label = f"{name} ({crop}×{crop} crops)" if crop else name
        print(f"| {label} | {sum(p.numel() for p in net.parameters()):,} | {med:.3f} |")


if __name__ == "__main__":
    main()
