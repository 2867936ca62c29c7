"""open_clip features from a local checkpoint (tiny random config, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from eval_protocols.features.base import MissingWeightsError
from eval_protocols.features.clip import CLIP_WEIGHTS_ENV, OpenClipFeatures

TINY_CLIP: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_clip() -> OpenClipFeatures:
    torch.set_num_threads(1)
    return OpenClipFeatures(TINY_CLIP, random_weights=True, seed=0)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)


def test_image_and_text_features_are_unit_vectors(tiny_clip: OpenClipFeatures) -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 48, 40, 3), dtype=np.uint8)
    image_features = tiny_clip(images)
    text_features = tiny_clip.encode_text(["a red cube", "two blue spheres on grass"])
    assert image_features.shape == (3, 32) and text_features.shape == (2, 32) and tiny_clip.dim == 32
    np.testing.assert_allclose(np.linalg.norm(image_features, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text_features, axis=1), 1.0, rtol=1e-5)
    assert tiny_clip.extractor_id.startswith("open_clip:custom-") and tiny_clip.extractor_id.endswith("random-seed0")
    assert ":text:" in tiny_clip.text_extractor_id


def test_preprocess_resizes_shorter_side_and_centre_crops(tiny_clip: OpenClipFeatures) -> None:
    images = torch.zeros(1, 64, 128, 3, dtype=torch.uint8)
    images[:, :, 24:104] = 255  # white beyond the central 64 columns the crop keeps, black outside
    pixels = tiny_clip.preprocess(images)
    assert tuple(pixels.shape) == (1, 3, 32, 32)
    white = (1.0 - tiny_clip.mean) / tiny_clip.std
    torch.testing.assert_close(pixels, white.expand_as(pixels))


def test_local_checkpoint_round_trip(tmp_path: Path, tiny_clip: OpenClipFeatures) -> None:
    path = tmp_path / "tiny_clip.pt"
    torch.save(tiny_clip.model.state_dict(), path)
    loaded = OpenClipFeatures(TINY_CLIP, path, seed=99)
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(loaded(images), tiny_clip(images), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(loaded.encode_text(["x"]), tiny_clip.encode_text(["x"]), rtol=1e-6, atol=1e-7)
    assert loaded.weights_sha256 is not None and loaded.extractor_id.endswith(loaded.weights_sha256[:16])


def test_missing_checkpoint_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CLIP_WEIGHTS_ENV, raising=False)
    with pytest.raises(MissingWeightsError) as info:
        OpenClipFeatures(TINY_CLIP, tmp_path / "missing.pt")
    assert "missing.pt" in str(info.value) and CLIP_WEIGHTS_ENV in str(info.value)
    with pytest.raises(MissingWeightsError, match="no file given"):
        OpenClipFeatures(TINY_CLIP)


def test_pretrained_tags_are_refused_not_downloaded() -> None:
    with pytest.raises(MissingWeightsError, match="openai"):
        OpenClipFeatures("ViT-B-32", "openai")


def test_unknown_architecture_name() -> None:
    with pytest.raises(ValueError, match="unknown open_clip architecture"):
        OpenClipFeatures("ViT-Nope-1", random_weights=True)
