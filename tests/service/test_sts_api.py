"""Keyhall's STS through a real HTTP server (granian, in a thread) and a real boto3 client, on both databases.

The server shares the test's FrozenClock, so expiry is tested by moving that clock, not by sleeping.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from granian.constants import Interfaces
from granian.server.embed import Server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keyhall.api.sts import StsDeps, handle_sts
from keyhall.audit.events import Actor
from keyhall.clock import FrozenClock
from keyhall.container import Container
from keyhall.credentials.local import LocalCredentialIssuer, RoleCredentials, reserved_role_name, role_id
from keyhall.crypto import generate_master_key
from keyhall.directory.models import UserSpec
from keyhall.signin.sessions import PortalSession, SessionService, credential_session_alive

ACCOUNT_ID = "111122223333"
INSTANCE_ID = "ssoins-0123456789abcdef"
PERMISSION_SET_ID = "ps-0123456789abcdef"
ROLE_NAME = reserved_role_name("ReadOnly", INSTANCE_ID, ACCOUNT_ID, PERMISSION_SET_ID)


class ThreadedServer:
    """granian's embedded ASGI server on its own event loop in a daemon thread."""

    def __init__(self, app: Starlette) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = Server(
            app,
            address="127.0.0.1",
            port=self.port,
            interface=Interfaces.ASGINL,
            websockets=False,
            log_enabled=False,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="granian-test-server", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._started.set()
            await self._server.serve()

        asyncio.run(main())

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        self._started.wait(10)
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(self.url + "/ping", timeout=1)
                return self
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def __exit__(self, *_exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._server.stop)
        self._thread.join(10)


@dataclass
class Stack:
    container: Container
    clock: FrozenClock
    issuer: LocalCredentialIssuer
    sessions: SessionService
    url: str
    user_id: str
    session: PortalSession

    def issue(self, *, duration: float = 3600, session_id: str | None = None) -> RoleCredentials:
        credentials, _ = self.issuer.issue(
            account_id=ACCOUNT_ID,
            role_name=ROLE_NAME,
            permission_set_id=PERMISSION_SET_ID,
            user_id=self.user_id,
            user_name="alice@example.com",
            session_id=session_id or self.session.id,
            now=self.clock.timestamp(),
            duration_seconds=duration,
        )
        return credentials

    def sts(self, credentials: RoleCredentials, *, secret: str | None = None) -> Any:
        return boto3.client(
            "sts",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=secret or credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            config=Config(retries={"total_max_attempts": 1}),
        )


@pytest.fixture
def stack(
    container: Container, actor: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))

    clock = container.clock
    assert isinstance(clock, FrozenClock)
    # botocore signs with the wall clock; bring the frozen clock to it, then keep it still.
    clock.advance(time.time() - clock.timestamp())

    sessions = SessionService(clock, container.audit)
    with container.db.write() as conn:
        user = container.directory.create_user(conn, actor, UserSpec("alice@example.com"))
        session, _ = sessions.create(conn, user_id=user.id, kind="cli", lifetime_seconds=3600)

    issuer = LocalCredentialIssuer(generate_master_key())
    deps = StsDeps(issuer=issuer, db=container.db, clock=clock, session_alive=credential_session_alive)

    async def sts(request: Request) -> Response:
        return await handle_sts(request, deps)

    async def ping(_request: Request) -> Response:
        return Response("ok")

    app = Starlette(routes=[Route("/", sts, methods=["GET", "POST"]), Route("/ping", ping)])
    with ThreadedServer(app) as server:
        yield Stack(container, clock, issuer, sessions, server.url, user.id, session)


def _error_code(caught: pytest.ExceptionInfo[ClientError]) -> str:
    return str(caught.value.response["Error"]["Code"])


def test_get_caller_identity_answers_the_assumed_role(stack: Stack) -> None:
    credentials = stack.issue()
    identity = stack.sts(credentials).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE_NAME}/alice@example.com"
    assert identity["Account"] == ACCOUNT_ID
    assert identity["UserId"] == f"{role_id(ACCOUNT_ID, ROLE_NAME)}:alice@example.com"
    assert identity["UserId"].startswith("AROA")
    assert identity["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert identity["ResponseMetadata"]["RequestId"]
    assert identity["ResponseMetadata"]["HTTPHeaders"]["content-type"].startswith("text/xml")


def test_revoked_session_refuses_its_credentials_at_once(stack: Stack, actor: Actor) -> None:
    credentials = stack.issue()
    client = stack.sts(credentials)
    client.get_caller_identity()
    with stack.container.db.write() as conn:
        assert stack.sessions.revoke(conn, actor, stack.session.id, reason="Logout")
    with pytest.raises(ClientError) as caught:
        client.get_caller_identity()
    assert _error_code(caught) == "InvalidClientTokenId"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert (
        caught.value.response["Error"]["Message"] == "The security token included in the request is invalid."
    )


def test_disabled_user_credentials_are_refused(stack: Stack, actor: Actor) -> None:
    credentials = stack.issue()
    client = stack.sts(credentials)
    client.get_caller_identity()
    with stack.container.db.write() as conn:
        stack.container.directory.set_status(conn, actor, stack.user_id, "DISABLED")
    with pytest.raises(ClientError) as caught:
        client.get_caller_identity()
    assert _error_code(caught) == "InvalidClientTokenId"


def test_credentials_of_an_unknown_session_are_refused(stack: Stack) -> None:
    credentials = stack.issue(session_id="00000000-0000-4000-8000-000000000000")
    with pytest.raises(ClientError) as caught:
        stack.sts(credentials).get_caller_identity()
    assert _error_code(caught) == "InvalidClientTokenId"


def test_expired_credentials_are_refused(stack: Stack) -> None:
    # Short enough that the last valid second is still within the 5 minutes of allowed clock skew
    # (botocore signs with the wall clock, which does not move with the frozen one).
    credentials = stack.issue(duration=240)
    client = stack.sts(credentials)
    stack.clock.advance(239)
    client.get_caller_identity()
    stack.clock.advance(1)
    with pytest.raises(ClientError) as caught:
        client.get_caller_identity()
    assert _error_code(caught) == "ExpiredToken"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_wrong_secret_is_signature_does_not_match(stack: Stack) -> None:
    credentials = stack.issue()
    forged_secret = ("x" + credentials.secret_access_key)[:40]
    with pytest.raises(ClientError) as caught:
        stack.sts(credentials, secret=forged_secret).get_caller_identity()
    assert _error_code(caught) == "SignatureDoesNotMatch"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_tampered_signature_is_refused(stack: Stack) -> None:
    credentials = stack.issue()
    client = stack.sts(credentials)

    def tamper(request: Any, **_kwargs: Any) -> None:
        authorization = request.headers["Authorization"]  # bytes once prepared
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        flipped = "0" if authorization[-1] != "0" else "1"
        request.headers["Authorization"] = authorization[:-1] + flipped

    client.meta.events.register_last("before-send.sts.GetCallerIdentity", tamper)
    with pytest.raises(ClientError) as caught:
        client.get_caller_identity()
    assert _error_code(caught) == "SignatureDoesNotMatch"


def test_token_of_another_access_key_is_refused(stack: Stack) -> None:
    first, second = stack.issue(), stack.issue()
    swapped = RoleCredentials(
        access_key_id=second.access_key_id,
        secret_access_key=second.secret_access_key,
        session_token=first.session_token,
        expiration=second.expiration,
    )
    with pytest.raises(ClientError) as caught:
        stack.sts(swapped).get_caller_identity()
    assert _error_code(caught) == "InvalidClientTokenId"


def test_presigned_get_caller_identity_url(stack: Stack) -> None:
    credentials = stack.issue()
    url = stack.sts(credentials).generate_presigned_url(
        "get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET"
    )
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    assert f"<Account>{ACCOUNT_ID}</Account>" in response.text
    assert "X-Amz-Security-Token=" in url


def test_unsigned_request_is_missing_authentication_token(stack: Stack) -> None:
    response = httpx.post(
        stack.url + "/",
        content=b"Action=GetCallerIdentity&Version=2011-06-15",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 403
    assert "<Code>MissingAuthenticationToken</Code>" in response.text
    assert "<Type>Sender</Type>" in response.text


def test_unknown_action_is_invalid_action(stack: Stack) -> None:
    client = stack.sts(stack.issue())
    with pytest.raises(ClientError) as caught:
        client.get_session_token()
    assert _error_code(caught) == "InvalidAction"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_missing_action_is_reported(stack: Stack) -> None:
    response = httpx.post(
        stack.url + "/",
        content=b"Version=2011-06-15",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "<Code>MissingAction</Code>" in response.text


def test_signature_from_the_wrong_service_is_refused(stack: Stack) -> None:
    """The same credentials signing for another service (the scope names it) are refused."""
    credentials = stack.issue()
    request = AWSRequest(
        method="POST",
        url=stack.url + "/",
        data=b"Action=GetCallerIdentity&Version=2011-06-15",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    signer_credentials = Credentials(
        credentials.access_key_id, credentials.secret_access_key, credentials.session_token
    )
    SigV4Auth(signer_credentials, "iam", "us-east-1").add_auth(request)
    prepared = request.prepare()
    response = httpx.post(prepared.url, content=prepared.body, headers=dict(prepared.headers.items()))
    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    assert "correct service: &apos;sts&apos;" in response.text or "correct service: 'sts'" in response.text
