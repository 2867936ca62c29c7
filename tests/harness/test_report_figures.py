"""Report metric panels pick metrics generically: the two diversities get their own readable panels."""

from __future__ import annotations

from pathlib import Path

from harness.report.figures import metric_curves, metric_title, swept_metrics
from harness.storage.records import MetricResultRecord


def record(metric: str, system: str, g: float, value: float) -> MetricResultRecord:
    return MetricResultRecord(run_id="r", metric=metric, model_id=system, group={"guidance_scale": g}, value=value,
                              ci_low=value - 0.01, ci_high=value + 0.01, n=8, extractor_id="x", inputs_hash="h",
                              details={"higher_is_better": True})


def test_layout_and_clip_diversity_are_separate_named_panels(tmp_path: Path) -> None:
    results = [record(m, s, g, 0.1 + 0.01 * g) for m in ("diversity", "layout_diversity", "fd", "my_metric")
               for s in ("glide", "unclip") for g in (1.0, 3.0)]
    assert swept_metrics(results) == ["fd", "layout_diversity", "diversity", "my_metric"]
    assert metric_title("layout_diversity") == "Diversity (colour layout)"
    assert metric_title("diversity") == "Diversity (CLIP)" and metric_title("my_metric") == "my_metric"
    out = metric_curves(results, tmp_path / "curves.png")
    assert out is not None and out.stat().st_size > 1000
