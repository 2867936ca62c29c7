"""models.checkpoints: exact round trips, sha256 verification, foreign formats, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.checkpoints import CheckpointError, checkpoint_paths, load_checkpoint, save_checkpoint, sha256_file


def _module() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))


def test_round_trip_is_exact_and_hash_matches_file(tmp_path: Path) -> None:
    module = _module()
    config = {"kind": "toy", "widths": [4, 8, 2]}
    digest = save_checkpoint(module, config, tmp_path / "net")
    state, loaded_config, loaded_digest = load_checkpoint(tmp_path / "net.safetensors")
    assert loaded_config == config
    assert loaded_digest == digest == sha256_file(tmp_path / "net.safetensors")
    assert (tmp_path / "net.sha256").read_text().split() == [digest, "net.safetensors"]
    expected = module.state_dict()
    assert state.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(state[name], tensor), name
        assert state[name].dtype == tensor.dtype
    assert not list(tmp_path.glob("*.tmp"))


def test_fp16_export_casts_floats_only(tmp_path: Path) -> None:
    module = _module()
    save_checkpoint(module, {}, tmp_path / "half", dtype=torch.float16)
    state, _, _ = load_checkpoint(tmp_path / "half")
    assert state["0.weight"].dtype == torch.float16
    assert torch.equal(state["0.weight"], module.state_dict()["0.weight"].half())
    assert state["1.num_batches_tracked"].dtype == torch.int64


def test_tampered_weights_fail_the_sha256_check(tmp_path: Path) -> None:
    save_checkpoint(_module(), {}, tmp_path / "net")
    weights = tmp_path / "net.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its sha256 check"):
        load_checkpoint(weights)
    state, _, _ = load_checkpoint(weights, verify=False)  # an explicit opt-out still reads it
    assert "0.weight" in state


def test_missing_file_is_one_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"not found: .*nowhere\.safetensors"):
        load_checkpoint(tmp_path / "nowhere")


def test_missing_config_of_a_safetensors_checkpoint_is_an_error(tmp_path: Path) -> None:
    save_checkpoint(_module(), {}, tmp_path / "net")
    (tmp_path / "net.json").unlink()
    with pytest.raises(CheckpointError, match=r"config not found: .*net\.json"):
        load_checkpoint(tmp_path / "net")


def test_torch_checkpoints_load_with_weights_only(tmp_path: Path) -> None:
    module = _module()
    torch.save({"state_dict": {f"module.{k}": v for k, v in module.state_dict().items()}}, tmp_path / "foreign.pt")
    state, config, digest = load_checkpoint(tmp_path / "foreign.pt")
    assert config == {} and digest == sha256_file(tmp_path / "foreign.pt")
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    torch.save({"model": _module()}, tmp_path / "pickled.pt")  # a whole module: needs arbitrary unpickling
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "pickled.pt")


def test_paths_from_any_member_file(tmp_path: Path) -> None:
    expected = (tmp_path / "a.safetensors", tmp_path / "a.json", tmp_path / "a.sha256")
    for name in ("a", "a.safetensors", "a.json", "a.sha256"):
        assert checkpoint_paths(tmp_path / name) == expected
