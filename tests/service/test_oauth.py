"""The authorization server on both databases: device grant, code + PKCE, refresh rotation, audit."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from keyhall.audit.events import Actor
from keyhall.clock import FrozenClock
from keyhall.container import Container
from keyhall.db.tables import audit_events, device_authorizations
from keyhall.directory.models import UserSpec
from keyhall.errors import (
    AuthorizationPending,
    ExpiredToken,
    InvalidClient,
    InvalidGrant,
    InvalidRedirectUri,
    OAuthAccessDenied,
    SlowDown,
    UnauthorizedClient,
)
from keyhall.instance import create_instance, update_instance_settings
from keyhall.oauth import codes, device
from keyhall.oauth.clients import CODE_GRANT, DEVICE_GRANT, REFRESH_GRANT
from keyhall.oauth.pkce import s256
from keyhall.oauth.service import CreateTokenRequest
from keyhall.oauth.tokens import IssuedTokens, resolve_access_token

CLI = Actor(type="Anonymous", source_ip="192.0.2.10", user_agent="aws-cli/2.9.19")
VERIFIER = "v" * 64


@pytest.fixture
def alice(container: Container, actor: Actor) -> tuple[str, str]:
    """An instance and a signed-in user: (user id, browser session id)."""
    with container.db.write() as conn:
        create_instance(conn, actor, container.audit, container.clock, "Test")
        user = container.directory.create_user(conn, actor, UserSpec("alice"))
        session, _ = container.sessions.create(
            conn, user_id=user.id, kind="browser", lifetime_seconds=8 * 3600
        )
    return user.id, session.id


def register(container: Container, **kwargs: object) -> tuple[str, str]:
    registration = container.oidc.register_client(
        CLI,
        name=str(kwargs.get("name", "botocore-client-keyhall")),
        client_type=str(kwargs.get("client_type", "public")),
        scopes=["sso:account:access"],
        grant_types=kwargs.get("grant_types"),  # type: ignore[arg-type]
        redirect_uris=kwargs.get("redirect_uris"),  # type: ignore[arg-type]
        issuer_url=None,
    )
    return registration.client.id, registration.client_secret


def device_token(container: Container, client: tuple[str, str], device_code: str) -> CreateTokenRequest:
    return CreateTokenRequest(client[0], client[1], DEVICE_GRANT, device_code=device_code)


def signed_in_by_device(container: Container, alice: tuple[str, str]) -> tuple[tuple[str, str], IssuedTokens]:
    """A client registered, its device request approved by alice, and the tokens it redeemed."""
    client = register(container)
    started = container.oidc.start_device_authorization(
        CLI, client_id=client[0], client_secret=client[1], start_url=None
    )
    approve(container, started.user_code, alice)
    return client, container.oidc.create_token(CLI, device_token(container, client, started.device_code))


def approve(container: Container, user_code: str, alice: tuple[str, str], *, allow: bool = True) -> None:
    with container.db.write() as conn:
        pending = device.find_pending(conn, container.clock, user_code)
        assert pending is not None
        assert pending.initiator_ip == "192.0.2.10"
        assert device.decide(
            conn,
            container.clock,
            device_id=pending.id,
            approve=allow,
            user_id=alice[0],
            browser_session_id=alice[1],
            approver_ip="198.51.100.7",
        )


def test_device_grant_end_to_end(container: Container, alice: tuple[str, str], clock: FrozenClock) -> None:
    client = register(container)
    started = container.oidc.start_device_authorization(
        CLI, client_id=client[0], client_secret=client[1], start_url="x"
    )
    assert started.user_code[4] == "-" and started.interval == 5 and started.expires_in == 600
    with pytest.raises(AuthorizationPending):
        container.oidc.create_token(CLI, device_token(container, client, started.device_code))
    clock.advance(1)
    with pytest.raises(SlowDown):  # polled faster than the interval
        container.oidc.create_token(CLI, device_token(container, client, started.device_code))
    approve(container, started.user_code, alice)
    clock.advance(11)
    tokens = container.oidc.create_token(CLI, device_token(container, client, started.device_code))
    assert tokens.expires_in == 3600 and tokens.refresh_token
    with container.db.read() as conn:
        context = resolve_access_token(conn, container.clock, tokens.access_token)
    assert context is not None and context.user_id == alice[0]
    with pytest.raises(InvalidGrant):  # a device code gives tokens once
        container.oidc.create_token(CLI, device_token(container, client, started.device_code))


def test_device_code_denied_and_expired(
    container: Container, alice: tuple[str, str], clock: FrozenClock
) -> None:
    client = register(container)
    denied = container.oidc.start_device_authorization(
        CLI, client_id=client[0], client_secret=client[1], start_url=None
    )
    approve(container, denied.user_code, alice, allow=False)
    with pytest.raises(OAuthAccessDenied):
        container.oidc.create_token(CLI, device_token(container, client, denied.device_code))
    late = container.oidc.start_device_authorization(
        CLI, client_id=client[0], client_secret=client[1], start_url=None
    )
    clock.advance(601)
    with container.db.read() as conn:
        assert device.find_pending(conn, container.clock, late.user_code) is None
    with pytest.raises(ExpiredToken):
        container.oidc.create_token(CLI, device_token(container, client, late.device_code))


def test_device_grant_can_be_turned_off(container: Container, alice: tuple[str, str], actor: Actor) -> None:
    client = register(container)
    with container.db.write() as conn:
        update_instance_settings(conn, actor, container.audit, device_grant_enabled=False)
    with pytest.raises(UnauthorizedClient):
        container.oidc.start_device_authorization(
            CLI, client_id=client[0], client_secret=client[1], start_url=None
        )


def test_wrong_client_secret(container: Container, alice: tuple[str, str]) -> None:
    client_id, _ = register(container)
    with pytest.raises(InvalidClient):
        container.oidc.start_device_authorization(
            CLI, client_id=client_id, client_secret="nope", start_url=None
        )


def test_a_device_code_redeemed_elsewhere_is_recorded_and_warned_of(
    container: Container, alice: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    def redeem(redeemer: Actor) -> dict[str, object]:
        client = register(container)
        started = container.oidc.start_device_authorization(
            CLI, client_id=client[0], client_secret=client[1], start_url=None
        )
        approve(container, started.user_code, alice)
        container.oidc.create_token(redeemer, device_token(container, client, started.device_code))
        with container.db.read() as conn:
            details = conn.execute(
                select(audit_events.c.additional_data)
                .where(audit_events.c.event_name == "CreateToken")
                .order_by(audit_events.c.seq.desc())
            ).first()
        assert details is not None
        return dict(details.additional_data)

    with caplog.at_level(logging.WARNING, logger="keyhall.oauth"):
        same = redeem(CLI)  # started and redeemed by the same machine: the normal case
        assert not caplog.records
        elsewhere = redeem(Actor(type="Anonymous", source_ip="203.0.113.66", user_agent="python-requests"))
    assert same["RedeemedFromInitiatorIp"] is True
    assert elsewhere["RedeemedFromInitiatorIp"] is False
    assert elsewhere["DeviceInitiatorIp"] == "192.0.2.10" and elsewhere["DeviceApproverIp"] == "198.51.100.7"
    (warning,) = caplog.records
    assert "another address" in warning.getMessage() and warning.__dict__["redeemer_ip"] == "203.0.113.66"


def test_a_refresh_marks_the_cli_session_as_seen(
    container: Container, alice: tuple[str, str], clock: FrozenClock
) -> None:
    client, first = signed_in_by_device(container, alice)
    with container.db.read() as conn:
        session = resolve_access_token(conn, container.clock, first.access_token)
        assert session is not None
        signed_in = container.sessions.get(conn, session.session_id)
    assert signed_in is not None and signed_in.last_seen_at == clock.timestamp()
    clock.advance(50 * 60)
    container.oidc.create_token(
        CLI, CreateTokenRequest(client[0], client[1], REFRESH_GRANT, refresh_token=first.refresh_token)
    )
    with container.db.read() as conn:
        seen = container.sessions.get(conn, session.session_id)
    assert seen is not None and seen.last_seen_at == signed_in.last_seen_at + 50 * 60


def test_refresh_rotates_and_reuse_revokes_the_family(container: Container, alice: tuple[str, str]) -> None:
    client, first = signed_in_by_device(container, alice)
    second = container.oidc.create_token(
        CLI, CreateTokenRequest(client[0], client[1], REFRESH_GRANT, refresh_token=first.refresh_token)
    )
    assert second.refresh_token != first.refresh_token and second.access_token != first.access_token
    with pytest.raises(InvalidGrant, match="already used"):
        container.oidc.create_token(
            CLI, CreateTokenRequest(client[0], client[1], REFRESH_GRANT, refresh_token=first.refresh_token)
        )
    with container.db.read() as conn:  # the whole family is gone: the newest tokens too
        assert resolve_access_token(conn, container.clock, second.access_token) is None
    with pytest.raises(InvalidGrant):
        container.oidc.create_token(
            CLI, CreateTokenRequest(client[0], client[1], REFRESH_GRANT, refresh_token=second.refresh_token)
        )
    with container.db.read() as conn:
        names = list(conn.execute(select(audit_events.c.event_name, audit_events.c.error_code)))
    assert ("RevokeSession", None) in names
    assert ("CreateToken", "InvalidGrantException") in names


def test_refresh_is_bounded_by_the_portal_session(
    container: Container, alice: tuple[str, str], clock: FrozenClock
) -> None:
    client, tokens = signed_in_by_device(container, alice)
    clock.advance(7.5 * 3600)
    refreshed = container.oidc.create_token(
        CLI, CreateTokenRequest(client[0], client[1], REFRESH_GRANT, refresh_token=tokens.refresh_token)
    )
    assert refreshed.expires_in == 1800  # never past the 8-hour session
    clock.advance(1801)
    with pytest.raises(InvalidGrant):
        container.oidc.create_token(
            CLI,
            CreateTokenRequest(client[0], client[1], REFRESH_GRANT, refresh_token=refreshed.refresh_token),
        )


def pkce_client(container: Container) -> tuple[str, str]:
    return register(
        container,
        grant_types=[CODE_GRANT, REFRESH_GRANT],
        redirect_uris=["http://127.0.0.1/oauth/callback"],
    )


def issue_code(container: Container, client_id: str, alice: tuple[str, str]) -> str:
    with container.db.write() as conn:
        return codes.create_code(
            conn,
            container.clock,
            client_id=client_id,
            redirect_uri="http://127.0.0.1:5000/oauth/callback",
            code_challenge=s256(VERIFIER),
            scopes=["sso:account:access"],
            user_id=alice[0],
            browser_session_id=alice[1],
        )


def code_request(
    client: tuple[str, str], code: str, verifier: str | None = VERIFIER, port: int = 5000
) -> CreateTokenRequest:
    return CreateTokenRequest(
        client[0],
        client[1],
        CODE_GRANT,
        code=code,
        redirect_uri=f"http://127.0.0.1:{port}/oauth/callback",
        code_verifier=verifier,
    )


def test_code_with_pkce(container: Container, alice: tuple[str, str]) -> None:
    client = pkce_client(container)
    code = issue_code(container, client[0], alice)
    tokens = container.oidc.create_token(CLI, code_request(client, code))
    with container.db.read() as conn:
        assert resolve_access_token(conn, container.clock, tokens.access_token) is not None
    # a second redemption is refused and revokes what the first one gave (ASVS 10.4.2)
    with pytest.raises(InvalidGrant, match="already used"):
        container.oidc.create_token(CLI, code_request(client, code))
    with container.db.read() as conn:
        assert resolve_access_token(conn, container.clock, tokens.access_token) is None


@pytest.mark.parametrize(
    ("verifier", "port"),
    [("w" * 64, 5000), (None, 5000), (VERIFIER, 5001)],
    ids=["wrong", "missing", "redirect"],
)
def test_code_refusals_burn_the_code(
    container: Container, alice: tuple[str, str], verifier: str | None, port: int
) -> None:
    client = pkce_client(container)
    code = issue_code(container, client[0], alice)
    with pytest.raises(InvalidGrant):
        container.oidc.create_token(CLI, code_request(client, code, verifier, port))
    with pytest.raises(InvalidGrant, match="already used"):  # no second guess at the verifier
        container.oidc.create_token(CLI, code_request(client, code))


def test_code_expires_after_a_minute(
    container: Container, alice: tuple[str, str], clock: FrozenClock
) -> None:
    client = pkce_client(container)
    code = issue_code(container, client[0], alice)
    clock.advance(61)
    with pytest.raises(ExpiredToken):
        container.oidc.create_token(CLI, code_request(client, code))


def test_code_is_bound_to_its_client(container: Container, alice: tuple[str, str]) -> None:
    client, other = pkce_client(container), pkce_client(container)
    code = issue_code(container, client[0], alice)
    with pytest.raises(InvalidGrant):
        container.oidc.create_token(CLI, code_request(other, code))


def test_registration_refuses_non_loopback_redirects(container: Container, alice: tuple[str, str]) -> None:
    with pytest.raises(InvalidRedirectUri):
        register(container, grant_types=[CODE_GRANT], redirect_uris=["https://evil.example/cb"])


def test_disabled_user_gets_no_tokens(container: Container, alice: tuple[str, str], actor: Actor) -> None:
    client, tokens = signed_in_by_device(container, alice)
    with container.db.write() as conn:
        container.directory.set_status(conn, actor, alice[0], "DISABLED")
        assert resolve_access_token(conn, container.clock, tokens.access_token) is None
    with pytest.raises(InvalidGrant):
        container.oidc.create_token(
            CLI, CreateTokenRequest(client[0], client[1], REFRESH_GRANT, refresh_token=tokens.refresh_token)
        )


def test_audit_records_hold_no_secrets(container: Container, alice: tuple[str, str]) -> None:
    client = register(container)
    started = container.oidc.start_device_authorization(
        CLI, client_id=client[0], client_secret=client[1], start_url=None
    )
    approve(container, started.user_code, alice)
    tokens = container.oidc.create_token(CLI, device_token(container, client, started.device_code))
    with container.db.read() as conn:
        rows = [str(tuple(r)) for r in conn.execute(select(audit_events))]
        assert conn.execute(select(device_authorizations.c.device_code_hash)).scalar() != started.device_code
    blob = "\n".join(rows)
    for secret in (client[1], started.device_code, tokens.access_token, tokens.refresh_token):
        assert secret not in blob
    assert "RegisterClient" in blob and "StartDeviceAuthorization" in blob and "CreateToken" in blob
