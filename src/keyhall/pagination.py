"""Opaque keyset pagination tokens (NextToken): the last key seen, base64url-encoded."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from keyhall.errors import ValidationError

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None


def encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError("NextToken is not a token this service issued") from exc


def check_limit(limit: int | None, *, default: int = 100, maximum: int = 100) -> int:
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise ValidationError(f"MaxResults must be between 1 and {maximum}, got {limit}")
    return limit


def keyset_page(
    fetch: Callable[[str | None, int], list[T]],
    key: Callable[[T], str],
    *,
    limit: int | None,
    next_token: str | None,
    maximum: int = 100,
    default: int = 100,
) -> Page[T]:
    """One page of a keyset-ordered listing: ``fetch(after_key, n)`` returns up to n items after the key.

    One extra item is fetched to know whether another page follows, so the last page has no token.
    """
    size = check_limit(limit, maximum=maximum, default=default)
    items = fetch(decode_token(next_token), size + 1)
    more = len(items) > size
    items = items[:size]
    return Page(items, encode_token(key(items[-1])) if more else None)
