"""`harness report`: a Markdown and a self-contained HTML report of a run, read from the run dir and the store.

The report leads with the answer (`harness.report.headline`): P(unCLIP beats GLIDE) per protocol with its interval,
n and who voted, the Fig. 10 style plot and Table 1 (unCLIP vs GLIDE at matched guidance; diffusion vs AR prior
beside it). Then: the run and its systems; sample grids; the metrics against the guidance scale (one panel per
metric, Fig. 9 style), the FD-vs-CLIP-score trade-off and the metric table (`harness.report.figures`); the human
evaluation (`harness.report.studies`: studies, Bradley–Terry ratings chart, position bias, annotators and
exclusions), labelled as simulated while only simulated annotators voted; the provenance of every number (config
hash, git commit, package versions, device, seeds, extractors, where the votes came from and how they were
analysed); an appendix with every pair's win rate, the sign tests and the ratings in numbers.

Every system is named by one `eval_protocols.human.labels.Labeller` built from the run config's generators
(``unCLIP (diffusion prior), g = 3``, ``GLIDE, g = 1``, ``real renders``), as the app names them.

Beside ``report.md`` and ``report.html`` the report folder holds the figures, ``metrics.json`` (every metric result,
machine-readable), ``table1.csv``, ``win_rates.csv`` and ``sign_tests.csv``. Nothing in them reads the clock: the one
time shown is the run's creation time from ``provenance.json`` (kept from the run's first attempt), so rewriting the
report, or resuming an interrupted run, gives byte-identical files.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from eval_protocols.human.design_inputs import settings_label
from eval_protocols.human.labels import Labeller, metric_system_id
from harness.config import RunConfig
from harness.report.document import Document, Figure, Section, Table, rows, to_html, to_markdown
from harness.report.figures import METRIC_ORDER, guidance_scales, metric_curves, metric_title, metric_tradeoff
from harness.report.headline import answer_sections
from harness.report.studies import StudyAnalysis, analyze_studies, human_sections
from harness.rundir import ManifestEntry, RunDir, atomic_write_bytes, encode_png
from harness.simulate.votes import SIMULATION_RECORD

if TYPE_CHECKING:
    from harness.storage.records import MetricResultRecord
    from harness.storage.repository import Repository


def sample_grid(
    run_dir: RunDir,
    entries: Sequence[ManifestEntry],
    out: Path,
    per_row: int = 8,
    *,
    key: Callable[[str, str], Any] = lambda system, label: (system, label),
) -> tuple[Path, list[tuple[str, str]]]:
    """Save a grid of the first ``per_row`` images of every (system, settings label) group, one row each, rows in
    ``key(system, label)`` order; returns the path and the groups top to bottom."""
    groups: dict[tuple[str, str], list[ManifestEntry]] = defaultdict(list)
    for e in entries:
        groups[(e.system_id, settings_label(e.settings))].append(e)
    order = sorted(groups, key=lambda g: (key(*g), g))
    tiles = []
    for group in order:
        row = [run_dir.load_image(e) for e in groups[group][:per_row]]
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
    return out, order


def study_system_ids(entries: Sequence[ManifestEntry]) -> dict[tuple[str, str], str]:
    """``{(system, settings label): study system id}``, named as `design_inputs.study_systems` names them (a system
    with one setting keeps its id, one swept over several becomes ``<system>@<settings label>``)."""
    labels: dict[str, set[str]] = defaultdict(set)
    for e in entries:
        labels[e.system_id].add(settings_label(e.settings))
    return {(s, lab): s if len(group) == 1 else f"{s}@{lab}" for s, group in labels.items() for lab in group}


def run_labeller(cfg: RunConfig, entries: Sequence[ManifestEntry], analysis: StudyAnalysis | None) -> Labeller:
    """One labeller for every system the report names: the run's (system, setting) groups and the voted systems."""
    ids = set(study_system_ids(entries).values())
    if analysis is not None and len(analysis.votes):
        ids |= set(analysis.votes["model_a"].astype(str)) | set(analysis.votes["model_b"].astype(str))
    return Labeller.from_config(cfg.to_dict(), ids)


def _metric_table(results: Sequence[MetricResultRecord], system_id: Callable[[MetricResultRecord], str],
                  labeller: Labeller) -> Table:
    """Rows: systems (one per setting); columns: metrics; cells ``value [low, high]`` with n in a note."""
    metrics = sorted({r.metric for r in results},
                     key=lambda m: (METRIC_ORDER.index(m) if m in METRIC_ORDER else len(METRIC_ORDER), m))
    cells: dict[str, dict[str, MetricResultRecord]] = defaultdict(dict)
    for r in results:
        cells[system_id(r)][r.metric] = r
    header, features = [], defaultdict(list)
    for m in metrics:
        first = next(r for r in results if r.metric == m)
        better = "higher is better" if first.details.get("higher_is_better") else "lower is better"
        header.append(f"{metric_title(m)} ({better})")
        features[first.extractor_id or "no features"].append(metric_title(m))
    body, notes = [], []
    for sid in sorted(cells, key=labeller.sort_key):
        row = cells[sid]
        body.append((labeller.label(sid), *(_value_ci(row[m]) if m in row else "—" for m in metrics)))
        notes.append(("", *(f"n = {row[m].n}" if m in row else "" for m in metrics)))
    return Table(
        ("system", *header),
        rows(body),
        caption=(
            "Automated metrics against real renders of the same captions: value [95% bootstrap interval over "
            "images]; for FD and KID the basic bootstrap interval, which corrects for their finite-sample bias and so "
            "can lie below the estimate itself. Features: "
            + "; ".join(f"{', '.join(names)} from `{e}`" for e, names in features.items())
            + ". Every value is also in metrics.json."
        ),
        notes=tuple(notes),
    )


def _value_ci(r: MetricResultRecord) -> str:
    if r.ci_low is None or r.ci_high is None:
        return f"{r.value:.4g}"
    return f"{r.value:.4g} [{r.ci_low:.4g}, {r.ci_high:.4g}]"


def metric_sections(
    results: Sequence[MetricResultRecord], labeller: Labeller, ids: dict[tuple[str, str], str], report_dir: Path
) -> list[Section]:
    """The metrics against the guidance scale (one panel per metric), the FD-vs-CLIP-score trade-off when both were
    computed at several guidance scales, and the metric table."""
    if not results:
        return [Section("Metrics", ("No metrics computed yet.",))]

    def system_id(r: MetricResultRecord) -> str:
        return ids.get((r.model_id, settings_label(r.group)), metric_system_id(r.model_id, r.group))

    figures = []
    if len(guidance_scales(results)) >= 2:
        name, order = labeller.model_name, labeller.sort_key
        path = metric_curves(results, report_dir / "metrics_vs_guidance.png", name=name, order=order)
        if path:
            figures.append(Figure(path, "Each metric against the decoder guidance scale (unCLIP Fig. 9 style), one "
                                        "panel per metric, with 95% bootstrap intervals; dashed: systems that take no "
                                        "guidance scale (band: their interval)."))
        metrics = {r.metric for r in results}
        fd = next((m for m in ("fid", "fd") if m in metrics), None)
        if fd and "clip_score" in metrics:
            path = metric_tradeoff(results, "clip_score", fd, report_dir / "fd_vs_clip_score.png", name=name,
                                  order=order)
            if path:
                figures.append(Figure(path, f"{metric_title(fd)} against CLIP score; points are guidance scales "
                                            "(lower right is better)."))
    table = _metric_table(results, system_id, labeller)
    return [Section("Metrics", (), (), tuple(figures)), Section("Metric values", (), (table,), level=3)]


def metrics_payload(results: Sequence[MetricResultRecord]) -> list[dict[str, object]]:
    """The metric results as plain JSON objects, in the order of the report's table."""
    ordered = sorted(results, key=lambda r: (r.metric, r.model_id, settings_label(r.group), r.extractor_id))
    return [
        {"metric": r.metric, "system": r.model_id, "settings": r.group, "value": r.value, "ci_low": r.ci_low,
         "ci_high": r.ci_high, "n": r.n, "extractor_id": r.extractor_id, "inputs_hash": r.inputs_hash,
         "details": r.details}
        for r in ordered
    ]


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
    bar: tqdm | None = None,
) -> Document:
    """Assemble the report of a run; ``bar`` (if given) advances once per part: votes, samples, metrics."""
    report_dir = run_dir.root / "report"
    prov = run_dir.read_json("provenance.json")
    baseline = cfg.study.baseline or None
    analysis = None
    if repo is not None and study_ids:
        analysis = analyze_studies(repo, study_ids, baseline=baseline, seed=cfg.study.seed)
    ids = study_system_ids(entries)
    labeller = run_labeller(cfg, entries, analysis)
    if analysis is not None:
        sections, _ = answer_sections(analysis, labeller, report_dir, baseline=baseline)
    else:
        sections = [Section("The answer: P(unCLIP beats GLIDE)", (("No human study for this run yet: `harness study "
                                                                "create CONFIG` (or `harness run`) opens one."),))]
    if bar is not None:
        bar.update(1)
    sections.append(_overview(cfg, entries, labeller))
    if entries:
        grid, order = sample_grid(run_dir, entries, report_dir / "samples.png", key=lambda s, lab: labeller.sort_key(
            ids.get((s, lab), s)))
        names = "; ".join(labeller.label(ids.get(group, group[0])) for group in order)
        sections.append(Section("Samples", (), (), (Figure(grid, f"First 8 samples of each system, one row each, top "
                                                                 f"to bottom: {names}."),)))
    if bar is not None:
        bar.update(1)
    sections += metric_sections(results, labeller, ids, report_dir)
    if bar is not None:
        bar.update(1)
    appendix: list[Section] = []
    if analysis is not None:
        assert repo is not None
        human, appendix = human_sections(repo, study_ids, analysis, labeller, report_dir)
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
                ("Beside this report: `table1.csv` (Table 1, one line per cell), `win_rates.csv` (every pair), "
                "`sign_tests.csv`, `metrics.json` and the figures."),
            ),
        )
    )
    sections += appendix
    return Document(f"unclip-harness report: {cfg.name}", tuple(sections))


STAGE_NAMES = ("prior", "decoder", "upsampler")


def sampling_text(settings: Mapping[str, Any]) -> str:
    """An image's sampler settings in one line: ``prior dpm++2m 15 · decoder dpm++2m trailing8 · upsampler dpm++2m
    logsnr4 · prior g 1`` (``—`` for unguided systems); stages it does not record are left out."""
    parts = []
    for stage in STAGE_NAMES:
        sampler = settings.get(f"{stage}_sampler") or (settings.get("sampler") if stage == "decoder" else None)
        steps = settings.get("steps" if stage == "decoder" else f"{stage}_steps")
        if sampler is not None or steps is not None:
            parts.append(" ".join(str(x) for x in (stage, sampler, steps) if x is not None))
    if settings.get("prior_guidance_scale") is not None:
        parts.append(f"prior g {float(settings['prior_guidance_scale']):g}")
    return " · ".join(parts) or "—"


def _overview(cfg: RunConfig, entries: Sequence[ManifestEntry], labeller: Labeller) -> Section:
    """The run: captions, seeds, guidance scales, and a row per system (name, generator, model, checkpoint)."""
    counts: dict[str, int] = defaultdict(int)
    for e in entries:
        counts[e.system_id] += 1
    models = {e.system_id: (e.model_id, e.checkpoint_sha256) for e in entries}
    sampling = {e.system_id: sampling_text(e.settings) for e in entries}
    systems = Table(
        ("system", "name in this report", "generator", "model id", "checkpoint sha256", "sampling", "images"),
        rows(
            (s.id, labeller.model_name(s.id), s.generator, models.get(s.id, ("—", None))[0],
             (models.get(s.id, ("", None))[1] or "—")[:16], sampling.get(s.id, "—"), counts[s.id])
            for s in cfg.systems
        ),
    )
    return Section(
        "Run",
        (
            (
                f"Run `{cfg.run_id}`: {len({e.prompt_id for e in entries})} captions from `{cfg.prompts.source}`"
                f" (split {cfg.prompts.split}), {cfg.sampling.seeds_per_prompt} seeds per caption, "
                f"{len(entries)} images. Decoder guidance scales swept for the systems that take one: "
                f"{', '.join(f'{g:g}' for g in cfg.sampling.guidance_scales)}; each system's sampler and steps per stage "
                "are in the table (as recorded with its images)."
            ),
        ),
        (systems,),
    )


def write_report(
    cfg: RunConfig,
    run_dir: RunDir,
    repo: Repository | None,
    *,
    entries: Sequence[ManifestEntry] | None = None,
    results: Sequence[MetricResultRecord] | None = None,
    study_ids: Sequence[int] = (),
    progress: bool = False,
) -> tuple[Path, Path]:
    """Write ``report/report.md``, ``report/report.html`` and ``report/metrics.json`` into the run dir; returns the
    first two paths. ``progress`` shows a bar over the parts (samples, metrics, votes, writing)."""
    entries = list(entries) if entries is not None else run_dir.entries()
    if results is None:
        results = repo.load_metric_results(cfg.run_id) if repo is not None else []
    report_dir = run_dir.root / "report"
    md, page = report_dir / "report.md", report_dir / "report.html"
    with tqdm(total=4, desc="report", unit="part", disable=not progress) as bar:
        doc = build_document(cfg, run_dir, entries, results, repo, study_ids, bar)
        payload = json.dumps(metrics_payload(results), indent=2, sort_keys=True, default=_json_scalar) + "\n"
        atomic_write_bytes(report_dir / "metrics.json", payload.encode("utf-8"))
        atomic_write_bytes(md, to_markdown(doc, report_dir).encode("utf-8"))
        atomic_write_bytes(page, to_html(doc).encode("utf-8"))
        bar.update(1)
    return md, page


def _json_scalar(value: object) -> object:
    """numpy scalars (in metric details) as Python numbers."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
