"""`harness study create`: from a run's images to studies in the store, ready for annotators.

For every protocol of the run config a study is designed with `eval_protocols.human.pairing.design_study` (balanced,
exactly counterbalanced, attention checks mixed in) and stored with a snapshot of its protocol. A system swept
over several settings enters a study once per setting, as ``<system>@<settings>``.

Which pairs are compared follows ``study.comparisons``; ``"paper"`` pairs each guided system with ``study.baseline``
at the same guidance scale (and the other guided systems with each other), in the order of the config's
``[[systems]]``. How many votes each item collects follows the vote plan (`harness.study.plan`: from
``study.half_width`` through the power planner, or ``study.votes_per_item``); the plan is stored in the study's
protocol snapshot under ``study_plan`` and its warnings are printed to stderr as ``warning: ...`` lines.

Attention checks are mixed in at ``study.attention_rate``; their stimuli (`harness.study.attention`: real renders
for toy-world captions, the run's own images for caption files) are written to ``<run dir>/attention/`` and
registered in the store as run ``<run id>-attention``.

Studies are named ``<run id>/<protocol>``; creating them again returns the existing ones (idempotent). A study is
stored in one transaction, and an attention-check render already in ``attention/`` is not written again, so a run
killed while creating studies resumes to the same studies and the same ``attention/manifest.jsonl``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from eval_protocols.human import design_inputs
from eval_protocols.human.comparisons import SystemSetting
from eval_protocols.human.design_inputs import ATTENTION_SUFFIX, SampleRef
from eval_protocols.human.pairing import design_study, items_per_cell, resolve_comparisons
from eval_protocols.human.protocol import STUDY_PLAN_KEY, Protocol, get_protocol
from harness.config import RunConfig
from harness.errors import ConfigError, HarnessError
from harness.generate.store import store_run
from harness.prompts import PromptRecord
from harness.rundir import ManifestEntry, RunDir
from harness.study.attention import attention_pool, stimuli_for
from harness.study.plan import VotePlan, cells_of, plan_votes

if TYPE_CHECKING:
    from harness.storage.records import StudyRecord
    from harness.storage.repository import Repository


def study_systems(entries: Sequence[ManifestEntry]) -> dict[str, dict[str, list[str]]]:
    """``{study system id: {prompt id: [sha256 in seed-index order]}}`` from a run's manifest (see
    `eval_protocols.human.design_inputs.study_systems`)."""
    return design_inputs.study_systems(_refs(entries))


def system_settings(cfg: RunConfig, entries: Sequence[ManifestEntry]) -> dict[str, SystemSetting]:
    """``{study system id: SystemSetting}`` of a run's manifest, ordered by the config's ``[[systems]]`` and then by
    guidance scale (unguided first): the order ``comparisons = "paper"`` pairs systems in."""
    settings = design_inputs.system_settings(_refs(entries))
    order = {s.id: i for i, s in enumerate(cfg.systems)}

    def key(item: tuple[str, SystemSetting]) -> tuple[int, str, float]:
        s = item[1]
        return order.get(s.system, len(order)), s.system, -1.0 if s.guidance_scale is None else s.guidance_scale

    return dict(sorted(settings.items(), key=key))


def comparison_pairs(
    cfg: RunConfig, systems: dict[str, dict[str, list[str]]], settings: dict[str, SystemSetting]
) -> list[tuple[str, str]]:
    """The ``(a, b)`` study-system pairs of ``study.comparisons``.

    Raises:
        ConfigError: the comparisons cannot be made from this run's systems (the message names the fix).
    """
    try:
        return resolve_comparisons(systems, cfg.study.comparisons, cfg.study.baseline or None, settings)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f'study.comparisons = "{cfg.study.comparisons}": {exc}') from None


def _refs(entries: Sequence[ManifestEntry]) -> list[SampleRef]:
    return [SampleRef(e.system_id, e.prompt_id, e.sample_index, e.sha256, e.settings) for e in entries]


def create_studies(
    cfg: RunConfig,
    run_dir: RunDir,
    entries: Sequence[ManifestEntry],
    prompts: Sequence[PromptRecord],
    repo: Repository,
    *,
    progress: bool = False,
) -> list[StudyRecord]:
    """Design and store one study per protocol of ``cfg.study`` (existing studies of the run are reused);
    ``progress`` shows a bar over the protocols.

    Raises:
        ConfigError: the comparisons do not fit the run (e.g. ``"paper"`` without a second guided system).
        HarnessError: a study cannot be designed from the run's images.
    """
    from harness.storage.records import ItemRecord, StudyRecord

    systems = study_systems(entries)
    if len(systems) < 2:
        raise HarnessError(
            f"a study compares at least two systems, but run {cfg.run_id} has {len(systems)}; add a [[systems]] entry"
        )
    existing = {s.name: s for s in repo.list_studies()}
    for name in cfg.study.protocols:
        if (study := existing.get(study_name(cfg, name))) is not None:
            check_same_design(study, cfg)
    texts = {p.prompt_id: p.text for p in prompts}
    todo = [_protocol(name, cfg) for name in cfg.study.protocols if study_name(cfg, name) not in existing]
    plans = {}
    if todo:  # every check before anything is stored
        settings = system_settings(cfg, entries)
        pairs = comparison_pairs(cfg, systems, settings)
        plans = {protocol.name: _plan(cfg, protocol, systems, texts, pairs, settings) for protocol in todo}
        for protocol in todo:
            for warning in plans[protocol.name].warnings:
                print(f"warning: {cfg.run_id}/{protocol.name}: {warning}", file=sys.stderr)
    att_dir = RunDir(run_dir.root / "attention").create()
    stimuli = stimuli_for(cfg.prompts.source, run_dir, entries)
    by_name = {protocol.name: protocol for protocol in todo}
    out = []
    for name in tqdm(cfg.study.protocols, desc="study", unit="study", disable=not progress):
        if study_name(cfg, name) in existing:
            out.append(existing[study_name(cfg, name)])
            continue
        protocol, plan = by_name[name], plans[name]
        pool = None
        if cfg.study.attention_rate > 0:
            pool = attention_pool(protocol, prompts, att_dir, stimuli, n_cases=max(4, len(prompts)), seed=cfg.study.seed)
        try:
            design = design_study(
                protocol,
                systems,
                texts,
                [(c.system_a, c.system_b) for c in plan.cells],
                votes_per_item=plan.cell.votes_per_item,
                attention_rate=cfg.study.attention_rate,
                attention_pool=pool,
                seed=cfg.study.seed,
            )
        except ValueError as exc:
            raise HarnessError(f"cannot design the {name} study: {exc}") from None
        study = StudyRecord(
            study_id=0,
            name=study_name(cfg, name),
            protocol_name=protocol.name,
            protocol={**protocol.to_dict(), STUDY_PLAN_KEY: {**plan.to_dict(), DESIGN_KEY: design_settings(cfg)}},
            status="open",
            votes_per_item=plan.cell.votes_per_item,
            allow_tie=protocol.allow_tie,
            created_at=dt.datetime.now(dt.UTC),
            seed=cfg.study.seed,
        )
        items = [ItemRecord.from_designed(it) for it in design.items]
        study_id = repo.create_study(study, items)
        stored = repo.get_study(study_id)
        assert stored is not None
        out.append(stored)
    att_entries = att_dir.entries()
    if att_entries:
        store_run(
            repo, cfg.run_id + ATTENTION_SUFFIX, cfg.name + ATTENTION_SUFFIX, att_dir, att_entries,
            config={"attention_checks_for": cfg.run_id, "study": cfg.to_dict()["study"]},
            provenance=run_dir.read_json("provenance.json"),
        )
    return out


DESIGN_KEY = "design"
"""Key, in a study's stored plan, of the `[study]` settings it was designed with (`design_settings`)."""


def study_name(cfg: RunConfig, protocol: str) -> str:
    """``<run id>/<protocol>``, or ``<run id>/<study.name>/<protocol>``."""
    return "/".join(part for part in (cfg.run_id, cfg.study.name, protocol) if part)


def design_settings(cfg: RunConfig) -> dict[str, Any]:
    """The `[study]` settings that shape a study's design (all but the protocol list and the name), JSON-ready."""
    settings = cfg.to_dict()["study"]
    return {k: v for k, v in sorted(settings.items()) if k not in ("protocols", "name")}


def check_same_design(study: StudyRecord, cfg: RunConfig) -> None:
    """Refuse to reuse ``study`` for a config that asks for another design (the overrides would be ignored).

    Studies stored before their settings were recorded are compared by votes per item only.

    Raises:
        HarnessError: naming the first setting that differs and the fix (``--name`` for a second study).
    """
    stored = (study.protocol.get(STUDY_PLAN_KEY) or {}).get(DESIGN_KEY)
    wanted = design_settings(cfg)
    if stored is None:
        stored = {"votes_per_item": study.votes_per_item}
        wanted = {"votes_per_item": cfg.study.votes_per_item or study.votes_per_item}
    differ = [k for k in wanted if stored.get(k) != wanted[k]]
    if differ:
        key = differ[0]
        raise HarnessError(
            f"study {study.name!r} exists, designed with study.{key} = {json.dumps(stored.get(key))}, not "
            f"{json.dumps(wanted[key])}; it is not changed. To add a second study of this run with these settings, "
            f"give it a name: --set study.name=NAME (harness study create CONFIG --name NAME)"
        )


def _protocol(name: str, cfg: RunConfig) -> Protocol:
    try:
        return get_protocol(name).with_tie(cfg.study.allow_tie)
    except ValueError as exc:
        raise HarnessError(f"study.protocols: {exc}") from None


def _plan(
    cfg: RunConfig,
    protocol: Protocol,
    systems: dict[str, dict[str, list[str]]],
    texts: dict[str, str],
    pairs: list[tuple[str, str]],
    settings: dict[str, SystemSetting],
) -> VotePlan:
    """The vote plan of one protocol's study (`harness.study.plan.plan_votes`)."""
    try:
        items = items_per_cell(protocol, systems, texts, pairs)
    except ValueError as exc:
        raise HarnessError(f"cannot design the {protocol.name} study: {exc}") from None
    cells = cells_of(pairs, settings, cfg.study.comparisons, cfg.study.baseline or None)
    return plan_votes(cfg.study, cfg.simulate, protocol, items, cells)
