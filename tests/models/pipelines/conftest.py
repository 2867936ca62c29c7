"""Fixtures of the pipeline tests: one folder of tiny random stage checkpoints per test module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pipeline_fixtures import write_tiny_stack


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder holding every stage (fp32), written once per module."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tiny_stack")
    write_tiny_stack(folder)
    return folder
