"""Training of the unCLIP diffusion prior on toy-world (caption, CLIP embedding) pairs.

Data: scene ``i`` of the ``train`` split, a caption paraphrase fixed per scene (drawn from ``(data_seed, i)``), its
word tokens, z_t = the frozen toy CLIP's unit-norm text embedding of that paraphrase and z_i = its unit-norm image
embedding of the 32×32 render. Features are computed once per example and replayed (`ReplayStream`).

Objective (§2.2): the process runs on x_0 = √D·z_i (`models.pipelines.priors.prior_scale`); the network predicts
x_0 directly, loss = MSE; the caption and z_t are dropped together 10% of the time (``cond_mask``). Process:
cosine schedule, T = 1000, x0-prediction, fixed small variance; sampled with DDIM (64 steps by default).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.data import toyworld
from harness.train.decoder import DEFAULT_CLIP, load_frozen_clip
from harness.train.diffusion import (
    autocast,
    keep_mask,
    make_exporter,
    pick_device,
    step_generator,
    toy_tokenizer,
    warm_start,
)
from harness.train.loop import OptimSpec, train_loop
from harness.train.stream import ReplayStream
from models.diffusion import DiffusionConfig
from models.networks import DiffusionPriorConfig, build_network, load_config
from models.networks.clip import encode_images, encode_texts
from models.networks.config import config_to_dict
from models.pipelines.priors import prior_scale
from models.pipelines.tokenizer import WordTokenizer

EXPORT_NAME = "unclip_prior_toy"
DEFAULT_CONFIG = "unclip_prior_toy"
TEXT_DROP = 0.1

Example = tuple[str, torch.Tensor, torch.Tensor]
"""(caption, z_i (D,), z_t (D,))."""


@dataclass(frozen=True)
class PriorRunSpec:
    """Settings of a prior training run besides the optimiser.

    Attributes:
        batch: pairs per step.
        config: network config name or JSON path.
        clip: frozen CLIP checkpoint stem.
        data_seed: dataset seed.
        fresh: new pairs per step (the rest replayed).
        window: replay window in examples.
        model_seed: seed of the initial weights.
        device: ``auto``, ``cpu``, ``cuda``...
        bf16: bf16 autocast.
        export: extra checkpoint stem.
        fp16: export float16 weights.
        init_from: warm start: a checkpoint of the same prior (and, for the AR prior, the same quantisers, which
            come with it) whose weights replace the seeded initial ones; a fresh optimiser, EMA and schedule.
    """

    batch: int = 256
    config: str = DEFAULT_CONFIG
    clip: str = DEFAULT_CLIP
    data_seed: int = 0
    fresh: int = 32
    window: int = 16384
    model_seed: int = 0
    device: str = "auto"
    bf16: bool = False
    export: str | None = None
    fp16: bool = True
    init_from: str | None = None


def caption_and_render(data_seed: int, index: int) -> tuple[str, np.ndarray]:
    """Example ``index`` of the train split: its caption paraphrase and its uint8 32×32 render."""
    scene = toyworld.sample_scene(data_seed, index, "train")
    seed = int(np.random.SeedSequence([data_seed, index]).generate_state(1)[0])
    return toyworld.caption_scene(scene, seed=seed), toyworld.render_scene(scene, 32)


def feature_stream(clip: torch.nn.Module, spec: PriorRunSpec) -> Callable[[int], list[Example]]:
    """Batch ``step`` -> ``[(caption paraphrase, z_i, z_t)]`` of the train split (module docstring).

    Renders come from a `ReplayStream`; the CLIP features of the examples not seen before are encoded in one
    batch per step and kept while their example may still be replayed.
    """

    def make(index: int) -> tuple[str, np.ndarray]:
        return caption_and_render(spec.data_seed, index)

    stream = ReplayStream(
        make, batch=spec.batch, fresh=min(spec.fresh, spec.batch), window=spec.window, seed=spec.data_seed
    )
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def batch(step: int) -> list[Example]:
        indices, examples = stream(step)
        missing = [k for k, i in enumerate(indices.tolist()) if i not in cache]
        if missing:
            images = torch.from_numpy(np.stack([examples[k][1] for k in missing]))
            z_i = encode_images(clip, images).cpu()
            z_t = encode_texts(clip, [examples[k][0] for k in missing]).cpu()
            for row, k in enumerate(missing):
                cache[int(indices[k])] = (z_i[row], z_t[row])
        floor = int(indices.min())
        for stale in [i for i in cache if i < floor]:
            del cache[stale]
        return [(caption, *cache[int(i)]) for i, (caption, _) in zip(indices.tolist(), examples, strict=True)]

    return batch


def prior_diffusion() -> DiffusionConfig:
    """The diffusion prior's process: cosine, T = 1000, x0-prediction, fixed small variance."""
    return DiffusionConfig(schedule="cosine", num_timesteps=1000, mean_type="start_x", var_type="fixed_small")


def prior_step_fn(
    network: torch.nn.Module,
    diffusion_config: DiffusionConfig,
    scale: float,
    tokenizer: WordTokenizer,
    stream: Callable[[int], list[Example]],
    data_seed: int,
    device: torch.device,
    bf16: bool,
) -> Callable[[int], tuple[torch.Tensor, dict[str, float]]]:
    """``step -> (loss, metrics)``: MSE of the predicted √D·z_i at random t, caption and z_t dropped 10%."""
    diffusion = diffusion_config.build()

    def step_fn(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        examples = stream(step)
        tokens, token_mask = tokenizer([c for c, _, _ in examples])
        z_i = torch.stack([e[1] for e in examples])
        z_t = torch.stack([e[2] for e in examples])
        gen = step_generator(data_seed, step, salt=4)
        t = torch.randint(0, diffusion.num_timesteps, (len(examples),), generator=gen)
        noise = torch.randn(z_i.shape, generator=gen)
        cond = {
            "text_tokens": tokens.to(device),
            "token_mask": token_mask.to(device),
            "text_emb": z_t.to(device),
            "cond_mask": keep_mask(len(examples), TEXT_DROP, gen).to(device),
        }
        with autocast(device, bf16):
            terms = diffusion.training_losses(network, (scale * z_i).to(device), t.to(device), noise.to(device), cond)
        return terms["loss"].float().mean(), {}

    return step_fn


def train_prior(out_dir: Path, optim: OptimSpec, spec: PriorRunSpec, *, resume: bool = False) -> dict[str, Any]:
    """Train the toy diffusion prior; writes ``out_dir/{state.pt, log.jsonl, unclip_prior_toy.*}``."""
    torch.manual_seed(spec.model_seed)
    net_config = load_config(spec.config)
    if not isinstance(net_config, DiffusionPriorConfig):
        raise ValueError(f"config {spec.config!r} is not a diffusion prior config")  # noqa: TRY004 - a user error
    clip, clip_ref = load_frozen_clip(spec.clip)
    network = build_network(net_config)
    tokenizer = toy_tokenizer(net_config.text_context)
    tokenizer.check_fits(net_config.vocab_size)
    diffusion_config = prior_diffusion()
    scale = prior_scale(net_config.embed_dim)
    device = pick_device(spec.device)
    if spec.init_from is not None:
        warm_start(network, spec.init_from)
    network.to(device)
    stream = feature_stream(clip, spec)

    step_fn = prior_step_fn(network, diffusion_config, scale, tokenizer, stream, spec.data_seed, device, spec.bf16)

    meta = {
        "kind": "diffusion_prior",
        "network": config_to_dict(net_config),
        "diffusion": diffusion_config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "clip": clip_ref,
        "scale": scale,
    }
    run_config = {"model": "diffusion_prior", "clip_sha256": clip_ref["sha256"], **_run_json(spec)}
    export_fn = make_exporter(
        out_dir,
        EXPORT_NAME,
        {**meta, "run": run_config},
        export=Path(spec.export) if spec.export else None,
        fp16=spec.fp16,
        grid_fn=None,
        grid_every=0,
        grid_columns=1,
    )
    summary = train_loop(
        network, step_fn, optim, out_dir, run_config=run_config, export=export_fn, resume=resume, desc="train prior"
    )
    return {**summary, "exports": [str(out_dir / EXPORT_NAME)] + ([spec.export] if spec.export else [])}


def _run_json(spec: PriorRunSpec) -> dict[str, Any]:
    out = asdict(spec)
    for key in ("device", "export", "fp16", "clip"):
        out.pop(key)
    if out["init_from"] is None:  # runs from scratch keep the run.json of older versions (they still resume)
        out.pop("init_from")
    return out
