from __future__ import annotations

import dataclasses

import pytest
import torch

from models.networks.config import UNetConfig
from models.networks.unet import UNet

B = 3


def _inputs(cfg: UNetConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    cond: dict[str, torch.Tensor] = {}
    if cfg.text_encoder is not None:
        cond["tokens"] = torch.randint(0, cfg.text_encoder.vocab_size, (B, 6), generator=gen)
        cond["token_mask"] = torch.arange(6)[None].expand(B, 6) < torch.tensor([[6], [3], [1]])
    if cfg.clip_embed_dim:
        cond["clip_emb"] = torch.randn(B, cfg.clip_embed_dim, generator=gen)
    if cfg.super_res:
        cond["low_res"] = torch.randn(B, 3, cfg.image_size // 2, cfg.image_size // 2, generator=gen)
    return cond


def _xt(cfg: UNetConfig) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(B, 3, cfg.image_size, cfg.image_size, generator=gen), torch.tensor([0, 500, 999])


@pytest.mark.parametrize("variant", ["tiny_decoder", "tiny_glide", "tiny_upsampler"])
def test_output_shape_and_dtype(request: pytest.FixtureRequest, variant: str) -> None:
    cfg: UNetConfig = request.getfixturevalue(variant)
    x, t = _xt(cfg)
    out = UNet(cfg)(x, t, **_inputs(cfg))
    assert out.dtype == torch.float32
    assert out.shape == (B, 6 if cfg.learn_sigma else 3, cfg.image_size, cfg.image_size)


def test_learn_sigma_doubles_channels(tiny_glide: UNetConfig) -> None:
    x, t = _xt(tiny_glide)
    for learn_sigma, channels in ((False, 3), (True, 6)):
        cfg = dataclasses.replace(tiny_glide, learn_sigma=learn_sigma)
        assert UNet(cfg)(x, t, **_inputs(cfg)).shape[1] == channels


def test_bfloat16_forward(tiny_decoder: UNetConfig) -> None:
    net = UNet(tiny_decoder).to(torch.bfloat16)
    x, t = _xt(tiny_decoder)
    cond = _inputs(tiny_decoder)
    cond["clip_emb"] = cond["clip_emb"].to(torch.bfloat16)
    assert net(x.to(torch.bfloat16), t, **cond).dtype == torch.bfloat16


def test_cond_mask_false_is_the_null_path(randomize, tiny_decoder: UNetConfig) -> None:
    net = randomize(UNet(tiny_decoder))
    x, t = _xt(tiny_decoder)
    a, b = _inputs(tiny_decoder, seed=0), _inputs(tiny_decoder, seed=5)
    drop = torch.zeros(B, dtype=torch.bool)
    with torch.no_grad():
        null_a, null_b = net(x, t, **a, cond_mask=drop), net(x, t, **b, cond_mask=drop)
        cond_a = net(x, t, **a, cond_mask=~drop)
        unmasked_a = net(x, t, **a)
    assert torch.isfinite(null_a).all() and torch.isfinite(cond_a).all()
    torch.testing.assert_close(null_a, null_b)  # the condition is gone: only the learned nulls remain
    assert not torch.allclose(null_a, cond_a, atol=1e-3)
    torch.testing.assert_close(cond_a, unmasked_a)
    # the same null values through the explicit masks
    with torch.no_grad():
        both = net(x, t, **b, text_mask=drop, clip_mask=drop)
    torch.testing.assert_close(both, null_a)


def test_mixed_mask_batch_matches_rows(randomize, tiny_decoder: UNetConfig) -> None:
    """CFG's batched cond/uncond halves give the same rows as separate calls."""
    net = randomize(UNet(tiny_decoder))
    x, t = _xt(tiny_decoder)
    cond = _inputs(tiny_decoder)
    mask = torch.tensor([True, False, True])
    with torch.no_grad():
        mixed = net(x, t, **cond, cond_mask=mask)
        kept = net(x, t, **cond)
        dropped = net(x, t, **cond, cond_mask=torch.zeros(B, dtype=torch.bool))
    torch.testing.assert_close(mixed[mask], kept[mask])
    torch.testing.assert_close(mixed[~mask], dropped[~mask])


def test_text_and_clip_masks_drop_one_condition_each(randomize, tiny_decoder: UNetConfig) -> None:
    net = randomize(UNet(tiny_decoder))
    x, t = _xt(tiny_decoder)
    a, b = _inputs(tiny_decoder, seed=0), _inputs(tiny_decoder, seed=5)
    drop = torch.zeros(B, dtype=torch.bool)
    other_text = {**a, "tokens": b["tokens"], "token_mask": b["token_mask"]}
    other_clip = {**a, "clip_emb": b["clip_emb"]}
    with torch.no_grad():
        # text dropped: the caption no longer matters, z_i still does
        torch.testing.assert_close(net(x, t, **a, text_mask=drop), net(x, t, **other_text, text_mask=drop))
        assert not torch.allclose(net(x, t, **a, text_mask=drop), net(x, t, **other_clip, text_mask=drop), atol=1e-3)
        # CLIP dropped: z_i no longer matters, the caption still does
        torch.testing.assert_close(net(x, t, **a, clip_mask=drop), net(x, t, **other_clip, clip_mask=drop))
        assert not torch.allclose(net(x, t, **a, clip_mask=drop), net(x, t, **other_text, clip_mask=drop), atol=1e-3)


def test_glide_cond_mask(randomize, tiny_glide: UNetConfig) -> None:
    net = randomize(UNet(tiny_glide))
    x, t = _xt(tiny_glide)
    a, b = _inputs(tiny_glide, 0), _inputs(tiny_glide, 5)
    drop = torch.zeros(B, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(net(x, t, **a, cond_mask=drop), net(x, t, **b, cond_mask=drop))
        assert not torch.allclose(net(x, t, **a), net(x, t, **b), atol=1e-3)


def test_upsampler_uses_low_res_and_has_no_attention(randomize, tiny_upsampler: UNetConfig) -> None:
    net = randomize(UNet(tiny_upsampler))
    assert not any("Attention" in type(m).__name__ for m in net.modules())
    x, t = _xt(tiny_upsampler)
    a, b = _inputs(tiny_upsampler, 0), _inputs(tiny_upsampler, 5)
    with torch.no_grad():
        assert not torch.allclose(net(x, t, **a), net(x, t, **b), atol=1e-3)


def test_missing_or_extra_conditions_raise(tiny_decoder: UNetConfig, tiny_upsampler: UNetConfig) -> None:
    dec, up = UNet(tiny_decoder), UNet(tiny_upsampler)
    x, t = _xt(tiny_decoder)
    cond = _inputs(tiny_decoder)
    with pytest.raises(ValueError, match="tokens"):
        dec(x, t, clip_emb=cond["clip_emb"])
    with pytest.raises(ValueError, match="clip_emb"):
        dec(x, t, tokens=cond["tokens"])
    with pytest.raises(ValueError, match="not an upsampler"):
        dec(x, t, **cond, low_res=x)
    with pytest.raises(ValueError, match="low_res"):
        up(x, t)
    with pytest.raises(ValueError, match="without a text encoder"):
        up(x, t, low_res=x, tokens=cond["tokens"])
    with pytest.raises(ValueError, match="bool"):
        dec(x, t, **cond, cond_mask=torch.ones(B))
    with pytest.raises(ValueError, match="context length"):
        dec(x, t, tokens=torch.zeros(B, 9, dtype=torch.long), clip_emb=cond["clip_emb"])


def test_invalid_unet_configs(tiny_unet_kwargs: dict[str, object], tiny_text) -> None:
    with pytest.raises(ValueError, match="attention resolution 5"):
        UNetConfig(**{**tiny_unet_kwargs, "attention_resolutions": (5,)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divisible"):
        UNetConfig(**{**tiny_unet_kwargs, "image_size": 15})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unconditional"):
        UNetConfig(**{**tiny_unet_kwargs, "super_res": True, "text_encoder": tiny_text})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_head_channels"):
        UNet(UNetConfig(**{**tiny_unet_kwargs, "num_head_channels": 12}))  # type: ignore[arg-type]
