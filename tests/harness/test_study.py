"""`harness.study`: attention-check stimuli are written once, so an interrupted study creation resumes cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval_protocols.human.protocol import get_protocol
from harness.config import PromptsConfig
from harness.manifest import RunDir
from harness.prompts import load_prompts
from harness.study import _attention_pool


@pytest.mark.parametrize("protocol", ["photorealism", "caption_similarity"])
def test_attention_renders_are_written_once_and_resume_identically(tmp_path: Path, protocol: str) -> None:
    prompts = load_prompts(PromptsConfig(source="toyworld", split="test", n=2, seed=0))
    spec = get_protocol(protocol)
    whole = RunDir(tmp_path / "whole").create()
    pool = _attention_pool(spec, prompts, whole, n_cases=4, seed=0)
    manifest = whole.manifest_path.read_bytes()
    assert _attention_pool(spec, prompts, whole, n_cases=4, seed=0) == pool  # again: nothing appended
    assert whole.manifest_path.read_bytes() == manifest

    part = RunDir(tmp_path / "part").create()
    _attention_pool(spec, prompts, part, n_cases=4, seed=0)
    lines = part.manifest_path.read_bytes().splitlines(keepends=True)
    part.manifest_path.write_bytes(b"".join(lines[:3]))  # an attempt that died after three renders
    assert _attention_pool(spec, prompts, part, n_cases=4, seed=0) == pool
    assert part.manifest_path.read_bytes() == manifest
