"""Scale-out under torchrun: 1 and 2 processes (gloo, CPU) give the same images, manifest, metrics and weights.

One ``torchrun --nproc_per_node 2`` launch runs this file as a worker (``__main__`` below): it joins the process
group once and then runs the real CLI commands (`harness generate` on a fresh and on a half-finished run dir,
`harness score`, `harness train glide` paused and resumed) and a sharded `FrechetDistance` sync. The same work runs
in-process as one process, and the module's tests compare the two.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import distributed
from harness.cli import main
from harness.errors import HarnessError
from harness.rundir import RunDir

REPO = Path(__file__).resolve().parents[2]
FD_DIM, FD_ROWS = 6, 41

CONFIG = """
name = "dist"
seed = 3
out_dir = "unused"

[prompts]
source = "toyworld"
split = "test"
n = 3
seed = 0

[[systems]]
id = "reference"
generator = "reference"
options = { size = 32 }

[[systems]]
id = "degraded"
generator = "degraded"
options = { blur = 1.0, noise = 0.05, size = 32 }

[sampling]
seeds_per_prompt = 3
batch_size = 2

[metrics]
names = ["fd"]
extractor = "pixels-g2"
reference = "toyworld"
reference_per_prompt = 3
bootstrap = 20
"""

TINY_GLIDE = {
    "kind": "unet",
    "image_size": 8,
    "model_channels": 8,
    "channel_mult": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [4],
    "num_head_channels": 8,
    "dropout": 0.0,
    "learn_sigma": True,
    "text_encoder": {"vocab_size": 128, "context_length": 24, "width": 16, "layers": 1, "heads": 2, "causal": False},
    "clip_embed_dim": 0,
    "super_res": False,
}


def train_args(out: Path, config: Path, *extra: str) -> list[str]:
    """`harness train glide` on the tiny UNet: 3 steps of batch 4 on 32×32 renders, float32 export, EMA on."""
    return [
        "train", "glide", "--out", str(out), "--config", str(config), "--steps", "3", "--batch", "4",
        "--fresh", "4", "--window", "8", "--warmup", "1", "--ema", "0.9", "--checkpoint-every", "1",
        "--grid-every", "0", "--fp32", "--device", "cpu", *extra,
    ]  # fmt: skip


def fd_features() -> tuple[np.ndarray, np.ndarray]:
    """Fixed reference and sample features for the FD sync check."""
    rng = np.random.default_rng(7)
    return rng.normal(size=(FD_ROWS, FD_DIM)), rng.normal(0.3, 1.2, size=(FD_ROWS + 6, FD_DIM))


def fd_stats(ctx: distributed.DistContext) -> dict[str, np.ndarray]:
    """Each rank streams its round-robin share into `FrechetDistance`; the synced statistics and FD."""
    from eval_protocols.metrics.fid import FrechetDistance

    real, fake = fd_features()
    metric = FrechetDistance(FD_DIM)
    for batch in np.array_split(distributed.shard(real, ctx.rank, ctx.world_size), 3):
        metric.update(batch, real=True)
    for batch in np.array_split(distributed.shard(fake, ctx.rank, ctx.world_size), 2):
        metric.update(batch, real=False)
    fd = float(metric.compute())
    with metric.sync_context():
        ref, gen = metric.stats(real=True), metric.stats(real=False)
    from_stats = FrechetDistance(FD_DIM)  # reference statistics set on every rank: kept, not summed over ranks
    from_stats.set_reference_stats(ref)
    from_stats.update(distributed.shard(fake, ctx.rank, ctx.world_size), real=False)
    fd_from_stats = float(from_stats.compute())
    return {"fd": np.array(fd), "fd_from_stats": np.array(fd_from_stats), "mu_real": ref.mu, "sigma_real": ref.sigma,
            "mu_fake": gen.mu, "sigma_fake": gen.sigma, "n_real": np.array(ref.n), "n_fake": np.array(gen.n)}


def run_all(ctx: distributed.DistContext, work: Path, config: Path, tiny: Path) -> dict[str, int]:
    """Every command of the comparison, in this process (one rank of torchrun, or alone); their exit codes."""
    codes = {}
    for name in ("fresh", "resumed"):
        codes[f"generate-{name}"] = main(["generate", str(config), "--no-progress", "--set", f"out_dir={work / name}"])
    db = f"sqlite:///{work / 'store.db'}"
    codes["score"] = main(["score", str(config), "--no-progress", "--db", db, "--set", f"out_dir={work / 'fresh'}"])
    stats = fd_stats(ctx)
    if ctx.is_main:
        np.savez(work / "fd.npz", **stats)
    codes["train-paused"] = main(train_args(work / "train", tiny, "--stop-at", "2"))
    codes["train-resumed"] = main(train_args(work / "train", tiny, "--resume"))
    return codes


def half_finished_run(source: Path, target: Path) -> None:
    """A copy of a finished run dir as a crashed torchrun run leaves it: a manifest prefix, two parts, a torn line."""
    shutil.copytree(source, target)
    lines = (source / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    run = RunDir(target)
    run.manifest_path.write_bytes(b"".join(lines[:3]))
    run.part_path(1).write_bytes(lines[7] + lines[4])
    run.part_path(0).write_bytes(lines[5] + lines[9][:40])  # crash in mid-append
    for line in (lines[8], lines[12]):  # units recorded nowhere: one PNG written before the crash, one not
        (target / json.loads(line)["path"]).unlink()


@dataclass(frozen=True)
class Outcome:
    """The two sides of the comparison."""

    one: Path
    two: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    root = tmp_path_factory.mktemp("dist")
    config, tiny = root / "dist.toml", root / "tiny_glide.json"
    config.write_text(CONFIG)
    tiny.write_text(json.dumps(TINY_GLIDE))
    one, two = root / "one", root / "two"
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HOME", str(one / "home"))
        # the half-finished dir needs a finished one to cut down: make the fresh run first, alone
        assert main(["generate", str(config), "--no-progress", "--set", f"out_dir={one / 'fresh'}"]) == 0
        [run_dir] = (one / "fresh").iterdir()
        half_finished_run(run_dir, one / "resumed" / run_dir.name)
        half_finished_run(run_dir, two / "resumed" / run_dir.name)
        codes = run_all(distributed.SINGLE, one, config, tiny)
    assert codes == {"generate-fresh": 0, "generate-resumed": 0, "score": 0, "train-paused": 130, "train-resumed": 0}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HARNESS_HOME": str(two / "home"), "PYTHONPATH": str(REPO)}
    for name in distributed.TORCHRUN_VARIABLES:
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
         __file__, str(two), str(config), str(tiny)],
        check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    yield Outcome(one, two)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["fresh", "resumed"])
def test_generation_is_byte_identical_to_one_process(outcome: Outcome, name: str) -> None:
    [run_one] = (outcome.one / name).iterdir()
    [run_two] = (outcome.two / name).iterdir()
    one, two = tree_bytes(run_one / "images"), tree_bytes(run_two / "images")
    assert len(one) == 18 and one == two
    manifest = (run_one / "manifest.jsonl").read_bytes()
    assert (run_two / "manifest.jsonl").read_bytes() == manifest and len(manifest.splitlines()) == 18
    assert not RunDir(run_two).part_paths() and not RunDir(run_one).part_paths()
    if name == "resumed":  # and equal to the uninterrupted run
        [fresh] = (outcome.one / "fresh").iterdir()
        assert manifest == (fresh / "manifest.jsonl").read_bytes()


def test_scores_are_identical_to_one_process(outcome: Outcome) -> None:
    from harness.storage.repository import Repository

    def results(side: Path) -> list[tuple[object, ...]]:
        [run] = (side / "fresh").iterdir()
        repo = Repository.open(f"sqlite:///{side / 'store.db'}")
        rows = repo.load_metric_results(run.name)
        return [(r.metric, r.model_id, r.value, r.ci_low, r.ci_high, r.n, r.inputs_hash) for r in rows]

    one = results(outcome.one)
    assert len(one) == 2 and all(r[2] > 0 for r in one)
    assert results(outcome.two) == one  # exact: the same features, gathered in order, one computation on rank 0
    cache = outcome.two / "home" / "features"
    assert len(list(cache.rglob("*.npy"))) == 18 + 9  # both ranks' shares reached the shared cache


def test_synced_fd_statistics_match_one_process(outcome: Outcome) -> None:
    one = np.load(outcome.one / "fd.npz")
    two = np.load(outcome.two / "fd.npz")
    real, _fake = fd_features()
    assert int(two["n_real"]) == FD_ROWS and int(two["n_fake"]) == FD_ROWS + 6
    np.testing.assert_allclose(two["mu_real"], real.mean(axis=0), rtol=0, atol=1e-14)
    np.testing.assert_allclose(two["sigma_real"], np.cov(real, rowvar=False), rtol=0, atol=1e-13)
    for key in ("mu_real", "sigma_real", "mu_fake", "sigma_fake"):
        np.testing.assert_allclose(two[key], one[key], rtol=0, atol=1e-13)  # float64 round-off: sums grouped by rank
    assert float(two["fd"]) == pytest.approx(float(one["fd"]), rel=1e-12, abs=1e-12)
    assert float(two["fd_from_stats"]) == pytest.approx(float(one["fd"]), rel=1e-12)  # stats were not summed twice


def test_ddp_training_matches_one_process(outcome: Outcome) -> None:
    from models.checkpoints import load_checkpoint

    one, meta, _ = load_checkpoint(outcome.one / "train" / "glide_toy")
    two, meta_two, _ = load_checkpoint(outcome.two / "train" / "glide_toy")
    assert meta["trained_steps"] == meta_two["trained_steps"] == 3
    assert one.keys() == two.keys()
    worst = max(float((one[k].double() - two[k].double()).abs().max()) for k in one)
    assert worst < 1e-5, worst  # round-off only: batched kernels and the gradient all-reduce add in another order
    assert any(not torch.equal(one[k], torch.zeros_like(one[k])) for k in one)
    log_one = [json.loads(line) for line in (outcome.one / "train" / "log.jsonl").read_text().splitlines()]
    log_two = [json.loads(line) for line in (outcome.two / "train" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_two] == [r["step"] for r in log_one] == [3]  # written once, by rank 0
    assert log_two[0]["loss"] == pytest.approx(log_one[0]["loss"], rel=1e-5)  # averaged over the ranks' slices


def test_shard_partitions_in_round_robin_order() -> None:
    items = list(range(11))
    shares = [distributed.shard(items, r, 3) for r in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert distributed.unshard(shares) == items
    assert distributed.shard(items, 0, 1) == items
    with pytest.raises(ValueError, match="rank 3"):
        distributed.shard(items, 3, 3)


def test_torchrun_environment_is_read_and_checked() -> None:
    assert distributed.torchrun_env({}) is None
    assert distributed.torchrun_env({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}) is None
    assert distributed.torchrun_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (1, 4, 1)
    with pytest.raises(HarnessError, match="LOCAL_RANK unset"):
        distributed.torchrun_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(HarnessError, match="inconsistent"):
        distributed.torchrun_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    ctx = distributed.init("cpu")  # not under torchrun: a single process, no process group
    assert ctx == distributed.SINGLE and not torch.distributed.is_initialized()
    assert distributed.all_gather_object(ctx, 5) == [5] and distributed.broadcast_object(ctx, 5) == 5


def test_auto_device_gives_every_rank_of_a_machine_a_gpu_or_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert distributed._compute_device("auto", 1) == "cuda:1"
    assert distributed._compute_device("cuda", 0) == "cuda:0"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")  # one GPU short: all ranks agree on the CPU (and on gloo)
    assert [distributed._compute_device("auto", r) for r in range(3)] == ["cpu"] * 3
    with pytest.raises(HarnessError, match="3 process\\(es\\) on this machine but 2 GPU"):
        distributed._compute_device("cuda", 2)


def test_commands_without_torchrun_support_refuse_to_run_n_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "dist.toml"
    config.write_text(CONFIG)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(["run", str(config), "--no-progress", "--set", f"out_dir={tmp_path / 'runs'}"]) == 2
    assert "does not run under torchrun" in capsys.readouterr().err
    assert main(["train", "clip", "--out", str(tmp_path / "clip"), "--steps", "1"]) == 2
    assert "harness train clip does not run under torchrun" in capsys.readouterr().err


def test_left_over_parts_are_merged_in_plan_order_by_one_process(tmp_path: Path) -> None:
    config = tmp_path / "dist.toml"
    config.write_text(CONFIG)
    assert main(["generate", str(config), "--no-progress", "--set", f"out_dir={tmp_path / 'a'}"]) == 0
    [finished] = (tmp_path / "a").iterdir()
    half_finished_run(finished, tmp_path / "b" / finished.name)
    assert main(["generate", str(config), "--no-progress", "--set", f"out_dir={tmp_path / 'b'}"]) == 0
    resumed = tmp_path / "b" / finished.name
    assert (resumed / "manifest.jsonl").read_bytes() == (finished / "manifest.jsonl").read_bytes()
    assert tree_bytes(resumed / "images") == tree_bytes(finished / "images")
    assert not RunDir(resumed).part_paths()


if __name__ == "__main__":  # one torchrun rank: python -m torch.distributed.run ... test_distributed.py WORK CONFIG TINY
    torch.set_num_threads(1)
    work_dir, config_path, tiny_path = (Path(a) for a in sys.argv[1:4])
    context = distributed.init("cpu")
    try:
        exit_codes = run_all(context, work_dir, config_path, tiny_path)
    finally:
        distributed.teardown()
    expected = {"generate-fresh": 0, "generate-resumed": 0, "score": 0, "train-paused": 130, "train-resumed": 0}
    print(f"rank {context.rank}: {exit_codes}", file=sys.stderr)
    sys.exit(0 if exit_codes == expected else 1)
