"""A weight-free guided system for the study tests, used through the ``callable`` generator with
``uses_guidance = true``: toy-world renders of the caption plus noise whose strength falls with the guidance scale, so
every (system, guidance scale) makes its own images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.data import toyworld


def sample(prompts: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any], *, noise: float) -> list[np.ndarray]:
    """Float images in [0, 1]: the render of (caption, seed) plus N(0, noise / guidance_scale) per pixel."""
    scale = float(settings["guidance_scale"])
    images = []
    for prompt, seed in zip(prompts, seeds, strict=True):
        image, _scene = toyworld.render_caption(prompt, seed=int(seed), size=32)
        rng = np.random.default_rng(int(seed))
        images.append(np.clip(image / 255.0 + rng.normal(0.0, noise / scale, image.shape), 0.0, 1.0))
    return images
