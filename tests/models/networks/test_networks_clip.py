"""models.networks.clip: the toy CLIP from its JSON config, offline tokenizer, preprocessing, local loading."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from eval_protocols.features.clip import OpenClipFeatures
from models.checkpoints import CheckpointError, save_checkpoint
from models.networks.clip import (
    TOY_CLIP_CONFIG,
    build_clip,
    clip_image_size,
    clip_tokenizer,
    encode_images,
    encode_texts,
    load_clip,
    load_clip_config,
    preprocess_uint8,
)

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1, "mlp_ratio": 2.0},
}


@pytest.mark.parametrize(("name", "tower"), [("clip_toy", "VisionTransformer"), ("clip_toy_conv", "ModifiedResNet")])
def test_toy_config_builds_an_open_clip_model(name: str, tower: str) -> None:
    cfg = load_clip_config(name)
    if name == "clip_toy":
        assert cfg == load_clip_config(TOY_CLIP_CONFIG)
    model = build_clip(cfg, seed=0).eval()
    assert type(model) is open_clip.CLIP
    assert type(model.visual).__name__ == tower
    assert clip_image_size(model) == (32, 32) and model.context_length == cfg["text_cfg"]["context_length"]
    images = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    z_i = encode_images(model, images)
    z_t = encode_texts(model, ["a red circle", "two blue squares", "a small star"])
    assert z_i.shape == z_t.shape == (3, cfg["embed_dim"])
    assert torch.allclose(z_i.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(z_t.norm(dim=-1), torch.ones(3), atol=1e-5)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params < 5_000_000  # a few MB in fp16


def test_build_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_clip(TINY, seed=7)
    after = torch.rand(1)
    b = build_clip(TINY, seed=7)
    assert torch.equal(before, after)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_tokenizer_is_offline_and_bundled(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tokenizer tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert Path(open_clip.tokenizer.default_bpe()).is_file()
    assert str(Path(open_clip.__file__).parent) in os.path.abspath(open_clip.tokenizer.default_bpe())
    tokens = clip_tokenizer(32)(["a red circle above a blue star"])
    assert tokens.shape == (1, 32) and tokens.dtype == torch.int64
    ids = tokens[0][tokens[0] > 0].tolist()
    assert ids[0] == 49406 and ids[-1] == 49407 and len(ids) == 9  # <sot> 7 words <eot>
    long = clip_tokenizer(8)(["one two three four five six seven eight nine ten"])
    assert long.shape == (1, 8) and int(long[0, -1]) == 49407  # truncated, end-of-text kept


def test_preprocess_matches_the_eval_clip_extractor() -> None:
    features = OpenClipFeatures(TINY, random_weights=True, seed=0)
    rng = np.random.default_rng(0)
    for size in (16, 32, 40):
        images = torch.from_numpy(rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8))
        assert torch.allclose(preprocess_uint8(images, (16, 16)), features.preprocess(images), atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_uint8(torch.zeros(1, 16, 16, 3), (16, 16))


TINY_CONV = {**TINY, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "head_width": 16}}


@pytest.mark.parametrize("cfg", [TINY, TINY_CONV], ids=["vit", "conv"])
def test_saved_checkpoint_loads_here_and_in_the_eval_extractor(tmp_path: Path, cfg: dict) -> None:
    model = build_clip(cfg, seed=3).eval()
    save_checkpoint(model, {"model_config": cfg}, tmp_path / "clip")
    loaded = load_clip(cfg, tmp_path / "clip.safetensors")
    size = cfg["vision_cfg"]["image_size"]
    images = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    assert torch.allclose(encode_images(loaded, images), encode_images(model, images), atol=1e-6)
    features = OpenClipFeatures(cfg, tmp_path / "clip.safetensors")
    assert np.allclose(features(images.numpy()), encode_images(model, images).numpy(), atol=1e-5)
    assert np.allclose(features.encode_text(["a red circle"]), encode_texts(model, ["a red circle"]).numpy(), atol=1e-5)


def test_foreign_open_clip_file_loads(tmp_path: Path) -> None:
    model = build_clip(TINY, seed=4).eval()
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "clip.bin")
    loaded = load_clip(TINY, tmp_path / "clip.bin")
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )


def test_missing_weights_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"CLIP weights not found: .*absent\.safetensors"):
        load_clip(TINY, tmp_path / "absent")
    with pytest.raises(CheckpointError, match=r"not found: .*ViT\.pt"):
        load_clip("ViT-B-32", tmp_path / "ViT.pt")
    with pytest.raises(ValueError, match="CLIP config not found"):
        load_clip_config("no_such_clip")
