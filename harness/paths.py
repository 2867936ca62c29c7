"""Where the harness keeps its data: the project data dir, the default SQLite store and the feature cache.

``HARNESS_HOME`` overrides the data dir (default ``./.harness`` under the current directory);
``HARNESS_DB_URL`` overrides the store (default ``sqlite:///<data dir>/harness.db``).
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
