"""`keyhall serve --workers 2` under concurrent GetRoleCredentials: every answer is right and audited once.

The hot path group-commits audit records per event-loop turn and, on SQLite, queues the two processes'
writers on a lock file; this drives both from real connections and reads the audit log back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from e2e.aws_env import REGION
from e2e.clients import demo_person
from e2e.harness import RunningServer, serve_keyhall

REQUESTS = 240
ACCOUNT = "111111111111"  # the demo's Sandbox, where Developers hold "Developer"


@pytest.fixture
def two_workers(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    yield from serve_keyhall(tmp_path, database_url, extra_env={"KEYHALL_WORKERS": "2"})


def _access_token(server: RunningServer) -> str:
    oidc = boto3.client(
        "sso-oidc", endpoint_url=server.url, region_name=REGION, config=Config(signature_version=UNSIGNED)
    )
    client = oidc.register_client(clientName="concurrency-test", clientType="public")
    start = oidc.start_device_authorization(
        clientId=client["clientId"], clientSecret=client["clientSecret"], startUrl=f"{server.url}/start"
    )
    person = demo_person(server)
    try:
        person.approve_device(start["verificationUriComplete"])
    finally:
        person.close()
    token = oidc.create_token(
        clientId=client["clientId"],
        clientSecret=client["clientSecret"],
        grantType="urn:ietf:params:oauth:grant-type:device_code",
        deviceCode=start["deviceCode"],
    )
    return str(token["accessToken"])


def test_two_workers_audit_every_credential_they_issue(two_workers: RunningServer) -> None:
    token = _access_token(two_workers)
    url = f"{two_workers.url}/federation/credentials"
    params = {"account_id": ACCOUNT, "role_name": "Developer"}

    def fetch(_: int) -> tuple[int, str]:
        with httpx.Client(timeout=30) as http:
            response = http.get(url, params=params, headers={"x-amz-sso_bearer_token": token})
        return response.status_code, response.json()["roleCredentials"]["accessKeyId"]

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(fetch, range(REQUESTS)))
    assert {status for status, _ in answers} == {200}
    issued = {key for _, key in answers}
    assert len(issued) == REQUESTS
    listed = two_workers.keyhall(
        "audit", "list", "--event", "GetRoleCredentials", "--limit", "1000", "--json"
    )
    audited = [record["response_elements"]["accessKeyId"] for record in json.loads(listed.stdout)]
    assert sorted(audited) == sorted(issued)  # each exactly once


def test_the_credentials_path_answers_in_the_aws_shape(two_workers: RunningServer) -> None:
    url = f"{two_workers.url}/federation/credentials"
    refused = httpx.get(url, params={"account_id": ACCOUNT, "role_name": "Developer"})
    assert refused.status_code == 401
    assert refused.headers["x-amzn-errortype"].startswith("UnauthorizedException")
    assert len(refused.headers["x-amzn-requestid"]) == 32
    invalid = httpx.get(url, params={"account_id": "12", "role_name": "Developer"})
    assert invalid.status_code == 400 and "12-digit" in invalid.json()["message"]
    wrong_method = httpx.post(url)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET"
