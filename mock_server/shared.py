"""State that ``enginy-mock --workers N`` shares between its worker processes.

With one process (the default) the journal and the faults live in process memory (``Journal``,
``FaultState``). With several, each admin call and each API request lands on whichever worker the
kernel handed the connection to, so what one worker learns every other must see at once. All of it
lives in the run's state directory (a temporary directory the supervisor removes on exit):

* records: the SQLite store (``SqliteStore``), one file for all workers, with a read cache per
  worker that ``PRAGMA data_version`` keeps honest (see ``mock_server.storage``);
* the journal: ``SharedJournal``, one SQLite file per worker (``journal-w1.db``...). A worker
  appends only to its own, so recording an exchange never waits for another process; reading
  merges every worker's file newest first, by a ``time.monotonic_ns()`` stamp taken when the entry
  was recorded (the monotonic clock is one clock for every process on Linux), ties broken by worker
  then order of recording. Each file keeps the newest ``size`` entries, so the newest ``size`` over
  all workers are always there. A reset on any worker clears it for all: it writes the time of the
  reset to the state file, and entries stamped before it are no longer read (they stay in their
  file until the bound trims them). A replaced worker (one that died) takes over its
  predecessor's file, so the entries it had recorded stay;
* faults switched on at run time: ``SharedFaultState``. The selection is a row of the state file
  (``state.db``); a generation counter in a page of shared memory (mapped before ``fork()``) tells
  a worker, for the price of reading one integer, that ``PUT /__admin/faults`` changed it on another
  worker, and it reloads the row. Seeded draws (drop-connection, 503, 429, latency jitter) count in
  the state file too: the n-th draw of a fault over all workers is ``Random(f"{seed}/{fault}/{n}")``,
  so the same seed gives the same sequence of draws whichever worker makes them (which request gets
  which draw depends on arrival order, as with threads in one process).

Every write transaction to a file that several processes write (the records, the state file) takes a
``ProcessLock`` (``flock``) before ``BEGIN IMMEDIATE``: a second writer then sleeps in the kernel
and wakes the moment the first commits, instead of polling in SQLite's busy handler. Writes of a
single statement (a create, a journal entry) take no such lock and no BEGIN: SQLite's own lock is
then held only inside that one call (see ``SqliteStore._transaction``).

Ids need nothing shared: they are random UUIDs (``uuid4`` reads the OS's randomness, fresh in every
process). Everything here opens its SQLite connection lazily, per process, after the fork.
"""

from __future__ import annotations

import heapq
import itertools
import json
import mmap
import os
import random
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from mock_server.faults import FaultSelection, FaultState, parse_faults
from mock_server.journal import Journal, JournalEntry, PendingEntry
from mock_server.storage import ProcessLock

__all__ = ["SharedFaultState", "SharedJournal", "StateFile"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS faults (
    one INTEGER PRIMARY KEY CHECK (one = 1), generation INTEGER NOT NULL, specs TEXT NOT NULL,
    seed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS draws (fault TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS journal_cleared (one INTEGER PRIMARY KEY CHECK (one = 1), stamp INTEGER NOT NULL);
"""
# seq: the order of recording within the file (the rowid: no AUTOINCREMENT, the newest row is never
# deleted). stamp: time.monotonic_ns() when recorded, comparable across the workers' files.
_JOURNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, stamp INTEGER NOT NULL, entry TEXT NOT NULL)
"""
_JOURNAL_GLOB = "journal-*.db"
_GENERATION = struct.Struct("q")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    # Not durable on purpose: the files live as long as the run and are deleted with it; losing the
    # journal to a power cut is fine, paying an fsync per request is not. A commit still survives
    # kill -9 of its process (it is in the OS's page cache).
    conn.execute("PRAGMA synchronous=OFF")
    return conn


class StateFile:
    """The run's state file: one SQLite file, one connection per process (opened on first use), one
    lock per connection, and a ``ProcessLock`` beside it that every write transaction takes.

    Its directory is the run's state directory; the workers' journal files go there too.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.directory = self.path.parent
        self._lock = threading.Lock()
        self._process_lock = ProcessLock(self.path.with_name(self.path.name + ".lock"))
        self._conn: sqlite3.Connection | None = None
        with self.transaction() as db:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = _connect(self.path)
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; writers of every process queue on the process lock."""
        # The thread lock first: the process lock does not tell this process's threads apart.
        with self._lock, self._process_lock.held():
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
    """The journal as one SQLite file per worker, read as one bounded, newest-first list by every worker.

    ``as_worker(index)`` (in the worker, after the fork) names the file this process appends to; a
    process that never called it appends to a file named after its pid. The file is created on the
    first entry recorded.
    """

    def __init__(self, state: StateFile, size: int) -> None:
        super().__init__(size)
        self._state = state
        self._size = size
        self._name: tuple[int, str] | None = None  # (pid, file name) chosen by as_worker
        self._own: tuple[int, str, sqlite3.Connection] | None = None  # (pid, file name, connection)

    def as_worker(self, index: int) -> None:
        """From now on this process records into worker ``index``'s file (a replacement takes over
        its predecessor's, entries included)."""
        with self._lock:
            self._name = (os.getpid(), f"journal-w{index + 1}.db")

    def _file_name(self) -> str:
        pid = os.getpid()
        if self._name is not None and self._name[0] == pid:
            return self._name[1]
        return f"journal-p{pid}.db"

    def _own_file(self) -> sqlite3.Connection:
        """This process's journal connection (lock held); a forked child never writes its parent's."""
        pid = os.getpid()
        if self._own is None or self._own[0] != pid:
            name = self._file_name()
            conn = _connect(self._state.directory / name)
            conn.execute(_JOURNAL_SCHEMA)
            # The bound, kept by the INSERT itself: one SQLite call per entry, not four (each call
            # hands the GIL over, which costs a thread wake-up in a busy worker). TEMP: this
            # connection's own, so the bound is this run's whatever an earlier one left in the file.
            conn.execute(
                "CREATE TEMP TRIGGER journal_bound AFTER INSERT ON main.journal BEGIN "
                f"DELETE FROM journal WHERE seq <= NEW.seq - {int(self._size)}; END"
            )
            # A connection inherited across fork() is left alone (closing it could disturb the parent's).
            self._own = (pid, name, conn)
        return self._own[2]

    def record(self, entry: JournalEntry) -> None:
        # The fields as they are, not to_json(): dataclasses.asdict deep-copies every value, and
        # took about as long as the rest of recording. A Mapping that is not a dict becomes one.
        text = json.dumps(vars(entry), separators=(",", ":"), default=dict)
        with self._lock:
            db = self._own_file()
            # Taken under the lock, so that within one file the stamps grow with seq.
            stamp = time.monotonic_ns()
            db.execute("INSERT INTO journal (stamp, entry) VALUES (?, ?)", (stamp, text))

    def _cleared_at(self) -> int:
        with self._state.reading() as db:
            row = db.execute("SELECT stamp FROM journal_cleared").fetchone()
        return -1 if row is None else int(row[0])

    def _newest(self, name: str, cutoff: int, count: int) -> list[tuple[int, str, int, str]]:
        """The newest ``count`` entries of one worker's file recorded after ``cutoff``, newest first."""
        query = "SELECT stamp, ?, seq, entry FROM journal WHERE stamp > ? ORDER BY seq DESC LIMIT ?"
        params = (name, cutoff, count)
        with self._lock:
            own = self._own
            if own is not None and own[0] == os.getpid() and own[1] == name:
                return own[2].execute(query, params).fetchall()
        try:
            with closing(sqlite3.connect(self._state.directory / name, timeout=30)) as db:
                return db.execute(query, params).fetchall()
        except sqlite3.OperationalError:
            return []  # a file its worker is still creating (no table yet) holds no entries

    def record_later(self, pending: PendingEntry) -> None:
        # Redacted before it leaves the process: the state file is on disk.
        self.record(pending.entry())

    def entries(self, limit: int | None = None) -> list[JournalEntry]:
        count = self._size if limit is None else min(limit, self._size)
        if count <= 0:
            return []
        cutoff = self._cleared_at()
        names = sorted(path.name for path in self._state.directory.glob(_JOURNAL_GLOB))
        # Each file is newest first; merged on (stamp, worker, seq), descending.
        merged = heapq.merge(*(self._newest(name, cutoff, count) for name in names), reverse=True)
        return [JournalEntry(**json.loads(row[3])) for row in itertools.islice(merged, count)]

    def clear(self) -> None:
        # Every worker's file at once, without writing to any: entries stamped before now stop counting.
        with self._state.transaction() as db:
            db.execute(
                "INSERT INTO journal_cleared VALUES (1, ?) "
                "ON CONFLICT (one) DO UPDATE SET stamp = excluded.stamp",
                (time.monotonic_ns(),),
            )

    def disconnect(self) -> None:
        """Close this process's journal connection (before ``fork()``); the next entry opens it again."""
        with self._lock:
            if self._own is not None and self._own[0] == os.getpid():
                self._own[2].close()
            self._own = None


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
