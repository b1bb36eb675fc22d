"""The Store contract, for MemoryStore and SqliteStore alike, plus SQLite durability across reopening."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from mock_server.storage import KINDS, MemoryStore, SqliteStore, association_id


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
