"""The toy world's generators: ``reference`` (real renders) and ``degraded`` (a known-worse copy of them).

* ``reference`` — the toy world's own renderer: a real render of a scene matching the caption (needs toy-world
  captions). It is the "real images" ceiling every model is measured against.
* ``degraded`` — the reference render blurred (Gaussian, ``blur`` σ in pixels), noised (``noise``, std on [0, 1])
  and colour-shifted (``color_shift``): a system known to be worse, to check that metrics and studies notice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from harness.errors import HarnessError
from harness.generate.registry import Generator, check_options, register_generator


@dataclass(frozen=True)
class ReferenceGenerator:
    """Real toy-world renders of scenes matching each caption (size 64 or 32)."""

    size: int = 64
    model_id: str = "toyworld-reference"
    checkpoint_sha256: str | None = None
    uses_guidance: bool = False

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any]) -> list[np.ndarray]:
        from harness.data import toyworld

        images = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            try:
                image, _scene = toyworld.render_caption(prompt, seed=int(seed), size=self.size)
            except ValueError as exc:
                raise HarnessError(
                    f"the reference generator renders toy-world captions only; {exc}. "
                    "Use prompts.source = \"toyworld\" or another generator"
                ) from None
            images.append(image)
        return images


@dataclass(frozen=True)
class DegradedGenerator:
    """Reference renders, blurred, noised and colour-shifted: a known-worse system."""

    blur: float = 1.0
    noise: float = 0.08
    color_shift: float = 0.0
    size: int = 64
    model_id: str = "toyworld-degraded"
    checkpoint_sha256: str | None = None
    uses_guidance: bool = False

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], settings: Mapping[str, Any]) -> list[np.ndarray]:
        clean = ReferenceGenerator(size=self.size).generate(prompts, seeds, settings)
        return [self._degrade(img, int(seed)) for img, seed in zip(clean, seeds, strict=True)]

    def _degrade(self, image: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng([seed, 0xDE6])
        x = image.astype(np.float64) / 255.0
        if self.blur > 0:
            x = gaussian_filter(x, sigma=(self.blur, self.blur, 0))
        if self.color_shift:
            x = x + rng.uniform(-self.color_shift, self.color_shift, size=(1, 1, 3))
        if self.noise > 0:
            x = x + rng.normal(0.0, self.noise, size=x.shape)
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


@register_generator("reference")
def _reference(options: Mapping[str, Any]) -> Generator:
    check_options("reference", options, {"size"})
    return ReferenceGenerator(size=int(options.get("size", 64)))


@register_generator("degraded")
def _degraded(options: Mapping[str, Any]) -> Generator:
    check_options("degraded", options, {"size", "blur", "noise", "color_shift"})
    return DegradedGenerator(
        blur=float(options.get("blur", 1.0)),
        noise=float(options.get("noise", 0.08)),
        color_shift=float(options.get("color_shift", 0.0)),
        size=int(options.get("size", 64)),
    )
