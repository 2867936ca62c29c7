"""`harness report`: a Markdown and a self-contained HTML report of a run, read from the run dir and the store.

Sections: the run and its systems; sample grids; the metric table (value, 95% bootstrap interval, n, extractor) and,
over several guidance scales, FD-vs-CLIP-score and metric-vs-guidance plots (`harness.report_figures`); the human
evaluation (`harness.report_studies`: Table 1 style win rates with intervals and Holm-adjusted p-values, win rate vs
guidance, Bradley–Terry ratings, position bias, annotators and exclusions), labelled as simulated while only
simulated annotators voted; the provenance of every number (config hash, git commit, package versions, device,
seeds, the extractor behind each metric, where the votes came from and how they were analysed).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from eval_protocols.human.design_inputs import settings_label
from harness.config import RunConfig
from harness.manifest import ManifestEntry, RunDir, atomic_write_bytes, encode_png
from harness.report_figures import guidance_scales, metric_tradeoff, metric_vs_guidance
from harness.report_studies import StudyAnalysis, human_sections
from harness.reportdoc import Document, Figure, Section, Table, fmt_ci, rows, to_html, to_markdown
from harness.simulate_votes import SIMULATION_RECORD

if TYPE_CHECKING:
    from harness.storage.records import MetricResultRecord
    from harness.storage.repository import Repository


def sample_grid(run_dir: RunDir, entries: Sequence[ManifestEntry], out: Path, per_row: int = 8) -> Path:
    """Save a grid of the first ``per_row`` images of every (system, settings) group, one row each."""
    groups: dict[tuple[str, str], list[ManifestEntry]] = defaultdict(list)
    for e in entries:
        groups[(e.system_id, settings_label(e.settings))].append(e)
    tiles = []
    for _, group in sorted(groups.items()):
        row = [run_dir.load_image(e) for e in group[:per_row]]
        h, w, _ = row[0].shape
        row += [np.full((h, w, 3), 255, np.uint8)] * (per_row - len(row))
        tiles.append(np.concatenate(row, axis=1))
    width = max(t.shape[1] for t in tiles)
    grid = np.concatenate([np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles])
    scale = max(1, 512 // grid.shape[1])
    if scale > 1:
        size = (grid.shape[1] * scale, grid.shape[0] * scale)
        grid = np.asarray(Image.fromarray(grid).resize(size, Image.Resampling.NEAREST))
    atomic_write_bytes(out, encode_png(grid))
    return out


def _metric_table(results: Sequence[MetricResultRecord]) -> Table:
    body = [
        (
            r.metric,
            r.model_id,
            settings_label(r.group),
            fmt_ci(r.value, r.ci_low, r.ci_high, 4),
            r.n,
            r.extractor_id or "—",
            "higher" if r.details.get("higher_is_better") else "lower",
        )
        for r in sorted(results, key=lambda r: (r.metric, r.model_id, settings_label(r.group)))
    ]
    return Table(
        ("metric", "system", "settings", "value [95% CI]", "n", "features", "better"),
        rows(body),
        caption="Automated metrics against real renders of the same captions (bootstrap intervals over images).",
    )


def _tradeoff_sections(results: Sequence[MetricResultRecord], report_dir: Path) -> list[Section]:
    """FD-vs-CLIP-score and diversity-vs-guidance plots when the metrics were computed at several guidance scales."""
    if len(guidance_scales(results)) < 2:
        return []
    metrics = {r.metric for r in results}
    figures = []
    fd = next((m for m in ("fid", "fd") if m in metrics), None)
    if fd and "clip_score" in metrics:
        path = metric_tradeoff(results, "clip_score", fd, report_dir / "fd_vs_clip_score.png")
        if path:
            figures.append(Figure(path, f"{fd} against CLIP score; points are guidance scales (lower-right is better)."))
    for metric in ("vendi", "diversity", fd, "clip_score"):
        if metric and metric in metrics:
            path = metric_vs_guidance(results, metric, report_dir / f"{metric}_vs_guidance.png")
            if path:
                figures.append(Figure(path, f"{metric} against the guidance scale with 95% bootstrap intervals."))
    if not figures:
        return []
    return [Section("Trade-offs over guidance scales", (), (), tuple(figures))]


def _metric_provenance(results: Sequence[MetricResultRecord]) -> str:
    """Which extractor and inputs every metric came from."""
    if not results:
        return "Metrics: none computed."
    inputs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in results:
        inputs[(r.metric, r.extractor_id or "no features")].add(r.inputs_hash[:12] or "—")
    listed = "; ".join(f"{m} from {e} (inputs {', '.join(sorted(h))})" for (m, e), h in sorted(inputs.items()))
    return f"Metrics: {listed}. Intervals: bootstrap over images/captions as stored with each result."


def _vote_provenance(run_dir: RunDir, analysis: StudyAnalysis | None) -> tuple[str, ...]:
    """Where the votes came from (simulated or human) and how they were analysed."""
    if analysis is None or len(analysis.votes) == 0:
        return ("Votes: none yet.",)
    lines = [f"Votes: {len(analysis.votes)} from {analysis.source} (attention checks included)."]
    record = run_dir.root / SIMULATION_RECORD
    if int(analysis.votes["simulated"].sum()) and record.is_file():
        sim = json.loads(record.read_text(encoding="utf-8"))
        judges = ", ".join(f"{k}: {v}" for k, v in sorted(sim.get("judges", {}).items()))
        lines.append(
            f"Simulated annotators (`{SIMULATION_RECORD}`): settings {sim.get('config')}, judges {judges}; "
            f"{sim.get('reference_images')} reference images for realism."
        )
    if analysis.result is not None:
        o = analysis.result.options
        lines.append(
            f"Analysis: ties {o.ties}, {o.level:.0%} {o.ci} intervals, Holm over every comparison of this report, "
            f"Bradley–Terry with {o.n_bootstrap} bootstrap replicates (seed {o.seed}), default exclusion policy."
        )
    return tuple(lines)


def build_document(
    cfg: RunConfig,
    run_dir: RunDir,
    entries: Sequence[ManifestEntry],
    results: Sequence[MetricResultRecord],
    repo: Repository | None,
    study_ids: Sequence[int],
) -> Document:
    """Assemble the report of a run."""
    report_dir = run_dir.root / "report"
    prov = run_dir.read_json("provenance.json")
    counts: dict[str, int] = defaultdict(int)
    for e in entries:
        counts[e.system_id] += 1
    models = {e.system_id: (e.model_id, e.checkpoint_sha256) for e in entries}
    systems = Table(
        ("system", "generator", "model id", "checkpoint sha256", "images"),
        rows(
            (s.id, s.generator, models.get(s.id, ("—", None))[0], (models.get(s.id, ("", None))[1] or "—")[:16],
             counts[s.id])
            for s in cfg.systems
        ),
    )
    overview = Section(
        "Run",
        (
            (
                f"Run `{cfg.run_id}`: {len({e.prompt_id for e in entries})} captions from `{cfg.prompts.source}`"
                f" (split {cfg.prompts.split}), {cfg.sampling.seeds_per_prompt} seeds per caption, "
                f"{len(entries)} images."
            ),
        ),
        (systems,),
    )
    sections = [overview]
    if entries:
        grid = sample_grid(run_dir, entries, report_dir / "samples.png")
        sections.append(Section("Samples", (), (), (Figure(grid, "First 8 samples of each system and setting (rows)."),)))
    sections.append(
        Section("Metrics", () if results else ("No metrics computed yet.",), (_metric_table(results),) if results else ())
    )
    sections += _tradeoff_sections(results, report_dir)
    analysis = None
    if repo is not None and study_ids:
        human, analysis = human_sections(
            repo, study_ids, report_dir, baseline=cfg.study.baseline or None, seed=cfg.study.seed
        )
        sections += human
    git = prov.get("git", {})
    pkgs = ", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items() if v)
    sections.append(
        Section(
            "Provenance",
            (
                (
                    f"Config sha256 `{cfg.config_hash()}`; git commit `{git.get('commit')}`"
                    f"{' (uncommitted changes)' if git.get('dirty') else ''}; created {prov.get('created_at')}; "
                    f"device {prov.get('device', {}).get('device')}; Python {prov.get('python')}."
                ),
                f"Packages: {pkgs}.",
                f"Seeds: {prov.get('seeds')}. Every image is in `images/` under its sha256 and listed in `manifest.jsonl`.",
                _metric_provenance(results),
                *_vote_provenance(run_dir, analysis),
            ),
        )
    )
    return Document(f"unclip-harness report: {cfg.name}", tuple(sections))


def write_report(
    cfg: RunConfig,
    run_dir: RunDir,
    repo: Repository | None,
    *,
    entries: Sequence[ManifestEntry] | None = None,
    results: Sequence[MetricResultRecord] | None = None,
    study_ids: Sequence[int] = (),
) -> tuple[Path, Path]:
    """Write ``report/report.md`` and ``report/report.html`` into the run dir; returns both paths."""
    entries = list(entries) if entries is not None else run_dir.entries()
    if results is None:
        results = repo.load_metric_results(cfg.run_id) if repo is not None else []
    doc = build_document(cfg, run_dir, entries, results, repo, study_ids)
    report_dir = run_dir.root / "report"
    md, page = report_dir / "report.md", report_dir / "report.html"
    atomic_write_bytes(md, to_markdown(doc, report_dir).encode("utf-8"))
    atomic_write_bytes(page, to_html(doc).encode("utf-8"))
    return md, page
