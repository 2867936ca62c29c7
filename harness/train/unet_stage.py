"""The training glue every UNet stage shares (GLIDE base, unCLIP decoder, upsampler).

A stage trainer supplies ``batch_fn(step) -> (x0, cond)``: the clean images (B, 3, S, S) in [−1, 1] and the
network's conditioning keywords (condition-dropout masks included). This module draws t ~ U{0..T−1} and ε from
the step's generator, computes the process's per-sample loss (`GaussianDiffusion.training_losses`: ε/x0/v MSE,
plus λ·L_vlb with learned variance) under optional bf16 autocast, and runs `train_loop`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from harness.errors import HarnessError
from harness.train.diffusion import autocast, make_exporter, step_generator
from harness.train.loop import OptimSpec, train_loop
from models.checkpoints import CheckpointError, load_checkpoint
from models.diffusion import DiffusionConfig

if TYPE_CHECKING:
    from harness.train.glide import StageRunSpec

BatchFn = Callable[[int], tuple[torch.Tensor, dict[str, Any]]]


def diffusion_step_fn(
    network: torch.nn.Module,
    diffusion_config: DiffusionConfig,
    batch_fn: BatchFn,
    *,
    data_seed: int,
    device: torch.device,
    bf16: bool,
    stop_at: int | None = None,
) -> Callable[[int], tuple[torch.Tensor, dict[str, float]]]:
    """``step -> (loss, metrics)`` of one diffusion training step (module docstring).

    With ``stop_at``, the call for step ``stop_at`` raises ``KeyboardInterrupt`` instead, so `train_loop` saves a
    resumable state after exactly ``stop_at`` steps (to give two models the same budget, or to pause a run).
    """
    diffusion = diffusion_config.build()

    def step_fn(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        if stop_at is not None and step >= stop_at:
            raise KeyboardInterrupt(f"stopped at step {stop_at} (--stop-at)")
        x0, cond = batch_fn(step)
        gen = step_generator(data_seed, step, salt=1)
        t = torch.randint(0, diffusion.num_timesteps, (x0.shape[0],), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        cond = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in cond.items()}
        with autocast(device, bf16):
            terms = diffusion.training_losses(network, x0.to(device), t.to(device), noise.to(device), cond)
        metrics = {"mse": float(terms["mse"].mean().detach())}
        if "vb" in terms:
            metrics["vb"] = float(terms["vb"].mean().detach())
        return terms["loss"].float().mean(), metrics

    return step_fn


def warm_start(network: torch.nn.Module, path: str | Path) -> str:
    """Load the weights of checkpoint ``path`` into ``network`` (same architecture); returns their sha256.

    Raises:
        HarnessError: the checkpoint cannot be read, or its tensors do not match the network's names and shapes.
    """
    try:
        state, _, digest = load_checkpoint(path)
    except CheckpointError as exc:
        raise HarnessError(f"--init-from: {exc}") from None
    own = network.state_dict()
    mismatched = sorted(
        set(own) ^ set(state) | {k for k in set(own) & set(state) if own[k].shape != state[k].shape}
    )
    if mismatched:
        raise HarnessError(
            f"--init-from {path}: its weights do not fit the network ({len(mismatched)} tensors differ, e.g. "
            f"{mismatched[0]!r}); warm-start from a checkpoint of the same --config"
        )
    network.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return digest


def run_stage_training(
    network: torch.nn.Module,
    diffusion_config: DiffusionConfig,
    batch_fn: BatchFn,
    optim: OptimSpec,
    out_dir: Path,
    spec: StageRunSpec,
    *,
    name: str,
    meta: Mapping[str, Any],
    run_config: Mapping[str, Any],
    device: torch.device,
    grid_fn: Callable[[torch.nn.Module], torch.Tensor] | None,
    grid_columns: int,
    resume: bool,
) -> dict[str, Any]:
    """Train ``network`` on ``batch_fn``'s data; checkpoint ``out_dir/<name>`` (+ ``spec.export``) with ``meta``.

    ``spec`` supplies the data seed, bf16 autocast, export path and precision, grid interval and ``stop_at``.
    """
    data_seed, bf16, stop_at = spec.data.data_seed, spec.bf16, spec.stop_at
    export = Path(spec.export) if spec.export else None
    if spec.init_from is not None:
        warm_start(network, spec.init_from)
    network.to(device)
    step_fn = diffusion_step_fn(
        network, diffusion_config, batch_fn, data_seed=data_seed, device=device, bf16=bf16, stop_at=stop_at
    )
    export_fn = make_exporter(
        out_dir,
        name,
        {**meta, "run": dict(run_config)},
        export=export,
        fp16=spec.fp16,
        grid_fn=grid_fn,
        grid_every=spec.grid_every,
        grid_columns=grid_columns,
    )
    summary = train_loop(
        network, step_fn, optim, out_dir, run_config=run_config, export=export_fn, resume=resume, desc=f"train {name}"
    )
    targets = [out_dir / name] + ([export] if export is not None else [])
    return {**summary, "exports": [str(t) for t in targets]}
