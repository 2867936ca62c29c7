"""Generation: prompts × systems × sampling settings × seed indices → PNGs + manifest, resumable.

Work units are (system, prompt, seed index, settings). Units already in the run dir's manifest are skipped, so an
interrupted run resumes where it stopped. Units are processed in a fixed order and each image depends only on its
own unit, so the resumed run dir is byte-identical to an uninterrupted one.

Under torchrun (`harness.distributed`), rank 0 decides what is left to do and every rank takes a round-robin share
of it in plan order; each writes its own PNGs (content-addressed, so concurrent writes are safe) and appends its
lines to its own manifest part. After a barrier rank 0 merges the parts into manifest.jsonl in plan order, so the
images and manifest are byte-identical to a one-process run. A crash leaves parts behind; the next run (with any
number of processes) counts their units as done and merges them with its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from harness import distributed
from harness.config import RunConfig, SystemConfig
from harness.distributed import DistContext
from harness.errors import HarnessError
from harness.faults import fault_point
from harness.generate.registry import Generator, KeyedGenerator, SampleKey, SettingsResolver, build_generator
from harness.prompts import PromptRecord
from harness.rundir import ManifestEntry, RunDir, derive_seed, work_key


@dataclass(frozen=True)
class WorkUnit:
    """One image to make."""

    system: SystemConfig
    prompt: PromptRecord
    sample_index: int
    seed: int
    settings: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, int, str]:
        return work_key(self.system.id, self.prompt.prompt_id, self.sample_index, self.settings)


def sampling_settings(cfg: RunConfig, generator: Generator) -> list[dict[str, Any]]:
    """The settings a system is swept over: one per guidance scale (with the ``[sampling]`` sampler settings given),
    resolved by generators that fill in their defaults (`SettingsResolver`); one empty setting for unguided
    generators."""
    if not generator.uses_guidance:
        return [{}]
    swept = [{"guidance_scale": g, **cfg.sampling.stage_settings()} for g in cfg.sampling.guidance_scales]
    if isinstance(generator, SettingsResolver):
        return [generator.resolve_settings(s) for s in swept]
    return swept


def plan_units(cfg: RunConfig, prompts: Sequence[PromptRecord], generators: dict[str, Generator]) -> list[WorkUnit]:
    """All work units of a run, in the fixed order (system, setting, prompt, seed index)."""
    units: list[WorkUnit] = []
    for system in cfg.systems:
        for settings in sampling_settings(cfg, generators[system.id]):
            for prompt in prompts:
                for k in range(cfg.sampling.seeds_per_prompt):
                    units.append(WorkUnit(system, prompt, k, derive_seed(cfg.seed, prompt.prompt_id, k), settings))
    return units


def _batches(units: list[WorkUnit], batch_size: int) -> Iterator[list[WorkUnit]]:
    """Consecutive units sharing (system, settings), at most ``batch_size`` each."""
    batch: list[WorkUnit] = []
    for unit in units:
        if batch and (unit.system.id != batch[0].system.id or unit.settings != batch[0].settings):
            yield batch
            batch = []
        batch.append(unit)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_generators(cfg: RunConfig) -> dict[str, Generator]:
    """One generator per system of the config (validates generator names and options)."""
    return {s.id: build_generator(s.generator, s.options) for s in cfg.systems}


def generate_run(
    cfg: RunConfig,
    run_dir: RunDir,
    prompts: Sequence[PromptRecord],
    *,
    progress: bool = True,
    generators: dict[str, Generator] | None = None,
    dist: DistContext | None = None,
) -> list[ManifestEntry]:
    """Generate every missing image of a run; returns the full manifest afterwards (on every rank).

    Args:
        dist: the torchrun context (`harness.distributed.session`); None for one process, which is refused when
            the process was launched by torchrun (N uncoordinated copies would duplicate the work).

    Raises:
        HarnessError: from the generators (bad options, prompts they cannot render) or an unwritable run dir.
    """
    if dist is None:
        distributed.require_single_process("this generation")
    ctx = dist or distributed.SINGLE
    generators = generators if generators is not None else build_generators(cfg)
    distributed.from_main(ctx, lambda: check_same_weights(run_dir, generators))
    units = plan_units(cfg, prompts, generators)
    todo_index = distributed.from_main(ctx, lambda: _todo(run_dir, units))  # rank 0 reads: it may cut a torn tail
    use_parts = ctx.is_distributed or bool(run_dir.part_paths())  # left-over parts: merge them in plan order too
    mine = [units[i] for i in distributed.shard(todo_index, ctx.rank, ctx.world_size)]
    desc = "generate" if not ctx.is_distributed else f"generate (rank 0's share of {ctx.world_size})"
    total, initial = (len(units), len(units) - len(todo_index)) if not ctx.is_distributed else (len(mine), 0)
    show = distributed.show_progress(ctx, progress)
    with tqdm(total=total, initial=initial, desc=desc, unit="img", disable=not show) as bar:
        for batch in _batches(mine, cfg.sampling.batch_size):
            gen = generators[batch[0].system.id]
            images = _generate_batch(gen, batch)
            for unit, image in zip(batch, images, strict=True):
                run_dir.add_image(
                    image,
                    {
                        "system_id": unit.system.id,
                        "model_id": gen.model_id,
                        "prompt_id": unit.prompt.prompt_id,
                        "prompt": unit.prompt.text,
                        "sample_index": unit.sample_index,
                        "seed": unit.seed,
                        "settings": unit.settings,
                        "checkpoint_sha256": gen.checkpoint_sha256,
                    },
                    part=ctx.rank if use_parts else None,
                )
                fault_point("generate")  # test hook (harness.faults): no-op unless HARNESS_FAULT_AFTER is set
            bar.update(len(batch))
    if use_parts:
        distributed.barrier(ctx)  # every rank's lines are fsync'ed in its part
        if ctx.is_main:
            run_dir.merge_parts([u.key for u in units])
        distributed.barrier(ctx)  # manifest.jsonl complete before any rank reads it
    return ordered_entries(run_dir, units)


def check_same_weights(run_dir: RunDir, generators: dict[str, Generator]) -> None:
    """Refuse to resume a run dir whose images of a system were made by other weights than the system's now.

    The run id hashes the config, not the checkpoints, so a retrained model behind an unchanged config would
    otherwise mix old and new images in one run.

    Raises:
        HarnessError: naming the system, both weight hashes and the fix.
    """
    seen: dict[str, str | None] = {}
    for entry in run_dir.entries():
        seen.setdefault(entry.system_id, entry.checkpoint_sha256)
    for system_id, stored in seen.items():
        gen = generators.get(system_id)
        if gen is not None and stored != gen.checkpoint_sha256:
            raise HarnessError(
                f"run dir {run_dir.root} holds images of system {system_id!r} made with weights "
                f"{(stored or 'none')[:16]}..., but its generator now has {(gen.checkpoint_sha256 or 'none')[:16]}...; "
                "give the run a new name or out_dir (--set name=... / --set out_dir=...), or delete that run dir"
            )


def _todo(run_dir: RunDir, units: Sequence[WorkUnit]) -> list[int]:
    """Plan positions of the units not yet recorded in the manifest or a left-over part."""
    done = run_dir.done_keys()
    return [i for i, u in enumerate(units) if u.key not in done]


def _generate_batch(gen: Generator, batch: list[WorkUnit]) -> list[np.ndarray]:
    """One image per unit; generators that look images up (image folders) also get each unit's (prompt id, k)."""
    prompts, seeds, settings = [u.prompt.text for u in batch], [u.seed for u in batch], batch[0].settings
    if isinstance(gen, KeyedGenerator):
        keys = [SampleKey(u.prompt.prompt_id, u.sample_index) for u in batch]
        return gen.generate_keyed(keys, prompts, seeds, settings)
    return gen.generate(prompts, seeds, settings)


def ordered_entries(run_dir: RunDir, units: Sequence[WorkUnit]) -> list[ManifestEntry]:
    """Manifest entries of ``units`` in plan order (independent of the order they were written in)."""
    by_key = {e.key: e for e in run_dir.entries()}
    return [by_key[u.key] for u in units if u.key in by_key]
