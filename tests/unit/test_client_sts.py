"""The client's SigV4 signature for STS GetCallerIdentity is exactly botocore's."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from keyhall.client.credential_cache import RoleCredentials
from keyhall.client.sts import FORM_CONTENT_TYPE, GET_CALLER_IDENTITY_BODY, sign_v4

NOW = datetime(2026, 11, 25, 8, 30, 21, tzinfo=UTC)
CREDS = RoleCredentials(
    access_key_id="ASIAEXAMPLEKEY12345",
    secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    session_token="FwoGZXIvYXdzEXAMPLE+token/==",
    expiration=0,
)


def _botocore_authorization(host: str, region: str) -> str:
    request = AWSRequest(
        method="POST",
        url=f"http://{host}/",
        data=GET_CALLER_IDENTITY_BODY,
        headers={"Content-Type": FORM_CONTENT_TYPE},
    )
    credentials = Credentials(CREDS.access_key_id, CREDS.secret_access_key, CREDS.session_token)
    # botocore reads the signing time through botocore.utils.get_current_datetime (botocore >= 1.3x).
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        SigV4Auth(credentials, "sts", region).add_auth(request)
    assert request.headers["X-Amz-Date"] == "20261125T083021Z", "botocore signed at the pinned time"
    return str(request.headers["Authorization"])


def test_signature_matches_botocore() -> None:
    for host, region in (("127.0.0.1:8080", "us-east-1"), ("keyhall.example", "local-1")):
        ours = sign_v4(
            method="POST",
            host=host,
            path="/",
            headers={"Content-Type": FORM_CONTENT_TYPE},
            body=GET_CALLER_IDENTITY_BODY,
            region=region,
            service="sts",
            credentials=CREDS,
            now=NOW,
        )
        assert ours["Authorization"] == _botocore_authorization(host, region)
        assert ours["X-Amz-Date"] == "20261125T083021Z"
        assert ours["X-Amz-Security-Token"] == CREDS.session_token
