"""Where scoring's images come from: the run's reference images, and images of the store by sha256.

Reference images: ``metrics.reference = "toyworld"`` renders ``reference_per_prompt`` real images of every caption
of the run into ``<run dir>/reference/`` (seeds disjoint from the generation seeds); a folder path uses every image
file in it; an ``.npz`` with ``mu``/``sigma`` serves the Fréchet distance only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.config import RunConfig
from harness.errors import ConfigError, HarnessError
from harness.generate.toyworld import ReferenceGenerator
from harness.prompts import PromptRecord
from harness.rundir import RunDir, derive_seed

if TYPE_CHECKING:
    from harness.storage.repository import Repository

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
REFERENCE_SEED_OFFSET = 1_000_003  # reference renders never reuse a generation seed


def reference_images(cfg: RunConfig, run_dir: RunDir, prompts: Sequence[PromptRecord]) -> list[Path]:
    """Files of the reference images (rendered on first use for the toy world)."""
    ref = cfg.metrics.reference
    if ref == "toyworld":
        ref_dir = RunDir(run_dir.root / "reference").create()
        done = ref_dir.done_keys()
        gen = ReferenceGenerator()
        for p in prompts:
            for k in range(cfg.metrics.reference_per_prompt):
                settings: dict[str, Any] = {}
                if ("real", p.prompt_id, k, "{}") in done:
                    continue
                seed = derive_seed(cfg.seed + REFERENCE_SEED_OFFSET, p.prompt_id, k)
                image = gen.generate([p.text], [seed], settings)[0]
                ref_dir.add_image(
                    image,
                    {"system_id": "real", "model_id": gen.model_id, "prompt_id": p.prompt_id, "prompt": p.text,
                     "sample_index": k, "seed": seed, "settings": settings, "checkpoint_sha256": None},
                )
        return [ref_dir.root / e.path for e in ref_dir.entries()]
    path = Path(ref)
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"metrics.reference folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if path.suffix == ".npz":
        return []
    raise ConfigError(
        f"metrics.reference = {ref!r} is neither \"toyworld\", an image folder nor an .npz file with mu and sigma"
    )


def npz_reference(path: str) -> Any:
    """``FeatureStats`` (mu, sigma) of an ``.npz`` reference (`ConfigError` when unreadable)."""
    from eval_protocols.metrics.fid import load_stats

    try:
        return load_stats(path)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"metrics.reference {path}: cannot read mu/sigma ({exc}); save them with numpy.savez") from None


def image_loader(repo: Repository) -> Callable[[tuple[str, ...]], np.ndarray]:
    """Load images of the store by sha256 through `Repository.image_paths` (``uint8 (n, H, W, 3)``)."""
    from eval_protocols.features.base import load_image_file

    def load(sha256s: tuple[str, ...]) -> np.ndarray:
        paths = repo.image_paths(sha256s)
        missing = [s for s in sha256s if s not in paths]
        if missing:
            raise HarnessError(f"image {missing[0][:16]}… of a study item is not in the store; rerun `harness run`")
        return np.stack([np.asarray(load_image_file(paths[s]), dtype=np.uint8) for s in sha256s])

    return load
