"""Training of the unCLIP autoregressive prior on toy-world (caption, CLIP embedding) pairs.

Data as the diffusion prior's (`harness.train.prior.feature_stream`). Before training, the PCA quantiser is fitted
on the z_i of the first ``fit_examples`` examples (K leading components, n equal-mass buckets each), and the
dot-product buckets on their z_i·z_t (`models.networks.pca_quant`). Objective: next-bucket cross-entropy over the
K component tokens with teacher forcing; caption and z_t dropped 10% (``cond_mask``). The fitted quantisers travel
in the checkpoint (state-dict keys ``pca.*`` and ``dot.*`` beside the network's ``network.*``), exported in float32
(bucket edges lose their order in float16).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.train.decoder import load_frozen_clip
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
from harness.train.prior import Example, PriorRunSpec, _run_json, caption_and_render, feature_stream
from models.networks import ARPriorConfig, build_network, load_config
from models.networks.clip import encode_images, encode_texts
from models.networks.config import config_to_dict
from models.networks.pca_quant import PCAQuantizer, QuantileBuckets
from models.pipelines.tokenizer import WordTokenizer

EXPORT_NAME = "unclip_ar_prior_toy"
DEFAULT_CONFIG = "unclip_ar_prior_toy"
TEXT_DROP = 0.1
FIT_EXAMPLES = 2048


class ARPriorBundle(nn.Module):
    """The AR prior network with its quantisers, so one state dict holds all three (``network.``, ``pca.``, ``dot.``).

    Only ``network`` has parameters; the quantisers are buffers.
    """

    def __init__(self, network: nn.Module, pca: PCAQuantizer, dot: QuantileBuckets) -> None:
        super().__init__()
        self.network = network
        self.pca = pca
        self.dot = dot


def fit_quantizers(z_i: torch.Tensor, z_t: torch.Tensor, config: ARPriorConfig) -> tuple[PCAQuantizer, QuantileBuckets]:
    """PCA quantiser of z_i and the buckets of z_i·z_t, fitted on (N, D) embeddings."""
    pca = PCAQuantizer.fit(z_i.double(), config.num_components, config.num_buckets).float()
    dot = QuantileBuckets(1, config.num_dot_buckets).fit((z_i * z_t).sum(dim=1, keepdim=True).double()).float()
    return pca, dot


def ar_step_fn(
    bundle: ARPriorBundle,
    tokenizer: WordTokenizer,
    stream: Callable[[int], list[Example]],
    data_seed: int,
    device: torch.device,
    bf16: bool,
) -> Callable[[int], tuple[torch.Tensor, dict[str, float]]]:
    """``step -> (loss, metrics)``: next-bucket cross-entropy over the K PCA tokens, caption and z_t dropped 10%."""
    k = int(getattr(bundle.network, "config").num_components)  # noqa: B009

    def step_fn(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        examples = stream(step)
        tokens, token_mask = tokenizer([c for c, _, _ in examples])
        z_i = torch.stack([e[1] for e in examples]).to(device)
        z_t = torch.stack([e[2] for e in examples]).to(device)
        targets = bundle.pca.encode(z_i)
        dot_token = bundle.dot.encode((z_i * z_t).sum(dim=1, keepdim=True))[:, 0]
        gen = step_generator(data_seed, step, salt=5)
        with autocast(device, bf16):
            logits = bundle.network(
                targets[:, : k - 1],
                text_tokens=tokens.to(device),
                text_emb=z_t,
                dot_token=dot_token,
                token_mask=token_mask.to(device),
                cond_mask=keep_mask(len(examples), TEXT_DROP, gen).to(device),
            )
        loss = nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        with torch.no_grad():
            acc = (logits.argmax(dim=-1) == targets).float().mean()
        return loss, {"token_acc": float(acc)}

    return step_fn


def train_ar_prior(out_dir: Path, optim: OptimSpec, spec: PriorRunSpec, *, resume: bool = False) -> dict[str, Any]:
    """Train the toy AR prior; writes ``out_dir/{state.pt, log.jsonl, unclip_ar_prior_toy.*}``."""
    torch.manual_seed(spec.model_seed)
    net_config = load_config(spec.config)
    if not isinstance(net_config, ARPriorConfig):
        raise ValueError(f"config {spec.config!r} is not an autoregressive prior config")  # noqa: TRY004 - a user error
    clip, clip_ref = load_frozen_clip(spec.clip)
    tokenizer = toy_tokenizer(net_config.text_context)
    tokenizer.check_fits(net_config.vocab_size)
    device = pick_device(spec.device)
    stream = feature_stream(clip, spec)
    if spec.init_from is None:
        fit = [caption_and_render(spec.data_seed, i) for i in range(FIT_EXAMPLES)]
        fit_images = torch.from_numpy(np.stack([image for _, image in fit]))
        fit_z_i, fit_z_t = encode_images(clip, fit_images).cpu(), encode_texts(clip, [c for c, _ in fit]).cpu()
        pca, dot = fit_quantizers(fit_z_i, fit_z_t, net_config)
        bundle = ARPriorBundle(build_network(net_config), pca, dot)
    else:  # network and quantisers from the checkpoint: the warm start keeps the tokens' meaning
        pca = PCAQuantizer(net_config.embed_dim, net_config.num_components, net_config.num_buckets)
        dot = QuantileBuckets(1, net_config.num_dot_buckets)
        bundle = ARPriorBundle(build_network(net_config), pca, dot)
        warm_start(bundle, spec.init_from)
    bundle.to(device)

    step_fn = ar_step_fn(bundle, tokenizer, stream, spec.data_seed, device, spec.bf16)

    meta = {
        "kind": "ar_prior",
        "network": config_to_dict(net_config),
        "tokenizer": tokenizer.to_dict(),
        "clip": clip_ref,
        "fit_examples": FIT_EXAMPLES,
    }
    run_config = {"model": "ar_prior", "clip_sha256": clip_ref["sha256"], **_run_json(spec)}
    export_fn = make_exporter(
        out_dir,
        EXPORT_NAME,
        {**meta, "run": run_config},
        export=Path(spec.export) if spec.export else None,
        fp16=False,
        grid_fn=None,
        grid_every=0,
        grid_columns=1,
    )
    summary = train_loop(
        bundle, step_fn, optim, out_dir, run_config=run_config, export=export_fn, resume=resume, desc="train ar-prior"
    )
    return {**summary, "exports": [str(out_dir / EXPORT_NAME)] + ([spec.export] if spec.export else [])}
