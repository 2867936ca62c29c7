"""`harness regress CONFIG --baseline FILE`: the CI gate; exit 1 when a metric got worse beyond noise.

Exit status: 0 no regression (or ``--update-baseline`` wrote the baseline), 1 at least one comparison regressed,
2 a user error (bad config, missing weights, a missing, corrupt or mismatched baseline). The table is printed in
every case (``--json``: a JSON object instead) and written as ``regress.md`` + ``regress.json`` into the run dir,
or to ``--report PATH`` (Markdown; the JSON beside it), for a CI artifact. The rule: `harness.regress.gate`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.commands import add_command, add_config_arguments
from harness.config import load_config
from harness.errors import HarnessError
from harness.regress.baseline import Comparison, Measurement
from harness.regress.gate import GateOutcome


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "regress",
        description="Generate the config's fixed prompts and seeds (resumable), measure the [regress] metrics with "
        "bootstrap replicates and compare each (system, guidance scale, metric) with the baseline file. A metric "
        "regresses when its worsening's bootstrap interval (Bonferroni over all comparisons) lies above the "
        "tolerance. Exit 0: no regression; 1: regression; 2: error.",
        epilog="Example: harness regress configs/regress_toy.toml --baseline regress_baseline.json "
        "(first time: add --update-baseline)",
    )
    add_config_arguments(p, db=False)
    p.add_argument("--baseline", required=True, type=Path, help="the baseline JSON file")
    p.add_argument("--update-baseline", action="store_true", help="measure and (re)write the baseline; exit 0")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--report", type=Path, default=None,
                   help="write the Markdown table here (and the JSON beside it); default: the run dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.regress.gate import run_gate

    cfg = load_config(args.config, args.overrides)
    outcome = run_gate(cfg, args.baseline, config_label=args.config, update=args.update_baseline,
                       progress=not args.no_progress)
    summary = to_json(outcome)
    report = args.report or outcome.run_dir / "regress.md"
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(markdown(outcome), encoding="utf-8")
        report.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"cannot write the report {report} ({exc.strerror}); pass a writable --report PATH") from None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(text_report(outcome))
        print(f"report: {report}")
    return int(summary["exit_code"])


def status_line(outcome: GateOutcome) -> str:
    """One line: what happened and the exit status it implies."""
    if outcome.updated:
        return f"baseline written: {outcome.baseline_path} ({len(outcome.measurements)} measurements)"
    m = len(outcome.comparisons)
    rule = f"family-wise alpha {outcome.alpha:g}, Bonferroni over {m} comparisons"
    if outcome.regressed:
        return f"REGRESSION: {len(outcome.regressed)} of {m} comparisons worse than the baseline beyond noise ({rule})"
    return f"ok: no regression in {m} comparisons ({rule})"


def _num(x: float) -> str:
    return f"{x:.4g}"


def _settings(group: str) -> str:
    return group or "-"


def comparison_rows(comparisons: tuple[Comparison, ...]) -> list[list[str]]:
    """Header + one row per comparison."""
    rows = [["system", "settings", "metric", "better", "baseline", "new", "worse by [interval]", "tolerance",
             "beyond noise", "status"]]
    for c in comparisons:
        status = "REGRESSED" if c.regressed else ("improved" if c.improved else "ok")
        rows.append([c.system_id, _settings(c.group), c.metric, "higher" if c.higher_is_better else "lower",
                     _num(c.baseline), _num(c.current), f"{_num(c.worse_by)} [{_num(c.low)}, {_num(c.high)}]",
                     _num(c.tolerance), _num(c.beyond_noise) if c.regressed else "-", status])
    return rows


def measurement_rows(measurements: tuple[Measurement, ...]) -> list[list[str]]:
    """Header + one row per measurement (the ``--update-baseline`` table)."""
    rows = [["system", "settings", "metric", "better", "value [95% CI]", "n"]]
    for m in measurements:
        low, high = m.interval()
        rows.append([m.system_id, _settings(m.group), m.metric, "higher" if m.higher_is_better else "lower",
                     f"{_num(m.value)} [{_num(low)}, {_num(high)}]", str(m.n)])
    return rows


def _rows(outcome: GateOutcome) -> list[list[str]]:
    return measurement_rows(outcome.measurements) if outcome.updated else comparison_rows(outcome.comparisons)


def text_report(outcome: GateOutcome) -> str:
    """The fixed-width table, notes and the status line."""
    rows = _rows(outcome)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([f"run {outcome.run_id} ({outcome.run_dir})", *lines, *outcome.notes, status_line(outcome)])


def markdown(outcome: GateOutcome) -> str:
    """The report artifact: status, table and notes in Markdown."""
    rows = _rows(outcome)
    table = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    table += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    rule = ("A comparison regresses when the lower end of the interval of *worse by* (new − baseline for lower-is-"
            "better metrics, baseline − new otherwise; bootstrap, Bonferroni-corrected) exceeds the tolerance.")
    notes = [f"- {n}" for n in outcome.notes]
    return "\n".join([f"# harness regress: {outcome.run_id}", "", f"**{status_line(outcome)}**", "",
                      f"Baseline: `{outcome.baseline_path}`", "", *table, "", rule, "", *notes]) + "\n"


def to_json(outcome: GateOutcome) -> dict[str, Any]:
    """The machine-readable result (also ``--json``)."""
    return {
        "status": "updated" if outcome.updated else ("regressed" if outcome.regressed else "ok"),
        "exit_code": 1 if outcome.regressed else 0,
        "run_id": outcome.run_id,
        "run_dir": str(outcome.run_dir),
        "baseline": str(outcome.baseline_path),
        "alpha": outcome.alpha,
        "notes": list(outcome.notes),
        "comparisons": [
            {"system": c.system_id, "settings": c.group, "metric": c.metric, "higher_is_better": c.higher_is_better,
             "baseline": c.baseline, "new": c.current, "worse_by": c.worse_by, "interval": [c.low, c.high],
             "tolerance": c.tolerance, "beyond_noise": c.beyond_noise, "regressed": c.regressed,
             "improved": c.improved}
            for c in outcome.comparisons
        ],
        "measurements": [
            {"system": m.system_id, "settings": m.group, "metric": m.metric, "value": m.value,
             "ci95": list(m.interval()), "n": m.n}
            for m in outcome.measurements
        ],
    }
