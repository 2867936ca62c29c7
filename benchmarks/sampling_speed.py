"""Images per second of the toy pipelines: DDIM (the old defaults) against the measured defaults, and our sampling
loop against diffusers' ``DPMSolverMultistepScheduler`` loop driving the same networks with the same inputs.

``demo``: the demo's generation mix (``configs/toy.toml``: the three models, guidance 1, 3 and 5, 16 seeds per
caption, batch 32, upsampler from start 0.4) on ``--captions`` captions, once per named setting of
``--config-file``; wall seconds per (model, guidance) call and images/s.

``diffusers``: one batch of 32 images per model at guidance 3 with a DPM-Solver++ 2M setting (its own kept steps), made
twice: by our pipeline, and by a replica of it in which every diffusion stage (diffusion prior, decoder / GLIDE
base, upsampler from its truncated start) is the unrolled diffusers loop ``for t in scheduler.timesteps: out =
model_fn(x, t); x = scheduler.step(out, t, x).prev_sample`` over the same kept steps, with the same networks,
guidance wrapper, conditioning and per-image noise (``thresholding`` with ``sample_max_value=1`` is diffusers' clip of
x̂_0 to [−1, 1], as our image stages clip). Reports both images/s and the largest pixel difference of the images.

Every record (JSON line in ``--out``) carries the 1-minute load average: the machine is shared.

Usage::

    nice python benchmarks/sampling_speed.py demo --configs ddim20 default
    nice python benchmarks/sampling_speed.py diffusers --configs default
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.diffusion import ClassifierFreeGuidance, DiffusionConfig, generator_for, randn
from models.factory import create_pipeline
from models.pipelines.base import SamplingConfig
from models.pipelines.priors import select_candidates, split_generators
from models.pipelines.stages import Stage, network_image_size, to_uint8

CHECKPOINTS = Path("checkpoints/toy")
MODELS = ("glide", "unclip-diffusion-prior", "unclip-ar-prior")
PREDICTION = {"epsilon": "epsilon", "start_x": "sample", "velocity": "v_prediction"}


def demo_captions(n: int) -> list[str]:
    """``n`` test-split style captions (fully specified single objects, as the quality benchmark's)."""
    from sampling_quality import captions  # the sibling script (benchmarks/ is on sys.path when run as a script)

    return captions(n, 0)[0]


def load_settings(path: str, label: str, guidance: float, model: str) -> SamplingConfig:
    settings = dict(json.loads(Path(path).read_text())[label])
    if model != "unclip-diffusion-prior":
        settings["prior_steps"] = "1"  # no diffusion prior: unused
    return SamplingConfig(
        **{
            **settings,
            "decoder_guidance_scale": guidance,
            "prior_guidance_scale": 1.0,
            "batch_size": 32,
            "upsampler_start": 0.4,
        }
    )


def record(out: Path, row: dict[str, Any]) -> None:
    row = {**row, "load1": round(os.getloadavg()[0], 2)}
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


# ---------------------------------------------------------------------- demo mix


def demo(args: argparse.Namespace) -> None:
    """Per (model, guidance) the settings run back to back, ``--repeats`` times in alternation (so they share the
    machine's load); totals add the per-call medians."""
    texts = demo_captions(args.captions)
    prompts = [t for t in texts for _ in range(16)]
    seeds = [s for _ in texts for s in range(16)]
    totals = dict.fromkeys(args.configs, 0.0)
    for model in args.models:
        pipeline: Any = create_pipeline(model, CHECKPOINTS)
        for guidance in (1.0, 3.0, 5.0):
            times: dict[str, list[float]] = {label: [] for label in args.configs}
            for _ in range(args.repeats):
                for label in args.configs:
                    config = load_settings(args.config_file, label, guidance, model)
                    start = time.perf_counter()
                    for lo in range(0, len(prompts), 32):
                        pipeline(prompts[lo : lo + 32], seeds[lo : lo + 32], config)
                    times[label].append(time.perf_counter() - start)
            for label, seconds in times.items():
                median = float(np.median(seconds))
                totals[label] += median
                record(
                    args.out,
                    {
                        "mode": "demo",
                        "config": label,
                        "model": model,
                        "guidance": guidance,
                        "images": len(prompts),
                        "seconds": [round(x, 2) for x in seconds],
                        "images_per_s": round(len(prompts) / median, 4),
                    },
                )
    images = len(prompts) * 3 * len(args.models)
    for label, seconds in totals.items():
        record(
            args.out,
            {
                "mode": "demo-total",
                "config": label,
                "images": images,
                "seconds": round(seconds, 1),
                "images_per_s": round(images / seconds, 4),
                "speedup_vs_first": round(totals[args.configs[0]] / seconds, 2),
            },
        )


# ---------------------------------------------------------------------- diffusers replica


def diffusers_sample(
    network: nn.Module,
    diffusion_config: DiffusionConfig,
    x: Tensor,
    cond: Mapping[str, Any],
    *,
    respacing: str,
    guidance: float,
    clip: bool,
    last_step: int | None = None,
    mask_keys: Sequence[str] = ("cond_mask",),
) -> Tensor:
    """One stage through diffusers' DPM-Solver++ 2M loop over our kept steps, from the start state ``x``."""
    from diffusers import DPMSolverMultistepScheduler

    betas = diffusion_config.build().betas
    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=diffusion_config.num_timesteps,
        trained_betas=betas,
        solver_order=2,
        prediction_type=PREDICTION[diffusion_config.mean_type],
        algorithm_type="dpmsolver++",
        final_sigmas_type="zero",
        lower_order_final=True,
        thresholding=clip,
        sample_max_value=1.0,
    )
    scheduler.alphas_cumprod = torch.from_numpy(np.cumprod(1.0 - betas))  # float64 σ table (see the tests)
    kept = diffusion_config.build(respacing=respacing, last_step=last_step)
    scheduler.set_timesteps(timesteps=list(reversed(getattr(kept, "timestep_map"))))  # noqa: B009
    model_fn: Any = network if guidance == 1.0 else ClassifierFreeGuidance(network, guidance, mask_keys=mask_keys)
    channels = x.shape[1]
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = model_fn(x, t.expand(x.shape[0]), **cond)[:, :channels]
            x = scheduler.step(out, t, x).prev_sample
    return x


def diffusers_pipeline(pipeline: Any, prompts: list[str], seeds: list[int], config: SamplingConfig) -> np.ndarray:
    """Our pipeline's stages, each sampled by the diffusers loop (module docstring); uint8 (N, 64, 64, 3)."""
    generators = [generator_for(p, s) for p, s in zip(prompts, seeds, strict=True)]
    tokens, token_mask = pipeline.tokenizer(prompts)
    cond: dict[str, Tensor] = {"tokens": tokens, "token_mask": token_mask}
    if hasattr(pipeline, "prior"):
        z_t = pipeline.text_embeddings(prompts, config.batch_size)
        if hasattr(pipeline.prior, "diffusion"):
            b, d, c = z_t.shape[0], z_t.shape[1], config.prior_candidates
            rep = torch.arange(b).repeat_interleave(c)
            children = split_generators(generators, c)
            z = diffusers_sample(
                pipeline.prior.network,
                pipeline.prior.diffusion,
                randn((b * c, d), children),
                {"text_tokens": tokens[rep], "token_mask": token_mask[rep], "text_emb": z_t[rep]},
                respacing=config.prior_steps,
                guidance=config.prior_guidance_scale,
                clip=False,
            )
            z_i, _, _ = select_candidates(F.normalize(z.view(b, c, d), dim=-1), z_t)
        else:
            z_i, _ = pipeline.prior.sample(tokens, token_mask, z_t, generators, config)
        cond["clip_emb"] = z_i
    base: Stage = pipeline.base if hasattr(pipeline, "base") else pipeline.decoder
    size = network_image_size(base.network)
    images = diffusers_sample(
        base.network,
        base.diffusion,
        randn((len(prompts), 3, size, size), generators),
        cond,
        respacing=config.decoder_steps,
        guidance=config.decoder_guidance_scale,
        clip=True,
    )
    up: Stage = pipeline.upsampler
    up_size = network_image_size(up.network)
    t_s = round(config.upsampler_start * (up.diffusion.num_timesteps - 1))
    alpha_bar = float(up.diffusion.build().alphas_cumprod[t_s])
    mean = F.interpolate(images, size=(up_size, up_size), mode="bilinear", align_corners=False)
    x_ts = alpha_bar**0.5 * mean + (1 - alpha_bar) ** 0.5 * randn(mean.shape, generators)
    out = diffusers_sample(
        up.network,
        up.diffusion,
        x_ts,
        {"low_res": images},
        respacing=config.upsampler_steps,
        guidance=1.0,
        clip=True,
        last_step=t_s,
        mask_keys=(),
    )
    return to_uint8(out).numpy()


def versus_diffusers(args: argparse.Namespace) -> None:
    texts = demo_captions(2)
    prompts = [t for t in texts for _ in range(16)]
    seeds = [s for _ in texts for s in range(16)]
    for label in args.configs:
        for model in args.models:
            pipeline: Any = create_pipeline(model, CHECKPOINTS)
            config = load_settings(args.config_file, label, 3.0, model)
            if {config.stage_sampler(s) for s in ("prior", "decoder", "upsampler")} != {"dpm++2m"}:
                raise ValueError(f"config {label!r} must sample every stage with dpm++2m for this comparison")
            timings: dict[str, list[float]] = {"ours": [], "diffusers": []}
            images: dict[str, np.ndarray] = {}
            for _ in range(args.repeats):
                for name in ("ours", "diffusers"):
                    start = time.perf_counter()
                    if name == "ours":
                        images[name] = pipeline(prompts, seeds, config).images
                    else:
                        images[name] = diffusers_pipeline(pipeline, prompts, seeds, config)
                    timings[name].append(time.perf_counter() - start)
            diff = np.abs(images["ours"].astype(int) - images["diffusers"].astype(int))
            record(
                args.out,
                {
                    "mode": "diffusers",
                    "config": label,
                    "model": model,
                    "images": len(prompts),
                    **{f"{k}_seconds": [round(s, 2) for s in v] for k, v in timings.items()},
                    **{f"{k}_images_per_s": round(len(prompts) / float(np.median(v)), 4) for k, v in timings.items()},
                    "max_pixel_diff": int(diff.max()),
                    "mean_pixel_diff": round(float(diff.mean()), 4),
                },
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["demo", "diffusers"])
    parser.add_argument("--configs", nargs="+", default=["ddim20", "default"])
    parser.add_argument("--config-file", default="benchmarks/sampling_configs.json")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--captions", type=int, default=2, help="demo: captions × 16 seeds per (model, guidance)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/sampling_speed.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    (demo if args.mode == "demo" else versus_diffusers)(args)


if __name__ == "__main__":
    main()
