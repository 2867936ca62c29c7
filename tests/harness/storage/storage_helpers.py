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


def counter_mismatches(url: str, study_id: int) -> list[str]:
    """Differences between the maintained counters and a recount from the rows (empty when consistent).

    ``items.n_active`` = completed + pending-holding-a-slot assignments and never above ``votes_target``;
    ``items.n_done`` = completed assignments = votes; ``holds_slot`` only on pending or completed assignments, always
    on completed ones.
    """
    import sqlalchemy as sa

    from harness.storage.schema import assignments, items, votes

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            item_rows = conn.execute(sa.select(items).where(items.c.study_id == study_id)).all()
            rows = conn.execute(sa.select(assignments).where(assignments.c.study_id == study_id)).all()
            vote_items = conn.execute(sa.select(votes.c.item_id).where(votes.c.study_id == study_id)).scalars().all()
    finally:
        engine.dispose()
    problems = []
    for item in item_rows:
        mine = [r for r in rows if r.item_id == item.item_id]
        active = sum(r.status == "completed" or (r.status == "pending" and bool(r.holds_slot)) for r in mine)
        done = sum(r.status == "completed" for r in mine)
        if (item.n_active, item.n_done) != (active, done) or item.n_active > item.votes_target:
            problems.append(f"item {item.item_id}: n_active {item.n_active}/{active}, n_done {item.n_done}/{done}, "
                            f"target {item.votes_target}")
        if done != vote_items.count(item.item_id):
            problems.append(f"item {item.item_id}: {done} completed assignments, {vote_items.count(item.item_id)} votes")
    for r in rows:
        if bool(r.holds_slot) != (r.status == "completed") and r.status != "pending":
            problems.append(f"assignment {r.assignment_id}: {r.status} with holds_slot={r.holds_slot}")
    return problems
