"""Conversions between result rows of `harness.storage.schema` tables and the records of `harness.storage.records`."""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import Row

from harness.storage.records import (
    AnnotatorRecord,
    AssignmentRecord,
    AssignmentStatus,
    Choice,
    ImageRecord,
    ItemRecord,
    MetricResultRecord,
    RunRecord,
    Side,
    StudyRecord,
    StudyStatus,
    VoteRecord,
    Winner,
)


def group_key(group: dict[str, Any]) -> str:
    """Canonical JSON of a metric group (sorted keys, no spaces): the comparable part of a metric result's key."""
    return json.dumps(group, sort_keys=True, separators=(",", ":"), default=str)


def run_record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        name=row.name,
        created_at=row.created_at,
        run_dir=row.run_dir,
        config=dict(row.config),
        provenance=dict(row.provenance),
    )


def image_record(row: Row[Any]) -> ImageRecord:
    return ImageRecord(
        sha256=row.sha256,
        run_id=row.run_id,
        prompt_id=row.prompt_id,
        prompt=row.prompt,
        model_id=row.model_id,
        seed=int(row.seed),
        settings=dict(row.settings),
        path=row.path,
    )


def metric_record(row: Row[Any]) -> MetricResultRecord:
    return MetricResultRecord(
        run_id=row.run_id,
        metric=row.metric,
        model_id=row.model_id,
        group=dict(row.group),
        value=float(row.value),
        ci_low=None if row.ci_low is None else float(row.ci_low),
        ci_high=None if row.ci_high is None else float(row.ci_high),
        n=int(row.n),
        extractor_id=row.extractor_id,
        inputs_hash=row.inputs_hash,
        details=dict(row.details),
    )


def study_record(row: Row[Any]) -> StudyRecord:
    return StudyRecord(
        study_id=int(row.study_id),
        name=row.name,
        protocol_name=row.protocol_name,
        protocol=dict(row.protocol),
        status=cast(StudyStatus, row.status),
        votes_per_item=int(row.votes_per_item),
        allow_tie=bool(row.allow_tie),
        created_at=row.created_at,
        seed=int(row.seed),
    )


def item_record(row: Row[Any]) -> ItemRecord:
    return ItemRecord(
        item_id=int(row.item_id),
        study_id=int(row.study_id),
        position=int(row.position),
        prompt_id=row.prompt_id,
        prompt=row.prompt,
        system_a=row.system_a,
        system_b=row.system_b,
        images_a=tuple(row.images_a),
        images_b=tuple(row.images_b),
        left=cast(Side, row.left),
        is_attention_check=bool(row.is_attention_check),
        expected=row.expected,
        votes_target=int(row.votes_target),
    )


def item_values(item: ItemRecord, study_id: int, default_target: int) -> dict[str, Any]:
    """Column values of a new ``items`` row (the store assigns ``item_id``)."""
    return {
        "study_id": study_id,
        "position": item.position,
        "prompt_id": item.prompt_id,
        "prompt": item.prompt,
        "system_a": item.system_a,
        "system_b": item.system_b,
        "images_a": list(item.images_a),
        "images_b": list(item.images_b),
        "left": item.left,
        "is_attention_check": item.is_attention_check,
        "expected": item.expected,
        "votes_target": item.votes_target if item.votes_target > 0 else default_target,
    }


def annotator_record(row: Row[Any]) -> AnnotatorRecord:
    return AnnotatorRecord(
        annotator_id=int(row.annotator_id), study_id=int(row.study_id), name=row.name, created_at=row.created_at
    )


def assignment_record(row: Row[Any]) -> AssignmentRecord:
    return AssignmentRecord(
        assignment_id=int(row.assignment_id),
        study_id=int(row.study_id),
        item_id=int(row.item_id),
        annotator_id=int(row.annotator_id),
        status=cast(AssignmentStatus, row.status),
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


def vote_record(row: Row[Any]) -> VoteRecord:
    return VoteRecord(
        vote_id=int(row.vote_id),
        assignment_id=int(row.assignment_id),
        study_id=int(row.study_id),
        item_id=int(row.item_id),
        annotator_id=int(row.annotator_id),
        protocol=row.protocol,
        choice=cast(Choice, row.choice),
        winner=cast(Winner, row.winner),
        model_a=row.model_a,
        model_b=row.model_b,
        left_model=row.left_model,
        prompt=row.prompt,
        response_ms=int(row.response_ms),
        created_at=row.created_at,
    )
