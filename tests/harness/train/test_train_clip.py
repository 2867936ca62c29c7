"""harness.train.clip: ClipLoss training lowers the loss; data stream; retrieval; the shipped toy CLIP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from eval_protocols.features.clip import OpenClipFeatures
from harness.data import toyworld
from harness.train.clip import (
    ClipDataSpec,
    clip_pair_stream,
    evaluate_retrieval,
    paraphrases,
    retrieval_pairs,
    train_clip,
)
from harness.train.loop import OptimSpec, make_adamw
from models.checkpoints import load_checkpoint
from models.networks.clip import build_clip, clip_tokenizer, load_clip, load_clip_config, preprocess_uint8

ROOT = Path(__file__).resolve().parents[3]
SHIPPED_CLIP = ROOT / "checkpoints" / "toy" / "clip_toy.safetensors"
TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1, "mlp_ratio": 2.0},
}


def _clip_loss(model: torch.nn.Module, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    z_i = model.encode_image(preprocess_uint8(images, (16, 16)), normalize=True)
    z_t = model.encode_text(tokens, normalize=True)
    return open_clip.ClipLoss()(z_i, z_t, model.logit_scale.exp())


def test_one_step_lowers_the_contrastive_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = build_clip(TINY, seed=0)
    images, captions = retrieval_pairs(16, split="train", seed=5, size=32)
    images_t = torch.from_numpy(images)
    tokens = clip_tokenizer(32)(captions)
    optimizer = make_adamw(model, OptimSpec(steps=1, lr=1e-3))
    before = _clip_loss(model, images_t, tokens)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after = _clip_loss(model, images_t, tokens)
    assert float(after.detach()) < float(before.detach())


def test_stream_pairs_renders_with_paraphrases_of_their_scene() -> None:
    stream = clip_pair_stream(ClipDataSpec(fresh=4, window=32), batch=8)
    indices, pairs = stream(3)
    texts = paraphrases(indices, [scene for _, scene in pairs], step=3, data_seed=0)
    for index, (image, scene), text in zip(indices.tolist(), pairs, texts, strict=True):
        assert scene == toyworld.sample_scene(0, index, "train")
        assert np.array_equal(image, toyworld.render_scene(scene, 32))
        assert toyworld.parse_caption(text) == scene.caption_spec
    assert texts == paraphrases(indices, [scene for _, scene in pairs], step=3, data_seed=0)


def test_shape_twins_sit_next_to_their_originals_in_the_fresh_examples() -> None:
    stream = clip_pair_stream(ClipDataSpec(fresh=8, window=64, shape_twin_p=1.0), batch=8)
    indices, pairs = stream(5)
    scenes = dict(zip(indices.tolist(), [scene for _, scene in pairs], strict=True))
    assert sorted(scenes) == list(range(40, 48))
    for even in range(40, 48, 2):
        original, twin = scenes[even], scenes[even + 1]
        assert original == toyworld.sample_scene(0, even, "train")
        assert twin == toyworld.shape_twin(original, 0)
    plain = clip_pair_stream(ClipDataSpec(fresh=8, window=64, shape_twin_p=0.0), batch=8)(5)[1]
    assert [scene for _, scene in plain] == [toyworld.sample_scene(0, i, "train") for i in range(40, 48)]


@pytest.mark.parametrize(("p", "fresh", "message"), [(1.5, 8, "must lie in"), (0.5, 7, "even number")])
def test_bad_shape_twin_settings_are_refused(p: float, fresh: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClipDataSpec(fresh=fresh, shape_twin_p=p)


def test_training_run_exports_a_loadable_checkpoint(tmp_path: Path) -> None:
    optim = OptimSpec(steps=2, lr=1e-3, warmup_steps=1, checkpoint_every=2)
    data = ClipDataSpec(fresh=8, window=16, render_size=32)
    summary = train_clip(tmp_path / "run", optim, batch=8, data=data, config=TINY, export=tmp_path / "ship" / "c")
    assert summary["steps"] == 2 and np.isfinite(summary["final_loss"])
    state, config, _ = load_checkpoint(tmp_path / "ship" / "c")
    assert config["model_config"] == TINY and config["trained_steps"] == 2
    assert all(t.dtype == torch.float16 for t in state.values() if t.is_floating_point())
    model = load_clip(TINY, tmp_path / "ship" / "c.safetensors")
    result = evaluate_retrieval(model, n=8, size=32)
    assert result.n == 8 and 1 <= result.mean_rank <= 8


def test_retrieval_pairs_have_distinct_captions_from_the_test_split() -> None:
    images, captions = retrieval_pairs(40)
    assert images.shape == (40, 32, 32, 3) and len(set(captions)) == 40


def test_shipped_toy_clip_retrieves_far_above_chance() -> None:
    assert SHIPPED_CLIP.is_file(), f"missing shipped checkpoint {SHIPPED_CLIP}; see checkpoints/toy/MODEL_CARD.md"
    model = load_clip(load_clip_config("clip_toy"), SHIPPED_CLIP)
    result = evaluate_retrieval(model, n=64, split="test", seed=11)
    assert result.top1 >= 10 * result.chance_top1, result
    assert result.top5 >= 4 * result.chance_top5, result
    features = OpenClipFeatures(load_clip_config("clip_toy"), SHIPPED_CLIP)  # the eval extractor reads it too
    images, captions = retrieval_pairs(8, seed=12)
    similarity = features.encode_text(captions) @ features(images).T
    assert np.mean(similarity.argmax(axis=1) == np.arange(8)) > 0.25
