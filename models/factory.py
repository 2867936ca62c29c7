"""Pipelines by name from checkpoint folders: ``list_models()``, ``create_pipeline(name, checkpoint_dir)``.

Each stage is a `models.checkpoints` checkpoint (``<stem>.safetensors/.json/.sha256``) whose JSON holds everything
needed to rebuild it: ``"network"`` (a `models.networks` config), ``"diffusion"`` (a `DiffusionConfig`),
``"tokenizer"`` (a `WordTokenizer`) and, for CLIP-conditioned stages, ``"clip": {"file", "sha256"}`` naming the
CLIP checkpoint in the same folder that the stage was trained with (checked: a prior and a decoder trained on
different CLIPs cannot be combined). Nothing is downloaded: a missing file is one ``ValueError`` naming it and
the ``harness train`` command that makes it.

| name | stages (checkpoint stems) |
|---|---|
| ``unclip-diffusion-prior`` | ``unclip_prior_toy`` → ``unclip_decoder_toy`` → ``unclip_upsampler_toy`` (+ the decoder's CLIP) |
| ``unclip-ar-prior`` | ``unclip_ar_prior_toy`` → ``unclip_decoder_toy`` → ``unclip_upsampler_toy`` (+ CLIP) |
| ``glide`` | ``glide_toy`` → ``unclip_upsampler_toy`` |
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.checkpoints import checkpoint_paths, load_checkpoint
from models.diffusion import DiffusionConfig
from models.networks import build_network
from models.networks.clip import load_clip
from models.networks.pca_quant import PCAQuantizer, QuantileBuckets
from models.pipelines.glide import GlidePipeline
from models.pipelines.priors import ARPriorStage, DiffusionPriorStage
from models.pipelines.stages import Stage
from models.pipelines.tokenizer import WordTokenizer
from models.pipelines.unclip import UnclipPipeline

DEFAULT_CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints" / "toy"
"""The shipped toy checkpoints, found from the source tree whatever the working directory."""

TRAIN_COMMANDS: dict[str, str] = {
    "glide_toy": "harness train glide --out runs/glide-toy --bf16 --export checkpoints/toy/glide_toy",
    "unclip_decoder_toy": (
        "harness train decoder --out runs/decoder-toy --bf16 --clip checkpoints/toy/clip_toy "
        "--export checkpoints/toy/unclip_decoder_toy"
    ),
    "unclip_upsampler_toy": (
        "harness train upsampler --out runs/upsampler-toy --bf16 --export checkpoints/toy/unclip_upsampler_toy"
    ),
    "unclip_prior_toy": (
        "harness train prior --out runs/prior-toy --clip checkpoints/toy/clip_toy "
        "--export checkpoints/toy/unclip_prior_toy"
    ),
    "unclip_ar_prior_toy": (
        "harness train ar-prior --out runs/ar-prior-toy --clip checkpoints/toy/clip_toy "
        "--export checkpoints/toy/unclip_ar_prior_toy"
    ),
    "clip_toy": "harness train clip --out runs/clip-toy --export checkpoints/toy/clip_toy",
}
"""How to make each checkpoint (quoted in the missing-file error)."""


@dataclass(frozen=True)
class ModelSpec:
    """A named pipeline: its kind and the stems of its stages.

    Attributes:
        kind: ``"unclip"`` or ``"glide"``.
        prior: prior stem (unCLIP only).
        base: decoder / GLIDE base stem.
        upsampler: upsampler stem.
    """

    kind: str
    base: str
    upsampler: str
    prior: str | None = None


MODELS: dict[str, ModelSpec] = {
    "unclip-diffusion-prior": ModelSpec("unclip", "unclip_decoder_toy", "unclip_upsampler_toy", "unclip_prior_toy"),
    "unclip-ar-prior": ModelSpec("unclip", "unclip_decoder_toy", "unclip_upsampler_toy", "unclip_ar_prior_toy"),
    "glide": ModelSpec("glide", "glide_toy", "unclip_upsampler_toy"),
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_pipeline`, sorted."""
    return sorted(MODELS)


def create_pipeline(
    name: str,
    checkpoint_dir: str | Path = DEFAULT_CHECKPOINT_DIR,
    *,
    device: str = "cpu",
    upsampler: bool = True,
) -> GlidePipeline | UnclipPipeline:
    """Build a named pipeline from the checkpoints in ``checkpoint_dir`` (module docstring).

    Args:
        name: one of :func:`list_models`.
        checkpoint_dir: folder holding the stage checkpoints.
        device: where to put the networks.
        upsampler: load the upsampler stage (False: base-resolution pipeline, no upsampler file needed).

    Raises:
        ValueError: unknown name (with a did-you-mean), a missing or corrupt checkpoint file (naming it and the
            command that trains it), or stages trained on different CLIPs.
    """
    _check_name(name)
    spec, folder = MODELS[name], Path(checkpoint_dir)
    base, base_meta, base_sha = load_stage(folder, spec.base, device)
    up = load_stage(folder, spec.upsampler, device) if upsampler else None
    tokenizer = WordTokenizer.from_dict(base_meta["tokenizer"])
    hashes = [base_sha] + ([up[2]] if up else [])
    up_stage = up[0] if up else None
    if spec.kind == "glide":
        return GlidePipeline(
            base, tokenizer, up_stage, model_id=name, checkpoint_sha256="+".join(hashes), device=device
        )
    assert spec.prior is not None
    prior, prior_meta, prior_sha = load_prior(folder, spec.prior, device)
    clip = load_stage_clip(folder, base_meta, spec.base, device)
    if prior_meta.get("clip", {}).get("sha256") != base_meta["clip"]["sha256"]:
        raise ValueError(
            f"{spec.prior} and {spec.base} were trained on different CLIP checkpoints; retrain the prior with "
            f"--clip {folder / base_meta['clip']['file']}"
        )
    return UnclipPipeline(
        clip,
        tokenizer,
        prior,
        base,
        up_stage,
        model_id=name,
        checkpoint_sha256="+".join([prior_sha, *hashes]),
        device=device,
    )


def stage_stems(name: str, *, upsampler: bool = True) -> list[str]:
    """Checkpoint stems of a named pipeline in hash order (prior, base, upsampler).

    Raises:
        ValueError: unknown name.
    """
    _check_name(name)
    spec = MODELS[name]
    return [s for s in (spec.prior, spec.base, spec.upsampler if upsampler else None) if s is not None]


def pipeline_checkpoint_sha256(
    name: str, checkpoint_dir: str | Path = DEFAULT_CHECKPOINT_DIR, *, upsampler: bool = True
) -> str:
    """The ``checkpoint_sha256`` a pipeline will report, read from the ``.sha256`` files without loading weights.

    Raises:
        ValueError: unknown name or a missing checkpoint file (naming the command that trains it).
    """
    digests = []
    for stem in stage_stems(name, upsampler=upsampler):
        weights, _, sha_path = checkpoint_paths(Path(checkpoint_dir) / stem)
        if not weights.is_file() or not sha_path.is_file():
            missing = weights if not weights.is_file() else sha_path
            raise ValueError(
                f"checkpoint file {missing} not found; train it with: {TRAIN_COMMANDS.get(stem, 'harness train ...')}"
            )
        digests.append(sha_path.read_text(encoding="utf-8").split()[0])
    return "+".join(digests)


def _check_name(name: str) -> None:
    if name not in MODELS:
        close = difflib.get_close_matches(name, list(MODELS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (available: {', '.join(list_models())})")


def read_checkpoint(folder: Path, stem: str) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """A stage checkpoint's (state, meta, sha256); one clear ValueError when it is missing or corrupt."""
    weights = checkpoint_paths(folder / stem)[0]
    if not weights.is_file():
        command = TRAIN_COMMANDS.get(stem, "harness train ...")
        raise ValueError(f"checkpoint file {weights} not found; train it with: {command}")
    return load_checkpoint(folder / stem)


def _network(meta: Mapping[str, Any], state: Mapping[str, torch.Tensor], device: str, prefix: str = "") -> nn.Module:
    network = build_network(meta["network"])
    sub = {k[len(prefix) :]: v.float() for k, v in state.items() if k.startswith(prefix)}
    network.load_state_dict(sub, strict=True)
    return network.to(device).eval().requires_grad_(False)


def load_stage(folder: Path, stem: str, device: str) -> tuple[Stage, dict[str, Any], str]:
    """A UNet stage (GLIDE base, decoder, upsampler): ``(Stage, meta, sha256)``."""
    state, meta, digest = read_checkpoint(folder, stem)
    return Stage(_network(meta, state, device), DiffusionConfig.from_dict(meta["diffusion"])), meta, digest


def load_prior(folder: Path, stem: str, device: str) -> tuple[DiffusionPriorStage | ARPriorStage, dict[str, Any], str]:
    """The diffusion or AR prior of a checkpoint: ``(stage, meta, sha256)``."""
    state, meta, digest = read_checkpoint(folder, stem)
    if meta.get("kind") == "diffusion_prior":
        stage = DiffusionPriorStage(_network(meta, state, device), DiffusionConfig.from_dict(meta["diffusion"]))
        return stage, meta, digest
    if meta.get("kind") != "ar_prior":
        raise ValueError(f"{folder / stem} is not a prior checkpoint (kind {meta.get('kind')!r})")
    net = meta["network"]
    pca = PCAQuantizer(int(net["embed_dim"]), int(net["num_components"]), int(net["num_buckets"]))
    pca.load_state_dict({k[4:]: v.float() for k, v in state.items() if k.startswith("pca.")})
    dot = QuantileBuckets(1, int(net["num_dot_buckets"]))
    dot.load_state_dict({k[4:]: v.float() for k, v in state.items() if k.startswith("dot.")})
    return ARPriorStage(_network(meta, state, device, prefix="network."), pca, dot), meta, digest


def load_stage_clip(folder: Path, meta: Mapping[str, Any], stem: str, device: str) -> nn.Module:
    """The CLIP named by a stage's ``"clip"`` entry, verified against the recorded sha256."""
    ref = meta.get("clip")
    if not isinstance(ref, Mapping) or "file" not in ref:
        raise ValueError(f"{folder / stem}.json names no CLIP checkpoint; retrain it with harness train")
    _, clip_meta, digest = read_checkpoint(folder, str(ref["file"]))
    if digest != ref.get("sha256"):
        raise ValueError(
            f"{folder / ref['file']}.safetensors is not the CLIP {stem} was trained with (sha256 {digest[:12]}... "
            f"!= {str(ref.get('sha256'))[:12]}...); restore that CLIP or retrain {stem}"
        )
    return load_clip(clip_meta["model_config"], folder / str(ref["file"])).to(device)
