"""The warm path's json/sha1/timestamp helpers give exactly what json, hashlib and datetime give."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from keyhall.client import _lean

DOCUMENTS = [
    '{"ProviderType": "sso", "Credentials": {"AccessKeyId": "A", "Expiration": "2026-01-01T00:00:00Z"}}',
    '  \n{"a": [1, 2.5, -3e2, true, false, null], "b": "\\u00e9\\n\\"", "c": {}}\n  ',
    "[]",
    '"just a string"',
    "42",
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_loads_matches_json(document: str) -> None:
    assert _lean.loads(document) == json.loads(document)


@pytest.mark.parametrize(
    "document", ["", "   ", "{", '{"a": 1} trailing', "{'a': 1}", '{"a": "\x01"}', "nope"]
)
def test_loads_rejects_what_json_rejects(document: str) -> None:
    with pytest.raises(ValueError):
        json.loads(document)
    with pytest.raises(ValueError):
        _lean.loads(document)


@pytest.mark.parametrize("value", ["plain", 'quo"te\\back', "line\nbreak\ttab\x00", "é ✓ 🙂", "</script>"])
def test_string_matches_json_dumps(value: str) -> None:
    assert _lean.string(value) == json.dumps(value)


def test_sha1_matches_hashlib() -> None:
    for data in (b"", b"keyhall", "é".encode(), bytes(range(256))):
        assert _lean.sha1_hex(data) == hashlib.sha1(data).hexdigest()  # noqa: S324


def test_parse_utc_matches_datetime_over_many_dates() -> None:
    rng = random.Random(7)
    start = datetime(1970, 1, 1, tzinfo=UTC)
    for _ in range(2000):
        moment = start + timedelta(seconds=rng.randrange(0, 200 * 365 * 86400))
        for text in (moment.strftime("%Y-%m-%dT%H:%M:%SZ"), moment.strftime("%Y-%m-%dT%H:%M:%S.123Z")):
            assert _lean.parse_utc(text) == datetime.fromisoformat(text).timestamp(), text
        assert _lean.format_utc(moment.timestamp()) == moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    "text",
    [
        "2024-02-29T12:00:00Z",
        "2000-02-29T00:00:00+00:00",
        "2026-11-25T15:30:17.260Z",
        "2026-11-25T15:30:17",
        "2026-11-25T16:30:17+01:00",
        "2026-11-25 15:30:17Z",
    ],
)
def test_parse_utc_edge_cases(text: str) -> None:
    expected = datetime.fromisoformat(text)
    expected = expected.replace(tzinfo=UTC) if expected.tzinfo is None else expected
    assert _lean.parse_utc(text) == expected.timestamp()


@pytest.mark.parametrize(
    "text", ["2023-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "soon"]
)
def test_parse_utc_rejects_impossible_dates(text: str) -> None:
    with pytest.raises(ValueError):
        _lean.parse_utc(text)
