"""eval_protocols.features.oracle: network shapes, input resizing, predictions, checkpoint loading and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from eval_protocols.features.base import MissingWeightsError, sha256_file
from eval_protocols.features.oracle import (
    AttributeCNN,
    ToyAttributeOracle,
    accuracy,
    oracle_config,
    resize_to_input,
)

CLASSES = {"shape": ("circle", "square"), "colour": ("red", "green", "blue"), "size": ("small", "large")}


def _oracle() -> ToyAttributeOracle:
    torch.manual_seed(0)
    return ToyAttributeOracle(AttributeCNN({k: len(v) for k, v in CLASSES.items()}, width=8), CLASSES)


def _save(oracle: ToyAttributeOracle, stem: Path) -> None:
    save_file({k: v.contiguous() for k, v in oracle.network.state_dict().items()}, f"{stem}.safetensors")
    stem.with_suffix(".json").write_text(json.dumps(oracle_config(CLASSES, width=8, input_size=32)))
    stem.with_suffix(".sha256").write_text(f"{sha256_file(f'{stem}.safetensors')}  {stem.name}.safetensors\n")


def test_predictions_have_names_indices_and_probabilities() -> None:
    oracle = _oracle()
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    prediction = oracle.predict(images, batch_size=2)
    for name, classes in CLASSES.items():
        probs = prediction.probabilities[name]
        assert probs.shape == (5, len(classes))
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert np.array_equal(prediction.indices[name], probs.argmax(axis=1))
        assert list(prediction[name]) == [classes[i] for i in prediction.indices[name]]
    assert oracle.predict(images[:0]).labels["shape"].shape == (0,)
    with pytest.raises(ValueError, match="uint8"):
        oracle.predict(images.astype(np.float32))


def test_64_pixel_inputs_are_block_averaged_to_32() -> None:
    x = torch.rand(2, 3, 64, 64)
    expected = x.reshape(2, 3, 32, 2, 32, 2).mean(dim=(3, 5))
    assert torch.allclose(resize_to_input(x, 32), expected, atol=1e-6)
    assert resize_to_input(torch.rand(1, 3, 48, 48), 32).shape == (1, 3, 32, 32)
    oracle = _oracle()
    small = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    big = small.repeat(2, axis=1).repeat(2, axis=2)  # each pixel a 2x2 block: block mean gives `small` back
    for name in CLASSES:
        assert np.allclose(
            oracle.predict(small).probabilities[name], oracle.predict(big).probabilities[name], atol=1e-5
        )


def test_accuracy_per_attribute_and_all() -> None:
    oracle = _oracle()
    prediction = oracle.predict(np.zeros((4, 32, 32, 3), dtype=np.uint8))
    truth = {name: list(prediction.labels[name]) for name in CLASSES}
    truth["size"][0] = "small" if truth["size"][0] == "large" else "large"
    acc = accuracy(prediction, truth)
    assert acc["shape"] == 1.0 and acc["colour"] == 1.0 and acc["size"] == 0.75 and acc["all"] == 0.75


def test_checkpoint_round_trip_and_errors(tmp_path: Path) -> None:
    oracle = _oracle()
    _save(oracle, tmp_path / "oracle")
    loaded = ToyAttributeOracle.from_checkpoint(tmp_path / "oracle.safetensors")
    images = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    for name in CLASSES:
        assert np.allclose(loaded.predict(images).probabilities[name], oracle.predict(images).probabilities[name])
    assert loaded.extractor_id == f"toy-oracle:{sha256_file(tmp_path / 'oracle.safetensors')[:16]}"
    with pytest.raises(MissingWeightsError, match=r"file not found: .*missing\.safetensors"):
        ToyAttributeOracle.from_checkpoint(tmp_path / "missing")
    weights = tmp_path / "oracle.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        ToyAttributeOracle.from_checkpoint(weights)
