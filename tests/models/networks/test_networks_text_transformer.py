from __future__ import annotations

import dataclasses

import pytest
import torch

from models.networks.config import TextTransformerConfig
from models.networks.text_transformer import TextTransformer


def test_shapes_and_final_token(tiny_text: TextTransformerConfig) -> None:
    tokens = torch.randint(0, 40, (2, 5))
    states, final = TextTransformer(tiny_text)(tokens)
    assert states.shape == (2, 5, 16) and states.dtype == torch.float32
    torch.testing.assert_close(final, states[:, -1])


def test_padding_ids_do_not_matter(randomize, tiny_text: TextTransformerConfig) -> None:
    net = randomize(TextTransformer(tiny_text))
    mask = torch.tensor([[True, True, True, False, False]])
    a = torch.tensor([[3, 4, 5, 0, 0]])
    b = torch.tensor([[3, 4, 5, 39, 7]])
    c = torch.tensor([[3, 4, 6, 0, 0]])
    with torch.no_grad():
        torch.testing.assert_close(net(a, mask), net(b, mask))
        assert not torch.allclose(net(a, mask)[1], net(c, mask)[1])
        assert not torch.allclose(net(a)[1], net(b)[1])  # unmasked, the ids at those positions count


@pytest.mark.parametrize("causal", [True, False])
def test_causal_or_bidirectional(randomize, tiny_text: TextTransformerConfig, causal: bool) -> None:
    net = randomize(TextTransformer(dataclasses.replace(tiny_text, causal=causal)))
    a = torch.tensor([[3, 4, 5, 6, 7]])
    b = torch.tensor([[3, 4, 5, 9, 7]])
    with torch.no_grad():
        (sa, fa), (sb, fb) = net(a), net(b)
    assert torch.allclose(sa[:, :3], sb[:, :3]) == causal
    assert not torch.allclose(fa, fb)  # the final token sees the whole caption either way


def test_errors(tiny_text: TextTransformerConfig) -> None:
    net = TextTransformer(tiny_text)
    with pytest.raises(ValueError, match="context length 8"):
        net(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="token_mask shape"):
        net(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible"):
        dataclasses.replace(tiny_text, heads=3)
