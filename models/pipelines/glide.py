"""The GLIDE baseline (Nichol et al. 2021): a text-conditional UNet with its own text Transformer, then the same
32→64 upsampler as unCLIP.

Every stage runs with the config's precision, memory format and compilation (`models.pipelines.execution`).

Stages: caption → word tokens (`WordTokenizer`) → base UNet sampled with classifier-free guidance (the
unconditional half replaces the caption by the network's learned null text, ``cond_mask`` False; trained with
20% of captions dropped) → optional upsampler (few steps, no guidance). Each stage samples with its sampler and
steps of the `SamplingConfig` (`SamplingConfig.stage_sampler`: "decoder" for the base, "upsampler").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from models.diffusion import generator_for
from models.pipelines.base import DEFAULT_SAMPLING, GenerationOutput, SamplingConfig, check_inputs
from models.pipelines.execution import Execution
from models.pipelines.stages import Stage, network_image_size, sample_stage, to_uint8, upsample_images
from models.pipelines.tokenizer import WordTokenizer


def text_unet_images(
    stage: Stage,
    tokenizer: WordTokenizer,
    prompts: Sequence[str],
    generators: Sequence[torch.Generator],
    config: SamplingConfig,
    *,
    extra_cond: dict[str, Tensor] | None = None,
    noise: Tensor | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Base images of a text-conditional UNet (GLIDE base or unCLIP decoder with ``extra_cond={"clip_emb": z_i}``).

    The network runs as ``config`` says (precision, channels-last, compile) on ``device``.

    Returns:
        (B, 3, S, S) float32 in [−1, 1].
    """
    tokens, token_mask = tokenizer(list(prompts))
    size = network_image_size(stage.network)
    cond: dict[str, Tensor] = {"tokens": tokens, "token_mask": token_mask, **(extra_cond or {})}
    return sample_stage(
        stage,
        (len(prompts), 3, size, size),
        cond,
        generators,
        respacing=config.decoder_steps,
        sampler=config.stage_sampler("decoder"),
        guidance_scale=config.decoder_guidance_scale,
        eta=config.eta,
        noise=noise,
        chunk=config.batch_size,
        execution=Execution.of(config, device),
    )


@dataclass(frozen=True)
class GlidePipeline:
    """GLIDE-style text-to-image pipeline (module docstring).

    Attributes:
        base: the text-conditional base UNet stage.
        tokenizer: its caption tokenizer.
        upsampler: the 32→64 stage, or None (base resolution only).
        model_id: id stored with every image.
        checkpoint_sha256: hashes of the stages' weight files, joined with ``+``.
        device: where the networks live.
    """

    base: Stage
    tokenizer: WordTokenizer
    upsampler: Stage | None
    model_id: str = "glide-toy"
    checkpoint_sha256: str = ""
    device: str = "cpu"

    def __call__(
        self, prompts: Sequence[str], seeds: Sequence[int], config: SamplingConfig = DEFAULT_SAMPLING
    ) -> GenerationOutput:
        """Generate one image per (prompt, seed): (N, S, S, 3) uint8 plus metadata."""
        check_inputs(prompts, seeds)
        Execution.of(config, self.device)  # bad precision/device: one error before any work
        generators = [generator_for(p, int(s)) for p, s in zip(prompts, seeds, strict=True)]
        images = text_unet_images(self.base, self.tokenizer, prompts, generators, config, device=self.device)
        if config.upsample and self.upsampler is not None:
            images = upsample_images(
                self.upsampler,
                images,
                generators,
                respacing=config.upsampler_steps,
                sampler=config.stage_sampler("upsampler"),
                start=config.upsampler_start,
                chunk=config.batch_size,
                execution=Execution.of(config, self.device, "upsampler"),
            )
        settings = config.to_dict()
        metadata = tuple(
            {"prompt": p, "seed": int(s), "model_id": self.model_id, "settings": settings}
            for p, s in zip(prompts, seeds, strict=True)
        )
        return GenerationOutput(images=to_uint8(images).numpy(), metadata=metadata)
