"""The training loop every toy trainer shares: AdamW, cosine LR with warm-up, EMA, clipping, resume, logs.

- Optimiser: AdamW with decoupled weight decay (Loshchilov & Hutter), applied to matrices only: biases, norms,
  embeddings' 1-D parameters and CLIP's ``logit_scale`` are not decayed (open_clip's rule: ``p.ndim < 2``).
- Learning rate: linear warm-up over ``warmup_steps`` to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at
  ``steps``: ``lr_t = lr_min + (lr - lr_min) * (1 + cos(pi * (t - w) / (T - w))) / 2``.
- EMA of the weights (optional) with warm-up, ``decay_t = min(decay, (1 + t) / (10 + t))``, so early weights do
  not linger (a plain 0.999 EMA still holds 18% of the initial weights after 1,700 steps).
- Gradient clipping by global norm.
- Resume: ``DIR/state.pt`` holds model, EMA, optimiser and step, written atomically every ``checkpoint_every``
  steps, at the end, and on Ctrl-C or SIGTERM. Batches are a function of ``(seed, step)``, so a resumed run continues the
  same sequence of batches.
- ``DIR/log.jsonl``: one JSON object per logged step (step, loss, lr, metrics, elapsed seconds).
- Progress: a tqdm bar with loss and ETA.
- torchrun (DDP): given a `harness.distributed.DistContext`, every rank runs the same steps on its slice of the
  batch (the caller's ``step_fn`` slices and calls the DDP-wrapped model, so gradients arrive averaged over ranks);
  the optimiser, clipping and EMA then agree on every rank. Rank 0 alone writes ``state.pt``, ``run.json``, the log
  and the exports, and logs loss and metrics averaged over ranks. Every rank resumes from the same ``state.pt``.
  A trainer that passes no context is refused under torchrun rather than run N times over.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from harness import distributed
from harness.distributed import DistContext
from harness.errors import HarnessError

STATE_FILE = "state.pt"
LOG_FILE = "log.jsonl"

StepFn = Callable[[int], tuple[torch.Tensor, dict[str, float]]]
ExportFn = Callable[[torch.nn.Module, int], None]


@dataclass(frozen=True)
class OptimSpec:
    """Optimisation settings of one training run.

    Attributes:
        steps: total optimiser steps ``T``.
        lr: peak learning rate.
        weight_decay: decoupled weight decay of AdamW (matrices only).
        warmup_steps: linear warm-up steps ``w``.
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        betas: AdamW's ``(beta1, beta2)``.
        grad_clip: max global gradient norm (0 disables clipping).
        ema_decay: EMA decay (None: no EMA; the exported weights are then the raw ones).
        checkpoint_every: steps between resumable states (and exports).
        log_every: steps between JSONL log lines.
    """

    steps: int
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    ema_decay: float | None = None
    checkpoint_every: int = 250
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.steps < 1 or self.lr <= 0 or self.warmup_steps < 0 or self.checkpoint_every < 1 or self.log_every < 1:
            raise HarnessError(f"invalid training settings {self}: steps, lr and intervals must be positive")


def cosine_lr(step: int, spec: OptimSpec) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then cosine decay (module docstring)."""
    if step < spec.warmup_steps:
        return spec.lr * (step + 1) / spec.warmup_steps
    span = max(1, spec.steps - spec.warmup_steps)
    progress = min(1.0, (step - spec.warmup_steps) / span)
    lr_min = spec.lr * spec.min_lr_ratio
    return lr_min + (spec.lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_adamw(model: torch.nn.Module, spec: OptimSpec) -> torch.optim.AdamW:
    """AdamW with weight decay on parameters of 2 or more dimensions only (module docstring)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas)


class Ema:
    """Exponential moving average of a module's floating-point state, with warm-up (module docstring)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """``shadow <- d_t * shadow + (1 - d_t) * weights`` with ``d_t = min(decay, (1 + t) / (10 + t))``."""
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                self.shadow[name].mul_(d).add_(value.detach(), alpha=1 - d)
            else:
                self.shadow[name].copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The EMA's resumable state."""
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from `state_dict`."""
        self.updates = int(state["updates"])
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}


def train_loop(
    model: torch.nn.Module,
    step_fn: StepFn,
    spec: OptimSpec,
    out_dir: Path,
    *,
    run_config: Mapping[str, Any],
    export: ExportFn,
    resume: bool,
    desc: str,
    dist: DistContext | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``spec.steps`` optimiser steps; returns a summary (steps, final loss, seconds).

    Args:
        model: the module to train (its parameters are updated in place).
        step_fn: ``step -> (loss, metrics)`` for batch ``step`` (deterministic in ``step``), with the graph built.
        spec: optimisation settings.
        out_dir: run folder holding ``state.pt``, ``log.jsonl`` and the exports.
        run_config: JSON-serialisable description of the run; a resumed run must describe the same model and data.
        export: called as ``export(weights_module, step)`` at every checkpoint and at the end, with the EMA weights
            loaded into a copy when an EMA is kept.
        resume: continue from ``out_dir/state.pt`` (start fresh when there is none).
        desc: progress-bar label (e.g. ``train glide``).
        dist: the torchrun context when ``step_fn`` runs a DDP model on this rank's slice of the batch (module
            docstring); None for one process, which is refused when launched by torchrun.

    Raises:
        HarnessError: ``out_dir`` holds a state but ``resume`` is false, the state is of a different run, or
            ``out_dir`` cannot be created.
    """
    if dist is None:
        distributed.require_single_process(f"harness {desc}")
    ctx = dist or distributed.SINGLE
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot create the training folder {out_dir} ({exc.strerror}); choose a writable --out") from None
    state_path = out_dir / STATE_FILE
    optimizer = make_adamw(model, spec)
    ema = Ema(model, spec.ema_decay) if spec.ema_decay else None
    start, elapsed = _restore(state_path, model, optimizer, ema, run_config, resume)
    if ctx.is_main:
        (out_dir / "run.json").write_text(json.dumps({**run_config, "optim": asdict(spec)}, indent=2) + "\n")
        _truncate_log(out_dir / LOG_FILE, start)
    log = (out_dir / LOG_FILE).open("a", encoding="utf-8") if ctx.is_main else None
    model.train()
    t0 = time.monotonic() - elapsed
    loss_value = float("nan")
    completed = start
    bar = tqdm(
        range(start, spec.steps), desc=desc, initial=start, total=spec.steps, dynamic_ncols=True, disable=not ctx.is_main
    )
    previous_handler = _stop_on_sigterm()
    try:
        for step in bar:
            lr = cosine_lr(step, spec)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, metrics = step_fn(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip or float("inf"))
            optimizer.step()
            if ema is not None:
                ema.update(model)
            completed = step + 1
            loss_value, metrics = _mean_over_ranks(ctx, loss, metrics)
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
            if log is not None and (completed % spec.log_every == 0 or completed == spec.steps):
                record = {"step": completed, "loss": loss_value, "lr": lr, "grad_norm": float(grad_norm), **metrics}
                log.write(json.dumps({**record, "elapsed_s": round(time.monotonic() - t0, 2)}) + "\n")
                log.flush()
            if ctx.is_main and (completed % spec.checkpoint_every == 0 or completed == spec.steps):
                _checkpoint(state_path, model, optimizer, ema, completed, time.monotonic() - t0, run_config, export)
    except KeyboardInterrupt:
        if ctx.is_main:
            _checkpoint(state_path, model, optimizer, ema, completed, time.monotonic() - t0, run_config, export)
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        bar.close()
        if log is not None:
            log.close()
    return {"steps": spec.steps, "final_loss": loss_value, "seconds": round(time.monotonic() - t0, 1)}


def _mean_over_ranks(ctx: DistContext, loss: torch.Tensor, metrics: dict[str, float]) -> tuple[float, dict[str, float]]:
    """The step's loss and metrics as floats, averaged over the ranks' batch slices (as they are for one process)."""
    if not ctx.is_distributed:
        return float(loss.detach()), metrics
    values = torch.tensor([float(loss.detach()), *metrics.values()], dtype=torch.float64)
    mean = distributed.all_reduce_mean(ctx, values).tolist()
    return mean[0], dict(zip(metrics, mean[1:], strict=True))


def _stop_on_sigterm() -> Any:
    """Make SIGTERM (``kill PID``) raise KeyboardInterrupt, so a stopped run saves its state; returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _restore(
    state_path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: Ema | None,
    run_config: Mapping[str, Any],
    resume: bool,
) -> tuple[int, float]:
    """Load ``state.pt`` into model/optimizer/EMA when resuming; returns ``(start_step, elapsed_seconds)``."""
    if not state_path.is_file():
        return 0, 0.0
    if not resume:
        raise HarnessError(f"{state_path.parent} already holds a training state; pass --resume or choose a new --out")
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    if json.loads(state["run_config"]) != json.loads(json.dumps(dict(run_config))):
        raise HarnessError(
            f"{state_path} belongs to a run with different model or data settings; resume with the same "
            "settings (see run.json there) or choose a new --out"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    return int(state["step"]), float(state.get("elapsed_s", 0.0))


def _truncate_log(path: Path, start: int) -> None:
    """Drop log lines of steps after ``start`` (logged by a run killed after its last saved state)."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= start]
    if len(kept) != len(lines):
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _checkpoint(
    state_path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: Ema | None,
    step: int,
    elapsed: float,
    run_config: Mapping[str, Any],
    export: ExportFn,
) -> None:
    """Write the resumable state atomically, then the exported weights (EMA when kept)."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "step": step,
        "elapsed_s": elapsed,
        "run_config": json.dumps(dict(run_config)),
    }
    tmp = state_path.with_name(state_path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, state_path)
    if ema is None:
        export(model, step)
        return
    raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(ema.shadow)
    try:
        export(model, step)
    finally:
        model.load_state_dict(raw)
