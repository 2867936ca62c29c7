from __future__ import annotations

import pytest
import torch

from models.networks.config import ARPriorConfig, DiffusionPriorConfig
from models.networks.prior import ARPriorNetwork, DiffusionPriorNetwork

B, D, L = 3, 12, 5
DIFF = DiffusionPriorConfig(embed_dim=D, vocab_size=30, text_context=8, width=16, layers=2, heads=2)
AR = ARPriorConfig(
    embed_dim=D,
    vocab_size=30,
    text_context=8,
    num_components=6,
    num_buckets=10,
    num_dot_buckets=4,
    width=16,
    layers=2,
    heads=2,
)


def _text(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "text_tokens": torch.randint(0, 30, (B, L), generator=gen),
        "text_emb": torch.randn(B, D, generator=gen),
        "token_mask": torch.arange(L)[None].expand(B, L) < torch.tensor([[5], [2], [4]]),
    }


def test_diffusion_prior_shape() -> None:
    out = DiffusionPriorNetwork(DIFF)(torch.randn(B, D), torch.tensor([1, 50, 999]), **_text(0))
    assert out.shape == (B, D) and out.dtype == torch.float32


def test_diffusion_prior_cond_mask(randomize) -> None:
    net = randomize(DiffusionPriorNetwork(DIFF))
    x, t = torch.randn(B, D), torch.tensor([1, 50, 999])
    drop = torch.zeros(B, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(net(x, t, **_text(0), cond_mask=drop), net(x, t, **_text(1), cond_mask=drop))
        assert not torch.allclose(net(x, t, **_text(0), cond_mask=drop), net(x, t, **_text(0)), atol=1e-3)
        mixed = net(x, t, **_text(0), cond_mask=torch.tensor([True, False, True]))
        torch.testing.assert_close(mixed[0], net(x, t, **_text(0))[0])
        torch.testing.assert_close(mixed[1], net(x, t, **_text(0), cond_mask=drop)[1])


def test_diffusion_prior_is_causal(randomize) -> None:
    net = randomize(DiffusionPriorNetwork(DIFF))
    t, text = torch.tensor([1, 50, 999]), _text(0)
    with torch.no_grad():
        a = net.sequence_states(torch.randn(B, D), t, **text)
        b = net.sequence_states(torch.randn(B, D), t, **text)
    assert a.shape == (B, L + 4, 16)
    # order [caption (L), z_t, t, z_i^(t), query]: z_i^(t) at L + 2 cannot change earlier positions
    torch.testing.assert_close(a[:, : L + 2], b[:, : L + 2])
    assert not torch.allclose(a[:, L + 2 :], b[:, L + 2 :])


def test_ar_prior_logits_shape() -> None:
    net = ARPriorNetwork(AR)
    dot = torch.tensor([0, 3, 1])
    for n in (0, 2, AR.num_components - 1):
        logits = net(torch.randint(0, 10, (B, n)), dot_token=dot, **_text(0))
        assert logits.shape == (B, n + 1, AR.num_buckets) and logits.dtype == torch.float32
    with pytest.raises(ValueError, match="at most num_components - 1 = 5"):
        net(torch.zeros(B, AR.num_components, dtype=torch.long), dot_token=dot, **_text(0))


def test_ar_prior_is_causal(randomize) -> None:
    net = randomize(ARPriorNetwork(AR))
    dot = torch.tensor([0, 3, 1])
    a = torch.randint(0, 10, (B, 5), generator=torch.Generator().manual_seed(0))
    b = a.clone()
    b[:, 2] = (a[:, 2] + 1) % 10
    with torch.no_grad():
        la, lb = net(a, dot_token=dot, **_text(0)), net(b, dot_token=dot, **_text(0))
    # row k scores c_k from c_0..c_{k-1}: changing c_2 leaves rows 0..2 alone
    torch.testing.assert_close(la[:, :3], lb[:, :3])
    assert not torch.allclose(la[:, 3:], lb[:, 3:])
    with torch.no_grad():
        other_dot = net(a, dot_token=torch.tensor([1, 2, 3]), **_text(0))
    assert not torch.allclose(la[:, 0], other_dot[:, 0])


def test_ar_prior_cond_mask(randomize) -> None:
    net = randomize(ARPriorNetwork(AR))
    comps, dot = torch.randint(0, 10, (B, 3)), torch.tensor([0, 3, 1])
    drop = torch.zeros(B, dtype=torch.bool)
    with torch.no_grad():
        null_0 = net(comps, dot_token=dot, **_text(0), cond_mask=drop)
        torch.testing.assert_close(null_0, net(comps, dot_token=dot, **_text(1), cond_mask=drop))
        assert not torch.allclose(null_0, net(comps, dot_token=dot, **_text(0)), atol=1e-3)
