"""Fault injection for resume tests: ``HARNESS_FAULT_AFTER=<stage>:<count>`` hard-kills the process mid-stage.

A stage calls `fault_point` once per unit of finished, durable work; on the ``count``-th call of the named stage the
process sends itself ``SIGKILL``: no exception, no ``finally`` block, no ``atexit`` hook, no flushing runs, exactly
as if the machine lost power or the OOM killer struck. Tests use it to interrupt `harness run` at a reproducible
point and check that a rerun resumes to the same outputs (``tests/harness/test_run_resume.py``).

Stages and what one call means:

* ``generate``: one image written and its manifest line fsync'ed (`harness.generate.run.generate_run`);
* ``score``: the results of one metric for one (system, settings) group stored (`harness.score.run.score_run`);
* ``vote``: one simulated vote committed (`harness.simulate.votes.simulate_study`).

Unset (the default), a call costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

from harness.errors import HarnessError

FAULT_ENV = "HARNESS_FAULT_AFTER"
STAGES = ("generate", "score", "vote")

_calls: dict[str, int] = {}


def parse_fault(spec: str) -> tuple[str, int]:
    """``"generate:5"`` -> ``("generate", 5)``.

    Raises:
        HarnessError: not ``<stage>:<positive count>`` with a known stage.
    """
    stage, _, count = spec.partition(":")
    if stage not in STAGES or not count.isdigit() or int(count) < 1:
        raise HarnessError(
            f"{FAULT_ENV}={spec!r} is not <stage>:<count> with stage one of {', '.join(STAGES)} and count >= 1; "
            f"e.g. {FAULT_ENV}=generate:5, or unset it"
        )
    return stage, int(count)


def fault_point(stage: str) -> None:
    """Count one finished unit of ``stage``; SIGKILL this process when ``$HARNESS_FAULT_AFTER`` says so."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target, count = parse_fault(spec)
    if target != stage:
        return
    _calls[stage] = _calls.get(stage, 0) + 1
    if _calls[stage] >= count:
        os.kill(os.getpid(), signal.SIGKILL)
