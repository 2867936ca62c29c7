"""Builders of small studies for the storage tests."""

from __future__ import annotations

from datetime import UTC, datetime

from harness.storage.records import ItemRecord, StudyRecord


def make_study(name: str = "photo", *, votes_per_item: int = 2, allow_tie: bool = True) -> StudyRecord:
    return StudyRecord(
        study_id=0,
        name=name,
        protocol_name="photorealism",
        protocol={"question": "Which image is more photorealistic?", "options": ["left", "right", "tie"]},
        status="open",
        votes_per_item=votes_per_item,
        allow_tie=allow_tie,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        seed=7,
    )


def make_items(n: int, *, attention_every: int = 0, votes_target: int = 0) -> list[ItemRecord]:
    """``n`` items alternating sides; every ``attention_every``-th one an attention check expecting 'left'."""
    out = []
    for k in range(n):
        check = attention_every > 0 and k % attention_every == attention_every - 1
        out.append(
            ItemRecord(
                item_id=0,
                study_id=0,
                position=k,
                prompt_id=f"p{k}",
                prompt=f"a red cube number {k}",
                system_a="unclip" if not check else "real",
                system_b="glide" if not check else "corrupted",
                images_a=(f"{k:064x}",),
                images_b=(f"{k + 1000:064x}",),
                left="a" if k % 2 == 0 else "b",
                is_attention_check=check,
                expected="left" if check else None,
                votes_target=votes_target,
            )
        )
    return out
