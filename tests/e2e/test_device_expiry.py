"""An unapproved device code expires, and the stock AWS CLI says so (RFC 8628 expired_token)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.clients import Workstation
from e2e.harness import RunningServer, serve_keyhall


@pytest.fixture
def short_lived_codes(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    yield from serve_keyhall(tmp_path, database_url, {"KEYHALL_DEVICE_CODE_SECONDS": "5"})


def test_aws_cli_reports_an_expired_device_code(short_lived_codes: RunningServer, tmp_path: Path) -> None:
    station = Workstation(short_lived_codes, tmp_path / "home")
    station.configure({"dev": ("111111111111", "Developer")})
    nobody_approves: list[str] = []
    result = station.sso_login(nobody_approves.append)
    assert nobody_approves  # the code was shown
    assert result.returncode != 0
    assert "expired" in (result.stdout + result.stderr).lower()
