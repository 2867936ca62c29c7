"""Quality against cost of the samplers on the toy models: the evidence behind the `SamplingConfig` defaults.

Captions: ``--n`` fully specified single-object captions "a {size} {colour} {shape}" drawn with ``--seed`` over
the 7×8×3 attribute combinations (the construction of ``scripts/eval_toy_pipelines.py``, so numbers compare with
``checkpoints/toy/MODEL_CARD.md``); image k has caption k and seed k. Every setting of a sweep sees the same captions,
seeds and hence the same starting noise: comparisons between settings are paired.

Metrics per point (``--stage``):

* oracle accuracy (``checkpoints/toy/oracle``): colour, shape, size and all three right; per-image hits are stored
  so that two settings can be compared pair by pair;
* CLIP R-precision with the ViT toy CLIP (``checkpoints/toy/clip_toy``), true caption ranked first among the 32
  captions of its block (as the eval script);
* FD of pixel-cell features (`eval_protocols.features.pixels`, grid 4) against ``--refs`` real renders per caption
  at the images' size; pixel noise (mean |x − median₃ₓ₃ x|, as the eval script);
* network evaluations of the swept stage per image (`models.diffusion.network_evaluations`; a guided evaluation is
  one forward on the doubled batch) and wall seconds.

Stages:

* ``decoder``: the base stage (GLIDE base, unCLIP decoder behind each prior) at 32 px, prior fixed at DDIM 32;
* ``upsampler``: the 32→64 upsampler from ``--start`` on fixed base images (GLIDE, DDIM 20); also the distance to
  a 100-step DDIM upsample of the same input and noise;
* ``prior``: the diffusion prior alone: its chosen z_i against a 250-step DDIM reference from the same noise
  (cosine), the chosen z_i·z_t and the share of identical candidate choices;
* ``final``: whole pipelines at 64 px for named settings (``--configs``);
* ``real``: other real renders of the captions at 32 and 64 px (the ceiling of every metric).

Each point is appended to ``--out`` (JSON lines) as soon as it is measured, and its images are cached under
``--cache`` (per stage, model, setting and caption range), so an interrupted sweep resumes and ``--n 128`` after
``--n 64`` computes only the new captions.

Usage (see ``benchmarks/sampling.md`` for the runs behind the tables)::

    nice python benchmarks/sampling_quality.py decoder --n 64 --models glide unclip-diffusion-prior \
        --points ddim:5,8,10,15,20,50 dpm++2m:5,8,10,15,20
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eval_protocols.features.oracle import ToyAttributeOracle
from eval_protocols.features.pixels import PixelExtractor
from eval_protocols.metrics.fid import fd_from_features
from harness.data import toyworld
from models.diffusion import generator_for, network_evaluations
from models.factory import create_pipeline
from models.networks.clip import encode_images, encode_texts, load_clip
from models.pipelines.base import SamplingConfig
from models.pipelines.stages import from_uint8, to_uint8, upsample_images

CHECKPOINTS = Path("checkpoints/toy")
ATTRIBUTES = ("colour", "shape", "size")


def captions(n: int, seed: int) -> tuple[list[str], dict[str, list[str]]]:
    """``n`` distinct fully specified single-object captions and their true attributes (eval-script order)."""
    combos = [(s, c, z) for s in toyworld.SHAPES for c in toyworld.COLOUR_NAMES for z in toyworld.SIZES]
    order = np.random.default_rng(seed).permutation(len(combos))[:n]
    picked = [combos[i] for i in order]
    texts = [f"{'an' if z[0] in 'aeiou' else 'a'} {z} {c} {s}" for s, c, z in picked]
    truth = {"shape": [s for s, _, _ in picked], "colour": [c for _, c, _ in picked], "size": [z for _, _, z in picked]}
    return texts, truth


def parse_points(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``["ddim:10,20", "dpm++2m:karras8"]`` → ``[("ddim", "10"), ("ddim", "20"), ("dpm++2m", "karras8")]``."""
    points = []
    for spec in specs:
        sampler, _, steps = spec.partition(":")
        points.extend((sampler, s) for s in steps.split(",") if s)
    return points


class Scorer:
    """Oracle, CLIP and pixel FD against real renders of the captions (built once)."""

    def __init__(self, texts: list[str], truth: dict[str, list[str]], refs: int) -> None:
        self.texts, self.truth, self.refs = texts, truth, refs
        self.oracle = ToyAttributeOracle.from_checkpoint(CHECKPOINTS / "oracle")
        meta = json.loads((CHECKPOINTS / "clip_toy.json").read_text())
        self.clip = load_clip(meta["model_config"], CHECKPOINTS / "clip_toy")
        self.pixels = PixelExtractor(grid=4)
        self._real: dict[int, np.ndarray] = {}

    def real(self, size: int) -> np.ndarray:
        """Pixel features of ``refs`` real renders per caption at ``size`` (render seed 1000·(r + 1) + k for render r
        of caption k, so a caption's references do not depend on ``--n``)."""
        if size not in self._real:
            images = [
                toyworld.render_caption(t, seed=1000 * (r + 1) + k, size=size)[0]
                for r in range(self.refs)
                for k, t in enumerate(self.texts)
            ]
            self._real[size] = self.pixels(np.stack(images))
        return self._real[size]

    def __call__(self, images: np.ndarray) -> dict[str, Any]:
        n = len(images)
        texts = self.texts[:n]
        prediction = self.oracle.predict(images)
        hits = {a: prediction.labels[a] == np.asarray(self.truth[a][:n]) for a in ATTRIBUTES}
        hits["all"] = np.logical_and.reduce([hits[a] for a in ATTRIBUTES])
        rp = r_precision_hits(self.clip, images, texts)
        real = self.real(images.shape[1])
        real = real.reshape(self.refs, len(self.texts), -1)[:, :n].reshape(-1, real.shape[-1])
        fd = fd_from_features(real, self.pixels(images)).value
        return {
            **{a: float(h.mean()) for a, h in hits.items()},
            "r_precision": float(rp.mean()),
            "fd": round(fd, 5),
            "pixel_noise": round(pixel_noise(images), 4),
            "hits": {a: h.astype(int).tolist() for a, h in hits.items()} | {"r_precision": rp.astype(int).tolist()},
        }


def r_precision_hits(clip: nn.Module, images: np.ndarray, texts: list[str], candidates: int = 32) -> np.ndarray:
    """Per image: its caption has the highest CLIP similarity among the ``candidates`` captions of its block."""
    hits = []
    with torch.no_grad():
        for start in range(0, len(texts), candidates):
            block = texts[start : start + candidates]
            sim = (
                encode_images(clip, torch.from_numpy(images[start : start + candidates])) @ encode_texts(clip, block).T
            )
            hits.append((sim.argmax(dim=1) == torch.arange(len(block))).numpy())
    return np.concatenate(hits)


def pixel_noise(images: np.ndarray) -> float:
    """Mean |x − median₃ₓ₃(x)| on [0, 255] (``scripts/eval_toy_pipelines.py``)."""
    from scipy.ndimage import median_filter

    x = images.astype(np.float64)
    return float(np.abs(x - median_filter(x, size=(1, 3, 3, 1), mode="nearest")).mean())


class Cache:
    """Images per (stage, model, setting), extended caption by caption range: ``<dir>/<key>.npz``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str, n: int, make: Callable[[int, int], tuple[np.ndarray, float]]) -> tuple[np.ndarray, float]:
        """The first ``n`` images of ``key`` and the seconds spent making the new ones (0 if all were cached)."""
        path = self.folder / f"{key.replace('/', '_')}.npz"
        have = np.load(path)["images"] if path.exists() else None
        done = 0 if have is None else len(have)
        if done >= n:
            assert have is not None
            return have[:n], 0.0
        new, seconds = make(done, n)
        images = new if have is None else np.concatenate([have, new])
        np.savez_compressed(path, images=images)
        return images, seconds


def log(out: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (and print it without the per-image hits)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "hits"}), flush=True)


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    images = fn()
    return images, time.perf_counter() - start


# ---------------------------------------------------------------------- stages


def decoder_stage(args: argparse.Namespace, scorer: Scorer, cache: Cache) -> None:
    texts = scorer.texts
    for name in args.models:
        pipeline: Any = create_pipeline(name, CHECKPOINTS, upsampler=False)
        base = pipeline.base if name == "glide" else pipeline.decoder
        for sampler, steps in parse_points(args.points):
            config = SamplingConfig(
                decoder_sampler=sampler,
                decoder_steps=steps,
                prior_sampler="ddim",
                prior_steps=args.prior_steps,
                decoder_guidance_scale=args.guidance,
                prior_guidance_scale=1.0,
                upsample=False,
                batch_size=16,
            )

            def make(
                lo: int, hi: int, config: SamplingConfig = config, pipe: Any = pipeline
            ) -> tuple[np.ndarray, float]:
                return timed(lambda: pipe(texts[lo:hi], list(range(lo, hi)), config).images)

            key = f"decoder/{name}/g{args.guidance:g}/{sampler}-{steps}"
            images, seconds = cache.get(key, args.n, make)
            k = base.diffusion.build(respacing=steps).num_timesteps
            log(
                args.out,
                {
                    "stage": "decoder",
                    "model": name,
                    "guidance": args.guidance,
                    "sampler": sampler,
                    "steps": steps,
                    "kept": k,
                    "nfe": network_evaluations(sampler, k),
                    "n": args.n,
                    "seconds_new": round(seconds, 1),
                    **scorer(images),
                },
            )


def upsampler_stage(args: argparse.Namespace, scorer: Scorer, cache: Cache) -> None:
    texts = scorer.texts
    pipeline: Any = create_pipeline("glide", CHECKPOINTS)
    base_config = SamplingConfig(
        sampler="ddim", decoder_steps="20", decoder_guidance_scale=args.guidance, upsample=False, batch_size=16
    )
    base_images, _ = cache.get(
        f"decoder/glide/g{args.guidance:g}/ddim-20",
        args.n,
        lambda lo, hi: timed(lambda: pipeline(texts[lo:hi], list(range(lo, hi)), base_config).images),
    )
    low = from_uint8(torch.from_numpy(base_images))
    t_s = round(args.start * (pipeline.upsampler.diffusion.num_timesteps - 1))

    def upsample(sampler: str, steps: str) -> np.ndarray:
        def make(lo: int, hi: int) -> tuple[np.ndarray, float]:
            gens = [generator_for(texts[k], k) for k in range(lo, hi)]
            return timed(
                lambda: to_uint8(
                    upsample_images(
                        pipeline.upsampler,
                        low[lo:hi],
                        gens,
                        respacing=steps,
                        sampler=sampler,
                        start=args.start,
                        chunk=16,
                    )
                ).numpy()
            )

        return cache.get(f"upsampler/start{args.start:g}/{sampler}-{steps}", args.n, make)[0]

    reference = upsample("ddim", "100").astype(np.float64)
    for sampler, steps in parse_points(args.points):
        images = upsample(sampler, steps)
        k = pipeline.upsampler.diffusion.build(respacing=steps, last_step=t_s).num_timesteps
        mse = float(((images.astype(np.float64) - reference) / 127.5).__pow__(2).mean())
        log(
            args.out,
            {
                "stage": "upsampler",
                "model": "upsampler",
                "start": args.start,
                "sampler": sampler,
                "steps": steps,
                "kept": k,
                "nfe": network_evaluations(sampler, k),
                "n": args.n,
                "mse_to_ddim100": round(mse, 7),
                **scorer(images),
            },
        )


def prior_stage(args: argparse.Namespace, scorer: Scorer, cache: Cache) -> None:
    texts = scorer.texts
    pipeline: Any = create_pipeline("unclip-diffusion-prior", CHECKPOINTS, upsampler=False)
    tokens, mask = pipeline.tokenizer(texts[: args.n])
    z_t = pipeline.text_embeddings(texts[: args.n])

    def prior(sampler: str, steps: str) -> tuple[torch.Tensor, torch.Tensor, float]:
        config = SamplingConfig(prior_sampler=sampler, prior_steps=steps, prior_guidance_scale=1.0, batch_size=16)
        gens = [generator_for(t, k) for k, t in enumerate(texts[: args.n])]
        start = time.perf_counter()
        z_i, score = pipeline.prior.sample(tokens, mask, z_t, gens, config)
        return z_i, score, time.perf_counter() - start

    z_ref, _, _ = prior("ddim", "250")
    for sampler, steps in parse_points(args.points):
        z_i, score, seconds = prior(sampler, steps)
        k = pipeline.prior.diffusion.build(respacing=steps).num_timesteps
        cos = (z_i * z_ref).sum(dim=1)
        log(
            args.out,
            {
                "stage": "prior",
                "model": "unclip-diffusion-prior",
                "sampler": sampler,
                "steps": steps,
                "kept": k,
                "nfe": network_evaluations(sampler, k),
                "n": args.n,
                "seconds": round(seconds, 2),
                "cos_to_ddim250_mean": round(float(cos.mean()), 5),
                "cos_to_ddim250_min": round(float(cos.min()), 5),
                "z_i_dot_z_t": round(float(score.mean()), 5),
            },
        )


def final_stage(args: argparse.Namespace, scorer: Scorer, cache: Cache) -> None:
    texts = scorer.texts
    for name in args.models:
        pipeline: Any = create_pipeline(name, CHECKPOINTS)
        for label in args.configs:
            settings = json.loads(Path(args.config_file).read_text())[label]
            config = SamplingConfig(
                **{**settings, "decoder_guidance_scale": args.guidance, "batch_size": 16, "upsampler_start": args.start}
            )
            if name != "unclip-diffusion-prior":
                config = SamplingConfig(**{**config.to_dict(), "prior_steps": "1"})  # unused: no diffusion prior

            def make(
                lo: int, hi: int, config: SamplingConfig = config, pipe: Any = pipeline
            ) -> tuple[np.ndarray, float]:
                return timed(lambda: pipe(texts[lo:hi], list(range(lo, hi)), config).images)

            images, seconds = cache.get(f"final/{name}/g{args.guidance:g}/{label}", args.n, make)
            log(
                args.out,
                {
                    "stage": "final",
                    "model": name,
                    "guidance": args.guidance,
                    "config": label,
                    "settings": settings,
                    "n": args.n,
                    "seconds_new": round(seconds, 1),
                    **scorer(images),
                },
            )


def real_stage(args: argparse.Namespace, scorer: Scorer, cache: Cache) -> None:
    """The ceiling: other real renders of the same captions (render seed 9000 + k), scored like the samples."""
    for size in (32, 64):
        images = np.stack([toyworld.render_caption(t, seed=9000 + k, size=size)[0] for k, t in enumerate(scorer.texts)])
        log(args.out, {"stage": "real", "model": "real renders", "px": size, "n": args.n, **scorer(images)})


STAGES = {
    "real": real_stage,
    "decoder": decoder_stage,
    "upsampler": upsampler_stage,
    "prior": prior_stage,
    "final": final_stage,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refs", type=int, default=4, help="real renders per caption for FD")
    parser.add_argument("--models", nargs="+", default=["glide", "unclip-diffusion-prior", "unclip-ar-prior"])
    parser.add_argument("--points", nargs="+", default=["ddim:5,8,10,15,20,50", "dpm++2m:5,8,10,15,20"])
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--prior-steps", default="32")
    parser.add_argument("--start", type=float, default=0.4, help="upsampler start (the toy configs' 0.4)")
    parser.add_argument("--configs", nargs="+", default=[], help="final: labels in --config-file")
    parser.add_argument("--config-file", default="benchmarks/sampling_configs.json")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/sampling_results.jsonl"))
    parser.add_argument("--cache", type=Path, default=Path("runs/sampling_cache"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts, truth = captions(args.n, args.seed)
    STAGES[args.stage](args, Scorer(texts, truth, args.refs), Cache(args.cache))


if __name__ == "__main__":
    main()
