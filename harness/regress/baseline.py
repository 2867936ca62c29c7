"""The CI gate's rule and its baseline file: `Measurement`, `Comparison`, `compare`, and reading/writing baselines.

The rule and the file format are described in `harness.regress.gate`; measurements come from
`harness.regress.measure`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval_protocols.metrics.registry import gate_metrics
from harness.config import RegressConfig
from harness.errors import ConfigError, HarnessError, did_you_mean

BASELINE_FORMAT = "unclip-harness/regress-baseline/1"


@dataclass(frozen=True)
class Measurement:
    """One metric of one (system, guidance scale) unit, with its bootstrap replicates.

    Attributes:
        system_id: the system id of the run config.
        group: ``guidance=<g>`` for guided generators, ``""`` otherwise.
        metric: a gated metric (`eval_protocols.metrics.registry.gate_metrics`).
        higher_is_better: direction of improvement.
        value: the point estimate on all images.
        n: images it was computed from.
        replicates: ``float64 (B,)`` bootstrap replicates (module docstring).
    """

    system_id: str
    group: str
    metric: str
    higher_is_better: bool
    value: float
    n: int
    replicates: np.ndarray = field(repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.system_id, self.group, self.metric)

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Bias-shifted percentile interval of the value: replicates moved to mean ``value``, then quantiles."""
        shifted = self.replicates - self.replicates.mean() + self.value
        low, high = np.quantile(shifted, [(1 - confidence) / 2, (1 + confidence) / 2])
        return float(low), float(high)


@dataclass(frozen=True)
class Comparison:
    """The gate's verdict on one (system, guidance scale, metric); ``worse_by`` > 0 means worse than the baseline.

    Attributes:
        baseline / current: the two point estimates.
        worse_by: ``w`` of the module docstring; ``low``/``high``: its interval at level α/m per side.
        tolerance: the configured margin; ``regressed`` = ``low > tolerance``; ``improved`` = ``high < 0``.
    """

    system_id: str
    group: str
    metric: str
    higher_is_better: bool
    baseline: float
    current: float
    worse_by: float
    low: float
    high: float
    tolerance: float
    regressed: bool
    improved: bool

    @property
    def beyond_noise(self) -> float:
        """How far the worsening exceeds noise and tolerance (> 0 only when regressed)."""
        return self.low - self.tolerance


@dataclass(frozen=True)
class Baseline:
    """A baseline file's content: header (provenance, fingerprint) and measurements."""

    header: dict[str, Any]
    measurements: tuple[Measurement, ...]




# ---------------------------------------------------------------------------------------------------------- rule


def check_gate_metrics(rc: RegressConfig) -> tuple[str, ...]:
    """The validated metric list (``proxy`` added when a proxy is configured); the metrics the gate knows are the
    registry's (`eval_protocols.metrics.registry.gate_metrics`: those with a bootstrap replicate rule).

    Raises:
        ConfigError: unknown or repeated metric, a metric lacking its model, bad alpha/bootstrap/tolerance.
    """
    known = gate_metrics()
    names = tuple(rc.metrics) + (("proxy",) if rc.proxy and "proxy" not in rc.metrics else ())
    for name in names:
        if name not in known:
            raise ConfigError(f"regress.metrics: unknown metric {name!r}{did_you_mean(name, known)}")
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"regress.metrics = {list(names)}: list each of {', '.join(known)} at most once")
    if "proxy" in names and not rc.proxy:
        raise ConfigError("regress.metrics has 'proxy' but regress.proxy is empty; set it to a trained proxy's stem")
    if "clip_score" in names and not rc.clip:
        raise ConfigError("regress.metrics has 'clip_score' but regress.clip is empty; set it to \"clip:toy\"")
    if not 0.0 < rc.alpha < 1.0 or rc.bootstrap < 20:
        raise ConfigError(f"regress: need 0 < alpha < 1 and bootstrap >= 20, got {rc.alpha} and {rc.bootstrap}")
    for name, tol in rc.tolerance.items():
        if name not in names:
            raise ConfigError(f"regress.tolerance: {name!r} is not a gated metric{did_you_mean(name, names)}")
        if isinstance(tol, bool) or not isinstance(tol, int | float) or tol < 0:
            raise ConfigError(f"regress.tolerance.{name} = {tol!r}: must be a number >= 0 (metric units)")
    return names


def compare(baseline: Sequence[Measurement], current: Sequence[Measurement], rc: RegressConfig) -> list[Comparison]:
    """Apply the rule of the module docstring to every current measurement (all must be in the baseline)."""
    base = {m.key: m for m in baseline}
    q = rc.alpha / max(len(current), 1)
    out = []
    for cur in current:
        old = base[cur.key]
        sign = -1.0 if cur.higher_is_better else 1.0
        worse = sign * (cur.value - old.value)
        b = min(len(old.replicates), len(cur.replicates))
        diffs = sign * (cur.replicates[:b] - old.replicates[:b])
        low, high = (float(v) for v in np.quantile(diffs - diffs.mean() + worse, [q, 1.0 - q]))
        tol = float(rc.tolerance.get(cur.metric, 0.0))
        out.append(Comparison(cur.system_id, cur.group, cur.metric, cur.higher_is_better, old.value, cur.value,
                              worse, low, high, tol, regressed=low > tol, improved=high < 0.0))
    return out


# ----------------------------------------------------------------------------------------------- baseline file


def fix_hint(config: str, baseline: Path) -> str:
    return f"harness regress {config} --baseline {baseline} --update-baseline"


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any], path: Path, config: str) -> None:
    """Raise one `HarnessError` naming the first part of the setup that differs from the baseline's."""
    for key, value in current.items():
        if saved.get(key) != value:
            raise HarnessError(
                f"baseline {path} was made from a different setup ({key} differ: baseline {_short(saved.get(key))}, "
                f"now {_short(value)}); if the change is intended, record a new baseline with "
                f"`{fix_hint(config, path)}`"
            )


def _short(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def baseline_text(header: dict[str, Any], measurements: Sequence[Measurement]) -> str:
    """The baseline file: indented header, then one result per line (replicates to 7 significant digits)."""
    results = [
        json.dumps({"system": m.system_id, "group": m.group, "metric": m.metric,
                    "higher_is_better": m.higher_is_better, "value": m.value, "n": m.n, "ci95": list(m.interval()),
                    "replicates": [float(f"{r:.7g}") for r in m.replicates]})
        for m in measurements
    ]
    head = json.dumps({"format": BASELINE_FORMAT, **header}, indent=2, sort_keys=True)
    return head[:-2] + ',\n  "results": [\n    ' + ",\n    ".join(results) + "\n  ]\n}\n"


def write_baseline(path: Path, header: dict[str, Any], measurements: Sequence[Measurement]) -> None:
    """Write the baseline atomically (temporary file in the same folder, fsync, rename)."""
    from harness.rundir import atomic_write_bytes

    try:
        atomic_write_bytes(path, baseline_text(header, measurements).encode("utf-8"))
        path.chmod(0o644)  # the temporary file's 0600 is too strict for a file meant to be committed
    except OSError as exc:
        raise HarnessError(f"cannot write the baseline {path} ({exc.strerror}); choose a writable path") from None


def load_baseline(path: Path, config: str) -> Baseline:
    """Read and validate a baseline file.

    Raises:
        HarnessError: missing, unreadable, not JSON, or not a regress baseline — naming ``--update-baseline``.
    """
    fix = f"create it with `{fix_hint(config, path)}`"
    if not path.is_file():
        raise HarnessError(f"baseline {path} not found; {fix}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
            raise ValueError(f"format is not {BASELINE_FORMAT!r}")
        if not isinstance(data.get("fingerprint"), dict):
            raise KeyError("fingerprint")
        fp = data["fingerprint"]
        results = [_measurement(r, int(fp["bootstrap"])) for r in data["results"]]
        if {m.key for m in results} != {(s, g, m) for s, g in fp["units"] for m in fp["metrics"]}:
            raise ValueError("its results do not cover its units × metrics")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"baseline {path} is corrupt or not a regress baseline ({exc}); re{fix}") from None
    header = {k: v for k, v in data.items() if k not in ("format", "results")}
    return Baseline(header, tuple(results))


def _measurement(r: dict[str, Any], n_rep: int) -> Measurement:
    replicates = np.asarray(r["replicates"], dtype=np.float64)
    if replicates.shape != (n_rep,) or not np.isfinite(replicates).all() or not np.isfinite(float(r["value"])):
        raise ValueError(f"{r.get('metric')} of {r.get('system')}: expected {n_rep} finite replicates")
    if r["metric"] not in gate_metrics():
        raise ValueError(f"unknown metric {r['metric']!r}")
    return Measurement(str(r["system"]), str(r["group"]), str(r["metric"]), bool(r["higher_is_better"]),
                       float(r["value"]), int(r["n"]), replicates)
