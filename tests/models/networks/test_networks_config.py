from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.networks.build import build_network
from models.networks.config import (
    CONFIG_DIR,
    ARPriorConfig,
    DiffusionPriorConfig,
    UNetConfig,
    config_from_dict,
    config_to_dict,
    config_to_json,
    list_configs,
    load_config,
    save_config,
)
from models.networks.prior import ARPriorNetwork, DiffusionPriorNetwork
from models.networks.text_transformer import TextTransformer
from models.networks.unet import UNet

# Parameter counts stated by the papers (unCLIP Table 3, GLIDE §4.1; GLIDE filtered: the released model's 385M).
PAPER_SIZES = {
    "unclip_decoder_paper": 3.5e9,
    "unclip_prior_paper": 1.0e9,
    "unclip_ar_prior_paper": 1.0e9,
    "unclip_upsampler_64_256_paper": 700e6,
    "unclip_upsampler_256_1024_paper": 300e6,
    "glide_base_paper": 3.5e9,
    "glide_filtered_base_paper": 385e6,
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_every_config_loads_and_round_trips() -> None:
    names = list_configs()
    assert set(PAPER_SIZES) <= set(names)
    assert {
        "unclip_decoder_toy",
        "glide_base_toy",
        "unclip_upsampler_toy",
        "unclip_prior_toy",
        "unclip_ar_prior_toy",
    } <= set(names)
    for name in names:
        cfg = load_config(name)
        assert config_from_dict(json.loads(json.dumps(config_to_dict(cfg)))) == cfg
        raw = json.loads((CONFIG_DIR / f"{name}.json").read_text())
        assert config_to_json(cfg, raw.get("description")) == (CONFIG_DIR / f"{name}.json").read_text()


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_paper_parameter_counts_within_10_percent(name: str) -> None:
    with torch.device("meta"):
        net = build_network(name)
    count = _count(net)
    assert abs(count - PAPER_SIZES[name]) <= 0.10 * PAPER_SIZES[name], f"{name}: {count:,}"


def test_glide_split_visual_and_text() -> None:
    """GLIDE §4.1: ~2.3B visual + ~1.2B text Transformer."""
    with torch.device("meta"):
        net = build_network("glide_base_paper")
    assert isinstance(net, UNet) and net.text_encoder is not None
    text = _count(net.text_encoder)
    assert abs(text - 1.2e9) <= 0.1 * 1.2e9
    assert abs(_count(net) - text - 2.3e9) <= 0.1 * 2.3e9


def test_glide_filtered_matches_released_count() -> None:
    """Released GLIDE (filtered) base has 385,030,726 parameters; ours adds the 128×512 learned null text."""
    with torch.device("meta"):
        net = build_network("glide_filtered_base_paper")
    assert _count(net) == 385_030_726 + 128 * 512


def test_toy_configs_are_small_and_run() -> None:
    torch.manual_seed(0)
    for name in (
        "unclip_decoder_toy",
        "glide_base_toy",
        "unclip_upsampler_toy",
        "unclip_prior_toy",
        "unclip_ar_prior_toy",
    ):
        cfg = load_config(name)
        net = build_network(cfg)
        assert _count(net) < 5e6, name
        t = torch.tensor([3, 700])
        if isinstance(cfg, UNetConfig):
            cond: dict[str, torch.Tensor] = {}
            if cfg.text_encoder is not None:
                cond["tokens"] = torch.randint(0, cfg.text_encoder.vocab_size, (2, cfg.text_encoder.context_length))
            if cfg.clip_embed_dim:
                cond["clip_emb"] = torch.randn(2, cfg.clip_embed_dim)
            if cfg.super_res:
                cond["low_res"] = torch.randn(2, 3, cfg.image_size // 2, cfg.image_size // 2)
            out = net(torch.randn(2, 3, cfg.image_size, cfg.image_size), t, **cond)
            assert out.shape == (2, 6 if cfg.learn_sigma else 3, cfg.image_size, cfg.image_size)
        else:
            text = {
                "text_tokens": torch.randint(0, cfg.vocab_size, (2, cfg.text_context)),
                "text_emb": torch.randn(2, cfg.embed_dim),
            }
            if isinstance(cfg, DiffusionPriorConfig):
                assert net(torch.randn(2, cfg.embed_dim), t, **text).shape == (2, cfg.embed_dim)
            else:
                assert isinstance(cfg, ARPriorConfig)
                comps = torch.randint(0, cfg.num_buckets, (2, cfg.num_components - 1))
                logits = net(comps, dot_token=torch.tensor([0, 1]), **text)
                assert logits.shape == (2, cfg.num_components, cfg.num_buckets)


def test_glide_toy_has_the_decoder_toy_width() -> None:
    dec, glide = load_config("unclip_decoder_toy"), load_config("glide_base_toy")
    assert isinstance(dec, UNetConfig) and isinstance(glide, UNetConfig)
    assert (glide.model_channels, glide.channel_mult, glide.num_res_blocks, glide.text_encoder) == (
        dec.model_channels,
        dec.channel_mult,
        dec.num_res_blocks,
        dec.text_encoder,
    )


def test_unknown_key_suggests_the_closest() -> None:
    data = config_to_dict(load_config("unclip_decoder_toy"))
    data["channel_mul"] = data.pop("channel_mult")
    with pytest.raises(ValueError, match=r"unknown key .*channel_mul; did you mean 'channel_mult'\?"):
        config_from_dict(data)
    data = config_to_dict(load_config("unclip_decoder_toy"))
    data["text_encoder"]["layer"] = 3
    with pytest.raises(ValueError, match=r"text_encoder\.layer; did you mean 'layers'\?"):
        config_from_dict(data)


def test_bad_kind_type_missing_and_name() -> None:
    good = config_to_dict(load_config("unclip_prior_toy"))
    with pytest.raises(ValueError, match="did you mean 'diffusion_prior'"):
        config_from_dict({**good, "kind": "diffusion_prio"})
    with pytest.raises(ValueError, match="width must be an integer"):
        config_from_dict({**good, "width": "128"})
    with pytest.raises(ValueError, match="must be true or false"):
        config_from_dict({**config_to_dict(load_config("glide_base_toy")), "learn_sigma": 1})
    missing = dict(good)
    del missing["heads"]
    with pytest.raises(ValueError, match="missing key .*heads"):
        config_from_dict(missing)
    with pytest.raises(ValueError, match="layers must be positive"):
        config_from_dict({**good, "layers": 0})
    with pytest.raises(ValueError, match="did you mean 'unclip_prior_toy'"):
        load_config("unclip_prior_tyo")
    with pytest.raises(ValueError, match="does not exist"):
        load_config("/nonexistent/x.json")


def test_save_load_and_build_from_path_and_dict(tmp_path: Path) -> None:
    cfg = load_config("unclip_ar_prior_toy")
    path = tmp_path / "mine.json"
    save_config(cfg, path, description="a copy")
    assert load_config(path) == cfg
    assert list_configs(tmp_path) == ["mine"]
    (tmp_path / "pipeline.json").write_text('{"kind": "pipeline", "stages": []}')
    assert list_configs(tmp_path) == ["mine"]  # non-network files beside them are not listed
    assert isinstance(build_network(path), ARPriorNetwork)
    assert isinstance(build_network(config_to_dict(load_config("unclip_prior_toy"))), DiffusionPriorNetwork)
    unet = load_config("glide_base_toy")
    assert isinstance(unet, UNetConfig) and unet.text_encoder is not None
    assert isinstance(build_network(unet.text_encoder), TextTransformer)
    with pytest.raises(TypeError, match="network config"):
        build_network(42)  # type: ignore[arg-type]
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_config(tmp_path / "broken.json")
