"""The Inception pool3 extractor: local weights only, both resize modes, parity with torchmetrics' network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3
from torchmetrics.image.fid import NoTrainInceptionV3

from eval_protocols.features.base import MissingWeightsError
from eval_protocols.features.inception import (
    INCEPTION_FILE_NAMES,
    INCEPTION_URLS,
    INCEPTION_WEIGHTS_ENV,
    InceptionFeatures,
)


@pytest.fixture(scope="module")
def random_inception() -> InceptionFeatures:
    torch.set_num_threads(1)
    return InceptionFeatures(random_weights=True, seed=0)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)


def test_random_weights_give_n_by_2048(random_inception: InceptionFeatures, images: np.ndarray) -> None:
    features = random_inception(images)
    assert features.shape == (2, 2048) and features.dtype == np.float32
    assert np.isfinite(features).all() and np.abs(features).sum() > 0
    assert random_inception.extractor_id == "inception-v3-pool3:tf1-bilinear:random-seed0"
    assert random_inception.weights_sha256 is None


def test_random_init_is_seeded_and_leaves_global_rng_alone(
    random_inception: InceptionFeatures, images: np.ndarray
) -> None:
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    again = InceptionFeatures(random_weights=True, seed=0)
    np.testing.assert_array_equal(again(images), random_inception(images))
    np.testing.assert_array_equal(torch.rand(3), before)


def test_weights_file_loads_and_sha256_is_recorded(
    tmp_path: Path, random_inception: InceptionFeatures, images: np.ndarray
) -> None:
    path = tmp_path / "inception.pth"
    torch.save(random_inception.net.state_dict(), path)
    with pytest.warns(UserWarning, match="6726825d"):
        loaded = InceptionFeatures(path)
    np.testing.assert_array_equal(loaded(images), random_inception(images))
    assert loaded.weights_sha256 is not None and len(loaded.weights_sha256) == 64
    assert loaded.extractor_id.endswith(loaded.weights_sha256[:16])


def test_features_equal_torchmetrics_network(
    tmp_path: Path, random_inception: InceptionFeatures, images: np.ndarray
) -> None:
    path = tmp_path / "inception.pth"
    torch.save(random_inception.net.state_dict(), path)
    for antialias, mode in ((False, "tf1-bilinear"), (True, "antialias-bilinear")):
        reference = NoTrainInceptionV3("inception-v3-compat", ["2048"], str(path), antialias=antialias)
        with torch.inference_mode():
            expected = reference(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
        with pytest.warns(UserWarning):
            ours = InceptionFeatures(path, resize=mode)(images)
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=0)


def test_resize_modes_differ_on_non_299_inputs(random_inception: InceptionFeatures, images: np.ndarray) -> None:
    antialiased = InceptionFeatures(random_weights=True, resize="antialias-bilinear")
    assert antialiased.extractor_id != random_inception.extractor_id
    assert not np.allclose(antialiased(images), random_inception(images), rtol=1e-4, atol=0)


def test_missing_weights_error_names_file_source_and_how_to_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(torch_fidelity.feature_extractor_inceptionv3, "load_state_dict_from_url", no_download)
    with pytest.raises(MissingWeightsError) as info:
        InceptionFeatures()
    message = str(info.value)
    assert INCEPTION_FILE_NAMES[0] in message and INCEPTION_URLS[0] in message
    assert INCEPTION_WEIGHTS_ENV in message and "6726825d" in message and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_env_var_pointing_at_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "nope.pth"))
    with pytest.raises(MissingWeightsError, match="nope.pth"):
        InceptionFeatures()


def test_torch_hub_cache_file_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, random_inception: InceptionFeatures
) -> None:
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target = tmp_path / "hub" / "checkpoints" / INCEPTION_FILE_NAMES[1]
    target.parent.mkdir(parents=True)
    torch.save(random_inception.net.state_dict(), target)
    with pytest.warns(UserWarning):
        assert InceptionFeatures().weights_sha256 is not None


def test_wrong_files_are_explained(tmp_path: Path) -> None:
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="not an FID Inception-v3 state dict"):
        InceptionFeatures(other)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch state dict"):
        InceptionFeatures(junk)


def test_bad_arguments(random_inception: InceptionFeatures) -> None:
    with pytest.raises(ValueError, match="resize mode"):
        InceptionFeatures(random_weights=True, resize="bicubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        random_inception(np.zeros((1, 8, 8, 3), dtype=np.float32))
