"""The Database: one engine, and transactions that hand out stores bound to one connection.

Every request's changes and its audit record go through one ``Database.write()`` block, so they commit
together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from keyhall.db.engine import WRITE_OPTION, build_engine, is_sqlite
from keyhall.db.fast import FastPath
from keyhall.db.wal import WalCheckpointer
from keyhall.errors import ServiceUnavailableError


class Database:
    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or build_engine(url)
        self.is_sqlite = is_sqlite(url)
        self.fast = FastPath(self.engine, is_sqlite=self.is_sqlite)
        queue = self.fast.queue  # None unless SQLite on a file
        path = self.engine.url.database
        self._checkpointer = WalCheckpointer(path, queue) if queue is not None and path else None

    def start_background(self) -> None:
        """What a server process runs beside its requests: SQLite's WAL checkpoints (keyhall.db.wal)."""
        if self._checkpointer is not None:
            self._checkpointer.start()

    def stop_background(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A read-write transaction, committed when the block ends without an exception. On SQLite it first
        queues with the other writers of every process (keyhall.db.fast.WriteQueue)."""
        queue = self.fast.queue
        if queue is None:
            with self._connect(write=True) as conn, conn.begin():
                yield conn
            return
        with queue.held(), self._connect(write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (deferred on SQLite, so it never waits for writers)."""
        with self._connect(write=False) as conn, conn.begin():
            yield conn

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except OperationalError as exc:  # fail closed: no database, no answer
            raise ServiceUnavailableError("The database is unavailable") from exc
        try:
            if write:
                conn = conn.execution_options(**{WRITE_OPTION: True})
            yield conn
        finally:
            conn.close()

    def ping(self) -> bool:
        try:
            with self.read() as conn:
                conn.execute(text("SELECT 1"))
        except (OperationalError, ServiceUnavailableError):
            return False
        return True

    def dispose(self) -> None:
        self.stop_background()
        self.fast.dispose()
        self.engine.dispose()
