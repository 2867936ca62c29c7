"""unCLIP (Ramesh et al. 2022): CLIP text embedding → prior → CLIP-conditioned decoder → upsampler; manipulations.

Generation (§2): z_t = CLIP text embedding of the caption (unit norm); z_i ~ P(z_i | y) from the diffusion prior
(2 candidates, keep the larger z_i·z_t) or the AR prior (dot token from the top half); the decoder (GLIDE UNet
with z_i added to the timestep embedding and as 4 context tokens) samples 32×32 images with classifier-free
guidance; the upsampler (few steps) brings them to 64×64. Each stage samples with its own sampler and steps of the
`SamplingConfig` (`SamplingConfig.stage_sampler`).

Manipulations (§3), on the bipartite latent (z_i, x_T):

* **variations**: z_i = CLIP embedding of the image, x_T = DDIM inversion of the image by the decoder conditioned
  on z_i; decode with DDIM η > 0 so each variation keeps the gist and varies the rest (Fig. 3); the manipulations
  always decode with DDIM (the inverse of the inversion), whatever the config's decoder sampler;
* **interpolations**: z_iθ = slerp(z_i1, z_i2, θ), θ from 0 to 1; x_T fixed (one draw for the whole strip) or
  slerped between the two inversions (Fig. 4);
* **text diffs**: z_d = norm(z_t − z_t0) from a caption of the image (z_t0) to the target caption (z_t);
  z_θ = slerp(z_i, z_d, θ), x_T fixed to the image's DDIM inversion (Fig. 5).

Every denoising network (prior, decoder, upsampler; also in the DDIM inversion) runs with the config's precision,
memory format and compilation (`models.pipelines.execution`); CLIP encoding stays float32.

Manipulations decode with the caption dropped (``text_mask`` False): the image embedding alone carries the
content, as in the paper's figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from models.diffusion import ddim_reverse_sample_loop, generator_for, slerp, text_diff_direction
from models.networks.clip import encode_images, encode_texts
from models.pipelines.base import DEFAULT_SAMPLING, GenerationOutput, SamplingConfig, check_inputs
from models.pipelines.execution import Execution, running
from models.pipelines.glide import text_unet_images
from models.pipelines.priors import ARPriorStage, DiffusionPriorStage
from models.pipelines.stages import (
    Stage,
    chunked,
    from_uint8,
    image_strip,
    network_image_size,
    to_uint8,
    upsample_images,
)
from models.pipelines.tokenizer import WordTokenizer

Prior = DiffusionPriorStage | ARPriorStage


@dataclass(frozen=True)
class UnclipPipeline:
    """unCLIP text-to-image pipeline and its latent manipulations (module docstring).

    Attributes:
        clip: the CLIP (open_clip) whose embeddings the prior and decoder were trained on (eval mode).
        tokenizer: the word tokenizer of the prior and the decoder.
        prior: diffusion or autoregressive prior.
        decoder: the CLIP-conditioned base UNet stage.
        upsampler: the 32→64 stage, or None.
        model_id: id stored with every image.
        checkpoint_sha256: hashes of the stages' weight files joined with ``+``.
        device: where the networks live.
    """

    clip: nn.Module
    tokenizer: WordTokenizer
    prior: Prior
    decoder: Stage
    upsampler: Stage | None
    model_id: str = "unclip-toy"
    checkpoint_sha256: str = ""
    device: str = "cpu"

    # ------------------------------------------------------------------ generation

    def __call__(
        self, prompts: Sequence[str], seeds: Sequence[int], config: SamplingConfig = DEFAULT_SAMPLING
    ) -> GenerationOutput:
        """One image per (prompt, seed): (N, S, S, 3) uint8 plus metadata (incl. the chosen z_i·z_t)."""
        check_inputs(prompts, seeds)
        Execution.of(config, self.device)  # bad precision/device: one error before any work
        generators = [generator_for(p, int(s)) for p, s in zip(prompts, seeds, strict=True)]
        z_t = self.text_embeddings(prompts, config.batch_size)
        tokens, token_mask = self.tokenizer(list(prompts))
        z_i, prior_info = self.prior.sample(tokens, token_mask, z_t, generators, config, device=self.device)
        images = self._decode(list(prompts), z_i, generators, config)
        settings = config.to_dict()
        score = (z_i * z_t).sum(dim=1)
        metadata = tuple(
            {
                "prompt": p,
                "seed": int(s),
                "model_id": self.model_id,
                "settings": settings,
                "prior": type(self.prior).__name__,
                "z_i_dot_z_t": float(score[k]),
                "prior_info": float(prior_info[k]),
            }
            for k, (p, s) in enumerate(zip(prompts, seeds, strict=True))
        )
        return GenerationOutput(images=to_uint8(images).numpy(), metadata=metadata)

    def decode(
        self,
        prompts: Sequence[str],
        z_i: Tensor,
        seeds: Sequence[int],
        config: SamplingConfig = DEFAULT_SAMPLING,
    ) -> np.ndarray:
        """The decoder (+ upsampler) alone from given image embeddings: (N, S', S', 3) uint8.

        With z_i = the CLIP embedding of a real image this is the paper's reconstruction (Fig. 2/3 use the same
        second stage), and it separates the decoder's share of an error from the prior's: a caption drawn wrongly
        from the true z_i is not the prior's fault. ``z_i``: (N, D) unit-norm; image k depends only on
        (prompts[k], z_i[k], seeds[k], config), whatever the batch.
        """
        check_inputs(prompts, seeds)
        if z_i.ndim != 2 or z_i.shape[0] != len(prompts):
            raise ValueError(f"z_i must be (N, D) with one row per prompt, got {tuple(z_i.shape)} for {len(prompts)}")
        Execution.of(config, self.device)
        generators = [generator_for(f"decode {p}", int(s)) for p, s in zip(prompts, seeds, strict=True)]
        return to_uint8(self._decode(list(prompts), z_i.float(), generators, config)).numpy()

    def text_embeddings(self, prompts: Sequence[str], chunk: int = 16) -> Tensor:
        """(N, D) unit-norm CLIP text embeddings z_t, computed in fixed-size chunks (batch-invariant)."""
        index = torch.arange(len(prompts))
        return chunked(lambda rows: encode_texts(self.clip, [prompts[int(i)] for i in rows]).cpu(), index, chunk)

    def image_embeddings(self, images: np.ndarray, chunk: int = 16) -> Tensor:
        """(N, D) unit-norm CLIP image embeddings z_i of uint8 (N, H, W, 3) images."""
        pixels = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))
        return chunked(lambda x: encode_images(self.clip, x).cpu(), pixels, chunk)

    def _decode(
        self,
        prompts: list[str],
        z_i: Tensor,
        generators: Sequence[torch.Generator],
        config: SamplingConfig,
        *,
        noise: Tensor | None = None,
        drop_text: bool = False,
    ) -> Tensor:
        """Decoder (+ upsampler) images (B, 3, S, S) in [−1, 1] from z_i (and captions unless ``drop_text``)."""
        extra: dict[str, Tensor] = {"clip_emb": z_i}
        if drop_text:
            extra["text_mask"] = torch.zeros(z_i.shape[0], dtype=torch.bool)
        images = text_unet_images(
            self.decoder, self.tokenizer, prompts, generators, config, extra_cond=extra, noise=noise, device=self.device
        )
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
        return images

    # ------------------------------------------------------------------ manipulations

    def invert(self, images: np.ndarray, z_i: Tensor, config: SamplingConfig) -> Tensor:
        """x_T of uint8 (N, S, S, 3) images: DDIM inversion (η = 0) by the decoder conditioned on z_i, caption
        dropped, over ``config.decoder_steps``; (N, 3, S, S) float32."""
        size = network_image_size(self.decoder.network)
        if images.shape[1:3] != (size, size):
            raise ValueError(f"images to invert must be {size}x{size} (the decoder's size), got {images.shape[1:3]}")
        x0 = from_uint8(torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))).to(self.device)
        tokens, token_mask = self.tokenizer([""] * len(images))
        cond = {
            "tokens": tokens.to(self.device),
            "token_mask": token_mask.to(self.device),
            "clip_emb": z_i.to(self.device),
            "text_mask": torch.zeros(len(images), dtype=torch.bool, device=self.device),
        }
        diffusion = self.decoder.diffusion.build(respacing=config.decoder_steps)
        execution = Execution.of(config, self.device)
        compiled = self.decoder.compiled_network() if execution.compile else None
        with running(self.decoder.network, execution, compiled) as network:
            return ddim_reverse_sample_loop(diffusion, network, x0, cond=cond).float().cpu()

    def variations(self, image: np.ndarray, n: int, seed: int, config: SamplingConfig, eta: float = 1.0) -> np.ndarray:
        """``n`` variations of one uint8 (S, S, 3) image (Fig. 3): (n, S', S', 3) uint8."""
        z_i = self.image_embeddings(image[None])
        x_t = self.invert(image[None], z_i, config)
        settings = SamplingConfig(**{**config.to_dict(), "eta": eta, "decoder_sampler": "ddim"})
        gens = [generator_for(f"variation {k}", seed) for k in range(n)]
        images = self._decode(
            [""] * n, z_i.expand(n, -1), gens, settings, noise=x_t.expand(n, -1, -1, -1), drop_text=True
        )
        return to_uint8(images).numpy()

    def interpolate(
        self,
        image_a: np.ndarray,
        image_b: np.ndarray,
        n: int,
        seed: int,
        config: SamplingConfig,
        fixed_noise: bool = True,
    ) -> np.ndarray:
        """``n`` images along slerp(z_i1, z_i2, θ), θ = 0 … 1 (Fig. 4); x_T fixed (one draw from ``seed``) or
        slerped between the two images' DDIM inversions. Returns (n, S', S', 3) uint8."""
        pair = np.stack([image_a, image_b])
        z = self.image_embeddings(pair)
        theta = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
        z_theta = slerp(z[:1].expand(n, -1), z[1:].expand(n, -1), theta, start_dim=1)
        gens = [generator_for("interpolation", seed) for _ in range(n)]
        if fixed_noise:
            size = network_image_size(self.decoder.network)
            noise = torch.randn((1, 3, size, size), generator=generator_for("interpolation x_T", seed)).expand(
                n, -1, -1, -1
            )
        else:
            x_t = self.invert(pair, z, config)
            noise = slerp(x_t[:1].expand(n, -1, -1, -1), x_t[1:].expand(n, -1, -1, -1), theta, start_dim=1)
        settings = SamplingConfig(**{**config.to_dict(), "eta": 0.0, "decoder_sampler": "ddim"})
        return to_uint8(self._decode([""] * n, z_theta, gens, settings, noise=noise, drop_text=True)).numpy()

    def text_diff(
        self,
        image: np.ndarray,
        from_text: str,
        to_text: str,
        n: int,
        seed: int,
        config: SamplingConfig,
        max_theta: float = 0.5,
    ) -> np.ndarray:
        """``n`` images along slerp(z_i, z_d, θ), θ = 0 … ``max_theta``, z_d = norm(z_t − z_t0) (Fig. 5), x_T the
        image's DDIM inversion. Returns (n, S', S', 3) uint8."""
        z_i = self.image_embeddings(image[None])
        pair = self.text_embeddings([from_text, to_text])
        z_t0, z_t = pair[:1], pair[1:]
        z_d = text_diff_direction(z_t, z_t0)
        theta = torch.linspace(0.0, max_theta, n, dtype=torch.float64)
        z_theta = slerp(z_i.expand(n, -1), z_d.expand(n, -1), theta, start_dim=1)
        x_t = self.invert(image[None], z_i, config).expand(n, -1, -1, -1)
        gens = [generator_for("text diff", seed) for _ in range(n)]
        settings = SamplingConfig(**{**config.to_dict(), "eta": 0.0, "decoder_sampler": "ddim"})
        return to_uint8(self._decode([""] * n, z_theta, gens, settings, noise=x_t, drop_text=True)).numpy()


def figure_strip(images: np.ndarray, gap: int = 2) -> np.ndarray:
    """A paper-figure row: (N, H, W, 3) uint8 → (H, N·W + gaps, 3) uint8 with white gaps."""
    return image_strip(torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)), gap=gap).numpy()
