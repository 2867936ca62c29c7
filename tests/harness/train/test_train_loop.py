"""harness.train.loop and .stream: LR schedule, EMA warm-up, deterministic batches, exact resume."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import HarnessError
from harness.train.loop import Ema, OptimSpec, cosine_lr, make_adamw, train_loop
from harness.train.stream import ReplayStream


def test_cosine_lr_warms_up_then_decays_to_the_floor() -> None:
    spec = OptimSpec(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [cosine_lr(t, spec) for t in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert cosine_lr(110, spec) == pytest.approx(0.1)


def test_weight_decay_only_on_matrices() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    groups = make_adamw(model, OptimSpec(steps=1, weight_decay=0.3)).param_groups
    assert [p.ndim for p in groups[0]["params"]] == [2] and groups[0]["weight_decay"] == 0.3
    assert all(p.ndim == 1 for p in groups[1]["params"]) and groups[1]["weight_decay"] == 0.0


def test_ema_warm_up_forgets_the_initial_weights() -> None:
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = Ema(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    weight_of_init = 1.0
    for t in range(1000):
        ema.update(model)
        weight_of_init *= min(0.999, (1 + t) / (10 + t))
    assert float(ema.shadow["weight"]) == pytest.approx(1.0 - weight_of_init, abs=1e-6)
    assert weight_of_init < 0.01  # a plain 0.999 EMA would still hold 0.999**1000 = 37% of it


def test_replay_stream_is_deterministic_distinct_and_windowed() -> None:
    calls: list[int] = []

    def make(i: int) -> int:
        calls.append(i)
        return i * 10

    stream = ReplayStream(make, batch=8, fresh=2, window=16, seed=3)
    for step in range(30):
        indices, examples = stream(step)
        assert len(set(indices.tolist())) == 8
        assert examples == [10 * i for i in indices.tolist()]
        hi = max(8, (step + 1) * 2)
        assert indices[-2:].tolist() == [hi - 2, hi - 1] and indices.min() >= hi - 16
    assert len(calls) == len(set(calls))  # each example rendered once while it stays in the window
    again = ReplayStream(make, batch=8, fresh=2, window=16, seed=3)
    assert np.array_equal(again.indices(17), stream.indices(17))
    assert not np.array_equal(ReplayStream(make, 8, 2, 16, seed=4).indices(17), stream.indices(17))
    with pytest.raises(ValueError, match="window"):
        ReplayStream(make, batch=8, fresh=2, window=4)


def _regression(out: Path, steps: int, resume: bool, ema: float | None = 0.9) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    w_true = torch.tensor([[1.0, -2.0, 0.5]])

    def step_fn(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        x = torch.randn(16, 3, generator=torch.Generator().manual_seed(step))
        return ((model(x) - x @ w_true.T) ** 2).mean(), {}

    spec = OptimSpec(steps=steps, lr=0.1, warmup_steps=2, ema_decay=ema, checkpoint_every=3, log_every=1)
    exported: list[int] = []
    train_loop(
        model,
        step_fn,
        spec,
        out,
        run_config={"m": 1},
        export=lambda m, s: exported.append(s),
        resume=resume,
        desc="test",
    )
    assert exported and exported[-1] == steps
    return model


def test_resume_continues_exactly(tmp_path: Path) -> None:
    straight = _regression(tmp_path / "straight", steps=8, resume=False)
    run = tmp_path / "interrupted"
    _regression_interrupted(run, steps=8, stop_at=5)  # Ctrl-C during step 6 saves the state after step 5
    resumed = _regression(run, steps=8, resume=True)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 9))


def _regression_interrupted(out: Path, steps: int, stop_at: int) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    w_true = torch.tensor([[1.0, -2.0, 0.5]])

    def step_fn(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        if step == stop_at:
            raise KeyboardInterrupt
        x = torch.randn(16, 3, generator=torch.Generator().manual_seed(step))
        return ((model(x) - x @ w_true.T) ** 2).mean(), {}

    spec = OptimSpec(steps=steps, lr=0.1, warmup_steps=2, ema_decay=0.9, checkpoint_every=3, log_every=1)
    with pytest.raises(KeyboardInterrupt):
        train_loop(model, step_fn, spec, out, run_config={"m": 1}, export=lambda m, s: None, resume=False, desc="t")


def test_existing_state_needs_resume_and_the_same_run(tmp_path: Path) -> None:
    _regression(tmp_path, steps=3, resume=False)
    with pytest.raises(HarnessError, match="--resume"):
        _regression(tmp_path, steps=3, resume=False)
    model = torch.nn.Linear(3, 1)
    with pytest.raises(HarnessError, match="different model or data"):
        train_loop(
            model,
            lambda s: (model.weight.sum(), {}),
            OptimSpec(steps=4),
            tmp_path,
            run_config={"m": 2},
            export=lambda m, s: None,
            resume=True,
            desc="t",
        )
