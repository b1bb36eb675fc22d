"""The generated pass split over worker processes judges what it judges in one process.

Against a server slow to answer, generated testing runs in worker processes beside the scripted checks;
one request at a time, it runs in-process after them. Both are run here against the mock, conformant and
with a fault only generated testing finds, and their verdicts compared. (test_mock_faults compares the
scripted checks, concurrent and sequential, on every rule fault.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance import runner
from conformance.runner import run
from conformance.settings import RunSettings


def verdicts(outcome: Any) -> dict[str, Any]:
    """Each rule's outcome, and the outcomes and sources of its evidence."""
    return {
        result.rule.id: (result.outcome, sorted({(e.outcome, e.source, e.gap) for e in result.evidence}))
        for result in outcome.report.results
    } | {"exit": outcome.exit_code}


def judged(url: str, key: str, tmp_path: Path, *, concurrency: int, only: tuple[str, ...]) -> Any:
    settings = RunSettings(
        base_url=url, api_key=key, report_dir=tmp_path, timeout=10.0, concurrency=concurrency, only=only
    )
    return run(settings, out=lambda _line: None, engine=True, write=False)


@pytest.mark.parametrize("fault", [None, "INPUT-INVALID-REJECTED"])
def test_generated_verdicts_over_worker_processes_equal_in_process_ones(
    faulty_mock, tmp_path, monkeypatch, fault
):
    # Worker processes are used against a server slow to answer; the mock is fast, so the threshold is
    # lowered to 0 for the partitioned run. Few rules, so that the comparison is of the pass itself.
    only = ("SERVER-NO-5XX", "RESPONSE-SCHEMA", "INPUT-INVALID-REJECTED", "INPUT-VALID-ACCEPTED", "HEALTH-OK")
    faulty_mock.switch(*([fault] if fault else []))
    in_process = judged(faulty_mock.url, faulty_mock.key, tmp_path, concurrency=1, only=only)
    monkeypatch.setattr(runner, "SLOW_ANSWER_MS", 0.0)
    faulty_mock.switch(*([fault] if fault else []))
    partitioned = judged(faulty_mock.url, faulty_mock.key, tmp_path, concurrency=4, only=only)
    # The same shares with the same seeds, so the same verdicts. Which requests show a finding may differ
    # by one where the answer rests on what the server holds at that moment (sequentially, the pass comes
    # after the scripted checks' creates; side by side, during them), so findings are compared by rule.
    assert partitioned.report.requests.keys() == in_process.report.requests.keys()
    assert verdicts(partitioned) == verdicts(in_process)
