"""A small HTTP/1.1 keep-alive load generator on asyncio, for machines without wrk.

Bounded like wrk: a fixed number of connections, a fixed duration and a request ceiling, loopback only.
It shares the CPU with the server and is slower than wrk, so its numbers are a floor, not a ceiling.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

from bench.stats import summarise

MAX_REQUESTS = 2_000_000


@dataclass
class _Tally:
    latencies_ns: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


def require_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"load is only ever sent to loopback addresses, not {host}")


async def _connection(host: str, port: int, path: str, deadline: float, tally: _Tally) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: keyhall-bench\r\n\r\n".encode()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        tally.errors += 1
        return
    try:
        while time.perf_counter() < deadline and len(tally.latencies_ns) < MAX_REQUESTS:
            started = time.perf_counter_ns()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            tally.latencies_ns.append(time.perf_counter_ns() - started)
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        tally.errors += 1
    finally:
        writer.close()


async def _run(host: str, port: int, path: str, connections: int, seconds: float) -> dict[str, Any]:
    tally = _Tally()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_connection(host, port, path, deadline, tally) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    summary = summarise(tally.latencies_ns, elapsed)
    non_2xx = sum(n for status, n in tally.statuses.items() if not 200 <= status < 300)
    return {
        "requests": summary.count,
        "req_per_s": summary.ops_per_s,
        "p50_ms": summary.p50_ms,
        "p90_ms": summary.p90_ms,
        "p99_ms": summary.p99_ms,
        "non_2xx": non_2xx,
        "socket_errors": tally.errors,
    }


def load(host: str, port: int, path: str, *, connections: int, seconds: float) -> dict[str, Any]:
    require_loopback(host)
    return asyncio.run(_run(host, port, path, connections, seconds))
