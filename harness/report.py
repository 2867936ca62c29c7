"""`harness report`: a Markdown and a self-contained HTML report of a run, read from the run dir and the store.

Sections: the run and its systems; sample grids; the metric table (value, 95% bootstrap interval, n, extractor);
each study with its design and, once votes exist, win rates with intervals; the provenance of every number
(config hash, git commit, package versions, device).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from harness.config import RunConfig
from harness.manifest import ManifestEntry, RunDir, atomic_write_bytes, encode_png
from harness.reportdoc import Document, Figure, Section, Table, fmt, fmt_ci, rows, to_html, to_markdown

if TYPE_CHECKING:
    from harness.storage.records import MetricResultRecord
    from harness.storage.repository import Repository


def settings_label(settings: dict[str, object]) -> str:
    """Short label of a settings group, e.g. ``g=3.0 steps=50`` (``—`` when empty)."""
    if not settings:
        return "—"
    short = {"guidance_scale": "g", "prior_guidance_scale": "prior g", "steps": "steps"}
    return " ".join(f"{short.get(k, k)}={v}" for k, v in sorted(settings.items()))


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
        grid = np.asarray(Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST))
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


def _study_sections(repo: Repository, study_ids: Sequence[int]) -> list[Section]:
    sections = []
    for sid in study_ids:
        study = repo.get_study(sid)
        if study is None:
            continue
        items = repo.list_items(sid)
        votes = repo.load_votes(sid)
        checks = sum(i.is_attention_check for i in items)
        pairs = sorted({(i.system_a, i.system_b) for i in items if not i.is_attention_check})
        paras = [
            f"Protocol **{study.protocol_name}** (\"{study.protocol.get('question', '')}\"), status {study.status}: "
            f"{len(items)} items ({checks} attention checks), target {sum(i.votes_target for i in items)} votes, "
            f"{len(votes)} collected.",
        ]
        tables = []
        if votes:
            tables.append(_win_table(votes, pairs))
        else:
            paras.append("No votes yet: win rates appear here once annotators have voted.")
        sections.append(Section(f"Study {sid}: {study.name}", tuple(paras), tuple(tables), level=3))
    return sections


def _win_table(votes: Sequence[object], pairs: Sequence[tuple[str, str]]) -> Table:
    from eval_protocols.human.winrates import win_rates

    import pandas as pd

    df = pd.DataFrame(
        [{"model_a": v.model_a, "model_b": v.model_b, "winner": v.winner} for v in votes]  # type: ignore[attr-defined]
    )
    body = []
    for wr in win_rates(df):
        body.append((wr.model_a, wr.model_b, wr.wins, wr.losses, wr.ties, fmt_ci(wr.rate, wr.ci_low, wr.ci_high, 3)))
    return Table(
        ("A", "B", "A wins", "B wins", "ties", "P(A beats B) [95% CI]"),
        rows(body),
        caption="Ties count as half a win for each side (the GLIDE/unCLIP convention); normal-approximation intervals.",
    )


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
            f"Run `{cfg.run_id}`: {len({e.prompt_id for e in entries})} captions from `{cfg.prompts.source}`"
            f" (split {cfg.prompts.split}), {cfg.sampling.seeds_per_prompt} seeds per caption, {len(entries)} images.",
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
    if repo is not None and study_ids:
        sections.append(Section("Human studies", ()))
        sections += _study_sections(repo, study_ids)
    git = prov.get("git", {})
    pkgs = ", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items() if v)
    sections.append(
        Section(
            "Provenance",
            (
                f"Config sha256 `{cfg.config_hash()}`; git commit `{git.get('commit')}`"
                f"{' (uncommitted changes)' if git.get('dirty') else ''}; created {prov.get('created_at')}; "
                f"device {prov.get('device', {}).get('device')}; Python {prov.get('python')}.",
                f"Packages: {pkgs}.",
                f"Seeds: {prov.get('seeds')}. Every image is in `images/` under its sha256 and listed in `manifest.jsonl`.",
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
