"""Where the mock keeps its records: one small ``Store`` protocol and two implementations.

Every record is a JSON object (a ``dict``) with a non-empty string ``id``, filed under one of the
``KINDS``. Contacts and companies keep their CRM id in ``id``; an association's ``id`` is derived
from its pair (``association_id``), which is what makes linking an upsert.

* ``MemoryStore``: dicts behind one lock. The default; gone when the process ends.
* ``SqliteStore``: one table in a SQLite file (``--db PATH``). Every write commits before the
  method returns, so an answer the mock has sent survives ``kill -9``.

Both are safe to share between waitress's worker threads. Records handed out are shallow copies:
callers build new dicts rather than mutating nested values in place.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

__all__ = [
    "KINDS",
    "Change",
    "Kind",
    "MemoryStore",
    "Record",
    "SqliteStore",
    "Store",
    "association_id",
]

Kind = Literal["tasks", "contacts", "companies", "activities", "associations", "users"]
KINDS: tuple[Kind, ...] = get_args(Kind)
Record = dict[str, Any]
Change = Callable[[Record], Record]
"""Given a stored record (a copy), return the record to store in its place."""


def association_id(contact_crm_id: str, company_crm_id: str) -> str:
    """The id of the link between a contact and a company; JSON keeps any two strings apart."""
    return json.dumps([contact_crm_id, company_crm_id], separators=(",", ":"))


class Store(Protocol):
    """The operations the resources need; each is atomic with respect to the others."""

    def add(self, kind: Kind, records: Sequence[Record]) -> int:
        """Insert the records whose id is not stored yet; return how many were new."""
        ...

    def put(self, kind: Kind, records: Sequence[Record]) -> None:
        """Insert or replace the records by id (seeding)."""
        ...

    def get(self, kind: Kind, record_id: str) -> Record | None:
        """Return the record with this id, or None."""
        ...

    def get_many(self, kind: Kind, ids: Sequence[str]) -> list[Record]:
        """Return the stored records among ``ids``, in order of first mention; unknown ids are skipped."""
        ...

    def update(self, kind: Kind, ids: Sequence[str], change: Change) -> list[Record]:
        """Apply ``change`` to each stored record among ``ids`` (once each); store and return the results."""
        ...

    def list(self, kind: Kind) -> list[Record]:
        """Return every record of this kind, oldest first."""
        ...

    def clear(self) -> None:
        """Delete every record of every kind."""
        ...

    def close(self) -> None:
        """Release files and connections; the store is unusable afterwards."""
        ...


def _first_mentions(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


class MemoryStore:
    """Records in dicts (insertion-ordered, so listing is oldest first) behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[Kind, dict[str, Record]] = {kind: {} for kind in KINDS}

    def add(self, kind: Kind, records: Sequence[Record]) -> int:
        with self._lock:
            table = self._data[kind]
            new = 0
            for record in records:
                if record["id"] not in table:
                    table[record["id"]] = dict(record)
                    new += 1
            return new

    def put(self, kind: Kind, records: Sequence[Record]) -> None:
        with self._lock:
            table = self._data[kind]
            for record in records:
                table[record["id"]] = dict(record)

    def get(self, kind: Kind, record_id: str) -> Record | None:
        with self._lock:
            record = self._data[kind].get(record_id)
            return None if record is None else dict(record)

    def get_many(self, kind: Kind, ids: Sequence[str]) -> list[Record]:
        with self._lock:
            table = self._data[kind]
            return [dict(table[i]) for i in _first_mentions(ids) if i in table]

    def update(self, kind: Kind, ids: Sequence[str], change: Change) -> list[Record]:
        with self._lock:
            table = self._data[kind]
            changed = []
            for record_id in _first_mentions(ids):
                if record_id in table:
                    new = change(dict(table[record_id]))
                    table[record_id] = dict(new)
                    changed.append(new)
            return changed

    def list(self, kind: Kind) -> list[Record]:
        with self._lock:
            return [dict(record) for record in self._data[kind].values()]

    def clear(self) -> None:
        with self._lock:
            for table in self._data.values():
                table.clear()

    def close(self) -> None:
        """Nothing to release."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order, for listing oldest first
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    body TEXT NOT NULL,                      -- the record as JSON
    UNIQUE (kind, id)
)
"""
# SQLite limits bound parameters per statement (32766 in current builds, 999 in old ones).
_CHUNK = 500


class SqliteStore:
    """Records as JSON rows in one SQLite table.

    One connection per process behind one lock: waitress threads take turns, which is plenty for a
    mock. Several processes (``enginy-mock --workers N``) share the file: WAL lets readers run beside
    the one writer, every write is a ``BEGIN IMMEDIATE`` transaction (so concurrent writers queue on
    the busy timeout instead of failing), and a read outside a transaction sees every commit made
    before it, in whichever process. Durability: WAL with ``synchronous=FULL``, so the WAL is fsynced
    at every commit and an acknowledged write survives not only ``kill -9`` (for which NORMAL would
    do) but also a power cut. ``durable=False`` (a temporary file deleted on exit) skips the fsync.
    Each write method is one transaction committed before it returns.

    A SQLite connection must not cross ``fork()``: ``disconnect()`` closes it, and the next call
    opens a fresh one in whichever process makes it.
    """

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = Path(path)
        self._durable = durable
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        with self._lock:
            self._db.execute(_SCHEMA)

    @property
    def _db(self) -> sqlite3.Connection:
        """This process's connection, opened on first use (call with the lock held)."""
        if self._conn is None:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed store.")
            # check_same_thread=False: the lock, not the thread, guards the connection.
            # isolation_level=None: we issue BEGIN/COMMIT ourselves so that each method is one
            # transaction. timeout: how long a writer waits for another process's write to finish.
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
            self._conn = conn
        return self._conn

    def disconnect(self) -> None:
        """Close this process's connection (before ``fork()``); the next call opens a new one."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @staticmethod
    def _key(record_id: str) -> str:
        """The id as stored: JSON-escaped, because SQLite text must be valid UTF-8 and a JSON body
        can smuggle in a lone surrogate ("\\ud800") that Python cannot encode."""
        return json.dumps(record_id)

    @staticmethod
    def _dumps(record: Record) -> str:
        # ensure_ascii: a lone surrogate from a JSON escape cannot be encoded as UTF-8 for SQLite.
        return json.dumps(record, separators=(",", ":"))

    def add(self, kind: Kind, records: Sequence[Record]) -> int:
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO records (kind, id, body) VALUES (?, ?, ?)",
                [(kind, self._key(record["id"]), self._dumps(record)) for record in records],
            )
            return db.total_changes - before

    def put(self, kind: Kind, records: Sequence[Record]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO records (kind, id, body) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
                [(kind, self._key(record["id"]), self._dumps(record)) for record in records],
            )

    def get(self, kind: Kind, record_id: str) -> Record | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM records WHERE kind = ? AND id = ?", (kind, self._key(record_id))
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def _fetch(self, db: sqlite3.Connection, kind: Kind, ids: list[str]) -> list[Record]:
        found: dict[str, Record] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(
                f"SELECT body FROM records WHERE kind = ? AND id IN ({marks})",
                (kind, *(self._key(record_id) for record_id in chunk)),
            )
            for (body,) in rows:
                record = json.loads(body)
                found[record["id"]] = record
        return [found[i] for i in ids if i in found]

    def get_many(self, kind: Kind, ids: Sequence[str]) -> list[Record]:
        with self._lock:
            return self._fetch(self._db, kind, _first_mentions(ids))

    def update(self, kind: Kind, ids: Sequence[str], change: Change) -> list[Record]:
        with self._transaction() as db:
            changed = [change(record) for record in self._fetch(db, kind, _first_mentions(ids))]
            db.executemany(
                "UPDATE records SET body = ? WHERE kind = ? AND id = ?",
                [(self._dumps(record), kind, self._key(record["id"])) for record in changed],
            )
            return changed

    def list(self, kind: Kind) -> list[Record]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM records WHERE kind = ? ORDER BY seq", (kind,))
            return [json.loads(row[0]) for row in rows]

    def clear(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM records")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
