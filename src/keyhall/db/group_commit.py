"""Group commit: rows that requests on an event loop must write, committed together once per loop turn.

GetRoleCredentials writes nothing but its audit record, and a one-row transaction cost as much again in
its commit as in its insert (~30 µs of SQLite's write lock; a WAL flush on PostgreSQL; measured in
docs/performance.md). So a request hands its row here and waits. The rows handed over during one turn of
the event loop are written in one transaction at the start of the next, and only then does each request
answer. If the transaction fails, every request in it fails (503) and none answers with what its row
recorded.

The loop never waits for the write lock: when another writer holds it (the other worker, or the WAL
checkpoint in keyhall.db.wal), the batch stays open, takes in later rows, and is tried again a moment
later, while the loop goes on serving requests. A thread of its own would not wait either, but it would
pass the GIL back and forth with the loop on every driver call: measured, that halved one worker's
throughput.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from keyhall.errors import ServiceUnavailableError

log = logging.getLogger("keyhall.db")

Row = tuple[Any, ...]
#: writes each statement's rows, all in one transaction, if the write lock is free at once; False if not
BatchWriter = Callable[[dict[str, list[Row]]], bool]

#: how soon a batch that found the write lock taken tries again (the event loop's timers have ~1 ms grain)
RETRY_SECONDS = 0.0005


class _Batch:
    __slots__ = ("rows", "waiters")

    def __init__(self) -> None:
        self.rows: dict[str, list[Row]] = {}
        self.waiters: list[asyncio.Future[None]] = []


class GroupCommitter:
    def __init__(self, try_write: BatchWriter) -> None:
        self._try_write = try_write
        # the batch taking rows, per event loop (a server worker has one; tests may run several in turn)
        self._open: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = weakref.WeakKeyDictionary()

    async def write(self, sql: str, row: Row) -> None:
        """Returns once ``row`` is committed by ``sql``; ServiceUnavailableError if it could not be."""
        loop = asyncio.get_running_loop()
        batch = self._open.get(loop)
        if batch is None:
            batch = self._open[loop] = _Batch()
            loop.call_soon(self._flush, loop, batch)
        waiter: asyncio.Future[None] = loop.create_future()
        batch.rows.setdefault(sql, []).append(row)
        batch.waiters.append(waiter)
        await waiter

    def _flush(self, loop: asyncio.AbstractEventLoop, batch: _Batch) -> None:
        try:
            written = self._try_write(batch.rows)
        except Exception as exc:
            log.error("a group commit failed", exc_info=exc)
            self._close(loop, batch)
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(ServiceUnavailableError("The request's record could not be written"))
            return
        if not written:
            loop.call_later(RETRY_SECONDS, self._flush, loop, batch)
            return
        self._close(loop, batch)
        for waiter in batch.waiters:
            if (
                not waiter.done()
            ):  # done: the request was cancelled (client gone); its row is committed anyway
                waiter.set_result(None)

    def _close(self, loop: asyncio.AbstractEventLoop, batch: _Batch) -> None:
        if self._open.get(loop) is batch:
            del self._open[loop]  # later rows start the next batch
