"""`harness study create`: from a run's images to studies in the store, ready for annotators.

For every protocol of the run config a study is designed with `eval_protocols.human.pairing.design_study` (balanced,
exactly counterbalanced, attention checks mixed in) and stored with a snapshot of its protocol. A system swept
over several settings enters a study once per setting, as ``<system>@<settings>``.

Attention-check stimuli are made here, from the toy world, and written to ``<run dir>/attention/`` (a run dir of
their own, registered in the store as run ``<run id>-attention``, named as `eval_protocols.human.design_inputs`
describes, so the admin page can reuse them):

* photorealism: a real render against the same render visibly corrupted;
* caption similarity: a render of the caption against a render of a contradicting caption (another shape);
* diversity: 16 varied renders of the caption against 16 copies of one of them.

Studies are named ``<run id>/<protocol>``; creating them again returns the existing ones (idempotent). A study is
stored in one transaction, and an attention-check render already in ``attention/`` is not written again, so a run
killed while creating studies resumes to the same studies and the same ``attention/manifest.jsonl``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from eval_protocols.human import design_inputs
from eval_protocols.human.corruptions import corrupt_render
from eval_protocols.human.design_inputs import ATTENTION_CASE_STRIDE, ATTENTION_SUFFIX, SampleRef, attention_system_id
from eval_protocols.human.pairing import AttentionCase, AttentionPool, design_study
from eval_protocols.human.protocol import Protocol, get_protocol
from harness.config import RunConfig
from harness.errors import HarnessError
from harness.manifest import ManifestEntry, RunDir, derive_seed, work_key
from harness.prompts import PromptRecord

if TYPE_CHECKING:
    from harness.storage.records import StudyRecord
    from harness.storage.repository import Repository

def study_systems(entries: Sequence[ManifestEntry]) -> dict[str, dict[str, list[str]]]:
    """``{study system id: {prompt id: [sha256 in seed-index order]}}`` from a run's manifest (see
    `eval_protocols.human.design_inputs.study_systems`)."""
    return design_inputs.study_systems(
        SampleRef(e.system_id, e.prompt_id, e.sample_index, e.sha256, e.settings) for e in entries
    )


def contradicting_caption(text: str, rng: np.random.Generator) -> str:
    """A one-object toy caption that contradicts ``text``: the first object's shape replaced by another shape."""
    from harness.data.toyworld.captions import ObjectMention, parse_caption
    from harness.data.toyworld.vocab import SHAPES

    first = parse_caption(text).objects[0]
    others = [s for s in SHAPES if s != first.shape]
    return ObjectMention(str(rng.choice(others)), first.colour, first.size).phrase()


def _write_attention_image(
    att_dir: RunDir, written: dict[tuple[str, str, int, str], str], protocol: str, prompt: PromptRecord,
    case: int, base_seed: int, image: np.ndarray, role: str, k: int = 0,
) -> str:
    """Store the ``k``-th image of attention case ``case`` in ``att_dir`` unless an earlier (interrupted) attempt did;
    returns its sha256. ``written``: ``{manifest key: sha256}`` of what is already there."""
    system_id, index = attention_system_id(protocol, role), case * ATTENTION_CASE_STRIDE + k
    done = written.get(work_key(system_id, prompt.prompt_id, index, {}))
    if done is not None:  # the render is deterministic: the stored one is this one
        return done
    return att_dir.add_image(
        image,
        {
            "system_id": system_id,
            "model_id": "toyworld-attention",
            "prompt_id": prompt.prompt_id,
            "prompt": prompt.text,
            "sample_index": index,
            "seed": base_seed + k,
            "settings": {},
            "checkpoint_sha256": None,
        },
    ).sha256


def _attention_pool(
    protocol: Protocol, prompts: Sequence[PromptRecord], att_dir: RunDir, n_cases: int, seed: int
) -> AttentionPool:
    """Render the attention-check stimuli of one protocol into ``att_dir`` and return them as a pool."""
    from harness.data import toyworld

    rng = np.random.default_rng([seed, 0xA77])
    written = {e.key: e.sha256 for e in att_dir.entries() if (att_dir.root / e.path).is_file()}
    cases = []
    for i in range(n_cases):
        prompt = prompts[i % len(prompts)]
        # the protocol enters the seed: checks of different protocols must not share a render, since the store keeps
        # one record (one role) per image of a run
        base_seed = derive_seed(seed + 7919, f"{protocol.name}/{prompt.prompt_id}", i)
        add = functools.partial(_write_attention_image, att_dir, written, protocol.name, prompt, i, base_seed)

        kind = protocol.attention_check_kind
        if kind == "corrupted_render":
            real, _ = toyworld.render_caption(prompt.text, seed=base_seed)
            cases.append(AttentionCase(prompt.prompt_id, prompt.text, (add(real, "real"),),
                                       (add(corrupt_render(real, base_seed), "corrupted"),)))
        elif kind == "contradicting_caption":
            real, _ = toyworld.render_caption(prompt.text, seed=base_seed)
            wrong, _ = toyworld.render_caption(contradicting_caption(prompt.text, rng), seed=base_seed)
            cases.append(AttentionCase(prompt.prompt_id, prompt.text, (add(real, "true"),), (add(wrong, "wrong"),)))
        else:  # collapsed grid
            rows, cols = protocol.grid or (4, 4)
            varied = [add(toyworld.render_caption(prompt.text, seed=base_seed + k)[0], "varied", k)
                      for k in range(rows * cols)]
            cases.append(AttentionCase.collapsed_grid(prompt.prompt_id, prompt.text, varied))
    return AttentionPool(kind=protocol.attention_check_kind, cases=tuple(cases))


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
    from harness.runner import store_run
    from harness.storage.records import ItemRecord, StudyRecord

    systems = study_systems(entries)
    if len(systems) < 2:
        raise HarnessError(
            f"a study compares at least two systems, but run {cfg.run_id} has {len(systems)}; add a [[systems]] entry"
        )
    existing = {s.name: s for s in repo.list_studies()}
    att_dir = RunDir(run_dir.root / "attention").create()
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
            pool = _attention_pool(protocol, prompts, att_dir, n_cases=max(4, len(prompts)), seed=cfg.study.seed)
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
