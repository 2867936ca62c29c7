"""Stores a generated run the way `harness generate` does (run dir, manifest, `store_run`), for the create-study tests.

Systems: ``unclip`` at one setting and ``glide`` swept over two guidance scales (study systems ``glide@g=1.0 ...``,
``glide@g=3.0 ...``); images are small random pictures, one per (system, settings, prompt, seed index).
Optionally the attention-check run ``<run id>-attention``, rendered by `harness.study.design` as `harness study create` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eval_protocols.human.design_inputs import ATTENTION_SUFFIX
from eval_protocols.human.pairing import AttentionPool
from eval_protocols.human.protocol import get_protocol
from harness.generate.store import store_run
from harness.prompts import PromptRecord
from harness.rundir import ManifestEntry, RunDir, derive_seed
from harness.storage.repository import Repository
from harness.study.attention import ToyStimuli, attention_pool

RUN_ID = "toyrun"
PROMPTS = (PromptRecord("p0", "a small red circle"), PromptRecord("p1", "a large blue square"),
           PromptRecord("p2", "a green triangle above a red circle"))
GROUPS = (("unclip", {"guidance_scale": 3.0, "steps": 25}),
          ("glide", {"guidance_scale": 1.0, "steps": 25}),
          ("glide", {"guidance_scale": 3.0, "steps": 25}))


def store_generated_run(repo: Repository, root: Path, *, n_samples: int = 4, run_id: str = RUN_ID) -> list[ManifestEntry]:
    """Write a run dir of ``len(GROUPS) * len(PROMPTS) * n_samples`` images and register it in ``repo``."""
    run_dir = RunDir(root / run_id).create()
    rng = np.random.default_rng(0)
    for system, settings in GROUPS:
        for prompt in PROMPTS:
            for k in range(n_samples):
                run_dir.add_image(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8), {
                    "system_id": system, "model_id": f"{system}-toy", "prompt_id": prompt.prompt_id,
                    "prompt": prompt.text, "sample_index": k, "seed": derive_seed(0, prompt.prompt_id, k),
                    "settings": settings, "checkpoint_sha256": "0" * 64,
                })
    entries = run_dir.entries()
    store_run(repo, run_id, run_id, run_dir, entries, config={}, provenance={})
    return entries


def store_attention_run(
    repo: Repository, root: Path, protocols: tuple[str, ...], *, n_cases: int = 3, seed: int = 0, run_id: str = RUN_ID
) -> dict[str, AttentionPool]:
    """Render the attention checks of ``protocols`` like `harness study create` and register ``<run id>-attention``;
    returns the pools it rendered, per protocol."""
    att_dir = RunDir(root / run_id / "attention").create()
    pools = {name: attention_pool(get_protocol(name), PROMPTS, att_dir, ToyStimuli(), n_cases=n_cases, seed=seed)
             for name in protocols}
    store_run(repo, run_id + ATTENTION_SUFFIX, run_id + ATTENTION_SUFFIX, att_dir, att_dir.entries(), config={},
              provenance={})
    return pools
