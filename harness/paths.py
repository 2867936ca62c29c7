"""Where the harness keeps its data: the project data dir, the default SQLite store and the feature cache.

``HARNESS_HOME`` overrides the data dir (default ``./.harness`` under the current directory);
``HARNESS_DB_URL`` overrides the store (default ``sqlite:///<data dir>/harness.db``);
``HARNESS_TOY_CHECKPOINTS`` overrides the folder of the trained toy checkpoints (default: ``checkpoints/toy`` of the
source tree). Every part of the harness that loads a toy checkpoint (the model generators, the toy CLIP and oracle
extractors, the simulated judges) asks `toy_checkpoint_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The project data dir (not created here)."""
    return Path(os.environ.get("HARNESS_HOME", ".harness")).resolve()


def default_db_url() -> str:
    """The store URL: ``$HARNESS_DB_URL`` or an SQLite file under the data dir."""
    url = os.environ.get("HARNESS_DB_URL")
    if url:
        return url
    return f"sqlite:///{data_dir() / 'harness.db'}"


def feature_cache_dir() -> Path:
    """Directory of the on-disk feature cache keyed by (image sha256, extractor id)."""
    return data_dir() / "features"


TOY_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints" / "toy"
"""The trained toy checkpoints shipped with the source tree."""


def toy_checkpoint_dir() -> Path:
    """``$HARNESS_TOY_CHECKPOINTS`` or the source tree's ``checkpoints/toy``."""
    return Path(os.environ.get("HARNESS_TOY_CHECKPOINTS") or TOY_CHECKPOINTS)
