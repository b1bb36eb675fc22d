"""The Store contract, for MemoryStore and SqliteStore alike, plus SQLite durability across reopening."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

from mock_server import storage
from mock_server.storage import KINDS, MemoryStore, ProcessLock, SqliteStore, association_id


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    chosen = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "mock.db")
    yield chosen
    chosen.close()


def test_add_inserts_only_new_ids_and_counts_them(store):
    assert store.add("tasks", [{"id": "a", "n": 1}, {"id": "b"}, {"id": "a", "n": 2}]) == 2
    assert store.add("tasks", [{"id": "a", "n": 3}]) == 0
    assert store.get("tasks", "a") == {"id": "a", "n": 1}


def test_put_replaces(store):
    store.add("users", [{"id": "u", "name": "old"}])
    store.put("users", [{"id": "u", "name": "new"}, {"id": "v", "name": "v"}])
    assert store.list("users") == [{"id": "u", "name": "new"}, {"id": "v", "name": "v"}]


def test_kinds_are_separate_namespaces(store):
    store.add("contacts", [{"id": "x", "kind": "contact"}])
    store.add("companies", [{"id": "x", "kind": "company"}])
    assert store.get("contacts", "x")["kind"] == "contact"
    assert store.get("tasks", "x") is None


def test_get_many_keeps_first_mention_order_and_skips_unknown(store):
    store.add("tasks", [{"id": str(n)} for n in range(1200)])
    ids = ["1100", "nope", "3", "1100", "0"]
    assert [task["id"] for task in store.get_many("tasks", ids)] == ["1100", "3", "0"]
    assert len(store.get_many("tasks", [str(n) for n in range(1200)])) == 1200  # beyond one SQL chunk


def test_update_applies_once_per_id_and_returns_the_new_records(store):
    store.add("tasks", [{"id": "a", "count": 0}, {"id": "b", "count": 0}])
    changed = store.update("tasks", ["a", "a", "zzz", "b"], lambda r: {**r, "count": r["count"] + 1})
    assert changed == [{"id": "a", "count": 1}, {"id": "b", "count": 1}]
    assert store.get("tasks", "a") == {"id": "a", "count": 1}


def test_records_handed_out_are_copies(store):
    store.add("tasks", [{"id": "a"}])
    store.get("tasks", "a")["id"] = "mutated"
    store.list("tasks")[0]["extra"] = 1
    assert store.get("tasks", "a") == {"id": "a"}


def test_odd_ids_and_values_round_trip(store):
    odd = ["", "\x00", "a/b", "..", "ünï😀", "\ud800", "x" * 10_000, association_id("a|b", "c")]
    store.add("activities", [{"id": i, "value": i} for i in odd])
    assert [r["value"] for r in store.get_many("activities", odd)] == odd


def test_clear_empties_every_kind(store):
    for kind in KINDS:
        store.add(kind, [{"id": "1"}])
    store.clear()
    assert all(store.list(kind) == [] for kind in KINDS)


def test_concurrent_adds_and_updates_lose_nothing(store):
    store.add("tasks", [{"id": "counter", "n": 0}])

    def work(worker):
        for n in range(50):
            store.add("tasks", [{"id": f"{worker}-{n}"}])
            store.update("tasks", ["counter"], lambda r: {**r, "n": r["n"] + 1})

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.list("tasks")) == 401
    assert store.get("tasks", "counter")["n"] == 400


def test_sqlite_keeps_every_committed_write_across_reopening(tmp_path):
    path = tmp_path / "mock.db"
    first = SqliteStore(path)
    first.add("tasks", [{"id": "a", "subject": "s"}])
    first.update("tasks", ["a"], lambda r: {**r, "completed": True})
    first.put("users", [{"id": "u", "name": "n"}])
    # No close(): a crash leaves the connection open, and the data must already be on disk.
    second = SqliteStore(path)
    assert second.get("tasks", "a") == {"id": "a", "subject": "s", "completed": True}
    assert second.list("users") == [{"id": "u", "name": "n"}]
    first.close()
    second.close()


def test_sqlite_uses_wal_and_full_sync(tmp_path):
    store = SqliteStore(tmp_path / "mock.db")
    store.close()
    db = sqlite3.connect(tmp_path / "mock.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_a_failed_change_rolls_the_transaction_back(tmp_path):
    store = SqliteStore(tmp_path / "mock.db")
    store.add("tasks", [{"id": "a", "n": 1}, {"id": "b", "n": 1}])

    def explode(record):
        if record["id"] == "b":
            raise RuntimeError("no")
        return {**record, "n": 2}

    with pytest.raises(RuntimeError):
        store.update("tasks", ["a", "b"], explode)
    assert store.get("tasks", "a") == {"id": "a", "n": 1}
    store.close()


# --- SqliteStore's read cache and process lock (what --workers relies on) ------------------------------


def selects(store: SqliteStore) -> list[str]:
    """Every SELECT the store's connection runs from now on."""
    seen: list[str] = []
    store._db.set_trace_callback(lambda sql: seen.append(sql) if sql.lstrip().startswith("SELECT") else None)
    return seen


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers are forked")
def test_a_cached_record_gives_way_at_once_to_another_processs_write(tmp_path, in_child):
    path = tmp_path / "mock.db"
    store = SqliteStore(path, durable=False, lock=tmp_path / "records.lock")
    store.add("tasks", [{"id": "a", "n": 0}, {"id": "b", "n": 0}])
    assert store.get("tasks", "a") == {"id": "a", "n": 0}  # cached in this process now
    reads = selects(store)
    assert store.get_many("tasks", ["a", "b"]) == [{"id": "a", "n": 0}, {"id": "b", "n": 0}]
    assert reads == []  # answered from the cache

    def other_worker() -> None:
        # Its own connection, as a forked worker opens one (no connection crosses fork()).
        other = SqliteStore(path, durable=False, lock=tmp_path / "records.lock")
        other.update("tasks", ["a"], lambda r: {**r, "n": 1})
        other.add("tasks", [{"id": "c"}])

    in_child(other_worker)
    assert store.get("tasks", "a") == {"id": "a", "n": 1}
    assert store.get_many("tasks", ["c", "b", "a"]) == [{"id": "c"}, {"id": "b", "n": 0}, {"id": "a", "n": 1}]
    in_child(lambda: SqliteStore(path).clear())
    assert store.get("tasks", "b") is None and store.get_many("tasks", ["a", "c"]) == []
    store.close()


def test_own_writes_are_read_back_through_the_cache(tmp_path):
    store = SqliteStore(tmp_path / "mock.db")
    store.add("tasks", [{"id": "a", "n": 0}, {"id": "a", "n": 9}])
    assert store.get("tasks", "a") == {"id": "a", "n": 0}  # the first of an id is the one stored
    store.update("tasks", ["a"], lambda r: {**r, "n": 1})
    assert store.get("tasks", "a") == {"id": "a", "n": 1}
    store.put("tasks", [{"id": "a", "n": 2}, {"id": "a", "n": 3}])
    assert store.get_many("tasks", ["a"]) == [{"id": "a", "n": 3}]  # the last of an id wins
    reads = selects(store)
    assert store.get("tasks", "a") == {"id": "a", "n": 3} and reads == []
    store.clear()
    assert store.get("tasks", "a") is None
    # What another connection of this process reads is what the cache said: nothing was only cached.
    assert SqliteStore(tmp_path / "mock.db").list("tasks") == []
    store.close()


def test_a_rolled_back_update_leaves_the_cache_as_the_file(tmp_path):
    store = SqliteStore(tmp_path / "mock.db")
    store.add("tasks", [{"id": "a", "n": 1}, {"id": "b", "n": 1}])
    store.get_many("tasks", ["a", "b"])

    def explode(record):
        if record["id"] == "b":
            raise RuntimeError("no")
        record["n"] = 2  # mutating the copy it was given must not reach the cache either
        return record

    with pytest.raises(RuntimeError):
        store.update("tasks", ["a", "b"], explode)
    assert store.get_many("tasks", ["a", "b"]) == [{"id": "a", "n": 1}, {"id": "b", "n": 1}]
    store.close()


def test_the_cache_is_bounded_and_reads_stay_right_past_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "_CACHE_LIMIT", 10)
    store = SqliteStore(tmp_path / "mock.db")
    store.add("tasks", [{"id": str(n)} for n in range(25)])
    assert store._cached <= 10
    ids = [str(n) for n in range(24, -1, -1)]
    assert [r["id"] for r in store.get_many("tasks", ids)] == ids
    assert store._cached <= 10
    store.close()


def test_the_temporary_store_skips_fsync_and_the_durable_one_does_not(tmp_path):
    durable = SqliteStore(tmp_path / "kept.db")
    temporary = SqliteStore(tmp_path / "temp.db", durable=False)
    # 2 is FULL (an fsync at every commit), 0 is OFF.
    assert durable._db.execute("PRAGMA synchronous").fetchone() == (2,)
    assert temporary._db.execute("PRAGMA synchronous").fetchone() == (0,)
    durable.close()
    temporary.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers are forked")
def test_the_process_lock_excludes_a_forked_child_using_the_same_object(tmp_path, in_child):
    lock = ProcessLock(tmp_path / "x.lock")
    marks = tmp_path / "marks"
    with lock.held():  # opened here, before the fork: the child must not share this descriptor
        pass
    read, write = os.pipe()

    def child() -> None:
        os.read(read, 1)  # the parent holds the lock by now
        with lock.held(), marks.open("a") as out:
            out.write("child\n")

    pid = in_child.start(child)
    with lock.held():
        os.write(write, b"x")
        time.sleep(0.3)
        with marks.open("a") as out:
            out.write("parent\n")
    in_child.wait(pid)
    assert marks.read_text() == "parent\nchild\n"


def test_batches_larger_than_one_statement_takes_are_split_and_stay_whole(tmp_path):
    store = SqliteStore(tmp_path / "mock.db")
    # As a SQLite built with few parameters per statement would split them (the real split is
    # at tens of thousands of ids).
    store._ids_per_select, store._rows_per_insert, store._rows_per_update = 7, 5, 3
    assert store.add("tasks", [{"id": str(n), "n": 0} for n in range(23)]) == 23
    store.put("tasks", [{"id": str(n), "n": 1} for n in range(0, 23, 2)])
    ids = [str(n) for n in range(22, -1, -1)]
    changed = store.update("tasks", ids, lambda r: {**r, "n": r["n"] + 10})
    assert [(r["id"], r["n"]) for r in changed] == [(i, 11 if int(i) % 2 == 0 else 10) for i in ids]
    fresh = SqliteStore(tmp_path / "mock.db")  # no cache: every record read back from the file
    fresh._ids_per_select = 7
    assert fresh.get_many("tasks", ids) == changed
    store.close()
    fresh.close()
