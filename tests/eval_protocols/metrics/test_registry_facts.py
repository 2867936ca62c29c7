"""The registry is the one source of metric facts, imports no metric module, and looks metrics up without torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eval_protocols.metrics import compute_metrics, gate_metrics, get_metric, list_metrics, metric_names
from eval_protocols.metrics.registry import MetricInputs

ROOT = Path(__file__).resolve().parents[3]
BUILT_IN = {"clip_score", "cmmd", "diversity", "fd", "kid", "layout_diversity", "prdc", "proxy", "r_precision",
            "vendi"}


def test_registry_imports_no_metric_module() -> None:
    tree = ast.parse((ROOT / "eval_protocols" / "metrics" / "registry.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    first_party = {m for m in imported if m.startswith("eval_protocols")}
    assert first_party == {"eval_protocols.metrics.base"}


def test_lookup_after_importing_the_registry_alone_needs_no_torch() -> None:
    code = (
        "import json, sys\n"
        "import eval_protocols.metrics.registry as r\n"
        "facts = {n: [r.get_metric(n).higher_is_better, r.get_metric(n).needs_text] for n in r.list_metrics()}\n"
        "print(json.dumps({'facts': facts, 'heavy': sorted(m for m in ('torch', 'torchmetrics', 'scipy', 'pandas')"
        " if m in sys.modules)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    out = json.loads(proc.stdout)
    assert set(out["facts"]) == BUILT_IN
    assert out["heavy"] == []


def test_fact_queries_equal_what_the_harness_declares_today() -> None:
    assert set(list_metrics()) >= BUILT_IN
    # the facts the harness once re-declared (TEXT_METRICS, CLIP_PREFERRING_METRICS, GATE_METRICS) come from here
    assert metric_names(needs_text=True) == ("clip_score", "r_precision")
    assert metric_names(clip_features=True, needs_text=False) == ("cmmd", "diversity", "vendi")
    assert gate_metrics() == {"fd": False, "kid": False, "clip_score": True, "diversity": True,
                              "layout_diversity": True, "proxy": True}
    # `harness metrics A.npy B.npy`: metrics of features against reference features
    assert metric_names(needs_reference=True) == ("cmmd", "fd", "kid", "prdc")
    assert metric_names(higher_is_better=False) == ("cmmd", "fd", "kid")
    assert metric_names(gate=False, clip_features=False) == ("prdc",)


def test_spec_facts_follow_from_the_registration() -> None:
    fd, clip, proxy = get_metric("fd"), get_metric("clip_score"), get_metric("proxy")
    assert fd.needs_reference and not fd.needs_text and not fd.clip_features and fd.gate
    assert clip.needs_text and clip.clip_features and not clip.needs_reference and clip.gate
    assert not get_metric("vendi").gate and get_metric("vendi").clip_features
    layout = get_metric("layout_diversity")
    assert layout.extractor == "layout" and not layout.clip_features and layout.gate and layout.higher_is_better
    assert {get_metric(n).extractor for n in BUILT_IN - {"layout_diversity"}} == {""}
    assert proxy.requires == ("utility",) and proxy.higher_is_better


def test_alternative_inputs_accept_either_and_name_both_when_missing(rng: np.random.Generator) -> None:
    samples = rng.normal(size=(30, 3))
    with pytest.raises(ValueError, match="'fd' needs reference or reference_stats; pass them in MetricInputs"):
        get_metric("fd")(MetricInputs(samples=samples))
    (result,) = get_metric("fd")(MetricInputs(samples=samples, reference=rng.normal(size=(40, 3))))
    assert result.name == "fd" and result.value > 0


def test_proxy_is_the_mean_utility_with_intervals(rng: np.random.Generator) -> None:
    utility = rng.normal(size=40)
    (result,) = compute_metrics(["proxy"], utility=utility, groups=np.repeat(np.arange(10), 4), bootstrap=200)
    assert result.value == pytest.approx(utility.mean()) and result.higher_is_better
    assert result.ci_low < result.value < result.ci_high and result.details["ci_resampled"] == "prompts"
    with pytest.raises(ValueError, match="1-D array of finite numbers"):
        compute_metrics(["proxy"], utility=np.array([1.0, np.nan]))


def test_fid_module_serves_the_torch_names_lazily() -> None:
    from eval_protocols.metrics import fid, frechet

    assert fid.FrechetDistance is frechet.FrechetDistance and fid.frechet_distance is frechet.frechet_distance
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        fid.nothing  # noqa: B018
