"""A raw DB-API path for the few hottest statements (GetRoleCredentials, the bearer-token check).

Measured in docs/performance.md: the same token lookup and entitlement check ran 15x faster through the
driver than through SQLAlchemy Core on SQLite (and 4.7x on PostgreSQL), and the audited write 3.4x faster.
So the hot path keeps hand-written SQL here, in one place, while everything else uses Core. Statements are
written once with ``?`` placeholders and translated to the driver's style at import.

Reads go through ``run_read()``: one connection per thread, kept open and in autocommit, so a read costs
one statement and no pool round trip. Writes go through ``write()``: a short transaction on a pooled
connection. On SQLite, writers of every process queue on a lock file before ``BEGIN IMMEDIATE``: SQLite's
own busy handler waits by sleeping (up to 100 ms a turn), which with two server workers put the p99 of
GetRoleCredentials at 230 ms; a queue on the file hands the lock over as soon as it is free.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import PoolProxiedConnection

from keyhall.db.group_commit import GroupCommitter, Row
from keyhall.errors import ServiceUnavailableError

T = TypeVar("T")


class Cursor(Protocol):
    def execute(self, sql: str, params: tuple[Any, ...] = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Sequence[tuple[Any, ...]], /) -> Any: ...
    def fetchone(self) -> Any: ...


class Statement:
    """One SQL statement in both placeholder styles; JSON parameters are cast on PostgreSQL."""

    def __init__(self, sql: str) -> None:
        self.sqlite = sql.replace("?j", "?")
        self.postgresql = sql.replace("?j", "CAST(%s AS JSON)").replace("?", "%s")

    def text(self, is_sqlite: bool) -> str:
        return self.sqlite if is_sqlite else self.postgresql


class WriteQueue:
    """Serialises SQLite writers: a thread lock inside the process, an flock on a file beside the database
    between processes (an flock is held per open file, so threads of one process need the thread lock).

    Re-entrant within a thread, as SQLite's own lock was not: a write opened inside another write on a
    second connection still fails after the busy timeout, as it always did, instead of hanging here."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth == 0:
                fcntl.flock(self._file(), fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._release()

    @contextmanager
    def try_held(self) -> Iterator[bool]:
        """Like ``held``, but never waits: yields False (and holds nothing) if another writer has it."""
        if not self._thread_lock.acquire(blocking=False):
            yield False
            return
        try:
            if self._depth == 0:
                try:
                    fcntl.flock(self._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
            self._depth += 1
            try:
                yield True
            finally:
                self._release()
        finally:
            self._thread_lock.release()

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def _release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._file(), fcntl.LOCK_UN)

    def close(self) -> None:
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class FastPath:
    def __init__(self, engine: Engine, *, is_sqlite: bool) -> None:
        self._engine = engine
        self.is_sqlite = is_sqlite
        # the driver's own OperationalError (raw cursors are not wrapped by SQLAlchemy): a lost connection,
        # a locked database; anything else (an integrity error, say) is a bug and stays itself
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.OperationalError
        database = engine.url.database if is_sqlite else None
        #: every SQLite writer of the process queues here, Database.write() included
        self.queue = WriteQueue(f"{database}.write-lock") if database and database != ":memory:" else None
        self._local = threading.local()
        self._readers: list[PoolProxiedConnection] = []
        self._readers_lock = threading.Lock()
        self._group = GroupCommitter(self.try_write_rows)

    def run_read(self, work: Callable[[Cursor], T]) -> T:
        """``work`` on this thread's own autocommit connection: each statement reads the latest committed
        data and holds no transaction open (so on SQLite it never holds back a WAL checkpoint).

        For event-loop threads, which live as long as the process: the connection stays checked out of
        the engine's pool until ``dispose``; other threads use ``read``. A connection that has died since
        its last use (a database restart, a firewall's idle timeout: the first request of the morning) is
        replaced and ``work`` run once more, which is safe because it only reads."""
        for attempt in (1, 2):
            cursor = getattr(self._local, "cursor", None) or self._open_reader()
            try:
                return work(cursor)
            except self._driver_error as exc:
                self._drop_reader()
                if attempt == 2:
                    raise ServiceUnavailableError("The database is unavailable") from exc
        raise AssertionError("unreachable")

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        """A cursor on a pooled connection for a short read, given back afterwards (any thread)."""
        try:
            connection = self._engine.raw_connection()
        except OperationalError as exc:
            raise ServiceUnavailableError("The database is unavailable") from exc
        try:
            yield connection.cursor()
        except self._driver_error as exc:
            connection.invalidate()
            raise ServiceUnavailableError("The database is unavailable") from exc
        finally:
            connection.close()  # back to the pool, whose reset ends any transaction the read began

    def _open_reader(self) -> Cursor:
        try:
            connection = self._engine.raw_connection()
        except OperationalError as exc:
            raise ServiceUnavailableError("The database is unavailable") from exc
        if not self.is_sqlite:
            connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
        cursor: Cursor = connection.cursor()
        self._local.connection, self._local.cursor = connection, cursor
        with self._readers_lock:
            self._readers.append(connection)
        return cursor

    def _drop_reader(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = self._local.cursor = None
        if connection is not None:
            with self._readers_lock:
                if connection in self._readers:  # dispose() may have taken it already
                    self._readers.remove(connection)
            connection.invalidate()

    @contextmanager
    def write(self) -> Iterator[Cursor]:
        """A write transaction on a pooled driver connection: BEGIN IMMEDIATE on SQLite (the write lock up
        front, so no half-way SQLITE_BUSY), the driver's implicit transaction on PostgreSQL."""
        if self.queue is None:
            with self._transaction() as cursor:
                yield cursor
            return
        with self.queue.held(), self._transaction() as cursor:
            yield cursor

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        try:
            connection = self._engine.raw_connection()
        except OperationalError as exc:
            raise ServiceUnavailableError("The database is unavailable") from exc
        try:
            cursor = connection.cursor()
            if self.is_sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                if self.is_sqlite:
                    cursor.execute("ROLLBACK")
                else:
                    connection.rollback()
                raise
            if self.is_sqlite:
                cursor.execute("COMMIT")
            else:
                connection.commit()
        except self._driver_error as exc:
            connection.invalidate()
            raise ServiceUnavailableError("The database is unavailable") from exc
        finally:
            connection.close()  # back to the pool (or discarded, if invalidated)

    def try_write_rows(self, rows: dict[str, list[Row]]) -> bool:
        """Each statement (driver style) for each of its rows, all in one transaction, if no other writer
        holds the write queue; False, having written nothing, if one does."""
        if self.queue is None:
            with self._transaction() as cursor:
                _execute_rows(cursor, rows)
            return True
        with self.queue.try_held() as held:
            if not held:
                return False
            with self._transaction() as cursor:
                _execute_rows(cursor, rows)
        return True

    async def write_grouped(self, statement: Statement, row: Row) -> None:
        """Write ``row`` in a transaction shared with other requests (keyhall.db.group_commit); returns once
        it is committed."""
        await self._group.write(statement.text(self.is_sqlite), row)

    def dispose(self) -> None:
        """Close every thread's reader connection and the lock file (the engine's pool is the caller's)."""
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for connection in readers:
            connection.invalidate()
        self._local = threading.local()
        if self.queue is not None:
            self.queue.close()


def _execute_rows(cursor: Cursor, rows: dict[str, list[Row]]) -> None:
    for sql, params in rows.items():
        cursor.executemany(sql, params)
