"""ADM/GLIDE UNet: the unCLIP decoder, the GLIDE base model and the (unconditional) upsamplers.

One class, three variants selected by :class:`~models.networks.config.UNetConfig`:

(a) **unCLIP decoder** (Ramesh et al. 2022, §2.1): the GLIDE text-conditional UNet plus the CLIP image embedding
    z_i, which is (1) projected and added to the timestep embedding and (2) projected into ``num_clip_tokens`` (4)
    extra context tokens concatenated to the text-encoder outputs; every attention layer attends to
    [CLIP tokens, text tokens, its own positions] (keys/values prepended, GLIDE ``encoder_kv``).
(b) **GLIDE base** (Nichol et al. 2021, §4.1): text from the UNet's own :class:`TextTransformer`; its final token,
    projected, replaces the class embedding (added to the timestep embedding), and all token states are projected
    into every attention layer.
(c) **upsampler** (``super_res``): the low-resolution image, bilinearly upsampled to the output size (GLIDE), is
    concatenated to x_t as extra input channels; no attention, no text, no CLIP (unCLIP §2.1).

Call contract with the diffusion process: ``net(x_t, t, **cond)`` → model output (B, C_out, H, W), with
``C_out = 2·out_channels`` when ``learn_sigma`` (first half ε/x0/v, second half the variance interpolation v of
Nichol & Dhariwal). Classifier-free guidance and training-time condition dropout are expressed by boolean masks
(True = keep the condition, False = replace it by the network's learned null embedding):

* ``cond_mask`` (B,) drops **every** condition of the row (text and CLIP) — the guidance wrapper's unconditional half;
* ``text_mask`` (B,) drops only the caption (decoder training: 50%; GLIDE: 20%);
* ``clip_mask`` (B,) drops only z_i (decoder training: 10%).

The effective mask of each condition is ``cond_mask & text_mask`` (resp. ``& clip_mask``); an omitted mask is all
True. The learned nulls are a (context_length, width) sequence replacing the text-encoder states (its last row then
acts as the final token) and a D-vector replacing z_i (initialised to zero, "CLIP embedding zeroed" in the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.networks.config import UNetConfig
from models.networks.layers import (
    AttentionBlock,
    Downsample,
    ResBlock,
    Upsample,
    combine_masks,
    group_norm,
    timestep_embedding,
    zero_module,
)
from models.networks.text_transformer import TextTransformer


class UNet(nn.Module):
    """ADM/GLIDE UNet (see the module docstring for the three variants and the call contract).

    Args:
        config: the architecture.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        mc = config.model_channels
        emb_dim = 4 * mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self._build_conditioning(config, emb_dim)
        has_context = config.text_encoder is not None or config.clip_embed_dim > 0
        self.context_dim = config.context_dim if has_context else 0
        attention_ds = {config.image_size // res for res in config.attention_resolutions}
        in_channels = config.in_channels * (2 if config.super_res else 1)

        self.input_blocks = nn.ModuleList([nn.ModuleList([nn.Conv2d(in_channels, mc, 3, padding=1)])])
        skip_channels, ch, ds = [mc], mc, 1
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                layers: list[nn.Module] = [self._resblock(ch, mult * mc)]
                ch = mult * mc
                if ds in attention_ds:
                    layers.append(self._attention(ch))
                self.input_blocks.append(nn.ModuleList(layers))
                skip_channels.append(ch)
            if level != len(config.channel_mult) - 1:
                down = self._resblock(ch, ch, down=True) if config.resblock_updown else Downsample(ch, use_conv=True)
                self.input_blocks.append(nn.ModuleList([down]))
                skip_channels.append(ch)
                ds *= 2

        middle: list[nn.Module] = [self._resblock(ch, ch)]
        if attention_ds:
            middle.append(self._attention(ch))
        middle.append(self._resblock(ch, ch))
        self.middle_block = nn.ModuleList(middle)

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(config.num_res_blocks + 1):
                layers = [self._resblock(ch + skip_channels.pop(), mult * mc)]
                ch = mult * mc
                if ds in attention_ds:
                    layers.append(self._attention(ch))
                if level and i == config.num_res_blocks:
                    up: nn.Module = (
                        self._resblock(ch, ch, up=True) if config.resblock_updown else Upsample(ch, use_conv=True)
                    )
                    layers.append(up)
                    ds //= 2
                self.output_blocks.append(nn.ModuleList(layers))

        out_channels = config.out_channels * (2 if config.learn_sigma else 1)
        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), zero_module(nn.Conv2d(ch, out_channels, 3, padding=1)))

    def _build_conditioning(self, config: UNetConfig, emb_dim: int) -> None:
        """Text encoder + final-token projection + null text; CLIP projections + null CLIP embedding."""
        self.text_encoder: TextTransformer | None = None
        if config.text_encoder is not None:
            xf = config.text_encoder
            self.text_encoder = TextTransformer(xf)
            self.text_proj = nn.Linear(xf.width, emb_dim)  # GLIDE transformer_proj: final token → class embedding
            self.null_text = nn.Parameter(torch.randn(xf.context_length, xf.width) * 0.02)
        if config.clip_embed_dim:
            d = config.clip_embed_dim
            self.clip_to_emb = nn.Linear(d, emb_dim)
            self.clip_to_tokens = nn.Linear(d, config.num_clip_tokens * config.context_dim)
            self.null_clip = nn.Parameter(torch.zeros(d))

    def _resblock(self, channels: int, out_channels: int, up: bool = False, down: bool = False) -> ResBlock:
        cfg = self.config
        return ResBlock(
            channels,
            4 * cfg.model_channels,
            cfg.dropout,
            out_channels,
            use_scale_shift_norm=cfg.use_scale_shift_norm,
            up=up,
            down=down,
        )

    def _attention(self, channels: int) -> AttentionBlock:
        cfg = self.config
        if cfg.num_head_channels > 0:
            if channels % cfg.num_head_channels:
                raise ValueError(
                    f"attention width {channels} is not divisible by num_head_channels={cfg.num_head_channels}"
                )
            heads = channels // cfg.num_head_channels
        else:
            heads = cfg.num_heads
        return AttentionBlock(channels, heads, self.context_dim)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        *,
        tokens: torch.Tensor | None = None,
        token_mask: torch.Tensor | None = None,
        clip_emb: torch.Tensor | None = None,
        low_res: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        clip_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the model output for noised images.

        Args:
            x: (B, in_channels, H, W) noised image x_t, float (about [-1, 1] scale at t = 0).
            t: (B,) timesteps (int or float).
            tokens: (B, L) int64 caption token ids; required when the network has a text encoder.
            token_mask: (B, L) bool, True on caption tokens, False on padding.
            clip_emb: (B, clip_embed_dim) float CLIP image embedding z_i; required for the unCLIP decoder.
            low_res: (B, in_channels, h, w) low-resolution image in [-1, 1]; required (only) for upsamplers.
            cond_mask: (B,) bool, False drops every condition of the row (classifier-free guidance).
            text_mask: (B,) bool, False drops the caption only.
            clip_mask: (B,) bool, False drops the CLIP embedding only.

        Returns:
            (B, out_channels · (2 if learn_sigma else 1), H, W) in x's dtype.

        Raises:
            ValueError: a required condition is missing or a mask has the wrong shape/dtype.
        """
        b = x.shape[0]
        emb = self.time_embed(timestep_embedding(t, self.config.model_channels).to(x.dtype))
        emb, context = self._condition(b, emb, tokens, token_mask, clip_emb, cond_mask, text_mask, clip_mask)
        if self.config.super_res:
            if low_res is None:
                raise ValueError("an upsampler needs low_res=(B, C, h, w), the image to upsample")
            x = torch.cat([x, F.interpolate(low_res.to(x.dtype), size=x.shape[-2:], mode="bilinear")], dim=1)
        elif low_res is not None:
            raise ValueError("low_res was passed to a network that is not an upsampler (super_res is false)")

        h, skips = x, []
        for layers in self.input_blocks:
            h = self._run_layers(layers, h, emb, context)
            skips.append(h)
        h = self._run_layers(self.middle_block, h, emb, context)
        for layers in self.output_blocks:
            h = self._run_layers(layers, torch.cat([h, skips.pop()], dim=1), emb, context)
        out: torch.Tensor = self.out(h)
        return out

    def _condition(
        self,
        b: int,
        emb: torch.Tensor,
        tokens: torch.Tensor | None,
        token_mask: torch.Tensor | None,
        clip_emb: torch.Tensor | None,
        cond_mask: torch.Tensor | None,
        text_mask: torch.Tensor | None,
        clip_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Add text/CLIP conditioning to ``emb`` and build the attention context (B, T, context_dim) or None."""
        context = []
        if self.text_encoder is not None:
            if tokens is None:
                raise ValueError("this network is text-conditional: pass tokens=(B, L) (use text_mask=False to drop)")
            states, final = self.text_encoder(tokens, token_mask)
            keep = combine_masks(b, cond_mask, text_mask)
            if keep is not None:
                null = self.null_text[: states.shape[1]].to(states.dtype).expand_as(states)
                states = torch.where(keep[:, None, None], states, null)
                final = states[:, -1]
            emb = emb + self.text_proj(final)
            context.append(states)
        elif tokens is not None:
            raise ValueError("tokens were passed to a network without a text encoder")
        if self.config.clip_embed_dim:
            if clip_emb is None:
                raise ValueError("this network is CLIP-conditional: pass clip_emb=(B, D) (use clip_mask=False to drop)")
            keep = combine_masks(b, cond_mask, clip_mask)
            if keep is not None:
                clip_emb = torch.where(keep[:, None], clip_emb, self.null_clip.to(clip_emb.dtype))
            clip_emb = clip_emb.to(emb.dtype)
            emb = emb + self.clip_to_emb(clip_emb)
            clip_tokens = self.clip_to_tokens(clip_emb).reshape(b, self.config.num_clip_tokens, self.context_dim)
            context.insert(0, clip_tokens)
        elif clip_emb is not None:
            raise ValueError("clip_emb was passed to a network without CLIP conditioning (clip_embed_dim is 0)")
        return emb, (torch.cat(context, dim=1) if context else None)

    @staticmethod
    def _run_layers(
        layers: nn.Module, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None
    ) -> torch.Tensor:
        for layer in layers.children():
            if isinstance(layer, ResBlock):
                h = layer(h, emb)
            elif isinstance(layer, AttentionBlock):
                h = layer(h, context)
            else:
                h = layer(h)
        return h
