"""Feature-extractor names as run configs and command lines write them, checked without building anything.

The forms (`EXTRACTOR_NAMES`; built by `harness.score.extractors.build_extractor`): ``pixels`` / ``pixels-g<k>``,
``layout`` / ``layout-g<k>`` (k >= 1 cells a side, 4 when left out), ``inception`` / ``inception:<resize mode>``,
``clip:toy`` and ``clip:<arch>:<checkpoint>``. Kept apart from `harness.score` so the run config
(`harness.config`), which every stage imports, can check names without importing a stage.
"""

from __future__ import annotations

import difflib

from harness.errors import ConfigError

EXTRACTOR_NAMES = (
    "pixels", "pixels-g<k>", "layout", "layout-g<k>", "inception", "inception:<resize mode>",
    "clip:<arch>:<checkpoint>", "clip:toy",
)


def grid_of(name: str, stem: str) -> int | None:
    """``k`` of ``<stem>-g<k>`` (k >= 1), 4 for ``<stem>`` alone, None for another name."""
    if name == stem:
        return 4
    suffix = name[len(stem) + 2 :] if name.startswith(f"{stem}-g") else ""
    return int(suffix) if suffix.isdigit() and int(suffix) >= 1 else None


def check_extractor_name(name: str) -> None:
    """Check that ``name`` is one of the `EXTRACTOR_NAMES` forms, without building it (no weights are read).

    Raises:
        ConfigError: one line with the valid forms and, where one is close, a did-you-mean.
    """
    if grid_of(name, "pixels") or grid_of(name, "layout") or name == "clip:toy":
        return
    if name == "inception" or name.startswith("inception:") or (name.startswith("clip:") and name.count(":") >= 2):
        return
    close = difflib.get_close_matches(name, ("pixels", "layout", "inception", "clip:toy"), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(f"unknown feature extractor {name!r}; {hint}use one of {', '.join(EXTRACTOR_NAMES)}")
