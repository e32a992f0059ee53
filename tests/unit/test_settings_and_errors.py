from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError as PydanticValidationError

from keyhall.errors import AuthorizationPending, NotFoundError, Problem, ValidationError
from keyhall.protocols.errors import render_aws_json, render_aws_query, render_rest_json
from keyhall.settings import Settings


def test_placeholder_master_key_refused() -> None:
    with pytest.raises(PydanticValidationError, match="placeholder"):
        Settings(master_key="changeme")


def test_default_database_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve()}/keyhall.db"


def test_invalid_port_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYHALL_PORT", "not-a-port")
    with pytest.raises(PydanticValidationError):
        Settings()


def test_aws_json_error_shape() -> None:
    response = render_aws_json(NotFoundError("USER", "u-1"), "rid")
    body = orjson.loads(response.body)
    assert response.status_code == 404
    assert response.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert body["__type"] == "ResourceNotFoundException"
    assert body["ResourceType"] == "USER"


def test_oauth_error_over_rest_json_carries_the_header() -> None:
    response = render_rest_json(AuthorizationPending(), "rid")
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"].startswith("AuthorizationPendingException")
    assert orjson.loads(response.body) == {"error": "authorization_pending", "error_description": None}


def test_query_error_shape() -> None:
    error = ValidationError.from_problems([Problem("RoleSessionName", "too <short>")])
    response = render_aws_query(error, "rid")
    text = bytes(response.body).decode()
    assert response.status_code == 400
    assert "<Type>Sender</Type><Code>Validation</Code>" in text
    assert "too &lt;short&gt;" in text
