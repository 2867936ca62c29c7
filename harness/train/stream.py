"""A deterministic stream of rendered training examples with a replay window.

Rendering a toy-world scene costs about 4 ms on one core, more than a tiny network's training step wants to wait
for a batch of 128. So each step renders only ``fresh`` new examples and fills the rest of the batch with
examples drawn (without replacement) from the most recent ``window`` ones, which stay rendered in memory. Every
example is still seen about ``batch / fresh`` times in all, in different batches; with ``fresh == batch`` the
stream is purely fresh.

Batch ``s`` is a function of ``(seed, s)`` only: the fresh indices are ``[hi - fresh, hi)`` with
``hi = max(batch, (s + 1) * fresh)``, the replayed ones a seeded draw from ``[max(0, hi - window), hi - fresh)``.
A resumed run therefore sees exactly the batches an uninterrupted one would (the cache refills on demand).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class ReplayStream(Generic[T]):
    """Batches of examples ``make(index)``, deterministic in ``(seed, step)`` (module docstring).

    Attributes:
        batch: examples per batch.
        fresh: new examples per step (``1 <= fresh <= batch``).
        window: how many of the most recent examples replayed ones are drawn from (``>= batch``).
    """

    def __init__(self, make: Callable[[int], T], batch: int, fresh: int, window: int, seed: int = 0) -> None:
        """Set up the stream; nothing is rendered until the first batch.

        Raises:
            ValueError: ``fresh`` outside ``[1, batch]`` or ``window < batch``.
        """
        if not 1 <= fresh <= batch:
            raise ValueError(f"fresh examples per step must lie in [1, batch={batch}], got {fresh}")
        if window < batch:
            raise ValueError(f"replay window ({window}) must hold at least one batch ({batch})")
        self.make, self.batch, self.fresh, self.window, self.seed = make, batch, fresh, window, seed
        self._cache: dict[int, T] = {}

    def indices(self, step: int) -> np.ndarray:
        """``int64 (batch,)`` example indices of batch ``step``: the fresh ones last, all distinct."""
        hi = max(self.batch, (step + 1) * self.fresh)
        lo = max(0, hi - self.window)
        fresh = np.arange(hi - self.fresh, hi, dtype=np.int64)
        n_replay = self.batch - self.fresh
        if n_replay == 0:
            return fresh
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, step, 0x5EED]))
        replay = rng.choice(np.arange(lo, hi - self.fresh, dtype=np.int64), size=n_replay, replace=False)
        return np.concatenate([replay, fresh])

    def __call__(self, step: int) -> tuple[np.ndarray, list[T]]:
        """``(indices, examples)`` of batch ``step``; evicts examples that left the window."""
        indices = self.indices(step)
        examples = []
        for index in indices.tolist():
            if index not in self._cache:
                self._cache[index] = self.make(index)
            examples.append(self._cache[index])
        floor = max(0, max(self.batch, (step + 1) * self.fresh) - self.window)
        for index in [i for i in self._cache if i < floor]:
            del self._cache[index]
        return indices, examples
