"""harness.train.oracle and .degrade: labelled renders, augmentations, a short run, and the shipped oracle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from eval_protocols.features.oracle import ATTRIBUTES, ToyAttributeOracle, accuracy
from harness.data import toyworld
from harness.train.degrade import OPERATIONS, DegradeSpec, degrade
from harness.train.loop import OptimSpec
from harness.train.oracle import CLASSES, held_out_single_objects, single_object_example, train_oracle

ROOT = Path(__file__).resolve().parents[3]
SHIPPED_ORACLE = ROOT / "checkpoints" / "toy" / "oracle.safetensors"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Small convolutions on a shared 2-core machine run fastest on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_examples_are_labelled_single_object_renders() -> None:
    for index in range(6):
        image, labels = single_object_example(0, index)
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        again, labels_again = single_object_example(0, index)
        assert np.array_equal(image, again) and np.array_equal(labels, labels_again)
    seen = {tuple(single_object_example(1, i)[1]) for i in range(300)}
    assert {k[1] for k in seen} == set(range(len(CLASSES["colour"])))


def test_held_out_scenes_are_single_object_test_split() -> None:
    images, truth = held_out_single_objects(12, seed=2)
    assert images.shape == (12, 32, 32, 3)
    assert set(truth) == set(ATTRIBUTES) and all(len(v) == 12 for v in truth.values())
    assert set(truth["size"]) <= set(toyworld.SIZES)


def test_degrade_is_seeded_bounded_and_identity_at_p0() -> None:
    x = torch.rand(6, 3, 32, 32)
    spec = DegradeSpec(p=1.0)
    a = degrade(x, spec, torch.Generator().manual_seed(0))
    b = degrade(x, spec, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(degrade(x, replace(spec, p=0.0), torch.Generator().manual_seed(0)), x)
    for op in OPERATIONS:
        y = degrade(x, replace(spec, operations=(op,)), torch.Generator().manual_seed(1))
        assert y.shape == x.shape and not torch.equal(y, x), op
    with pytest.raises(ValueError, match="unknown degradations"):
        DegradeSpec(operations=("sepia",))


def test_blur_matches_a_direct_gaussian_convolution() -> None:
    from scipy.ndimage import gaussian_filter

    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    spec = DegradeSpec(p=1.0, blur_sigma=(0.8, 0.8), operations=("blur",))
    y = degrade(x, spec, torch.Generator().manual_seed(0)).numpy()
    # radius ceil(3 * 0.8 * 16/32) = 2 taps each side with replicate padding = scipy's "nearest" mode, truncate 2/0.4
    expected = gaussian_filter(x.numpy(), sigma=(0, 0, 0.4, 0.4), mode="nearest", truncate=2 / 0.4)
    assert np.allclose(y, np.clip(expected, 0, 1), atol=1e-6)


def test_short_run_lowers_the_loss_and_round_trips(tmp_path: Path) -> None:
    optim = OptimSpec(steps=20, lr=5e-3, warmup_steps=3, checkpoint_every=20, log_every=1)
    train_oracle(tmp_path / "run", optim, batch=16, width=8, fresh=8, window=64, export=tmp_path / "o")
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 20 and np.mean(losses[-5:]) < np.mean(losses[:5])
    oracle = ToyAttributeOracle.from_checkpoint(tmp_path / "o.safetensors")
    twin = ToyAttributeOracle.from_checkpoint(tmp_path / "run" / "oracle")
    images, _ = held_out_single_objects(16, seed=3)
    for name in ATTRIBUTES:
        assert np.array_equal(oracle.predict(images).probabilities[name], twin.predict(images).probabilities[name])
    assert oracle.classes == {k: tuple(v) for k, v in CLASSES.items()}


def test_shipped_oracle_reads_fresh_held_out_renders() -> None:
    assert SHIPPED_ORACLE.is_file(), f"missing shipped checkpoint {SHIPPED_ORACLE}; see checkpoints/toy/MODEL_CARD.md"
    oracle = ToyAttributeOracle.from_checkpoint(SHIPPED_ORACLE)
    images, truth = held_out_single_objects(200, seed=21)
    acc = accuracy(oracle.predict(images), truth)
    assert min(acc[name] for name in ATTRIBUTES) >= 0.95, acc
    assert acc["all"] >= 0.95, acc
    images64, truth64 = held_out_single_objects(100, seed=22, size=64)
    assert accuracy(oracle.predict(images64), truth64)["all"] >= 0.95
