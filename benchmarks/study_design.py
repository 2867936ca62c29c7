"""Time `design_study` at the paper's scale: 1,000 captions, 4 systems (6 comparisons), 1,000 items each, 5% checks.

Run: ``.venv/bin/python benchmarks/study_design.py``; results are recorded in ``benchmarks/study_design.md``.
"""

from __future__ import annotations

import time

from eval_protocols.human.pairing import AttentionCase, AttentionPool, design_study
from eval_protocols.human.protocol import get_protocol

SYSTEMS = ["unclip_diffusion", "unclip_ar", "glide", "decoder_only"]
PROMPTS = {f"p{i:04d}": f"caption {i}" for i in range(1000)}


def main() -> None:
    for name, seeds in (("photorealism", 4), ("diversity", 16)):
        protocol = get_protocol(name)
        systems = {s: {p: [f"{s}|{p}|{k}" for k in range(seeds)] for p in PROMPTS} for s in SYSTEMS}
        per_side = protocol.images_per_side
        cases = tuple(
            AttentionCase(f"c{i}", "x", tuple(f"r{i}_{k}" for k in range(per_side)), tuple(f"b{i}_{k}" for k in range(per_side)))
            for i in range(50)
        )
        pool = AttentionPool(protocol.attention_check_kind, cases)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            design = design_study(protocol, systems, PROMPTS, "all_pairs", items_per_comparison=1000,
                                  attention_rate=0.05, attention_pool=pool, seed=0)
            best = min(best, time.perf_counter() - start)
        print(f"{name}: {len(design.items)} items, best of 3: {best * 1000:.0f} ms")


if __name__ == "__main__":
    main()
