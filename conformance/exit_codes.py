"""The exit codes of enginy-conformance, in one table (also in the README and docs/ci-gating.md).

    0    PASSED      every selected MUST rule was judged and holds (SHOULD failures only warn), or
                     fails as the --baseline file accepts (conformance.baseline)
    1    FAILED      a MUST rule does not hold
    2    not judged  a usage error, an unreachable server, or a target that is not a Custom CRM API
    3    INCOMPLETE  no MUST rule failed, but at least one selected MUST rule could not be judged
    130  interrupted the run was stopped (Ctrl-C)

A CI job gates on 0; 1 is the server's fault, 2 the job's (or the target's), 3 a run that judged too
little to say "passed".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from conformance.results import RunReport, Verdict

__all__ = ["FAILED", "INCOMPLETE", "INTERRUPTED", "NOT_JUDGED", "PASSED", "for_report", "for_verdict"]

PASSED: Final = 0
FAILED: Final = 1
NOT_JUDGED: Final = 2
INCOMPLETE: Final = 3
INTERRUPTED: Final = 130

_BY_VERDICT: Final[Mapping[Verdict, int]] = {"passed": PASSED, "failed": FAILED, "incomplete": INCOMPLETE}


def for_verdict(verdict: Verdict) -> int:
    """The exit code of a run that ended with this verdict."""
    return _BY_VERDICT[verdict]


def for_report(report: RunReport) -> int:
    """The exit code of the run the report is of: 130 when it was interrupted, else its verdict's."""
    return INTERRUPTED if report.interrupted else for_verdict(report.verdict)
