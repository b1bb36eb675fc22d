"""State shared by the workers of --workers: what one process changes, another sees at its next look."""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Callable

import pytest

from mock_server import shared
from mock_server.faults import parse_faults
from mock_server.journal import JournalEntry
from mock_server.shared import SharedFaultState, SharedJournal, StateFile


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers are forked")
def test_faults_switched_in_one_process_apply_in_another_and_draws_continue_one_sequence(tmp_path, in_child):
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
def test_the_journal_is_one_bounded_newest_first_list_for_every_process(tmp_path, in_child):
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


def entry_at(path: str) -> JournalEntry:
    return JournalEntry("2024-01-15T10:00:00.000Z", "GET", path, 200, {}, None, "{}", "ok", 1.0)


def recording(journal: SharedJournal, index: int, *paths: str) -> Callable[[], None]:
    """What worker ``index`` does: record one entry per path, in its own journal file."""

    def work() -> None:
        journal.as_worker(index)
        for path in paths:
            journal.record(entry_at(path))

    return work


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers are forked")
def test_each_worker_appends_to_its_own_file_and_every_process_reads_one_merged_list(tmp_path, in_child):
    state = StateFile(tmp_path / "state.db")
    journal = SharedJournal(state, size=4)
    state.disconnect()

    # The children run one after another, so this is the order in which the entries were recorded.
    in_child(recording(journal, 0, "/w1-a"))
    in_child(recording(journal, 1, "/w2-a", "/w2-b"))
    in_child(recording(journal, 0, "/w1-b"))  # a replacement of worker 1: appends to the same file
    in_child(recording(journal, 1, "/w2-c"))
    assert sorted(path.name for path in tmp_path.glob("journal-*.db")) == ["journal-w1.db", "journal-w2.db"]
    # Newest first over both files, and the bound (4) over all workers together.
    assert [e.path for e in journal.entries()] == ["/w2-c", "/w1-b", "/w2-b", "/w2-a"]
    assert [e.path for e in journal.entries(2)] == ["/w2-c", "/w1-b"]

    def reads_the_same() -> None:
        assert [e.path for e in journal.entries()] == ["/w2-c", "/w1-b", "/w2-b", "/w2-a"]

    in_child(reads_the_same)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers are forked")
def test_each_workers_file_keeps_only_the_newest_entries_of_the_bound(tmp_path):
    state = StateFile(tmp_path / "state.db")
    journal = SharedJournal(state, size=3)
    journal.as_worker(0)
    for n in range(10):
        journal.record(entry_at(f"/{n}"))
    with sqlite3.connect(tmp_path / "journal-w1.db") as db:
        assert db.execute("SELECT count(*) FROM journal").fetchone() == (3,)
    assert [e.path for e in journal.entries()] == ["/9", "/8", "/7"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers are forked")
def test_a_reset_on_one_worker_clears_every_workers_entries_and_later_ones_count_again(tmp_path, in_child):
    state = StateFile(tmp_path / "state.db")
    journal = SharedJournal(state, size=10)
    journal.as_worker(0)
    journal.record(entry_at("/before-in-1"))
    state.disconnect()
    journal.disconnect()

    def second_worker() -> None:
        journal.as_worker(1)
        journal.record(entry_at("/before-in-2"))
        journal.clear()

    in_child(second_worker)
    assert journal.entries() == []
    journal.record(entry_at("/after"))

    def sees_only_the_later_entry() -> None:
        assert [e.path for e in journal.entries()] == ["/after"]

    in_child(sees_only_the_later_entry)
    assert [e.path for e in journal.entries()] == ["/after"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers are forked")
def test_entries_recorded_at_the_same_instant_come_out_in_one_fixed_order(tmp_path, monkeypatch, in_child):
    # The monotonic clock ticks in nanoseconds, but two workers can still read the same tick.
    monkeypatch.setattr(shared.time, "monotonic_ns", lambda: 1_000)
    state = StateFile(tmp_path / "state.db")
    journal = SharedJournal(state, size=10)
    state.disconnect()

    in_child(recording(journal, 1, "/w2-a", "/w2-b"))
    in_child(recording(journal, 0, "/w1-a", "/w1-b"))
    # Ties: the higher worker first, then the later entry of a file first.
    assert [e.path for e in journal.entries()] == ["/w2-b", "/w2-a", "/w1-b", "/w1-a"]


def test_an_entry_reads_back_as_recorded_whatever_mapping_holds_its_headers(tmp_path):
    from types import MappingProxyType

    journal = SharedJournal(StateFile(tmp_path / "state.db"), size=5)
    entry = JournalEntry(
        "2024-01-15T10:00:00.000Z",
        "POST",
        "/tasks?x=ü",
        201,
        MappingProxyType({"A": "b"}),
        '{"s":"\\ud800"}',
        None,
        "ok; fault X",
        2.25,
        {"Content-Type": "application/json"},
        14,
        None,
    )
    journal.record(entry)
    assert journal.entries() == [entry]
