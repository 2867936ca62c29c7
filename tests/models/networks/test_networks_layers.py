from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.networks.layers import (
    AttentionBlock,
    ResBlock,
    Transformer,
    combine_masks,
    group_count,
    timestep_embedding,
)


@pytest.mark.parametrize("dim", [8, 9])
def test_timestep_embedding_matches_formula(dim: int) -> None:
    t = torch.tensor([0, 3, 999])
    emb = timestep_embedding(t, dim).numpy()
    half = dim // 2
    for row, tv in zip(emb, [0, 3, 999]):
        freqs = [math.exp(-math.log(10000.0) * i / half) for i in range(half)]
        expected = [math.cos(tv * f) for f in freqs] + [math.sin(tv * f) for f in freqs] + [0.0] * (dim % 2)
        np.testing.assert_allclose(row, expected, atol=1e-4)
    assert emb.shape == (3, dim)


def test_group_count_brute_force() -> None:
    assert group_count(32) == 8  # not 32 groups of one channel
    assert [group_count(c) for c in (3, 64, 96, 512)] == [1, 16, 24, 32]
    for c in range(1, 1025):
        g = group_count(c)
        best = max(d for d in range(1, max(1, min(32, c // 4)) + 1) if c % d == 0)
        assert g == best and c % g == 0


def test_attention_block_matches_reference_with_context(randomize) -> None:
    torch.manual_seed(0)
    block = randomize(AttentionBlock(8, num_heads=2, context_dim=6))
    x, ctx = torch.randn(2, 8, 3, 3), torch.randn(2, 5, 6)
    out = block(x, ctx)
    # reference: per head, keys/values = [context projections; spatial projections]
    h = block.norm(x).reshape(2, 8, 9)
    q, k, v = block.qkv(h).reshape(2, 3, 2, 4, 9).unbind(1)
    ck, cv = block.context_kv(ctx.transpose(1, 2)).reshape(2, 2, 2, 4, 5).unbind(1)
    k, v = torch.cat([ck, k], -1), torch.cat([cv, v], -1)
    w = torch.softmax(torch.einsum("bhcq,bhck->bhqk", q, k) / 2.0, dim=-1)
    a = torch.einsum("bhqk,bhck->bhcq", w, v).reshape(2, 8, 9)
    expected = x + block.proj_out(a).reshape(2, 8, 3, 3)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, block(x, torch.randn(2, 5, 6)))
    with pytest.raises(ValueError, match="context"):
        block(x)


def test_resblock_resampling_shapes() -> None:
    emb = torch.randn(2, 20)
    x = torch.randn(2, 8, 8, 8)
    assert ResBlock(8, 20, 0.0, 16)(x, emb).shape == (2, 16, 8, 8)
    assert ResBlock(8, 20, 0.0, down=True)(x, emb).shape == (2, 8, 4, 4)
    assert ResBlock(8, 20, 0.0, 12, up=True, use_scale_shift_norm=False)(x, emb).shape == (2, 12, 16, 16)


@pytest.mark.parametrize("causal", [True, False])
def test_transformer_causal_mask(randomize, causal: bool) -> None:
    net = randomize(Transformer(8, layers=2, heads=2, causal=causal))
    x = torch.randn(1, 6, 8)
    y = x.clone()
    y[:, 4] = torch.randn(8)  # a constant shift would vanish in LayerNorm
    a, b = net(x), net(y)
    assert torch.equal(a[:, :4], b[:, :4]) == causal
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_combine_masks() -> None:
    a, b = torch.tensor([True, True, False]), torch.tensor([True, False, True])
    assert combine_masks(3) is None
    assert combine_masks(3, None, a).tolist() == [True, True, False]
    assert combine_masks(3, a, b).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="bool"):
        combine_masks(3, torch.ones(3))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        combine_masks(3, torch.ones(2, dtype=torch.bool))
