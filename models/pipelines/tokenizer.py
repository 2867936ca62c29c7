"""A word-level tokenizer for the toy text encoders (GLIDE's transformer, the unCLIP decoder's and priors').

The toy networks embed at most ``vocab_size`` (512) ids in a context of 24, far smaller than CLIP's BPE. The
toy-world grammar has under 100 words, so a word vocabulary is exact: no collisions, no sub-words. The
vocabulary is data: the trainer builds it from the training captions and stores it in the checkpoint's JSON
(``"tokenizer"``), so a checkpoint always decodes with the tokenizer it was trained with.

Ids: 0 is padding, 1 an unknown word, 2… the vocabulary in its stored order. Text is lower-cased and split into
runs of letters/digits (punctuation carries no meaning in the grammar and is dropped); captions longer than the
context are truncated (right). The network sees ``tokens`` (B, L) and ``token_mask`` (B, L), True on words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

PAD_ID = 0
UNK_ID = 1
_WORD = re.compile(r"[a-z0-9]+")


def split_words(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters and digits; punctuation dropped)."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class WordTokenizer:
    """Word-level tokenizer with a fixed vocabulary (module docstring).

    Attributes:
        vocab: the known words, in id order (word ``vocab[k]`` has id ``k + 2``).
        context_length: L, the number of ids per caption.
    """

    vocab: tuple[str, ...]
    context_length: int

    def __post_init__(self) -> None:
        if self.context_length < 1:
            raise ValueError(f"context_length must be positive, got {self.context_length}")
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError("tokenizer vocabulary holds a word twice; pass distinct words")

    @classmethod
    def from_texts(cls, texts: Iterable[str], context_length: int) -> WordTokenizer:
        """The tokenizer whose vocabulary is every word of ``texts``, sorted (deterministic)."""
        words = sorted({w for text in texts for w in split_words(text)})
        return cls(tuple(words), context_length)

    @property
    def vocab_size(self) -> int:
        """Ids in use: ``len(vocab) + 2`` (padding and unknown)."""
        return len(self.vocab) + 2

    def check_fits(self, network_vocab_size: int) -> None:
        """Raise ValueError when the network's embedding table is too small for these ids."""
        if self.vocab_size > network_vocab_size:
            raise ValueError(
                f"tokenizer needs {self.vocab_size} ids but the network embeds {network_vocab_size}; "
                "raise vocab_size in the network config"
            )

    def encode(self, text: str) -> list[int]:
        """Ids of one caption (unpadded, truncated to the context)."""
        index = self._index
        return [index.get(w, UNK_ID) for w in split_words(text)][: self.context_length]

    def __call__(self, texts: Sequence[str], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenize a batch: ``(tokens int64 (B, L), token_mask bool (B, L))``, right-padded with 0."""
        tokens = torch.full((len(texts), self.context_length), PAD_ID, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.encode(text)
            tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        tokens = tokens.to(device)
        return tokens, tokens != PAD_ID

    @property
    def _index(self) -> dict[str, int]:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {w: k + 2 for k, w in enumerate(self.vocab)}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form stored in checkpoints."""
        return {"kind": "word", "vocab": list(self.vocab), "context_length": self.context_length}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WordTokenizer:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: not a word-tokenizer description.
        """
        if data.get("kind") != "word" or "vocab" not in data or "context_length" not in data:
            raise ValueError("checkpoint tokenizer entry must be {'kind': 'word', 'vocab': [...], 'context_length': N}")
        return cls(tuple(str(w) for w in data["vocab"]), int(data["context_length"]))
