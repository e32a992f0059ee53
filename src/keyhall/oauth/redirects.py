"""Redirect URI rules (RFC 9700 §2.1, §4.1.3; RFC 8252 §7.3).

Registered URIs must be loopback HTTP (``127.0.0.1`` or ``[::1]``; ``localhost`` is not treated as
loopback, RFC 8252 §8.3). A presented URI matches a registered one only by exact string comparison of
everything except the port, which may differ for loopback (the CLI picks a free port at run time).
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "[::1]"})


def _split(uri: str) -> tuple[str, str, str | None, str, str, str] | None:
    """(scheme, host, port, path, query, fragment) as written, or None when unparseable."""
    try:
        parts = urlsplit(uri)
        port = parts.port  # validates the port
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return None
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    return (
        parts.scheme,
        host,
        str(port) if port is not None else None,
        parts.path,
        parts.query,
        parts.fragment,
    )


def is_loopback_redirect(uri: str) -> bool:
    split = _split(uri)
    return split is not None and split[0] == "http" and split[1] in LOOPBACK_HOSTS and not split[5]


def redirect_matches(registered: str, presented: str) -> bool:
    reg, got = _split(registered), _split(presented)
    if reg is None or got is None:
        return False
    if reg[1] in LOOPBACK_HOSTS and reg[0] == "http":
        # everything but the port, compared exactly (no case folding, no normalisation)
        return (reg[0], reg[1], reg[3], reg[4], reg[5]) == (got[0], got[1], got[3], got[4], got[5])
    return registered == presented


def find_registered(registered: list[str], presented: str) -> str | None:
    for uri in registered:
        if redirect_matches(uri, presented):
            return uri
    return None
