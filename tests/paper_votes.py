"""A store holding the paper's comparison with known vote counts, for the report and the Results page tests.

A run ``paperrun`` whose config names the generators (real renders, unCLIP with each prior, GLIDE) at decoder
guidance scales 1 and 3, and one study per protocol whose votes are exactly `COUNTS`: W (first system wins), L (second
wins), T (not sure) per pair, cast through the repository as an annotator would. The pairs mix what a Table 1 needs
(unCLIP vs GLIDE at the same scale, diffusion vs AR prior) with what it must leave out (unCLIP vs GLIDE at different
scales, real renders vs GLIDE); caption-similarity votes come from a person (``alice``), the others from a simulated
annotator (``sim-01``). Diversity compares only two pairs, so Table 1 has empty cells.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from eval_protocols.human.protocol import get_protocol
from harness.storage.records import ItemRecord, RunRecord, StudyRecord
from harness.storage.repository import Repository

RUN_ID = "paperrun"
CONFIG: dict[str, object] = {
    "name": "paper",
    "systems": [
        {"id": "reference", "generator": "reference", "options": {}},
        {"id": "unclip-diffusion-prior", "generator": "unclip-diffusion-prior", "options": {}},
        {"id": "unclip-ar-prior", "generator": "unclip-ar-prior", "options": {}},
        {"id": "glide", "generator": "glide", "options": {}},
    ],
    "sampling": {"guidance_scales": [1.0, 3.0], "prior_guidance_scale": 1.0, "steps": "20"},
    "study": {"baseline": "", "comparisons": "all_pairs"},
}


def sid(system: str, g: float) -> str:
    """The study system id `harness study create` gives ``system`` at decoder guidance ``g``."""
    return f"{system}@g={g} prior g=1.0 steps=20"


UDP, UAR, GLIDE = "unclip-diffusion-prior", "unclip-ar-prior", "glide"
COUNTS: dict[str, dict[tuple[str, str], tuple[int, int, int]]] = {
    "photorealism": {
        (sid(UDP, 1.0), sid(GLIDE, 1.0)): (18, 20, 2),
        (sid(GLIDE, 3.0), sid(UDP, 3.0)): (12, 25, 3),  # stored GLIDE first: P(unCLIP wins) = (25 + 1.5)/40
        (sid(UAR, 1.0), sid(GLIDE, 1.0)): (15, 22, 3),
        (sid(UAR, 3.0), sid(GLIDE, 3.0)): (20, 18, 2),
        (sid(UDP, 1.0), sid(UAR, 1.0)): (22, 16, 2),
        (sid(UDP, 3.0), sid(UAR, 3.0)): (21, 17, 2),
        (sid(UDP, 1.0), sid(GLIDE, 3.0)): (30, 10, 0),  # different scales: not in Table 1
        ("reference", sid(GLIDE, 1.0)): (35, 5, 0),  # real renders: not in Table 1
    },
    "caption_similarity": {
        (sid(UDP, 1.0), sid(GLIDE, 1.0)): (14, 24, 2),
        (sid(UDP, 3.0), sid(GLIDE, 3.0)): (16, 22, 2),
        (sid(UAR, 1.0), sid(GLIDE, 1.0)): (12, 28, 0),  # no ties: the paper's plain Wald interval
        (sid(UAR, 3.0), sid(GLIDE, 3.0)): (13, 25, 2),
        (sid(UDP, 3.0), sid(UAR, 3.0)): (24, 14, 2),
    },
    "diversity": {
        (sid(UDP, 3.0), sid(GLIDE, 3.0)): (28, 10, 2),
        (sid(UAR, 3.0), sid(GLIDE, 3.0)): (24, 14, 2),
    },
}
ANNOTATOR: dict[str, str] = {"photorealism": "sim-01", "caption_similarity": "alice", "diversity": "sim-01"}


def build_paper_store(url: str, root: Path) -> list[int]:
    """Fill the store at ``url`` with the run and one open study per protocol of `COUNTS`; returns the study ids."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    study_ids = []
    with Repository.open(url) as repo:
        repo.create_run(RunRecord(RUN_ID, "paper", now, str(root / RUN_ID), config=CONFIG))
        for protocol, pairs in COUNTS.items():
            proto = get_protocol(protocol)
            items, outcome = [], []
            for (a, b), (wins, losses, ties) in pairs.items():
                for result in ["a"] * wins + ["b"] * losses + ["tie"] * ties:
                    k = len(items)
                    images = tuple(f"{k:060x}{side:04x}" for side in range(proto.images_per_side))
                    items.append(ItemRecord(0, 0, k, f"p{k % 7}", f"a red circle {k % 7}", a, b, images,
                                            tuple(i[::-1] for i in images), "a" if k % 2 == 0 else "b"))
                    outcome.append(result)
            study = StudyRecord(0, f"{RUN_ID}/{protocol}", protocol, proto.to_dict(), "open", 1, True, now, 0)
            study_id = repo.create_study(study, items)
            by_position = {i.item_id: outcome[i.position] for i in repo.list_items(study_id)}
            annotator, _ = repo.create_annotator(study_id, ANNOTATOR[protocol])
            nxt = repo.next_item_for(annotator.annotator_id, study_id)
            while nxt is not None:
                assignment, item = nxt
                result = by_position[item.item_id]
                choice = "tie" if result == "tie" else ("left" if (result == "a") == (item.left == "a") else "right")
                _, nxt = repo.record_vote_and_next(assignment.assignment_id, choice, 1500,
                                                   annotator_id=annotator.annotator_id)
            study_ids.append(study_id)
    return study_ids
