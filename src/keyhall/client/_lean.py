"""JSON, SHA-1 and UTC timestamps without importing ``json``, ``hashlib`` or ``datetime``.

The credential_process warm path runs on every AWS SDK process start. ``json`` imports ``re`` (which imports
``enum``), ``hashlib`` initialises OpenSSL and ``datetime`` loads its own module: together about 12 ms of
a ~30 ms answer. CPython's C accelerators do the same work for nothing: ``_json`` has the scanner and the
string encoder ``json`` itself uses, ``_sha1`` the digest. Output is byte-identical to ``json.dumps`` and
``hashlib.sha1``; where an accelerator is missing (another Python), the ordinary modules are used.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WHITESPACE = " \t\n\r"

try:
    import _json as _accelerator
except ImportError:  # pragma: no cover - not CPython
    _accelerator = None  # type: ignore[assignment]


class _ScannerContext:
    """What ``_json.make_scanner`` reads from ``json.JSONDecoder`` (strict, hooks, number parsers)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float
    memo: dict[str, str]

    def __init__(self) -> None:
        self.memo = {}


def loads(text: str) -> Any:
    """``json.loads`` for a whole document; ValueError when it is not valid JSON."""
    if _accelerator is None:  # pragma: no cover - not CPython
        import json

        return json.loads(text)
    scan: Callable[[str, int], tuple[Any, int]] = _accelerator.make_scanner(_ScannerContext())  # type: ignore[arg-type]
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"not JSON at character {start}") from exc
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data after character {end}")
    return value


def string(value: str) -> str:
    """A JSON string literal, exactly as ``json.dumps`` writes it (``ensure_ascii``)."""
    if _accelerator is None:  # pragma: no cover - not CPython
        import json

        return json.dumps(value)
    return _accelerator.encode_basestring_ascii(value)


def sha1_hex(data: bytes) -> str:
    """``hashlib.sha1(data).hexdigest()`` (used for file names, as the AWS CLI names them)."""
    try:
        module = __import__("_sha1")
    except ImportError:  # pragma: no cover - Python built without its own SHA-1
        import hashlib

        return hashlib.sha1(data).hexdigest()  # noqa: S324
    return str(module.sha1(data).hexdigest())


def format_utc(timestamp: float) -> str:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, "chrono-Compatible Low-Level
    Date Algorithms", ``days_from_civil``)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def parse_utc(value: str) -> float:
    """``YYYY-MM-DDTHH:MM:SS[.fff](Z|+00:00)`` to epoch seconds; other ISO 8601 forms go to ``datetime``.

    A time without a zone is taken as UTC, as botocore does for these caches.
    """
    body = value
    for suffix in ("Z", "z", "+00:00"):
        if body.endswith(suffix):
            body = body[: -len(suffix)]
            break
    if (
        len(body) >= 19
        and body[4] == "-"
        and body[7] == "-"
        and body[10] in "Tt "
        and body[13] == ":"
        and body[16] == ":"
    ):
        fraction = body[19:]
        digits = (body[0:4], body[5:7], body[8:10], body[11:13], body[14:16], body[17:19])
        if all(d.isdigit() and d.isascii() for d in digits) and (
            not fraction or (fraction[0] == "." and fraction[1:].isdigit() and fraction[1:].isascii())
        ):
            year, month, day, hour, minute, second = (int(d) for d in digits)
            if (
                1 <= month <= 12
                and 1 <= day <= _days_in_month(year, month)
                and hour < 24
                and minute < 60
                and second < 60
            ):
                seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
                return seconds + (float("0" + fraction) if fraction else 0.0)
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
