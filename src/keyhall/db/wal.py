"""SQLite WAL checkpoints off the request path.

By default SQLite checkpoints inside whichever commit takes the write-ahead log past 1,000 pages: that
commit (and, behind the write lock, every other writer) waits while pages are copied and the WAL and the
database file are synced: 20-50 ms, once a second at 5,000 audited requests a second. A server therefore
runs this thread. Twice a second it checkpoints PASSIVE-ly, which copies and syncs alongside the writers
without blocking them. A WAL that is never fully checkpointed is never restarted and only grows, though,
and under steady writes a commit always lands between a checkpoint and the next write. So once the WAL
passes ``RESTART_FRAMES``, the thread also takes the write queue for a second, short checkpoint of what
was committed meanwhile; the next writer then starts the WAL over. Group commit never waits for that
(keyhall.db.group_commit). The connections keep an automatic checkpoint at 10,000 pages as a safety net
for processes without this thread (the CLI) or should it stall.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from keyhall.db.background import BackgroundThread
from keyhall.db.fast import WriteQueue

log = logging.getLogger("keyhall.db")

#: pages of WAL after which a committing connection checkpoints by itself (the safety net, ~40 MB)
AUTOCHECKPOINT_PAGES = 10_000
INTERVAL_SECONDS = 0.5
#: WAL frames (pages) after which the checkpoint also takes the write queue, so the WAL can start over
RESTART_FRAMES = 2_000


class WalCheckpointer(BackgroundThread):
    def __init__(self, path: str, queue: WriteQueue, *, interval: float = INTERVAL_SECONDS) -> None:
        super().__init__("keyhall-wal-checkpoint", self._run)
        self._path = path
        self._queue = queue
        self._interval = interval

    def _run(self, stop: threading.Event) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA busy_timeout=100")
            while not stop.wait(self._interval):
                try:
                    self.checkpoint(connection)
                except sqlite3.Error as exc:  # a busy or failing checkpoint is retried on the next turn
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            connection.close()

    def checkpoint(self, connection: sqlite3.Connection) -> int:
        """One turn; returns the WAL's frames after it (0 once the next writer will start it over)."""
        _busy, frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames < RESTART_FRAMES:
            return int(frames)
        with self._queue.held():
            _busy, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return 0 if frames == copied else int(frames)
