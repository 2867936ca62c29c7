"""`harness regress`: the CI gate that fails when sample quality dropped beyond statistical noise.

A gate run generates the config's fixed prompts × seeds with the run machinery (`harness.generate.run`: resumable,
content-addressed images in ``<out_dir>/<run id>``), measures every (system, guidance scale) unit on the gated
metrics (``[regress]`` in the run config, `harness.config.RegressConfig`) with B bootstrap replicates each, and
compares them with a stored baseline file (``--update-baseline`` writes one).

The rule, per system, guidance scale and metric (numbers in the metric's own units):

* worsening ``w = new − baseline`` for lower-is-better metrics (``fd``, ``kid``) and ``w = baseline − new`` for
  higher-is-better ones (``clip_score``, ``diversity``, ``proxy``): ``w > 0`` means worse;
* each run stores B bootstrap replicates of every metric (`harness.regress.measure`: images resampled within
  prompts, seeded by the run's own image hashes), so the replicates of the two runs are independent and
  ``w*_b = ±(θ*_new,b − θ*_base,b)`` samples the bootstrap distribution of the difference. Shifted by
  ``w − mean(w*)`` (removing the resampling bias: FD and KID of a resample with repeated images run high), its
  ``α/m`` and ``1 − α/m`` quantiles are the interval ``[low, high]`` of ``w``, with ``m`` the number of comparisons
  (Bonferroni: an unchanged model fails any comparison with chance ≤ α, up to the bootstrap's accuracy);
* a comparison REGRESSES when ``low > tolerance`` (``[regress] tolerance``, default 0): worse beyond noise and beyond
  the margin, by ``low − tolerance`` ("beyond noise" in the table); it is "improved" when ``high < 0``.

The baseline records the values, their replicates, a fingerprint of what makes numbers comparable (prompts, seeds
per prompt, systems and guidance scales, metrics, feature extractors, reference, B), the config hash, checkpoint
sha256s, harness version, git commit and date. Generator options, checkpoints, sampler steps and the run seed may
differ from the baseline's: they are what the gate tests. A different fingerprint is a `HarnessError` naming
``--update-baseline``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from harness import __version__
from harness.config import RegressConfig, RunConfig
from harness.errors import ConfigError
from harness.regress.baseline import Comparison, Measurement, check_fingerprint, compare, load_baseline, write_baseline

if TYPE_CHECKING:
    from harness.prompts import PromptRecord
    from harness.regress.measure import GateTools

@dataclass(frozen=True)
class GateOutcome:
    """What one `run_gate` call produced; ``comparisons`` is empty when the baseline was (re)written."""

    run_id: str
    run_dir: Path
    baseline_path: Path
    measurements: tuple[Measurement, ...]
    comparisons: tuple[Comparison, ...]
    updated: bool
    notes: tuple[str, ...]
    alpha: float

    @property
    def regressed(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.regressed)


# ------------------------------------------------------------------------------------------------------ gate


def fingerprint(cfg: RunConfig, tools: GateTools, prompts: Sequence[PromptRecord], units: Sequence[tuple[str, str]]
                ) -> dict[str, Any]:
    """What must match for two gate runs to be comparable (module docstring)."""
    return {
        "prompts": [[p.prompt_id, p.text] for p in prompts],
        "seeds_per_prompt": cfg.sampling.seeds_per_prompt,
        "units": [list(u) for u in units],
        "metrics": list(tools.metrics),
        "features": tools.feature_ids(),
        "reference": {"source": cfg.metrics.reference, "per_prompt": cfg.metrics.reference_per_prompt},
        "bootstrap": cfg.regress.bootstrap,
    }


def run_gate(cfg: RunConfig, baseline_path: Path, *, config_label: str, update: bool = False,
             progress: bool = True) -> GateOutcome:
    """Generate (resuming), measure and compare with — or, with ``update``, rewrite — the baseline.

    Raises:
        HarnessError: bad config, missing weights, a missing/corrupt/mismatched baseline (before generating).
    """
    from harness import provenance
    from harness.generate.run import build_generators, generate_run, plan_units
    from harness.prompts import load_prompts
    from harness.regress.measure import GateTools, load_reference, load_units, measure_unit, unit_label
    from harness.rundir import prepare_run_dir

    tools = GateTools.build(cfg)
    generators = build_generators(cfg)
    prompts = load_prompts(cfg.prompts)
    units = list(dict.fromkeys((u.system.id, unit_label(u.settings)) for u in plan_units(cfg, prompts, generators)))
    _check_bootstrap(cfg.regress, len(units) * len(tools.metrics))
    current_fp = fingerprint(cfg, tools, prompts, units)
    baseline = None if update else load_baseline(baseline_path, config_label)
    if baseline is not None:
        check_fingerprint(baseline.header["fingerprint"], current_fp, baseline_path, config_label)

    checkpoints = {s.id: {"generator": s.generator, "model_id": generators[s.id].model_id,
                          "checkpoint_sha256": generators[s.id].checkpoint_sha256} for s in cfg.systems}
    weights = hashlib.sha256(json.dumps(checkpoints, sort_keys=True).encode()).hexdigest()[:8]
    gate_cfg = dataclasses.replace(cfg, name=f"{cfg.name}-w{weights}")  # new weights never resume from old images
    run_dir = prepare_run_dir(gate_cfg)
    entries = generate_run(gate_cfg, run_dir, prompts, progress=progress, generators=generators)
    reference = load_reference(gate_cfg, tools, run_dir, prompts)
    measurements: list[Measurement] = []
    for unit in tqdm(load_units(tools, run_dir, entries), desc="bootstrap", unit="unit", disable=not progress):
        measurements += measure_unit(unit, reference, tools.metrics, cfg.regress)

    if update:
        header = {
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "harness_version": __version__,
            "git": provenance.git_commit(), "config_sha256": cfg.config_hash(), "run_id": gate_cfg.run_id,
            "seed": cfg.seed, "checkpoints": checkpoints, "fingerprint": current_fp,
            "rule": {"alpha": cfg.regress.alpha, "tolerance": dict(cfg.regress.tolerance)},
        }
        write_baseline(baseline_path, header, measurements)
        return GateOutcome(gate_cfg.run_id, run_dir.root, baseline_path, tuple(measurements), (), True, (),
                           cfg.regress.alpha)
    assert baseline is not None
    comparisons = compare(baseline.measurements, measurements, cfg.regress)
    return GateOutcome(gate_cfg.run_id, run_dir.root, baseline_path, tuple(measurements), tuple(comparisons),
                       False, _notes(baseline.header, checkpoints, cfg), cfg.regress.alpha)


def _check_bootstrap(rc: RegressConfig, comparisons: int) -> None:
    """B must put at least one replicate beyond each per-comparison quantile α/m."""
    per_side = rc.alpha / max(comparisons, 1)
    if rc.bootstrap * per_side < 1.0:
        raise ConfigError(f"regress.bootstrap = {rc.bootstrap} is too few for {comparisons} comparisons at alpha "
                          f"{rc.alpha}; set it to at least {int(np.ceil(1.0 / per_side))}")


def _notes(header: dict[str, Any], checkpoints: dict[str, Any], cfg: RunConfig) -> tuple[str, ...]:
    """What changed since the baseline besides the numbers (for the report)."""
    commit = str((header.get("git") or {}).get("commit"))[:12]
    notes = [f"baseline made {header.get('created_at', '?')} by harness {header.get('harness_version', '?')} (git {commit})"]
    old = header.get("checkpoints", {})
    for system_id, now in checkpoints.items():
        before = (old.get(system_id) or {}).get("checkpoint_sha256")
        if before != now["checkpoint_sha256"]:
            notes.append(f"{system_id}: checkpoint changed ({str(before)[:12]} -> {str(now['checkpoint_sha256'])[:12]})")
    if header.get("seed") != cfg.seed:
        notes.append(f"run seed differs from the baseline's ({header.get('seed')} -> {cfg.seed}): other sampling noise")
    if header.get("config_sha256") != cfg.config_hash():
        notes.append("config differs from the baseline's outside the fingerprint (seed, generator options, steps or rule)")
    return tuple(notes)
