"""GLIDE-style text encoder Transformer: token ids in, token states and a final-token embedding out.

Follows ``glide_text2im/text2im_model.py`` + ``xf.py`` (Nichol et al. 2021, §4.1): token + learned position
embeddings, pre-LayerNorm blocks, final LayerNorm. Padding positions are not masked in attention; instead their
input is replaced by a learned per-position ``padding_embedding`` (GLIDE ``xf_padding``), so the output does not
depend on what id the tokenizer used for padding and an all-padding (empty) caption is still well defined.

Choice: **bidirectional** by default (as GLIDE's released code), so the state at the last position — the
"final token" that replaces the class embedding — sees the whole caption, wherever the caption ends. A causal
variant (``causal=True``) is available; with right padding its last position also sees every caption token.
"""

from __future__ import annotations

import torch
from torch import nn

from models.networks.config import TextTransformerConfig
from models.networks.layers import Transformer


class TextTransformer(nn.Module):
    """Token ids → (token states, final-token embedding).

    Args:
        config: sizes and attention direction.
    """

    def __init__(self, config: TextTransformerConfig) -> None:
        super().__init__()
        self.config = config
        width, ctx = config.width, config.context_length
        self.token_embedding = nn.Embedding(config.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(ctx, width))
        self.padding_embedding = nn.Parameter(torch.empty(ctx, width))
        self.transformer = Transformer(width, config.layers, config.heads, causal=config.causal)
        self.final_ln = nn.LayerNorm(width) if config.final_ln else nn.Identity()
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.padding_embedding, std=0.01)

    def forward(
        self, tokens: torch.Tensor, token_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of captions.

        Args:
            tokens: (B, L) int64 token ids in [0, vocab_size), L ≤ context_length (right-padded).
            token_mask: (B, L) bool, True for caption tokens, False for padding; None = no padding.

        Returns:
            ``(states, final)``: states (B, L, width) float, final = states[:, -1] (B, width).

        Raises:
            ValueError: L exceeds the context length or the mask shape differs from the tokens'.
        """
        length = tokens.shape[1]
        if length > self.config.context_length:
            raise ValueError(
                f"{length} tokens exceed the text context length {self.config.context_length}; truncate the captions"
            )
        x = self.token_embedding(tokens) + self.positional_embedding[:length]
        if token_mask is not None:
            if token_mask.shape != tokens.shape:
                raise ValueError(f"token_mask shape {tuple(token_mask.shape)} != tokens shape {tuple(tokens.shape)}")
            x = torch.where(token_mask[..., None], x, self.padding_embedding[:length].to(x.dtype))
        states = self.final_ln(self.transformer(x))
        return states, states[:, -1]
