"""ISO-8601 durations for permission-set SessionDuration (the sso-admin ``Duration`` shape)."""

from __future__ import annotations

import re

# the pattern of the sso-admin model's Duration shape
_ISO_DURATION = re.compile(
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
MIN_SESSION_SECONDS = 3600
MAX_SESSION_SECONDS = 12 * 3600


def parse_duration(value: str) -> int:
    """Seconds in an ISO-8601 duration; years and months are refused (their length is not fixed)."""
    match = _ISO_DURATION.match(value.strip().upper())
    if not match:
        raise ValueError(f"{value!r} is not an ISO-8601 duration such as PT1H, PT4H30M or PT12H")
    sign, years, months, days, unit, hours, minutes, seconds = match.groups()
    if sign or years or months:
        raise ValueError(f"{value!r}: use hours and minutes, e.g. PT8H")
    total = 0.0
    if days:
        total += int(days) * (7 if unit == "W" else 1) * 86400
    total += int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    return int(total)


def parse_session_duration(value: str) -> int:
    """SessionDuration of a permission set: PT1H to PT12H, as IAM Identity Center allows."""
    seconds = parse_duration(value)
    if not MIN_SESSION_SECONDS <= seconds <= MAX_SESSION_SECONDS:
        raise ValueError(f"SessionDuration {value!r} must be between PT1H and PT12H")
    return seconds


def format_duration(seconds: int) -> str:
    """Canonical form: PT<h>H<m>M<s>S with zero parts left out (3600 -> PT1H)."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if secs or text == "PT":
        text += f"{secs}S"
    return text
