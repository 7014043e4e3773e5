"""The app's database: one SQLite file (config.DB_PATH, in data/) that the server, notebooks and scripts share.

Template-owned: `copier update` keeps this file current. The server opens it with `open_database`; a notebook or a
script that writes to it should too (or at least use `prepare` on its own connections), so that it waits its turn
the same way.

Waiting to write. SQLite lets one connection write at a time and makes the others wait in a busy handler. SQLite's
own (`set_busy_timeout`) polls with sleeps that grow to 100 ms and gives up once the sleeps add up to the timeout,
however much the others wrote meanwhile: four processes inserting rows in a loop on a saturated machine made one
of them lose every poll for 5 s and fail with BusyError, although the lock never stayed put (BENCHMARKS.md has the
measurement). Here a writer polls every millisecond or two and gives up only when the lock has been held for
LOCK_TIMEOUT seconds with no write by anyone, which means a transaction left open (a notebook's, say).

Transactions that write begin IMMEDIATE (`Database.transaction`): they take the write lock before their first
read. A deferred one that reads first, then writes after another connection committed, fails at once with
SQLITE_BUSY_SNAPSHOT, without waiting at all.

The server's connection is used by the event loop's thread alone (apsw refuses a connection that two threads enter
at once, and a fastlite table keeps the row it last wrote on the table object): slow work that needs no database
runs in worker threads (see plugins/README.md). `transaction()` therefore holds no await: another coroutine's
statements would join it.

Faults are messages: `fault_message` words a full disk, a missing or read-only folder and a locked or vanished
database for the person, with the path and what to do; the server shows them on the page and at start.
"""

import asyncio
import errno
import os
import random
import time
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import apsw
from fastlite import Database as FastliteDatabase

LOCK_TIMEOUT = 10  # seconds the write lock may stay held without a write by anyone before a writer gives up
POLL = 0.002  # the longest sleep between two tries for the write lock


class DatabaseFault(Exception):
    "The database cannot be used: the message says which file or folder, what is wrong and what to do."


# The errors that are faults of the disk, the folder or another program, not of the code: fault_message words them.
FAULTS = (DatabaseFault, apsw.FullError, apsw.BusyError, apsw.ReadOnlyError, apsw.CantOpenError, apsw.IOError,
          apsw.CorruptError, apsw.NotADBError)


def last_write(wal: str):
    "What changes whenever any connection writes: the write-ahead log's size and modification time."
    try: stat = os.stat(wal)
    except FileNotFoundError: return None
    return stat.st_size, stat.st_mtime_ns


def wait_for_writers(connection: apsw.Connection):
    """The busy handler: tries again every POLL seconds at most while the database is being written, and gives up
    (BusyError) when LOCK_TIMEOUT seconds pass without a single write."""
    wal, waiting = connection.filename_wal, {}

    def busy(tries: int) -> bool:
        now, written = time.monotonic(), last_write(wal)
        if tries == 0 or written != waiting["written"]: waiting.update(since=now, written=written)
        if now - waiting["since"] > LOCK_TIMEOUT: return False
        time.sleep(random.uniform(0, POLL))  # random: waiters that woke together do not keep colliding
        return True
    return busy


def prepare(connection: apsw.Connection):
    """Sets up every connection this process opens (an apsw connection hook, replacing apsw's best-practice one,
    whose PRAGMA optimize at connect fails with BusyError when several processes open the database together).
    synchronous=NORMAL is SQLite's advice for WAL: a commit waits for no disk flush (the lock is held far shorter),
    and a power cut can lose the last commits but never corrupts the file."""
    connection.set_busy_handler(wait_for_writers(connection))
    connection.pragma("journal_mode", "wal")
    connection.pragma("synchronous", "normal")
    connection.pragma("foreign_keys", True)
    connection.pragma("recursive_triggers", True)


apsw.connection_hooks[:] = [prepare]


def drop(coroutines: list):
    "Closes coroutines that will never run (their transaction was rolled back), so none warns it was never awaited."
    for coroutine in coroutines: coroutine.close()


class Database(FastliteDatabase):
    "fastlite's Database with write transactions that take the lock first, and announcements sent once committed."

    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path, self.file = path, os.stat(path)
        self.committed = None  # while a transaction is open: what to start once it is committed

    @contextmanager
    def transaction(self):
        """Everything written in the block is saved together, or nothing if it raises. Begins IMMEDIATE, so it waits
        for the write lock before its first read; inside another transaction it is a savepoint of that one.
        No await inside: the connection is the event loop's, and another coroutine's writes would join it."""
        if self.conn.in_transaction:
            yield from self.savepoint()
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self.committed = []
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction: self.conn.execute("ROLLBACK")  # SQLite may have rolled back already
            drop(self.committed)
            raise
        finally:
            committed, self.committed = self.committed, None
        for coroutine in committed: asyncio.ensure_future(coroutine)

    def savepoint(self):
        "A transaction inside the open one: what it started to announce goes if it is rolled back."
        started = len(self.committed or [])
        try:
            with self.conn: yield
        except BaseException:
            if self.committed:
                drop(self.committed[started:])
                del self.committed[started:]
            raise

    def once_committed(self, coroutine) -> asyncio.Future:
        """Starts coroutine (telling the open pages what was saved, say) on the event loop once the open transaction
        is committed; a rolled-back one drops it. Outside a transaction it starts at once, and the task is returned
        to await; inside, the future returned is done already: there is nothing to wait for before the commit."""
        if self.committed is None: return asyncio.ensure_future(coroutine)
        self.committed.append(coroutine)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def check_file(self):
        "Raises a DatabaseFault if the database file was deleted or replaced while the app had it open."
        try: same = os.path.samestat(os.stat(self.path), self.file)
        except FileNotFoundError: same = False
        if not same:
            raise DatabaseFault(f"The database {self.path} was deleted or moved while the app was running, so "
                                "nothing the app saves now would be kept. Put it back, or restart the app to "
                                "start a new one.")


def lookup(table, column: str, value):
    """The first row of a fastlite table (with its dataclass) whose column holds value, or None. Every request looks
    rows up this way, with one query: fastlite's table(where=...) asks sqlite_master whether the table exists first,
    and table[key] also reads its schema, on every call."""
    names = ", ".join(f"[{field.name}]" for field in fields(table.cls))
    row = table.db.execute(f"SELECT {names} FROM [{table.name}] WHERE [{column}] = ? LIMIT 1", [value]).fetchone()
    return None if row is None else table.cls(*row)


def open_database(path: Path) -> Database:
    "The database at path, its folder made if need be; a DatabaseFault if the folder or the file cannot be used."
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = Database(path)
        db.execute("SELECT count(*) FROM sqlite_master").fetchall()  # reads the file now: a fault shows at start
        return db
    except (OSError, apsw.Error) as error:
        raise DatabaseFault(fault_message(error, path)) from error


def fault_message(error: Exception, path: Path) -> str | None:
    "What a database error means for the person, naming the path and what to do; None for other errors."
    folder = path.parent
    if isinstance(error, DatabaseFault): return str(error)
    if isinstance(error, apsw.FullError) or getattr(error, "errno", None) == errno.ENOSPC:
        return f"The disk that holds {path} is full, so nothing was saved. Free some space, then try again."
    if isinstance(error, apsw.BusyError):
        return (f"The database {path} is locked: another program (a notebook or a script?) has kept a transaction "
                f"open for over {LOCK_TIMEOUT} s. Let it finish, or close it, then try again.")
    in_folder = isinstance(error, OSError) and str(error.filename or "").startswith(str(folder))
    if isinstance(error, (apsw.ReadOnlyError, apsw.CantOpenError)) or in_folder:
        problem = (f"is missing{f' and cannot be made ({error.strerror})' if in_folder else ''}"
                   if not folder.is_dir() else
                   "is read-only" if not os.access(folder, os.W_OK | os.X_OK) else
                   f"holds {path.name}, which is read-only" if path.exists() and not os.access(path, os.W_OK)
                   else "cannot be written")
        return (f"The data folder {folder} {problem}: the app keeps its database {path.name} there. Make it a "
                f"folder you can write to (mkdir -p {folder}; chmod u+rwx {folder}), or set DATA_DIR to one.")
    if isinstance(error, (apsw.IOError, apsw.CorruptError, apsw.NotADBError)):
        return (f"The database {path} could not be read or written ({error}). Check the disk; if the file is "
                "damaged, move it away (the app then starts a new one) and restore a copy.")
    return None
