"""`harness.study.attention`: attention-check stimuli are written once (an interrupted study creation resumes
cleanly), and caption-file runs get checks made from their own images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval_protocols.human.protocol import get_protocol
from harness.config import PromptsConfig
from harness.errors import HarnessError
from harness.prompts import PromptRecord, load_prompts
from harness.rundir import RunDir, derive_seed
from harness.study.attention import RunStimuli, ToyStimuli, attention_pool, stimuli_for


@pytest.mark.parametrize("protocol", ["photorealism", "caption_similarity"])
def test_attention_renders_are_written_once_and_resume_identically(tmp_path: Path, protocol: str) -> None:
    prompts = load_prompts(PromptsConfig(source="toyworld", split="test", n=2, seed=0))
    spec = get_protocol(protocol)
    whole = RunDir(tmp_path / "whole").create()
    pool = attention_pool(spec, prompts, whole, ToyStimuli(), n_cases=4, seed=0)
    manifest = whole.manifest_path.read_bytes()
    assert attention_pool(spec, prompts, whole, ToyStimuli(), n_cases=4, seed=0) == pool  # again: nothing appended
    assert whole.manifest_path.read_bytes() == manifest

    part = RunDir(tmp_path / "part").create()
    attention_pool(spec, prompts, part, ToyStimuli(), n_cases=4, seed=0)
    lines = part.manifest_path.read_bytes().splitlines(keepends=True)
    part.manifest_path.write_bytes(b"".join(lines[:3]))  # an attempt that died after three renders
    assert attention_pool(spec, prompts, part, ToyStimuli(), n_cases=4, seed=0) == pool
    assert part.manifest_path.read_bytes() == manifest


CAPTIONS = (PromptRecord("c0", "a photo of a cat on a sofa"), PromptRecord("c1", "an astronaut riding a horse"))


def _caption_run(root: Path, per_caption: int) -> RunDir:
    """A run dir of a caption file: ``per_caption`` distinct random images per caption (no renderer exists)."""
    run_dir = RunDir(root / "captions-run").create()
    rng = np.random.default_rng(0)
    for prompt in CAPTIONS:
        for k in range(per_caption):
            run_dir.add_image(rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8), {
                "system_id": "mine", "model_id": "mine", "prompt_id": prompt.prompt_id, "prompt": prompt.text,
                "sample_index": k, "seed": derive_seed(0, prompt.prompt_id, k), "settings": {},
                "checkpoint_sha256": None,
            })
    return run_dir


def _images(att_dir: RunDir, sha256s: tuple[str, ...]) -> list[bytes]:
    by_sha = {e.sha256: e for e in att_dir.entries()}
    return [(att_dir.root / by_sha[s].path).read_bytes() for s in sha256s]


@pytest.mark.parametrize("protocol", ["photorealism", "caption_similarity", "diversity"])
def test_caption_file_runs_get_attention_checks_from_their_own_images(tmp_path: Path, protocol: str) -> None:
    run_dir = _caption_run(tmp_path, per_caption=16)
    entries = run_dir.entries()
    stimuli = stimuli_for("captions.jsonl", run_dir, entries)
    assert isinstance(stimuli, RunStimuli)
    att_dir = RunDir(run_dir.root / "attention").create()
    pool = attention_pool(get_protocol(protocol), list(CAPTIONS), att_dir, stimuli, n_cases=4, seed=0)
    assert pool.kind == get_protocol(protocol).attention_check_kind and len(pool.cases) == 4
    own = {p.prompt_id: {(run_dir.root / e.path).read_bytes() for e in entries if e.prompt_id == p.prompt_id}
           for p in CAPTIONS}
    for case in pool.cases:
        reference = _images(att_dir, case.reference)
        altered = _images(att_dir, case.altered)
        assert all(img in own[case.prompt_id] for img in reference)  # the "right" side is the caption's own image
        if protocol == "photorealism":
            assert altered[0] != reference[0] and altered[0] not in own[case.prompt_id]  # corrupted copy
        elif protocol == "caption_similarity":
            other = next(p.prompt_id for p in CAPTIONS if p.prompt_id != case.prompt_id)
            assert altered[0] in own[other]  # an image made for the other caption
        else:
            assert len(set(reference)) == 16 and len(set(altered)) == 1  # varied grid against 16 copies
    assert {e.model_id for e in att_dir.entries()} == {"run-attention"}


def test_caption_file_attention_checks_say_what_is_missing(tmp_path: Path) -> None:
    run_dir = _caption_run(tmp_path, per_caption=4)
    stimuli = stimuli_for("captions.jsonl", run_dir, run_dir.entries())
    att_dir = RunDir(run_dir.root / "attention").create()
    with pytest.raises(HarnessError, match="seeds_per_prompt or set study.attention_rate = 0"):
        attention_pool(get_protocol("diversity"), list(CAPTIONS), att_dir, stimuli, n_cases=2, seed=0)
    one = RunStimuli(run_dir, [e for e in run_dir.entries() if e.prompt_id == "c0"])
    with pytest.raises(HarnessError, match="the run has one caption"):
        attention_pool(get_protocol("caption_similarity"), [CAPTIONS[0]], att_dir, one, n_cases=2, seed=0)
