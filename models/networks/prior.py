"""unCLIP priors P(z_i | y): the diffusion prior and the autoregressive prior networks (Ramesh et al. 2022, §2.2).

Both are decoder-only **causal** Transformers whose sequence starts with the caption: its token ids are embedded
here (token + learned position embeddings; padding positions get a learned per-position padding embedding, as
GLIDE), followed by the CLIP text embedding z_t projected to one token. Dropping the text for classifier-free
guidance (``cond_mask`` False, 10% in training) replaces the caption token embeddings by a learned null sequence
and z_t by a learned null token.

Choice (the paper is ambiguous): Table 3 lists a 2048-wide, 24-block "text encoder" for each prior, yet each
prior totals about 1B parameters, and a separate encoder of that size alone would be 1.2B. We read the caption
part of the causal stack as that encoder, i.e. "encoded text tokens" are the caption tokens embedded and processed
by the same causal Transformer (decoder-only, as §2.2 says). Public implementations instead feed frozen CLIP
token states ([L], [K], [D]); that needs CLIP internals in the pipeline, which we avoid. The paper-size configs
then pick the depth that lands on the stated 1B (see ``models/configs/*_paper.json``).

Diffusion prior token order (§2.2): [caption tokens, z_t, timestep embedding, noised z_i^(t), final query]; the
output at the query token, after a LayerNorm and a linear map, predicts the un-noised z_i directly (x0-prediction,
MSE). Any input scaling (×17.2 in the paper) belongs to the caller; the network sees z_i^(t) as given.

Autoregressive prior order: [caption tokens, z_t, quantised z_i·z_t token, quantised PCA tokens c_0 … c_{n−1}];
the outputs at the dot token and at c_0 … c_{n−1} give the logits of c_0 … c_n (teacher forcing during training,
one more component per call during sampling; no key/value cache, networks stay stateless).
"""

from __future__ import annotations

import torch
from torch import nn

from models.networks.config import ARPriorConfig, DiffusionPriorConfig
from models.networks.layers import Transformer, combine_masks, timestep_embedding


class CaptionPrefix(nn.Module):
    """Caption tokens and z_t → the first L + 1 input embeddings of a prior, with learned null text.

    Args:
        vocab_size: token vocabulary size.
        text_context: maximum caption length.
        width: transformer width.
        embed_dim: CLIP embedding width D of z_t.
    """

    def __init__(self, vocab_size: int, text_context: int, width: int, embed_dim: int) -> None:
        super().__init__()
        self.text_context = text_context
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.padding_embedding = nn.Parameter(torch.randn(text_context, width) * 0.02)
        self.null_tokens = nn.Parameter(torch.randn(text_context, width) * 0.02)
        self.text_emb_proj = nn.Linear(embed_dim, width)
        self.null_text_emb = nn.Parameter(torch.zeros(width))
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(
        self,
        tokens: torch.Tensor,
        token_mask: torch.Tensor | None,
        text_emb: torch.Tensor,
        keep: torch.Tensor | None,
    ) -> torch.Tensor:
        """Embed the caption prefix.

        Args:
            tokens: (B, L) int64 token ids, L ≤ text_context.
            token_mask: (B, L) bool, True on caption tokens, False on padding; None = no padding.
            text_emb: (B, D) float CLIP text embedding z_t.
            keep: (B,) bool, False replaces caption and z_t by the learned nulls; None keeps all.

        Returns:
            (B, L + 1, width): caption token embeddings then the z_t token (no position embeddings yet).
        """
        length = tokens.shape[1]
        if length > self.text_context:
            raise ValueError(f"{length} tokens exceed the text context {self.text_context}; truncate the captions")
        x = self.token_embedding(tokens)
        if token_mask is not None:
            if token_mask.shape != tokens.shape:
                raise ValueError(f"token_mask shape {tuple(token_mask.shape)} != tokens shape {tuple(tokens.shape)}")
            x = torch.where(token_mask[..., None], x, self.padding_embedding[:length].to(x.dtype))
        z_t = self.text_emb_proj(text_emb.to(x.dtype))
        if keep is not None:
            x = torch.where(keep[:, None, None], x, self.null_tokens[:length].to(x.dtype))
            z_t = torch.where(keep[:, None], z_t, self.null_text_emb.to(x.dtype))
        return torch.cat([x, z_t[:, None]], dim=1)


class DiffusionPriorNetwork(nn.Module):
    """Diffusion prior f_θ(z_i^(t), t, y) → z_i (the network; the process lives in ``models.diffusion``).

    Args:
        config: sizes.
    """

    def __init__(self, config: DiffusionPriorConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.prefix = CaptionPrefix(config.vocab_size, config.text_context, w, config.embed_dim)
        self.time_embed = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.image_emb_proj = nn.Linear(config.embed_dim, w)
        self.query = nn.Parameter(torch.randn(w) * 0.02)
        # positions [0, text_context) for the caption, then one each for z_t, t, z_i^(t), query
        self.positional_embedding = nn.Parameter(torch.randn(config.text_context + 4, w) * 0.01)
        self.transformer = Transformer(w, config.layers, config.heads, causal=True)
        self.final_ln = nn.LayerNorm(w)
        self.out_proj = nn.Linear(w, config.embed_dim)

    def sequence_states(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        *,
        text_tokens: torch.Tensor,
        text_emb: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """All output states (B, L + 4, width) of the causal stack, before the final LayerNorm (for inspection)."""
        b, length = text_tokens.shape
        keep = combine_masks(b, cond_mask)
        prefix = self.prefix(text_tokens, token_mask, text_emb, keep)
        dtype = prefix.dtype
        t_emb = self.time_embed(timestep_embedding(t, self.config.width).to(dtype))
        z_i = self.image_emb_proj(x_t.to(dtype))
        tail = torch.stack([t_emb, z_i, self.query.to(dtype).expand(b, -1)], dim=1)
        x = torch.cat([prefix, tail], dim=1)
        ctx = self.config.text_context
        pos = torch.cat([self.positional_embedding[:length], self.positional_embedding[ctx:]], dim=0)
        states: torch.Tensor = self.transformer(x + pos.to(dtype))
        return states

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        *,
        text_tokens: torch.Tensor,
        text_emb: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the un-noised CLIP image embedding.

        Args:
            x_t: (B, D) noised image embedding z_i^(t) (in the process's scaled space).
            t: (B,) timesteps (int or float).
            text_tokens: (B, L) int64 caption token ids, L ≤ text_context.
            text_emb: (B, D) CLIP text embedding z_t.
            token_mask: (B, L) bool, True on caption tokens, False on padding.
            cond_mask: (B,) bool, False replaces caption and z_t by the learned null (guidance, 10% dropout).

        Returns:
            (B, D) predicted z_i, in x_t's dtype.
        """
        states = self.sequence_states(
            x_t, t, text_tokens=text_tokens, text_emb=text_emb, token_mask=token_mask, cond_mask=cond_mask
        )
        out: torch.Tensor = self.out_proj(self.final_ln(states[:, -1]))
        return out.to(x_t.dtype)


class ARPriorNetwork(nn.Module):
    """Autoregressive prior over quantised PCA components of z_i.

    Args:
        config: sizes (component and bucket counts must match the :class:`~models.networks.pca_quant.PCAQuantizer`).
    """

    def __init__(self, config: ARPriorConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.prefix = CaptionPrefix(config.vocab_size, config.text_context, w, config.embed_dim)
        self.dot_embedding = nn.Embedding(config.num_dot_buckets, w)
        self.bucket_embedding = nn.Embedding(config.num_buckets, w)
        # positions: caption [0, text_context), then z_t, the dot token and the components c_0 … c_{K−2}
        self.positional_embedding = nn.Parameter(torch.randn(config.text_context + 1 + config.num_components, w) * 0.01)
        self.transformer = Transformer(w, config.layers, config.heads, causal=True)
        self.final_ln = nn.LayerNorm(w)
        self.head = nn.Linear(w, config.num_buckets)
        nn.init.normal_(self.dot_embedding.weight, std=0.02)
        nn.init.normal_(self.bucket_embedding.weight, std=0.02)

    def forward(
        self,
        component_tokens: torch.Tensor,
        *,
        text_tokens: torch.Tensor,
        text_emb: torch.Tensor,
        dot_token: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of the next PCA-component buckets given the prefix and the first n components.

        Args:
            component_tokens: (B, n) int64 buckets of components c_0 … c_{n−1}, 0 ≤ n < num_components.
                Training passes the first K − 1 of the K target tokens.
            text_tokens: (B, L) int64 caption token ids.
            text_emb: (B, D) CLIP text embedding z_t.
            dot_token: (B,) int64 bucket of the quantised z_i·z_t.
            token_mask: (B, L) bool, True on caption tokens, False on padding.
            cond_mask: (B,) bool, False replaces caption and z_t by the learned null (guidance, 10% dropout).

        Returns:
            (B, n + 1, num_buckets) float logits; row k scores component c_k.

        Raises:
            ValueError: n ≥ num_components.
        """
        b, length = text_tokens.shape
        n = component_tokens.shape[1]
        if n >= self.config.num_components:
            raise ValueError(
                f"got {n} component tokens; pass at most num_components - 1 = {self.config.num_components - 1} "
                "(the last component is only predicted)"
            )
        keep = combine_masks(b, cond_mask)
        prefix = self.prefix(text_tokens, token_mask, text_emb, keep)
        dtype = prefix.dtype
        tail = torch.cat([self.dot_embedding(dot_token)[:, None], self.bucket_embedding(component_tokens)], dim=1)
        x = torch.cat([prefix, tail.to(dtype)], dim=1)
        ctx = self.config.text_context
        pos = torch.cat([self.positional_embedding[:length], self.positional_embedding[ctx : ctx + 2 + n]], dim=0)
        states = self.transformer(x + pos.to(dtype))
        logits: torch.Tensor = self.head(self.final_ln(states[:, -(n + 1) :]))
        return logits
