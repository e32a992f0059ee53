"""Running coroutines from a test, whatever else holds the test thread's event loop.

Playwright's sync API (the browser tests) keeps an event loop running on the main thread for the whole
session, so ``asyncio.run`` there fails; a thread of its own always has a fresh loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


@contextmanager
def loop_thread() -> Iterator[Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]]:
    """One thread for every ``run(make)`` in the block, as a server worker has one loop thread (what is
    kept per thread, such as the hot path's reader connection, is kept across calls)."""
    with ThreadPoolExecutor(max_workers=1) as pool:

        def run(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
            return pool.submit(lambda: asyncio.run(make())).result()

        yield run


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(make())`` on a thread of its own; returns its result or raises its exception."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
