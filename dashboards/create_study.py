"""The admin page's "Create a study" form: a study designed from a run's images in the store.

Everything comes from the store through the repository: the run's images become study systems exactly as in
`harness study create` (`eval_protocols.human.design_inputs.study_systems`: a system swept over several settings
enters as ``<system>@<settings>``), and the attention checks are the stimuli that `harness study create` rendered
into the run ``<run id>-attention`` (`eval_protocols.human.design_inputs.attention_pool`). Without them the study
gets no attention checks, and the form says so.

`build_study` is the pure part (inputs and request in, records out); `design_study`'s ``ValueError`` and the
store's `HarnessError` (a taken name) reach the admin as one message, and nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import streamlit as st

from eval_protocols.human.design_inputs import ATTENTION_SUFFIX, SampleRef, attention_pool, study_systems
from eval_protocols.human.pairing import AttentionPool, design_study
from eval_protocols.human.protocol import Protocol, get_protocol, list_protocols
from harness.storage.records import ImageRecord, ItemRecord, RunRecord, StudyRecord, StudyStatus
from harness.storage.repository import HarnessError, Repository

Comparisons = Literal["all_pairs", "vs_baseline"]

_FLASH = "create_flash"
"""Session-state key: the message about the study created by the previous run of the page."""
_COMPARISON_LABELS: dict[str, str] = {"all_pairs": "All pairs", "vs_baseline": "Each system vs a baseline"}


@dataclass(frozen=True)
class RunInputs:
    """What a study can be designed from, for one run in the store.

    Attributes:
        run_id: the run.
        systems: ``{study system id: {prompt id: [sha256 in seed-index order]}}``.
        prompts: ``{prompt id: caption}`` over all images of the run.
        attention: the images of the run ``<run id>-attention`` (empty when it is not in the store).
    """

    run_id: str
    systems: dict[str, dict[str, list[str]]]
    prompts: dict[str, str]
    attention: tuple[SampleRef, ...]

    def attention_pool(self, protocol: Protocol) -> AttentionPool | None:
        """The stored attention cases that fit ``protocol``, or ``None``."""
        return attention_pool(protocol, self.attention)


@dataclass(frozen=True)
class StudyRequest:
    """What the admin asked for in the form.

    Attributes:
        run_id: the run whose images the study shows.
        protocol: protocol name (`list_protocols`).
        systems: study system ids to include (at least two).
        comparisons: ``all_pairs`` or ``vs_baseline``.
        baseline: the baseline system for ``vs_baseline``.
        votes_per_item: target votes per item (>= 1).
        allow_tie: offer "Not sure".
        attention_rate: share of attention-check items in ``[0, 1)`` (``0`` when the run has no stored checks).
        seed: seed of the design (pairing, sides, check order, positions).
        name: the study's unique name; empty: ``<run id>/<protocol>``.
        status: ``draft`` (open it later) or ``open``.
    """

    run_id: str
    protocol: str
    systems: tuple[str, ...]
    comparisons: Comparisons = "all_pairs"
    baseline: str | None = None
    votes_per_item: int = 3
    allow_tie: bool = True
    attention_rate: float = 0.0
    seed: int = 0
    name: str = ""
    status: StudyStatus = "draft"

    @property
    def study_name(self) -> str:
        """The given name, or ``<run id>/<protocol>``."""
        return self.name.strip() or f"{self.run_id}/{self.protocol}"


def design_runs(repo: Repository) -> list[RunRecord]:
    """Runs a study can be made from: every stored run except the attention-check runs."""
    return [r for r in repo.list_runs() if not r.run_id.endswith(ATTENTION_SUFFIX)]


def sample_ref(image: ImageRecord) -> SampleRef:
    """An image of the store as study design sees it (system = ``model_id``, settings without bookkeeping)."""
    return SampleRef(
        system_id=image.model_id,
        prompt_id=image.prompt_id,
        sample_index=image.sample_index,
        image_id=image.sha256,
        settings=image.sampling_settings,
        prompt=image.prompt,
        seed=image.seed,
    )


def run_inputs(repo: Repository, run_id: str) -> RunInputs:
    """Read a run's images (and its attention run's, if stored) and group them for `design_study`."""
    images = repo.list_images(run_id)
    attention = repo.list_images(run_id + ATTENTION_SUFFIX)
    return RunInputs(
        run_id=run_id,
        systems=study_systems(sample_ref(i) for i in images),
        prompts={i.prompt_id: i.prompt for i in sorted(images, key=lambda i: i.prompt_id)},
        attention=tuple(sample_ref(i) for i in attention),
    )


def build_study(
    inputs: RunInputs, request: StudyRequest, created_at: datetime
) -> tuple[StudyRecord, list[ItemRecord]]:
    """Design the requested study and return the records to store.

    Raises:
        ValueError: the request cannot be designed (fewer than two systems, a baseline missing from the chosen
            systems, too few images for the protocol, no stored attention checks for a rate above 0, ...).
    """
    protocol = get_protocol(request.protocol).with_tie(request.allow_tie)
    unknown = sorted(set(request.systems) - set(inputs.systems))
    if unknown:
        raise ValueError(f"run {inputs.run_id!r} has no system(s) {unknown}; pick from {sorted(inputs.systems)}")
    pool = inputs.attention_pool(protocol) if request.attention_rate > 0 else None
    design = design_study(
        protocol,
        {s: inputs.systems[s] for s in request.systems},
        inputs.prompts,
        request.comparisons,
        votes_per_item=request.votes_per_item,
        attention_rate=request.attention_rate,
        attention_pool=pool,
        seed=request.seed,
        baseline=request.baseline if request.comparisons == "vs_baseline" else None,
    )
    study = StudyRecord(
        study_id=0,
        name=request.study_name,
        protocol_name=protocol.name,
        protocol=protocol.to_dict(),
        status=request.status,
        votes_per_item=request.votes_per_item,
        allow_tie=protocol.allow_tie,
        created_at=created_at,
        seed=request.seed,
    )
    return study, [ItemRecord.from_designed(item) for item in design.items]


def create_study(repo: Repository, request: StudyRequest) -> StudyRecord:
    """Design and store the requested study in one transaction; returns the stored study.

    Raises:
        ValueError: the request cannot be designed (see `build_study`); nothing is stored.
        HarnessError: the store refuses it (e.g. the name is taken); nothing is stored.
    """
    study, items = build_study(run_inputs(repo, request.run_id), request, datetime.now(UTC))
    stored = repo.get_study(repo.create_study(study, items))
    assert stored is not None
    return stored


def render_create_study(repo: Repository) -> None:
    """The form: run, protocol, systems, comparisons, votes, tie, attention checks, seed, name, status."""
    flash = st.session_state.pop(_FLASH, None)
    if flash:
        st.success(flash)
    runs = design_runs(repo)
    if not runs:
        st.info("No runs in the store yet: `harness generate CONFIG` (or `harness run CONFIG`) registers one.")
        return
    run_id = st.selectbox("Run", [r.run_id for r in runs], key="create_run")
    inputs = run_inputs(repo, run_id)
    protocol_name = st.selectbox("Protocol", list_protocols(), key="create_protocol")
    systems = sorted(inputs.systems)
    chosen = st.multiselect("Systems", systems, default=systems, key=f"create_systems-{run_id}")
    pair_cols = st.columns(2)
    comparisons = pair_cols[0].radio("Comparisons", list(_COMPARISON_LABELS), format_func=_COMPARISON_LABELS.__getitem__,
                                key="create_comparisons")
    baseline = pair_cols[1].selectbox("Baseline", chosen or systems, key=f"create_baseline-{run_id}",
                                 disabled=comparisons != "vs_baseline")
    cols = st.columns(4)
    votes = int(cols[0].number_input("Votes per item", min_value=1, max_value=100, value=3, step=1,
                                     key="create_votes"))
    seed = int(cols[1].number_input("Design seed", min_value=0, value=0, step=1, key="create_seed"))
    allow_tie = cols[2].checkbox('Offer "Not sure"', value=True, key="create_tie")
    status = cols[3].radio("Status", ["draft", "open"], key="create_status")
    rate = _attention_rate(inputs, protocol_name)
    default_name = f"{run_id}/{protocol_name}"
    name = st.text_input("Name", value="", placeholder=default_name, key="create_name",
                         help=f"Unique; empty: {default_name}")
    if not st.button("Create study", key="create_submit", type="primary"):
        return
    request = StudyRequest(
        run_id=run_id, protocol=protocol_name, systems=tuple(chosen), comparisons=comparisons,  # type: ignore[arg-type]
        baseline=baseline, votes_per_item=votes, allow_tie=allow_tie, attention_rate=rate, seed=seed, name=name,
        status=status,  # type: ignore[arg-type]
    )
    try:
        study = create_study(repo, request)
    except (ValueError, HarnessError) as exc:
        st.error(f"Cannot create the study: {exc}")
        return
    n_items = len(repo.list_items(study.study_id))
    st.session_state[_FLASH] = f"Created study {study.study_id}: {study.name} ({study.status}, {n_items} items)."
    st.session_state["admin_study"] = study.study_id
    st.rerun()


def _attention_rate(inputs: RunInputs, protocol_name: str) -> float:
    """The attention-rate input when the run has stored checks for the protocol; else 0 with a note saying why."""
    pool = inputs.attention_pool(get_protocol(protocol_name))
    if pool is None:
        st.info(f"No attention-check images for {protocol_name} in the store (run `{inputs.run_id}{ATTENTION_SUFFIX}`, "
                "made by `harness study create`): this study gets no attention checks.")
        return 0.0
    st.caption(f"{len(pool.cases)} attention-check case(s) from run `{inputs.run_id}{ATTENTION_SUFFIX}`.")
    return float(st.number_input("Attention-check rate", min_value=0.0, max_value=0.5, value=0.1, step=0.05,
                                 key="create_attention_rate"))
