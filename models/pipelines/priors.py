"""Sampling the unCLIP priors P(z_i | y) (Ramesh et al. 2022, §2.2): diffusion prior and autoregressive prior.

**Diffusion prior.** The process runs on s·z_i, the unit-norm CLIP image embedding scaled by s = √D so its entries
have unit variance (choice: the paper scales its 1024-d embeddings by 17.2; √D is the same idea for any D, and
a toy D = 64 gives s = 8). The network predicts the clean s·z_i directly (x0-prediction, MSE). Sampling draws
``prior_candidates`` (2) candidates per caption, each with its own noise, and keeps the one with the larger
z_i·z_t (§2.2 "we generate two samples of z_i and select the one with a higher dot product with z_t"). Every
candidate's generator is split off its image's generator, so the choice is per-sample deterministic.

**Autoregressive prior.** z_i → PCA (K leading components) → equal-mass buckets per component
(`models.networks.pca_quant`). The sequence is [caption, z_t, dot token, c_0 … c_{K−1}]: at inference the
quantised z_i·z_t token is drawn uniformly from the **top half** of its buckets (§2.2: "sampling with a dot
product from the top half of the distribution"), then each component bucket from the guided softmax
``log p = u + s·(c − u)`` over the conditional/unconditional logits (one batched forward on [cond; null]). The
decoded z_i is renormalised to unit length (choice: the decoder was trained on unit-norm embeddings and the
PCA reconstruction from K < D components is shorter).

Both priors run at the config's precision (autocast; `models.pipelines.execution`) and are never compiled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from models.diffusion import DiffusionConfig
from models.pipelines.base import SamplingConfig
from models.pipelines.execution import Execution, running
from models.pipelines.stages import Stage, padded_chunks, sample_stage


def prior_scale(embed_dim: int) -> float:
    """s = √D, the factor between unit-norm z_i and the diffusion prior's data space."""
    return math.sqrt(embed_dim)


def split_generators(generators: Sequence[torch.Generator], count: int) -> list[torch.Generator]:
    """``count`` child generators per parent (parent-major order), each seeded by one draw from its parent."""
    children = []
    for parent in generators:
        for _ in range(count):
            seed = int(torch.randint(0, 2**62, (1,), generator=parent))
            children.append(torch.Generator().manual_seed(seed))
    return children


def select_candidates(candidates: Tensor, z_t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Keep, per row, the candidate with the largest dot product with z_t.

    Args:
        candidates: (B, C, D) unit-norm candidate image embeddings.
        z_t: (B, D) text embeddings.

    Returns:
        ``(chosen (B, D), index (B,) int64, scores (B, C))`` with scores = candidates · z_t.
    """
    scores = torch.einsum("bcd,bd->bc", candidates.float(), z_t.float())
    index = scores.argmax(dim=1)
    chosen = candidates[torch.arange(candidates.shape[0]), index]
    return chosen, index, scores


@dataclass(frozen=True)
class DiffusionPriorStage:
    """The diffusion prior network and its process (on √D-scaled embeddings)."""

    network: nn.Module
    diffusion: DiffusionConfig

    def sample(
        self,
        tokens: Tensor,
        token_mask: Tensor,
        z_t: Tensor,
        generators: Sequence[torch.Generator],
        config: SamplingConfig,
        device: torch.device | str = "cpu",
    ) -> tuple[Tensor, Tensor]:
        """z_i for each caption: ``(chosen unit-norm (B, D), chosen score z_i·z_t (B,))``."""
        b, d = z_t.shape
        c = config.prior_candidates
        rep = torch.arange(b).repeat_interleave(c)
        cond = {"text_tokens": tokens[rep], "token_mask": token_mask[rep], "text_emb": z_t[rep]}
        samples = sample_stage(
            Stage(self.network, self.diffusion),
            (b * c, d),
            cond,
            split_generators(generators, c),
            respacing=config.prior_steps,
            sampler=config.stage_sampler("prior"),
            guidance_scale=config.prior_guidance_scale,
            chunk=config.batch_size * c,
            clip_denoised=False,
            execution=replace(Execution.of(config, device), compile=False),
        )
        candidates = nn.functional.normalize(samples.view(b, c, d), dim=-1)
        chosen, index, scores = select_candidates(candidates, z_t.cpu())
        return chosen, scores[torch.arange(b), index]


def top_fraction_buckets(num_buckets: int, fraction: float) -> tuple[int, int]:
    """``[lo, num_buckets)``: the equal-mass buckets holding the top ``fraction`` of the values."""
    lo = min(num_buckets - 1, round(num_buckets * (1.0 - fraction)))
    return lo, num_buckets


@dataclass(frozen=True)
class ARPriorStage:
    """The autoregressive prior network with its fitted PCA quantiser and dot-product buckets.

    Attributes:
        network: `ARPriorNetwork`.
        pca: `PCAQuantizer` (K components, n buckets).
        dot: `QuantileBuckets` over the one column z_i·z_t.
    """

    network: nn.Module
    pca: nn.Module
    dot: nn.Module

    def sample_dot_tokens(self, generators: Sequence[torch.Generator], fraction: float) -> Tensor:
        """(B,) dot-product buckets drawn uniformly from the top ``fraction`` (module docstring)."""
        num_buckets = int(getattr(self.dot, "num_buckets"))  # noqa: B009 - nn.Module attributes are untyped
        lo, hi = top_fraction_buckets(num_buckets, fraction)
        return torch.stack([torch.randint(lo, hi, (), generator=g) for g in generators])

    @torch.no_grad()
    def sample(
        self,
        tokens: Tensor,
        token_mask: Tensor,
        z_t: Tensor,
        generators: Sequence[torch.Generator],
        config: SamplingConfig,
        device: torch.device | str = "cpu",
    ) -> tuple[Tensor, Tensor]:
        """z_i for each caption: ``(unit-norm (B, D), dot-token bucket (B,))``; chunks of ``batch_size`` rows."""
        dot_tokens = self.sample_dot_tokens(generators, config.ar_top_fraction)
        execution = replace(Execution.of(config, device), compile=False)
        outputs = []
        with running(self.network, execution) as network:
            for idx, real in padded_chunks(z_t.shape[0], config.batch_size):
                comps = self._components(
                    network,
                    tokens[idx].to(device),
                    token_mask[idx].to(device),
                    z_t[idx].to(device),
                    dot_tokens[idx].to(device),
                    [generators[int(r)] for r in idx[:real]],
                    config.prior_guidance_scale,
                )
                outputs.append(comps[:real].cpu())
        z_i = getattr(self.pca, "decode")(torch.cat(outputs)).float()  # noqa: B009
        return nn.functional.normalize(z_i, dim=-1), dot_tokens

    def _components(
        self,
        network: Callable[..., Tensor],
        tokens: Tensor,
        token_mask: Tensor,
        z_t: Tensor,
        dot_tokens: Tensor,
        generators: Sequence[torch.Generator],
        scale: float,
    ) -> Tensor:
        """(chunk, K) component buckets, one autoregressive step per component (real rows first); ``network`` is
        the prior network as it runs (`models.pipelines.execution.running`)."""
        b = tokens.shape[0]
        k = int(getattr(self.network, "config").num_components)  # noqa: B009
        guided = scale != 1.0
        keep = torch.cat([torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)]).to(tokens.device)
        comps = torch.zeros(b, 0, dtype=torch.long, device=tokens.device)
        for _ in range(k):
            if guided:
                logits = network(
                    torch.cat([comps, comps]),
                    text_tokens=torch.cat([tokens, tokens]),
                    text_emb=torch.cat([z_t, z_t]),
                    dot_token=torch.cat([dot_tokens, dot_tokens]),
                    token_mask=torch.cat([token_mask, token_mask]),
                    cond_mask=keep,
                )[:, -1].float()
                logits = logits[b:] + scale * (logits[:b] - logits[b:])
            else:
                out = network(comps, text_tokens=tokens, text_emb=z_t, dot_token=dot_tokens, token_mask=token_mask)
                logits = out[:, -1].float()
            probs = torch.softmax(logits.cpu(), dim=-1)
            draws = [
                torch.multinomial(probs[i], 1, generator=generators[i])
                if i < len(generators)
                else probs[i].argmax()[None]
                for i in range(b)
            ]
            comps = torch.cat([comps, torch.stack(draws).to(comps.device).view(b, 1)], dim=1)
        return comps
