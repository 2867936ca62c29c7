"""Errors a user can cause, printed by the CLI as one line with exit status 2.

Raise `HarnessError` (or a subclass) wherever bad input is detected: the message must name the problem *and*
the fix, e.g. ``config file configs/x.toml: unknown key 'guidance' in [sampling]; did you mean 'guidance_scales'?``.
Programming errors stay ordinary exceptions and show a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """A user-caused error: the CLI prints ``error: <message>`` and exits with status 2."""

    exit_code: int = 2


class ConfigError(HarnessError):
    """A configuration file or ``--set`` override is invalid."""


class StorageError(HarnessError):
    """The store cannot be reached or written (bad URL, unwritable path, schema too new)."""


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest option, or a list of valid options when none is close.

    Args:
        name: the unknown name the user wrote.
        options: the valid names.

    Returns:
        A suffix to append to an error message (starts with ``"; "``).
    """
    opts = sorted(set(options))
    close = difflib.get_close_matches(name, opts, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    shown = ", ".join(opts[:20]) + (", ..." if len(opts) > 20 else "")
    return f"; valid names: {shown}"
