"""State that ``enginy-mock --workers N`` shares between its worker processes.

With one process (the default) the journal and the faults live in process memory (``Journal``,
``FaultState``). With several, each admin call and each API request lands on whichever worker the
kernel handed the connection to, so what one worker learns every other must see at once:

* records: the SQLite store (``SqliteStore``), one file for all workers;
* the journal: ``SharedJournal``, a table in a state file of the run (a temporary directory the
  supervisor removes on exit): every worker appends, every worker reads the same newest-first list,
  a reset on any worker clears it for all;
* faults switched on at run time: ``SharedFaultState``. The selection is a row of the state file;
  a generation counter in a page of shared memory (mapped before ``fork()``) tells a worker, for the
  price of reading one integer, that ``PUT /__admin/faults`` changed it on another worker, and it
  reloads the row. Seeded draws (drop-connection, 503, 429, latency jitter) count in the state file
  too: the n-th draw of a fault over all workers is ``Random(f"{seed}/{fault}/{n}")``, so the same seed
  gives the same sequence of draws whichever worker makes them (which request gets which draw
  depends on arrival order, as with threads in one process).

Ids need nothing shared: they are random UUIDs (``uuid4`` reads the OS's randomness, fresh in every
process). Everything here opens its SQLite connection lazily, per process, after the fork.
"""

from __future__ import annotations

import json
import mmap
import random
import sqlite3
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mock_server.faults import FaultSelection, FaultState, parse_faults
from mock_server.journal import Journal, JournalEntry, PendingEntry

__all__ = ["SharedFaultState", "SharedJournal", "StateFile"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS faults (
    one INTEGER PRIMARY KEY CHECK (one = 1), generation INTEGER NOT NULL, specs TEXT NOT NULL,
    seed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS draws (fault TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""
_GENERATION = struct.Struct("q")


class StateFile:
    """One SQLite file, one connection per process (opened on first use), one lock per connection.

    Not durable on purpose (``synchronous=OFF``): the file lives as long as the run and is deleted
    with it; losing the journal to a power cut is fine, paying an fsync per request is not.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        with self.transaction() as db:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            self._conn = conn
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: ``BEGIN IMMEDIATE`` queues writers of every process on the busy timeout."""
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads outside a transaction (each sees every commit made before it)."""
        with self._lock:
            yield self._connection()

    def disconnect(self) -> None:
        """Close this process's connection (before ``fork()``); the next use opens a new one."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class SharedJournal(Journal):
    """The journal as rows of the state file: the same bounded, newest-first list in every worker."""

    def __init__(self, state: StateFile, size: int) -> None:
        super().__init__(size)
        self._state = state
        self._size = size

    def record(self, entry: JournalEntry) -> None:
        text = json.dumps(entry.to_json(), separators=(",", ":"))
        with self._state.transaction() as db:
            seq = db.execute("INSERT INTO journal (entry) VALUES (?)", (text,)).lastrowid
            if seq is not None and seq > self._size:
                db.execute("DELETE FROM journal WHERE seq <= ?", (seq - self._size,))

    def record_later(self, pending: PendingEntry) -> None:
        # Redacted before it leaves the process: the state file is on disk.
        self.record(pending.entry())

    def entries(self, limit: int | None = None) -> list[JournalEntry]:
        count = self._size if limit is None else min(limit, self._size)
        with self._state.reading() as db:
            rows = db.execute("SELECT entry FROM journal ORDER BY seq DESC LIMIT ?", (count,)).fetchall()
        return [JournalEntry(**json.loads(text)) for (text,) in rows]

    def clear(self) -> None:
        with self._state.transaction() as db:
            db.execute("DELETE FROM journal")


class SharedFaultState(FaultState):
    """The active faults as one row of the state file, cached per worker behind a shared generation."""

    def __init__(self, state: StateFile, selections: Sequence[FaultSelection] = (), *, seed: int = 0) -> None:
        super().__init__(selections, seed=seed)
        self._state = state
        # MAP_SHARED and anonymous: inherited by fork(), one page every worker reads and writes.
        self._page = mmap.mmap(-1, _GENERATION.size)
        self._generation = 0
        self._write(selections, seed)

    def _write(self, selections: Sequence[FaultSelection], seed: int) -> None:
        specs = json.dumps([str(selection) for selection in selections])
        with self._state.transaction() as db:
            row = db.execute("SELECT generation FROM faults").fetchone()
            generation = (row[0] if row else 0) + 1
            db.execute("DELETE FROM faults")
            db.execute("INSERT INTO faults VALUES (1, ?, ?, ?)", (generation, specs, seed))
            db.execute("DELETE FROM draws")
            # Inside the transaction: writers are serialised, so the page only ever grows. A reader
            # that sees the new number before the commit reloads the old row, keeps its older
            # generation, and so reloads again on its next look.
            _GENERATION.pack_into(self._page, 0, generation)
        self._install(tuple(selections), seed)
        self._generation = generation

    def _sync(self) -> None:
        (generation,) = _GENERATION.unpack_from(self._page, 0)
        if generation == self._generation:
            return
        with self._state.reading() as db:
            row = db.execute("SELECT generation, specs, seed FROM faults").fetchone()
        if row is None:
            return
        stored, specs, seed = row
        with self._lock:
            self._install(parse_faults(json.loads(specs)), seed)
            self._generation = stored

    def replace(self, selections: Sequence[FaultSelection], *, seed: int | None = None) -> None:
        self._sync()
        self._write(selections, self._seed if seed is None else seed)

    @property
    def seed(self) -> int:
        self._sync()
        return self._seed

    @property
    def selections(self) -> tuple[FaultSelection, ...]:
        self._sync()
        return super().selections

    def any_active(self) -> bool:
        self._sync()
        return super().any_active()

    def active(self, fault_id: str) -> bool:
        self._sync()
        return super().active(fault_id)

    def param(self, fault_id: str, name: str) -> float:
        self._sync()
        return super().param(fault_id, name)

    def draw(self, fault_id: str) -> float:
        self._sync()
        with self._lock:
            if fault_id not in self._selections:
                return 1.0
            seed = self._seed
        with self._state.transaction() as db:
            (n,) = db.execute(
                "INSERT INTO draws (fault, n) VALUES (?, 0) ON CONFLICT (fault) DO UPDATE SET n = n + 1 "
                "RETURNING n",
                (fault_id,),
            ).fetchone()
        return random.Random(f"{seed}/{fault_id}/{n}").random()
