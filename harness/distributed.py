"""Scale-out under ``torchrun``: the process context, deterministic sharding and the few collectives the harness uses.

``torchrun --nproc_per_node N -m harness.cli generate|score|train ...`` starts N copies of a command with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``) in their environment. `session`
reads them, joins the process group (``gloo`` for CPU work; ``cpu:gloo,cuda:nccl`` when the work runs on CUDA, each
rank on ``cuda:<LOCAL_RANK>``) and leaves it on exit. Without those variables, or with ``WORLD_SIZE=1``, the context
is `SINGLE` and every helper here is a no-op (``shard`` returns everything, ``all_gather_object`` a one-element list),
so single-process behaviour does not change.

Work is split by `shard`: round-robin over a list in its fixed (plan) order, ``items[rank::world]``, so the split
depends only on the list, the rank and the world size. Results come back in rank order (`all_gather_object`), which
callers use to restore the plan order exactly: outputs never depend on which rank finished first.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from harness.errors import HarnessError

if TYPE_CHECKING:  # torch is imported where a collective runs, so importing this module (e.g. for --help) is cheap
    import torch

T = TypeVar("T")

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) job.

    Attributes:
        rank: global rank ``0 .. world_size - 1``.
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the compute device of this rank, as a torch device string (``cuda:<local_rank>`` for CUDA work under
            torchrun, else ``cpu``).
        backend: the process-group backend, None for a single process (no process group).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes shared files, stores results and prints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when more than one process takes part (a process group is joined)."""
        return self.world_size > 1


SINGLE = DistContext()
"""The context of a plain, single-process run."""


def torchrun_env(environ: Mapping[str, str] | None = None) -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` when launched by torchrun with more than one process, else None.

    Raises:
        HarnessError: the variables are partly set or inconsistent (e.g. ``RANK >= WORLD_SIZE``).
    """
    env = os.environ if environ is None else environ
    present = [name for name in TORCHRUN_VARIABLES if name in env]
    if not present:
        return None
    if len(present) != len(TORCHRUN_VARIABLES):
        missing = ", ".join(n for n in TORCHRUN_VARIABLES if n not in env)
        raise HarnessError(f"torchrun environment is incomplete ({missing} unset); launch with torchrun or unset RANK")
    try:
        rank, world, local = (int(env[name]) for name in TORCHRUN_VARIABLES)
    except ValueError:
        values = ", ".join(f"{n}={env[n]}" for n in TORCHRUN_VARIABLES)
        raise HarnessError(f"torchrun variables must be integers ({values}); launch with torchrun") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise HarnessError(f"inconsistent torchrun variables RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return (rank, world, local) if world > 1 else None


def _compute_device(device: str, local_rank: int | None) -> str:
    """The torch device string of this process's work.

    ``auto`` is CUDA when available (under torchrun: when every process of this machine gets a GPU of its own,
    ``LOCAL_WORLD_SIZE <= device_count``, so all ranks agree), else CPU. Under torchrun (``local_rank`` given) CUDA
    means ``cuda:<local_rank>``.

    Raises:
        HarnessError: CUDA asked for under torchrun with fewer visible GPUs than processes on this machine.
    """
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1 if local_rank is not None else 1))
    if device == "auto":
        device = "cuda" if gpus >= per_machine and gpus > 0 else "cpu"
    resolved = torch.device(device)
    if resolved.type != "cuda" or local_rank is None:
        return str(resolved)
    if gpus < per_machine:
        raise HarnessError(
            f"torchrun starts {per_machine} process(es) on this machine but {gpus} GPU(s) are visible; start at "
            "most one process per GPU (torchrun --nproc_per_node) or use --device cpu"
        )
    return f"cuda:{local_rank}"


def init(device: str = "cpu") -> DistContext:
    """The context of this process, joining the process group first when launched by torchrun.

    Args:
        device: the compute device of the work (``cpu``, ``cuda``, ``auto``); CUDA work gets the ``nccl`` backend
            for CUDA tensors (``gloo`` still carries CPU objects) and ``cuda:<LOCAL_RANK>`` as the current device.

    Returns:
        A context without process group outside torchrun (or with ``WORLD_SIZE=1``); else the joined rank's context.
        Calling it again while the group is up returns the same rank's context without joining again.
    """
    env = torchrun_env()
    if env is None:
        return DistContext(device=_compute_device(device, None))
    import torch

    rank, world, local = env
    compute = _compute_device(device, local)
    if compute.startswith("cuda"):
        torch.cuda.set_device(torch.device(compute))
    if not torch.distributed.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if compute.startswith("cuda") else "gloo"
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world)
    backend_name = str(torch.distributed.get_backend())
    return DistContext(rank=rank, world_size=world, local_rank=local, device=compute, backend=backend_name)


def _joined() -> bool:
    """Whether this process is in a process group (without importing torch when nobody imported it yet)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized()


def teardown() -> None:
    """Leave the process group (no-op when none was joined)."""
    if _joined():
        import torch

        torch.distributed.destroy_process_group()


@contextlib.contextmanager
def session(device: str = "cpu") -> Iterator[DistContext]:
    """`init` on entry; on exit leaves the process group if this call joined it (an enclosing session keeps it)."""
    joined_before = _joined()
    ctx = init(device)
    try:
        yield ctx
    finally:
        if not joined_before:
            teardown()


def require_single_process(what: str) -> None:
    """Refuse to run ``what`` as N uncoordinated copies under torchrun.

    Raises:
        HarnessError: when launched by torchrun with more than one process.
    """
    if torchrun_env() is not None:
        raise HarnessError(
            f"{what} does not run under torchrun; run it as one process (torchrun works for harness generate, "
            "harness score and the UNet trainers: harness train glide|decoder|upsampler)"
        )


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Rank ``rank``'s share of ``items``: every ``world_size``-th item from position ``rank`` (round-robin).

    Deterministic in (items, rank, world_size); the shares of all ranks partition ``items`` and each keeps the
    items' order, so ``items[i]`` lands on rank ``i % world_size`` at position ``i // world_size``.

    Raises:
        ValueError: ``rank`` outside ``0 .. world_size - 1``.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    return list(items[rank::world_size])


def unshard(shares: Sequence[Sequence[T]]) -> list[T]:
    """Inverse of `shard`: interleave the ranks' shares (in rank order) back into the original order."""
    world = len(shares)
    total = sum(len(s) for s in shares)
    return [shares[i % world][i // world] for i in range(total)]


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for a single process)."""
    if ctx.is_distributed:
        import torch

        torch.distributed.barrier()


def all_gather_object(ctx: DistContext, obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` for a single process."""
    if not ctx.is_distributed:
        return [obj]
    import torch

    gathered: list[Any] = [None] * ctx.world_size
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(ctx: DistContext, obj: T) -> T:
    """Rank 0's ``obj`` on every rank (other ranks' argument is ignored); ``obj`` itself for a single process."""
    if not ctx.is_distributed:
        return obj
    import torch

    box: list[Any] = [obj if ctx.is_main else None]
    torch.distributed.broadcast_object_list(box, src=0)
    result: T = box[0]
    return result


def on_main(ctx: DistContext, fn: Callable[[], T]) -> T | None:
    """``fn()`` on rank 0 only (other ranks get None), which doubles as a barrier; a `HarnessError` it raises is
    raised on every rank with the same message, so all of them stop with one clear line instead of a broken pipe.
    """
    if not ctx.is_distributed:
        return fn()
    result: T | None = None
    error: HarnessError | None = None
    if ctx.is_main:
        try:
            result = fn()
        except HarnessError as exc:
            error = exc
    message = broadcast_object(ctx, None if error is None else str(error))
    if error is not None:
        raise error
    if message is not None:
        raise HarnessError(f"rank 0 stopped: {message}")
    return result


def from_main(ctx: DistContext, fn: Callable[[], T]) -> T:
    """``fn()`` computed on rank 0 alone (errors shared as in `on_main`), its picklable result sent to every rank."""
    return cast(T, broadcast_object(ctx, on_main(ctx, fn)))


def all_reduce_mean(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Element-wise mean over ranks of a float tensor, as a new tensor on the input's device (the input for one
    process). The backend sums (in an order fixed for a fixed world size), then the sum is divided by ``world_size``.
    """
    if not ctx.is_distributed:
        return values
    import torch

    out = values.detach().to("cpu", copy=True)  # CPU tensors travel by gloo, also in a cpu:gloo,cuda:nccl group
    torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM)
    return (out / ctx.world_size).to(values.device)


def is_main_process() -> bool:
    """False only on a torchrun rank other than 0 (for output after the process group is left)."""
    env = torchrun_env()
    return env is None or env[0] == 0


def main_print(ctx: DistContext, *args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only."""
    if ctx.is_main:
        print(*args, **kwargs)


def show_progress(ctx: DistContext, progress: bool) -> bool:
    """Whether this rank draws progress bars: only rank 0, and only when asked."""
    return progress and ctx.is_main
