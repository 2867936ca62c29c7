"""The diffusion-stage trainers: one step lowers the loss on a fixed batch, checkpoint + resume, CLI wiring."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "pipelines"))
from pipeline_fixtures import AR_CONFIG, CLIP_CONFIG, PRIOR_CONFIG, X0, tiny_network, unet_config

from harness.commands import train as train_command
from harness.data import toyworld
from harness.errors import HarnessError
from harness.train.ar_prior import ARPriorBundle, ar_step_fn, fit_quantizers
from harness.train.decoder import decoder_batch_fn
from harness.train.diffusion import ImageDataSpec, image_stream, toy_tokenizer
from harness.train.glide import StageRunSpec, default_diffusion, glide_batch_fn, train_glide
from harness.train.loop import OptimSpec, make_adamw
from harness.train.prior import PriorRunSpec, feature_stream, prior_step_fn, train_prior
from harness.train.unet_stage import diffusion_step_fn
from harness.train.upsampler import pair_stream, upsampler_batch_fn, upsampler_diffusion
from models.checkpoints import load_checkpoint
from models.networks import load_config
from models.networks.clip import build_clip
from models.networks.config import config_from_dict

CPU = torch.device("cpu")
DATA = ImageDataSpec(fresh=4, window=64)
StepFn = Callable[[int], tuple[torch.Tensor, dict[str, float]]]


def tiny_text_unet(clip: bool = False) -> torch.nn.Module:
    config = unet_config(clip=clip)
    config["text_encoder"] = {**config["text_encoder"], "vocab_size": 128, "context_length": 24}
    return tiny_network(config).train()


def loss_drops_after_one_step(network: torch.nn.Module, step_fn: StepFn) -> tuple[float, float]:
    """Loss on batch 0 (same data, t, noise and dropout), one AdamW step, loss on batch 0 again."""
    torch.manual_seed(0)
    optimizer = make_adamw(network, OptimSpec(steps=1, lr=3e-3, weight_decay=0.0))
    before, _ = step_fn(0)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after, _ = step_fn(0)
    return float(before.detach()), float(after)


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def test_glide_step_lowers_the_loss() -> None:
    net = tiny_text_unet()
    batch_fn = glide_batch_fn(image_stream(DATA, 4), toy_tokenizer(), data_seed=0)
    x0, cond = batch_fn(0)
    assert x0.shape == (4, 3, 32, 32) and float(x0.min()) >= -1 and float(x0.max()) <= 1
    assert set(cond) == {"tokens", "token_mask", "text_mask"}
    step = diffusion_step_fn(
        net, default_diffusion(load_config("glide_base_toy")), batch_fn, data_seed=0, device=CPU, bf16=False
    )
    before, after = loss_drops_after_one_step(net, step)
    assert after < before


def test_decoder_step_lowers_the_loss() -> None:
    net = tiny_text_unet(clip=True)
    clip = build_clip(CLIP_CONFIG, seed=0).eval()
    batch_fn = decoder_batch_fn(image_stream(DATA, 4), toy_tokenizer(), clip, data_seed=0)
    _, cond = batch_fn(0)
    assert cond["clip_emb"].shape == (4, 16)
    assert torch.allclose(cond["clip_emb"].norm(dim=-1), torch.ones(4), atol=1e-5)
    step = diffusion_step_fn(
        net, default_diffusion(load_config("unclip_decoder_toy")), batch_fn, data_seed=0, device=CPU, bf16=False
    )
    before, after = loss_drops_after_one_step(net, step)
    assert after < before


def test_upsampler_step_lowers_the_loss() -> None:
    config = unet_config(text=False, super_res=True, learn_sigma=False)
    config["image_size"] = 64
    net = tiny_network(config).train()
    batch_fn = upsampler_batch_fn(pair_stream(ImageDataSpec(fresh=2, window=16, size=64), 2), data_seed=0)
    x0, cond = batch_fn(0)
    assert x0.shape == (2, 3, 64, 64) and cond["low_res"].shape == (2, 3, 32, 32)
    step = diffusion_step_fn(net, upsampler_diffusion(), batch_fn, data_seed=0, device=CPU, bf16=False)
    before, after = loss_drops_after_one_step(net, step)
    assert after < before


@pytest.fixture(scope="module")
def prior_stream() -> Callable[[int], list[tuple[str, torch.Tensor, torch.Tensor]]]:
    clip = build_clip(CLIP_CONFIG, seed=0).eval()
    return feature_stream(clip, PriorRunSpec(batch=16, fresh=16, window=64))


def test_prior_step_lowers_the_loss(
    prior_stream: Callable[[int], list[tuple[str, torch.Tensor, torch.Tensor]]],
) -> None:
    config = {**PRIOR_CONFIG, "vocab_size": 128, "text_context": 24}
    net = tiny_network(config).train()
    step = prior_step_fn(net, X0, 4.0, toy_tokenizer(), prior_stream, data_seed=0, device=CPU, bf16=False)
    before, after = loss_drops_after_one_step(net, step)
    assert after < before


def test_ar_prior_step_lowers_the_loss(
    prior_stream: Callable[[int], list[tuple[str, torch.Tensor, torch.Tensor]]],
) -> None:
    config = {**AR_CONFIG, "vocab_size": 128, "text_context": 24}
    examples = [e for s in range(4) for e in prior_stream(s)]
    z_i, z_t = torch.stack([e[1] for e in examples]), torch.stack([e[2] for e in examples])
    pca, dot = fit_quantizers(z_i, z_t, config_from_dict(config))
    bundle = ARPriorBundle(tiny_network(config).train(), pca, dot)
    step = ar_step_fn(bundle, toy_tokenizer(), prior_stream, data_seed=0, device=CPU, bf16=False)
    before, after = loss_drops_after_one_step(bundle, step)
    assert after < before


def test_glide_training_resumes_exactly(tmp_path: Path) -> None:
    config_path = tmp_path / "tiny_glide.json"
    config = unet_config()
    config["text_encoder"] = {**config["text_encoder"], "vocab_size": 128, "context_length": 24}
    config_path.write_text(json.dumps(config))
    spec = StageRunSpec(
        batch=2, data=ImageDataSpec(fresh=2, window=8), config=str(config_path), device="cpu", fp16=False, grid_every=2
    )
    optim = OptimSpec(steps=3, lr=1e-3, warmup_steps=1, ema_decay=0.9, checkpoint_every=1)
    summary = train_glide(tmp_path / "straight", optim, spec)
    assert summary["steps"] == 3 and (tmp_path / "straight" / "samples" / "step_000002.png").is_file()
    with pytest.raises(KeyboardInterrupt):
        train_glide(tmp_path / "paused", optim, StageRunSpec(**{**spec.__dict__, "stop_at": 2}))
    with pytest.raises(Exception, match="--resume"):
        train_glide(tmp_path / "paused", optim, spec)
    train_glide(tmp_path / "paused", optim, spec, resume=True)
    straight, meta, _ = load_checkpoint(tmp_path / "straight" / "glide_toy")
    resumed, _, _ = load_checkpoint(tmp_path / "paused" / "glide_toy")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert meta["kind"] == "glide" and meta["trained_steps"] == 3 and meta["diffusion"]["mean_type"] == "velocity"
    lines = (tmp_path / "straight" / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 3


@pytest.mark.parametrize("model", ["glide", "decoder", "upsampler", "prior", "ar-prior"])
def test_train_subcommands_are_registered(model: str) -> None:
    parser = argparse.ArgumentParser()
    argv = ["train", model, "--out", "x", "--steps", "5"]
    train_command.register(parser.add_subparsers(), argv[1:])
    args = parser.parse_args(argv)
    assert args.steps == 5 and callable(args.func)


def test_warm_start_begins_from_the_checkpoint_and_rejects_other_networks(tmp_path: Path) -> None:
    config_path = tmp_path / "tiny_glide.json"
    config = unet_config()
    config["text_encoder"] = {**config["text_encoder"], "vocab_size": 128, "context_length": 24}
    config_path.write_text(json.dumps(config))
    spec = StageRunSpec(
        batch=2, data=ImageDataSpec(fresh=2, window=8), config=str(config_path), device="cpu", fp16=False, grid_every=0
    )
    optim = OptimSpec(steps=2, lr=1e-3, warmup_steps=1, ema_decay=None, checkpoint_every=2)
    train_glide(tmp_path / "first", optim, spec)
    first, _, _ = load_checkpoint(tmp_path / "first" / "glide_toy")
    # A vanishing lr: the warm-started run must end at the weights it started from, not at seeded fresh ones.
    frozen = OptimSpec(steps=1, lr=1e-20, warmup_steps=1, ema_decay=None, checkpoint_every=1)
    warm = StageRunSpec(**{**spec.__dict__, "model_seed": 7, "init_from": str(tmp_path / "first" / "glide_toy")})
    train_glide(tmp_path / "warm", frozen, warm)
    continued, _, _ = load_checkpoint(tmp_path / "warm" / "glide_toy")
    assert all(torch.allclose(first[k], continued[k], rtol=0, atol=1e-12) for k in first)
    cold = StageRunSpec(**{**spec.__dict__, "model_seed": 7})
    train_glide(tmp_path / "cold", frozen, cold)
    fresh, _, _ = load_checkpoint(tmp_path / "cold" / "glide_toy")
    assert not all(torch.allclose(first[k], fresh[k], rtol=0, atol=1e-3) for k in first)

    other = unet_config()
    other["model_channels"] = 2 * other["model_channels"]
    other["text_encoder"] = {**other["text_encoder"], "vocab_size": 128, "context_length": 24}
    (tmp_path / "wide.json").write_text(json.dumps(other))
    mismatched = StageRunSpec(**{**warm.__dict__, "config": str(tmp_path / "wide.json")})
    with pytest.raises(HarnessError, match="do not fit the network"):
        train_glide(tmp_path / "wide", frozen, mismatched)
    with pytest.raises(HarnessError, match="--init-from: checkpoint weights not found"):
        train_glide(
            tmp_path / "missing", frozen, StageRunSpec(**{**spec.__dict__, "init_from": str(tmp_path / "nope")})
        )


def test_described_p_mixes_fully_described_single_objects_into_the_stream() -> None:
    def scenes(p: float) -> list[toyworld.SceneSpec]:
        _, pairs = image_stream(ImageDataSpec(fresh=64, window=64, described_p=p), 64)(0)
        return [scene for _, scene in pairs]

    def described(scene: toyworld.SceneSpec) -> bool:
        return len(scene.objects) == 1 and all(
            m.colour is not None and m.size is not None for m in scene.caption_spec.objects
        )

    plain, half, every = scenes(0.0), scenes(0.5), scenes(1.0)
    assert plain == scenes(0.0) and half == scenes(0.5)  # deterministic
    assert all(described(s) for s in every)
    assert 16 <= sum(described(s) for s in half) - sum(described(s) for s in plain) <= 48
    with pytest.raises(ValueError, match="described_p"):
        ImageDataSpec(described_p=1.5)


SHIPPED_UNCLIP_CLIP = str(Path(__file__).resolve().parents[3] / "checkpoints" / "toy" / "unclip_clip_toy")
TINY_PRIORS = {
    "diffusion_prior": {"embed_dim": 64, "vocab_size": 512, "text_context": 32, "width": 32, "layers": 1, "heads": 2},
    "ar_prior": {
        "embed_dim": 64,
        "vocab_size": 512,
        "text_context": 32,
        "num_components": 4,
        "num_buckets": 8,
        "num_dot_buckets": 4,
        "width": 32,
        "layers": 1,
        "heads": 2,
    },
}


@pytest.mark.parametrize("kind", ["diffusion_prior", "ar_prior"])
def test_prior_warm_start_begins_from_the_checkpoint(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--init-from`` of both priors: the run starts at the checkpoint's weights (and, for the AR prior, its
    quantisers), not at seeded fresh ones; a checkpoint of another size is one clear error."""
    from harness.train import ar_prior

    monkeypatch.setattr(ar_prior, "FIT_EXAMPLES", 64)
    train, stem = (
        (ar_prior.train_ar_prior, "unclip_ar_prior_toy") if kind == "ar_prior" else (train_prior, "unclip_prior_toy")
    )
    config_path = tmp_path / "tiny_prior.json"
    config_path.write_text(json.dumps({"kind": kind, **TINY_PRIORS[kind]}))
    spec = PriorRunSpec(batch=4, config=str(config_path), clip=SHIPPED_UNCLIP_CLIP, fresh=4, window=8, device="cpu")
    train(tmp_path / "first", OptimSpec(steps=2, lr=1e-3, warmup_steps=1, ema_decay=None, checkpoint_every=2), spec)
    first, _, _ = load_checkpoint(tmp_path / "first" / stem)
    frozen = OptimSpec(steps=1, lr=1e-20, warmup_steps=1, ema_decay=None, checkpoint_every=1)
    # Another data seed: the AR prior's refitted quantisers would differ, so equal ones come from the checkpoint.
    warm = PriorRunSpec(
        **{**spec.__dict__, "model_seed": 7, "data_seed": 3, "init_from": str(tmp_path / "first" / stem)}
    )
    train(tmp_path / "warm", frozen, warm)
    continued, _, _ = load_checkpoint(tmp_path / "warm" / stem)
    assert set(first) == set(continued)
    assert all(torch.allclose(first[k].float(), continued[k].float(), rtol=0, atol=1e-6) for k in first)
    assert json.loads((tmp_path / "warm" / "run.json").read_text())["init_from"].endswith(stem)
    cold = PriorRunSpec(**{**spec.__dict__, "model_seed": 7, "data_seed": 3})
    train(tmp_path / "cold", frozen, cold)
    fresh, _, _ = load_checkpoint(tmp_path / "cold" / stem)
    assert not all(torch.allclose(first[k].float(), fresh[k].float(), rtol=0, atol=1e-3) for k in first)

    wide = {**TINY_PRIORS[kind], "width": 64}
    (tmp_path / "wide.json").write_text(json.dumps({"kind": kind, **wide}))
    with pytest.raises(HarnessError, match="do not fit the network"):
        train(tmp_path / "wide", frozen, PriorRunSpec(**{**warm.__dict__, "config": str(tmp_path / "wide.json")}))
