"""Where the mock keeps its records: one small ``Store`` protocol and two implementations.

Every record is a JSON object (a ``dict``) with a non-empty string ``id``, filed under one of the
``KINDS``. Contacts and companies keep their CRM id in ``id``; an association's ``id`` is derived
from its pair (``association_id``), which is what makes linking an upsert.

* ``MemoryStore``: dicts behind one lock. The default; gone when the process ends.
* ``SqliteStore``: one table in a SQLite file (``--db PATH``, and the file the workers of
  ``--workers N`` share). Every write commits before the method returns, so an answer the mock has
  sent survives ``kill -9``. Each process keeps a read cache of the records it has parsed, valid
  while ``PRAGMA data_version`` says no other connection has committed; write transactions of
  different processes queue on a ``ProcessLock`` (``flock``) rather than in SQLite's sleeping busy
  handler.

Both are safe to share between waitress's worker threads. Records handed out are shallow copies:
callers build new dicts rather than mutating nested values in place.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

__all__ = [
    "KINDS",
    "Change",
    "Kind",
    "MemoryStore",
    "ProcessLock",
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
# SQLite limits bound parameters per statement: 32766 in current builds, 999 in old ones; the store
# asks its library (the more a statement takes, the fewer calls a batch of 10,000 ids makes).
# Records the read cache of one process holds before it starts again from empty. A bound, not a
# tuning knob: a long load test creating tasks must not grow a worker without limit, and refilling
# costs one SQL read per record, as every read cost before the cache.
_CACHE_LIMIT = 100_000


class ProcessLock:
    """An exclusive lock between processes: ``flock`` on a file, each process with its own descriptor.

    Why not just SQLite's locking: a writer that finds the database locked sleeps in SQLite's busy
    handler (1, 2, 5, 10... ms, whatever the other writer needs), so two processes that write a lot
    spend their time asleep. A writer blocked in ``flock`` wakes the moment the holder unlocks.

    ``flock`` belongs to an open file description, which ``fork()`` shares: with a descriptor
    inherited from the parent, parent and child would hold the lock at once. So the file is opened
    on first use in each process (the pid tells). Threads of one process share the descriptor, so
    this is no lock between threads: hold a thread lock around it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        pid = os.getpid()
        if self._pid != pid:
            if self._fd is not None:
                os.close(self._fd)  # the parent's copy: closing it here leaves the parent's lock alone
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = pid
        fd = self._fd
        assert fd is not None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._pid = 0


class SqliteStore:
    """Records as JSON rows in one SQLite table, with a read cache per process.

    One connection per process behind one lock: waitress threads take turns, which is plenty for a
    mock. Several processes (``enginy-mock --workers N``) share the file: WAL lets readers run beside
    the one writer, and a read sees every commit made before it, in whichever process. Each write
    method is one transaction committed before it returns: a single statement when that is all it
    takes (a create: one multi-row INSERT), else ``BEGIN IMMEDIATE`` ... ``COMMIT``. With ``lock``
    (a ``ProcessLock`` file; ``--workers`` puts one in the run's state directory) a transaction
    first takes that lock, so writers of different processes queue in the kernel rather than in
    SQLite's sleeping busy handler (see ``_transaction`` for why single statements do not); without
    it they still queue correctly, on the busy timeout.

    The read cache: ``get``, ``get_many`` and ``update`` answer from the records this process has
    already parsed, as long as ``PRAGMA data_version`` is unchanged. It changes whenever another
    connection (another process) commits to the file, and then the whole cache is dropped, so a
    read never misses another worker's write; it does not change for this connection's own
    commits, so every write method puts what it wrote into the cache itself (or drops it). A read
    from the cache costs one ``PRAGMA`` and a dict lookup instead of a query and ``json.loads``.

    Durability: WAL with ``synchronous=FULL``, so the WAL is fsynced at every commit and an
    acknowledged write survives not only ``kill -9`` but also a power cut. ``durable=False`` (the
    temporary store of ``--workers`` without ``--db``, deleted when the run ends) uses
    ``synchronous=OFF``: a commit is still atomic and still survives ``kill -9`` of any process (it
    is in the OS's page cache), only an OS crash can lose it, and the file dies with the run anyway.

    A SQLite connection must not cross ``fork()``: ``disconnect()`` closes it (and empties the
    cache), and the next call opens a fresh one in whichever process makes it.
    """

    def __init__(self, path: str | Path, *, durable: bool = True, lock: str | Path | None = None) -> None:
        self.path = Path(path)
        self._durable = durable
        self._lock = threading.Lock()
        self._process_lock = None if lock is None else ProcessLock(lock)
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        # Parsed records by kind and id, valid while data_version is _version (see the class doc).
        self._cache: dict[Kind, dict[str, Record]] = {}
        self._cached = 0
        self._version: int | None = None
        with self._transaction() as db:
            db.execute(_SCHEMA)
            params = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._ids_per_select = params - 1  # and the kind
        self._rows_per_insert = params // 3
        self._rows_per_update = (params - 1) // 2

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
            conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'OFF'}")
            self._conn = conn
            self._forget()
        return self._conn

    def _empty(self) -> None:
        """Drop every cached record; what the cache was valid for (the data_version) still holds."""
        self._cache = {}
        self._cached = 0

    def _forget(self) -> None:
        """Drop the cache and the data_version it was valid for: the next read starts afresh."""
        self._empty()
        self._version = None

    def _fresh(self, db: sqlite3.Connection) -> None:
        """Drop the cache if another connection committed since the last look (lock held)."""
        (version,) = db.execute("PRAGMA data_version").fetchone()
        if version != self._version:
            self._forget()
            self._version = version

    def _remember(self, kind: Kind, records: Iterable[Record]) -> None:
        """Cache records as stored now (lock held); past the bound, start again from empty."""
        table = self._cache.setdefault(kind, {})
        for record in records:
            if record["id"] not in table:
                self._cached += 1
            table[record["id"]] = record
        if self._cached > _CACHE_LIMIT:
            self._empty()

    def disconnect(self) -> None:
        """Close this process's connection (before ``fork()``); the next call opens a new one."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._forget()

    @contextmanager
    def _transaction(self, *, statements: int = 2) -> Iterator[sqlite3.Connection]:
        """A write: a ``BEGIN IMMEDIATE`` transaction under the process lock, or, for a write of
        one statement (``statements=1``, atomic on its own), that statement alone.

        Why the difference: every SQLite call hands the GIL over, and in a worker whose other
        threads want it, getting it back takes a while. A lock held from one call to the next is
        held through those waits, and the other worker's writers wait too. One statement takes
        and drops SQLite's write lock inside one call, in C, so it needs no process lock (a
        collision, rare at a few microseconds a write, sleeps in the busy handler); a transaction
        spans calls, and there a second writer had better sleep in ``flock`` and wake at once
        than poll in the busy handler.
        """
        if statements == 1:
            with self._lock:
                db = self._db
                try:
                    # No look at data_version: this write reads nothing, and what it caches is
                    # right unless another connection commits a change to it, after which the
                    # next look drops the cache anyway. (update() reads, and looks inside its
                    # transaction.)
                    yield db
                except BaseException:
                    self._forget()
                    raise
            return
        # The thread lock first: the process lock does not tell this process's threads apart.
        with self._lock, self._process_lock.held() if self._process_lock else nullcontext():
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                # Inside the write lock no other connection can commit, so the cache checked here
                # stays valid until this transaction's own changes, which the caller records.
                self._fresh(db)
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                self._forget()  # the caller may have cached what was rolled back
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

    def _inserts(self, records: Sequence[Record]) -> int:
        """How many INSERT statements ``_insert`` runs for these records."""
        return -(-len(records) // self._rows_per_insert)

    def _insert(self, db: sqlite3.Connection, kind: Kind, records: Sequence[Record], conflict: str) -> int:
        """Multi-row INSERTs (one statement per few hundred rows, not one per row); the rows written.

        No RETURNING: its rows are stepped through one call each, and an autocommit statement
        keeps the write lock until its last step.
        """
        before = db.total_changes
        for start in range(0, len(records), self._rows_per_insert):
            chunk = records[start : start + self._rows_per_insert]
            values = ",".join(["(?,?,?)"] * len(chunk))
            params = [p for r in chunk for p in (kind, self._key(r["id"]), self._dumps(r))]
            db.execute(f"INSERT INTO records (kind, id, body) VALUES {values} {conflict}", params)
        return db.total_changes - before

    def add(self, kind: Kind, records: Sequence[Record]) -> int:
        with self._transaction(statements=self._inserts(records)) as db:
            new = self._insert(db, kind, records, "ON CONFLICT (kind, id) DO NOTHING")
            # The first record of an id is the one inserted; later ones with that id were ignored.
            first: dict[str, Record] = {}
            for record in records:
                first.setdefault(record["id"], record)
            if new == len(first):
                self._remember(kind, (dict(r) for r in first.values()))
            # Else some ids were stored already, and which were not is unknown: nothing is cached
            # (the cache cannot be wrong for them: an id it holds was stored, so was not inserted).
            return new

    def put(self, kind: Kind, records: Sequence[Record]) -> None:
        with self._transaction(statements=self._inserts(records)) as db:
            self._insert(db, kind, records, "ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body")
            last = {record["id"]: record for record in records}  # the last record of an id wins
            self._remember(kind, (dict(r) for r in last.values()))

    def _fetch(self, db: sqlite3.Connection, kind: Kind, ids: list[str]) -> list[Record]:
        """The stored records among ``ids`` (first mentions), from the cache or else from SQL; the
        records are the cache's own: copy them before handing them out (lock held, cache fresh)."""
        cached = self._cache.get(kind, {})
        missing = [i for i in ids if i not in cached]
        read: dict[str, Record] = {}
        for start in range(0, len(missing), self._ids_per_select):
            chunk = missing[start : start + self._ids_per_select]
            marks = ",".join("?" * len(chunk))
            # One row holding every body, as a JSON array: a statement that steps once per record
            # hands the GIL over once per record, and in a busy worker each hand-over waits for the
            # other threads (seconds, for 10,000 ids).
            (bodies,) = db.execute(
                "SELECT '[' || group_concat(body, ',') || ']' FROM records "
                f"WHERE kind = ? AND id IN ({marks})",
                (kind, *(self._key(record_id) for record_id in chunk)),
            ).fetchone()
            for record in json.loads(bodies) if bodies is not None else ():
                read[record["id"]] = record
        if read:
            self._remember(kind, read.values())  # may start the cache afresh: `cached` still holds
        return [cached[i] if i in cached else read[i] for i in ids if i in cached or i in read]

    def get(self, kind: Kind, record_id: str) -> Record | None:
        with self._lock:
            db = self._db
            self._fresh(db)
            cached = self._cache.get(kind, {}).get(record_id)
            if cached is not None:
                return dict(cached)
            row = db.execute(
                "SELECT body FROM records WHERE kind = ? AND id = ?", (kind, self._key(record_id))
            ).fetchone()
            if row is None:
                return None
            record: Record = json.loads(row[0])
            self._remember(kind, [record])
            return dict(record)

    def get_many(self, kind: Kind, ids: Sequence[str]) -> list[Record]:
        with self._lock:
            db = self._db
            self._fresh(db)
            return [dict(record) for record in self._fetch(db, kind, _first_mentions(ids))]

    def update(self, kind: Kind, ids: Sequence[str], change: Change) -> list[Record]:
        with self._transaction() as db:
            changed = [change(dict(record)) for record in self._fetch(db, kind, _first_mentions(ids))]
            # A few statements of many rows, not executemany's step (GIL hand-over) per row.
            for start in range(0, len(changed), self._rows_per_update):
                chunk = changed[start : start + self._rows_per_update]
                values = ",".join(["(?,?)"] * len(chunk))
                db.execute(
                    f"UPDATE records SET body = new.column2 FROM (VALUES {values}) AS new "
                    "WHERE records.kind = ? AND records.id = new.column1",
                    [*(p for r in chunk for p in (self._key(r["id"]), self._dumps(r))), kind],
                )
            self._remember(kind, (dict(record) for record in changed))
            return changed

    def list(self, kind: Kind) -> list[Record]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM records WHERE kind = ? ORDER BY seq", (kind,))
            return [json.loads(row[0]) for row in rows]

    def clear(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM records")
            self._empty()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._forget()
            if self._process_lock is not None:
                self._process_lock.close()
