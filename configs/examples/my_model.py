"""A stand-in for your own model, used by `configs/examples/external_models.toml` (the ``callable`` generator).

Replace the body with a call to your model. The harness calls ``sample(prompts, seeds, settings, **kwargs)`` with
one seed per prompt (the image for a (prompt, seed) must not depend on the other prompts of the call), ``settings``
holding ``guidance_scale`` and the ``[sampling]`` sampler settings the run config gives (``steps``,
``prior_guidance_scale``, ``sampler``, ...) when the system sets ``uses_guidance = true`` (else ``{}``), and ``kwargs`` from the system's ``options.kwargs``. Return one image per prompt: (H, W, 3) uint8
arrays, float arrays in [0, 1], PIL images, or one (N, H, W, 3) array.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.data import toyworld


def sample(
    prompts: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any], *, noise: float = 0.1
) -> list[np.ndarray]:
    """Toy-world renders of each caption plus Gaussian noise (std ``noise`` on [0, 1]), as float images in [0, 1]."""
    images = []
    for prompt, seed in zip(prompts, seeds, strict=True):
        image, _scene = toyworld.render_caption(prompt, seed=int(seed), size=64)
        rng = np.random.default_rng(int(seed))
        images.append(np.clip(image / 255.0 + rng.normal(0.0, noise, image.shape), 0.0, 1.0))
    return images
