"""The training glue every UNet stage shares (GLIDE base, unCLIP decoder, upsampler).

A stage trainer supplies ``batch_fn(step) -> (x0, cond)``: the clean images (B, 3, S, S) in [−1, 1] and the
network's conditioning keywords (condition-dropout masks included). This module draws t ~ U{0..T−1} and ε from
the step's generator, computes the process's per-sample loss (`GaussianDiffusion.training_losses`: ε/x0/v MSE,
plus λ·L_vlb with learned variance) under optional bf16 autocast, and runs `train_loop`.

Under torchrun the network is wrapped in ``DistributedDataParallel`` (one process per GPU, ``cuda:<LOCAL_RANK>``,
or gloo on CPU). Every rank builds the whole step's batch, timesteps and noise, deterministic in the step, and takes
its contiguous slice of ``B / world`` examples, so the global batch stays ``--batch`` (which must divide evenly) and
the averaged gradient is the one-process gradient up to float round-off. The weights after N steps match a
one-process run to round-off, not bit for bit (batched kernels and the gradient all-reduce add in another order).
Dropout draws its masks from each rank's global RNG, so configs with ``dropout > 0`` match in distribution only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from harness import distributed
from harness.errors import HarnessError
from harness.train.diffusion import autocast, make_exporter, step_generator, warm_start
from harness.train.loop import OptimSpec, train_loop
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
    rank_slice: tuple[int, int] = (0, 1),
) -> Callable[[int], tuple[torch.Tensor, dict[str, float]]]:
    """``step -> (loss, metrics)`` of one diffusion training step (module docstring).

    With ``stop_at``, the call for step ``stop_at`` raises ``KeyboardInterrupt`` instead, so `train_loop` saves a
    resumable state after exactly ``stop_at`` steps (to give two models the same budget, or to pause a run).
    With ``rank_slice = (rank, world)``, the loss is the mean over this rank's contiguous ``1/world`` of the batch.
    """
    diffusion = diffusion_config.build()

    def step_fn(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        if stop_at is not None and step >= stop_at:
            raise KeyboardInterrupt(f"stopped at step {stop_at} (--stop-at)")
        x0, cond = batch_fn(step)
        gen = step_generator(data_seed, step, salt=1)
        t = torch.randint(0, diffusion.num_timesteps, (x0.shape[0],), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        if rank_slice[1] > 1:
            x0, t, noise, cond = _take_slice(x0, t, noise, cond, *rank_slice)
        cond = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in cond.items()}
        with autocast(device, bf16):
            terms = diffusion.training_losses(network, x0.to(device), t.to(device), noise.to(device), cond)
        metrics = {"mse": float(terms["mse"].mean().detach())}
        if "vb" in terms:
            metrics["vb"] = float(terms["vb"].mean().detach())
        return terms["loss"].float().mean(), metrics

    return step_fn


def _take_slice(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, cond: dict[str, Any], rank: int, world: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Rows ``[rank·B/world, (rank+1)·B/world)`` of the batch; conditioning tensors with a leading batch axis too."""
    size = x0.shape[0] // world
    rows = slice(rank * size, (rank + 1) * size)
    batch = x0.shape[0]
    cond = {k: v[rows] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == batch else v for k, v in cond.items()}
    return x0[rows], t[rows], noise[rows], cond


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
    with distributed.session(str(device)) as ctx:
        if ctx.is_distributed:
            if spec.batch % ctx.world_size:
                raise HarnessError(
                    f"--batch {spec.batch} does not split evenly over {ctx.world_size} processes; "
                    f"use a multiple of {ctx.world_size}"
                )
            device = torch.device(ctx.device)
        network.to(device)
        model = _ddp(network, device) if ctx.is_distributed else network
        step_fn = diffusion_step_fn(
            model, diffusion_config, batch_fn, data_seed=data_seed, device=device, bf16=bf16, stop_at=stop_at,
            rank_slice=(ctx.rank, ctx.world_size),
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
            network, step_fn, optim, out_dir, run_config=run_config, export=export_fn, resume=resume,
            desc=f"train {name}", dist=ctx,
        )
    targets = [out_dir / name] + ([export] if export is not None else [])
    return {**summary, "exports": [str(t) for t in targets]}


def _ddp(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``network`` (already on ``device``) in DistributedDataParallel; rank 0's initial weights win."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(network, device_ids=[device] if device.type == "cuda" else None)
