"""A daemon thread that runs beside a server's requests until stopped (WAL checkpoints, housekeeping)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackgroundThread:
    """Runs ``body(stop)`` on a daemon thread between ``start`` and ``stop``; ``body`` returns when the
    ``stop`` event is set (it waits on it between turns, so stopping never waits out an interval)."""

    def __init__(self, name: str, body: Callable[[threading.Event], None]) -> None:
        self._name = name
        self._body = body
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._body, args=(self._stop,), name=self._name, daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
