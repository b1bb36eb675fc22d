"""State shared by the workers of --workers: what one process changes, another sees at its next look."""

from __future__ import annotations

import os
import random

import pytest

from mock_server.faults import parse_faults
from mock_server.journal import JournalEntry
from mock_server.shared import SharedFaultState, SharedJournal, StateFile


def in_child(work) -> None:
    """Run ``work()`` in a forked process (as a worker is) and fail here if it failed there."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers are forked")
def test_faults_switched_in_one_process_apply_in_another_and_draws_continue_one_sequence(tmp_path):
    state = StateFile(tmp_path / "state.db")
    faults = SharedFaultState(state, parse_faults(["drop-connection:rate=0.5"]), seed=7)
    assert faults.draw("drop-connection") == random.Random("7/drop-connection/0").random()
    state.disconnect()  # no SQLite connection crosses fork()

    def worker() -> None:
        assert faults.draw("drop-connection") == random.Random("7/drop-connection/1").random()
        faults.replace(parse_faults(["TASK-BATCH-ROUTE"]), seed=9)

    in_child(worker)
    assert faults.active("TASK-BATCH-ROUTE") and not faults.active("drop-connection")
    assert faults.seed == 9 and faults.draw("drop-connection") == 1.0  # switched off: never fires


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers are forked")
def test_the_journal_is_one_bounded_newest_first_list_for_every_process(tmp_path):
    state = StateFile(tmp_path / "state.db")
    journal = SharedJournal(state, size=3)

    def entry(path: str) -> JournalEntry:
        return JournalEntry("2024-01-15T10:00:00.000Z", "GET", path, 200, {"a": "b"}, None, "{}", "ok", 1.5)

    journal.record(entry("/one"))
    state.disconnect()
    in_child(lambda: [journal.record(entry(path)) for path in ("/two", "/three", "/four")])
    assert [e.path for e in journal.entries()] == ["/four", "/three", "/two"]
    assert journal.entries(1) == [entry("/four")]
    in_child(journal.clear)
    assert journal.entries() == []
