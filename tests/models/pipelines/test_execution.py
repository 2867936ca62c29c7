"""How the pipelines run their networks (`models.pipelines.execution`), on the CPU.

* bf16 autocast reaches every denoising network (prior, decoder / GLIDE base, upsampler) and the images of the
  trained toy checkpoints stay close to fp32; channels-last fp32 is within one uint8 level of the default layout
  (not bit-exact: the CPU's channels-last convolutions sum in another order);
* per-sample determinism (image independent of the batch) holds under bf16 + channels-last;
* channels-last leaves the weights as they were, so a later default call is bit-identical;
* fp16 off CUDA and unknown precisions are one clear error before any network runs;
* ``compile`` calls the stage's compiled network, compiled once and reused (a counting ``torch.compile`` backend
  stands in for inductor, which takes minutes to compile on these CPUs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from models.factory import DEFAULT_CHECKPOINT_DIR, create_pipeline, list_models
from models.pipelines.base import SamplingConfig
from models.pipelines.stages import Stage

PROMPTS = ["a red circle", "a blue square", "a small green star", "an orange cross above a pink diamond", "a red star"]
SEEDS = [0, 1, 2, 3, 4]
TOY = SamplingConfig(prior_steps="8", decoder_steps="8", upsampler_steps="3", batch_size=2)
TINY = SamplingConfig(prior_steps="4", decoder_steps="4", upsampler_steps="2", batch_size=2)


def with_settings(config: SamplingConfig, **settings: Any) -> SamplingConfig:
    return SamplingConfig(**{**config.to_dict(), **settings})


def denoisers(pipeline: Any) -> dict[str, nn.Module]:
    """The denoising networks of a pipeline by role (what the precision setting must reach)."""
    if hasattr(pipeline, "prior"):
        return {
            "prior": pipeline.prior.network,
            "decoder": pipeline.decoder.network,
            "upsampler": pipeline.upsampler.network,
        }
    return {"base": pipeline.base.network, "upsampler": pipeline.upsampler.network}


@contextmanager
def recording(networks: dict[str, nn.Module]) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Record, per network call, the autocast state and the memory format of the image input and first conv."""
    seen: dict[str, list[dict[str, Any]]] = {role: [] for role in networks}

    def hook(role: str, module: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0]
        conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        seen[role].append(
            {
                "autocast": torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16,
                "x_channels_last": x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last),
                "w_channels_last": conv is not None
                and conv.weight.is_contiguous(memory_format=torch.channels_last)
                and not conv.weight.is_contiguous(),
            }
        )

    handles = [
        net.register_forward_pre_hook(lambda m, a, role=role: hook(role, m, a)) for role, net in networks.items()
    ]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


@pytest.fixture(scope="module")
def toy_pipelines() -> dict[str, Any]:
    """The three pipelines on the shipped, trained toy checkpoints (fp32 on the CPU)."""
    torch.set_num_threads(1)
    return {name: create_pipeline(name, DEFAULT_CHECKPOINT_DIR) for name in list_models()}


@pytest.mark.parametrize("name", list_models())
def test_bf16_and_channels_last_reach_every_network_and_stay_close_to_fp32(
    toy_pipelines: dict[str, Any], name: str
) -> None:
    pipeline = toy_pipelines[name]
    reference = pipeline(PROMPTS[:4], SEEDS[:4], TOY).images.astype(np.int16)
    for precision, channels_last in (("bf16", False), ("fp32", True), ("bf16", True)):
        with recording(denoisers(pipeline)) as seen:
            out = pipeline(PROMPTS[:4], SEEDS[:4], with_settings(TOY, precision=precision, channels_last=channels_last))
        for role, calls in seen.items():
            assert calls and all(c["autocast"] == (precision == "bf16") for c in calls), (role, precision)
            if role != "prior":  # the priors take (B, D) or token inputs: nothing to lay out
                assert all(c["x_channels_last"] == c["w_channels_last"] == channels_last for c in calls), role
        diff = np.abs(out.images.astype(np.int16) - reference)
        if precision == "bf16":
            # measured on the toy checkpoints: mean |Δ| per image 1-4 levels (up to ~15 where the prior's candidate
            # choice flips), max 35-150 on a few pixels; the median image is what must stay close
            per_image = diff.mean(axis=(1, 2, 3))
            assert diff.max() > 0 and float(np.median(per_image)) < 6.0, (name, channels_last, per_image)
        else:
            # measured: max 1 level on < 0.1% of pixels (values rounding the other way)
            assert diff.max() <= 1 and diff.mean() < 0.01, (name, diff.max(), diff.mean())


@pytest.mark.parametrize("name", list_models())
def test_upsampler_channels_last_reaches_the_upsampler_alone(toy_pipelines: dict[str, Any], name: str) -> None:
    pipeline = toy_pipelines[name]
    reference = pipeline(PROMPTS[:2], SEEDS[:2], TOY).images.astype(np.int16)
    for channels_last, upsampler in ((False, True), (True, False)):
        with recording(denoisers(pipeline)) as seen:
            out = pipeline(
                PROMPTS[:2], SEEDS[:2],
                with_settings(TOY, channels_last=channels_last, upsampler_channels_last=upsampler),
            )
        for role, calls in seen.items():
            if role != "prior":
                want = upsampler if role == "upsampler" else channels_last
                assert calls and all(c["x_channels_last"] == c["w_channels_last"] == want for c in calls), role
        diff = np.abs(out.images.astype(np.int16) - reference)
        assert diff.max() <= 1 and diff.mean() < 0.01, (name, diff.max(), diff.mean())


@pytest.mark.parametrize("name", list_models())
def test_bf16_channels_last_image_is_identical_whatever_the_batch(tiny_dir: Path, name: str) -> None:
    pipeline = create_pipeline(name, tiny_dir)
    config = with_settings(TINY, precision="bf16", channels_last=True)
    full = pipeline(PROMPTS, SEEDS, config)
    reordered = pipeline([PROMPTS[3], PROMPTS[0]], [SEEDS[3], SEEDS[0]], config)
    single = pipeline([PROMPTS[4]], [SEEDS[4]], config)
    assert np.array_equal(reordered.images[0], full.images[3])
    assert np.array_equal(reordered.images[1], full.images[0])
    assert np.array_equal(single.images[0], full.images[4])
    assert all(m["settings"]["precision"] == "bf16" and m["settings"]["channels_last"] for m in full.metadata)


def test_channels_last_leaves_the_weights_as_they_were(tiny_dir: Path) -> None:
    pipeline = create_pipeline("unclip-diffusion-prior", tiny_dir)
    before = pipeline(PROMPTS[:3], SEEDS[:3], TINY).images
    nets = denoisers(pipeline)
    strides = {role: [p.stride() for p in net.parameters()] for role, net in nets.items()}
    pipeline(PROMPTS[:3], SEEDS[:3], with_settings(TINY, channels_last=True))
    assert {role: [p.stride() for p in net.parameters()] for role, net in nets.items()} == strides
    assert all(p.is_contiguous() for net in nets.values() for p in net.parameters())
    assert np.array_equal(pipeline(PROMPTS[:3], SEEDS[:3], TINY).images, before)


@pytest.mark.parametrize("name", list_models())
def test_fp16_on_the_cpu_is_one_clear_error_before_any_network_runs(tiny_dir: Path, name: str) -> None:
    pipeline = create_pipeline(name, tiny_dir)
    error = r"precision 'fp16' needs a CUDA device, got device 'cpu'; use .*'bf16'"
    with recording(denoisers(pipeline)) as seen, pytest.raises(ValueError, match=error):
        pipeline(PROMPTS[:2], SEEDS[:2], with_settings(TINY, precision="fp16"))
    assert all(not calls for calls in seen.values())


def test_unknown_precision_is_rejected_by_the_settings() -> None:
    with pytest.raises(ValueError, match="unknown precision 'fp64'; use one of: fp32, bf16, fp16"):
        SamplingConfig(precision="fp64")
    defaults = SamplingConfig()
    assert (defaults.precision, defaults.channels_last, defaults.compile) == ("fp32", False, False)


def test_compile_uses_the_stage_compiled_network_once_compiled(tiny_dir: Path) -> None:
    pipeline = create_pipeline("glide", tiny_dir)
    eager = pipeline(PROMPTS[:3], SEEDS[:3], TINY).images
    graphs: list[int] = []

    def counting_backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Any:
        graphs.append(len(gm.graph.nodes))
        return gm.forward

    torch._dynamo.reset()
    stages: list[Stage] = [pipeline.base, pipeline.upsampler]
    for stage in stages:
        stage.compile_network(backend=counting_backend)
    config = with_settings(TINY, compile=True)
    first = pipeline(PROMPTS[:3], SEEDS[:3], config).images
    compiled_graphs = len(graphs)
    again = pipeline(PROMPTS[:3], SEEDS[:3], config).images
    assert compiled_graphs >= 2  # the base UNet and the upsampler were traced ...
    assert len(graphs) == compiled_graphs  # ... once: the second call reuses them
    assert np.array_equal(first, eager) and np.array_equal(again, eager)  # same ops, run eagerly by the backend
    torch._dynamo.reset()
