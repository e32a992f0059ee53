from __future__ import annotations

import pytest

from keyhall.access.durations import format_duration, parse_duration, parse_session_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT1H", 3600),
        ("PT12H", 43200),
        ("PT4H30M", 16200),
        ("pt90m", 5400),
        ("PT3600S", 3600),
        ("P0DT2H", 7200),
    ],
)
def test_parse(text: str, seconds: int) -> None:
    assert parse_session_duration(text) == seconds


@pytest.mark.parametrize("text", ["PT59M", "PT12H1S", "P1D", "PT13H"])
def test_session_range(text: str) -> None:
    with pytest.raises(ValueError, match="between PT1H and PT12H"):
        parse_session_duration(text)


@pytest.mark.parametrize("text", ["1h", "PT", "P", "-PT1H", "P1M", "P1Y", "PT1.5H", ""])
def test_refused(text: str) -> None:
    with pytest.raises(ValueError, match="PT"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(3600, "PT1H"), (5400, "PT1H30M"), (43200, "PT12H"), (3661, "PT1H1M1S")]
)
def test_format(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
