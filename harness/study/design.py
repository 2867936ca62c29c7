"""`harness study create`: from a run's images to studies in the store, ready for annotators.

For every protocol of the run config a study is designed with `eval_protocols.human.pairing.design_study` (balanced,
exactly counterbalanced, attention checks mixed in) and stored with a snapshot of its protocol. A system swept
over several settings enters a study once per setting, as ``<system>@<settings>``.

Attention checks are mixed in at ``study.attention_rate``; their stimuli (`harness.study.attention`: real renders
for toy-world captions, the run's own images for caption files) are written to ``<run dir>/attention/`` and
registered in the store as run ``<run id>-attention``.

Studies are named ``<run id>/<protocol>``; creating them again returns the existing ones (idempotent). A study is
stored in one transaction, and an attention-check render already in ``attention/`` is not written again, so a run
killed while creating studies resumes to the same studies and the same ``attention/manifest.jsonl``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tqdm import tqdm

from eval_protocols.human import design_inputs
from eval_protocols.human.design_inputs import ATTENTION_SUFFIX, SampleRef
from eval_protocols.human.pairing import design_study
from eval_protocols.human.protocol import get_protocol
from harness.config import RunConfig
from harness.errors import HarnessError
from harness.generate.store import store_run
from harness.prompts import PromptRecord
from harness.rundir import ManifestEntry, RunDir
from harness.study.attention import attention_pool, stimuli_for

if TYPE_CHECKING:
    from harness.storage.records import StudyRecord
    from harness.storage.repository import Repository


def study_systems(entries: Sequence[ManifestEntry]) -> dict[str, dict[str, list[str]]]:
    """``{study system id: {prompt id: [sha256 in seed-index order]}}`` from a run's manifest (see
    `eval_protocols.human.design_inputs.study_systems`)."""
    return design_inputs.study_systems(
        SampleRef(e.system_id, e.prompt_id, e.sample_index, e.sha256, e.settings) for e in entries
    )


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
    ``progress`` shows a bar over the protocols."""
    from harness.storage.records import ItemRecord, StudyRecord

    systems = study_systems(entries)
    if len(systems) < 2:
        raise HarnessError(
            f"a study compares at least two systems, but run {cfg.run_id} has {len(systems)}; add a [[systems]] entry"
        )
    existing = {s.name: s for s in repo.list_studies()}
    att_dir = RunDir(run_dir.root / "attention").create()
    stimuli = stimuli_for(cfg.prompts.source, run_dir, entries)
    out = []
    for name in tqdm(cfg.study.protocols, desc="study", unit="study", disable=not progress):
        study_name = f"{cfg.run_id}/{name}"
        if study_name in existing:
            out.append(existing[study_name])
            continue
        try:
            protocol = get_protocol(name)
        except ValueError as exc:
            raise HarnessError(f"study.protocols: {exc}") from None
        protocol = protocol.with_tie(cfg.study.allow_tie)
        pool = None
        if cfg.study.attention_rate > 0:
            pool = attention_pool(protocol, prompts, att_dir, stimuli, n_cases=max(4, len(prompts)), seed=cfg.study.seed)
        try:
            design = design_study(
                protocol,
                systems,
                {p.prompt_id: p.text for p in prompts},
                cfg.study.comparisons,  # type: ignore[arg-type]
                votes_per_item=cfg.study.votes_per_item,
                attention_rate=cfg.study.attention_rate,
                attention_pool=pool,
                seed=cfg.study.seed,
                baseline=cfg.study.baseline or None,
            )
        except ValueError as exc:
            raise HarnessError(f"cannot design the {name} study: {exc}") from None
        study = StudyRecord(
            study_id=0,
            name=study_name,
            protocol_name=protocol.name,
            protocol=protocol.to_dict(),
            status="open",
            votes_per_item=cfg.study.votes_per_item,
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
