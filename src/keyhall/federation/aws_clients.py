"""AWS clients for `keyhall aws import|plan|apply`, built from the operator's own credentials.

Keyhall's server holds no AWS keys: these commands run with boto3's default credential chain (environment,
``--profile``, SSO, instance role …). Member accounts are reached by assuming the provisioning role
(``OrganizationAccountAccessRole`` by default) from there. Tests pass their own :class:`ClientFactory` or an
``endpoint_url``, the way httpx tests swap the transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import boto3

#: where a partition's global services (IAM, Organizations) and STS are called from when no region is set
DEFAULT_REGIONS = {"aws": "us-east-1", "aws-us-gov": "us-gov-west-1", "aws-cn": "cn-north-1"}
#: the RoleSessionName in member accounts' CloudTrail, so provisioning is easy to find there
ROLE_SESSION_NAME = "keyhall-provisioning"


@dataclass(frozen=True)
class TemporaryCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str


class ClientFactory(Protocol):
    """Makes boto3 clients: with the operator's credentials, or with temporary ones for a member account."""

    def client(self, service: str, credentials: TemporaryCredentials | None = None) -> Any: ...


class Boto3ClientFactory:
    """Clients from one boto3 session (``profile`` or the default chain); ``endpoint_url`` for tests."""

    def __init__(
        self,
        *,
        profile: str | None = None,
        region: str | None = None,
        partition: str = "aws",
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
    ) -> None:
        import boto3

        self._session = session or boto3.Session(profile_name=profile)
        self.region = region or self._session.region_name or DEFAULT_REGIONS.get(partition, "us-east-1")
        self._endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}

    def client(self, service: str, credentials: TemporaryCredentials | None = None) -> Any:
        from botocore.config import Config

        if credentials is None and service in self._clients:
            return self._clients[service]
        keys: dict[str, str] = {}
        if credentials is not None:
            # one session for all, so service models load once; the profile's settings still apply
            keys = {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key,
                "aws_session_token": credentials.session_token,
            }
        make_client: Any = self._session.client  # typed per service name; Keyhall's clients are Any
        client = make_client(
            service,
            region_name=self.region,
            endpoint_url=self._endpoint_url,
            # standard retries with backoff: Organizations throttles hard on large organisations
            config=Config(retries={"max_attempts": 10, "mode": "standard"}),
            **keys,
        )
        if credentials is None:
            self._clients[service] = client  # botocore clients are thread-safe and cheap to keep
        return client


class AccountAccess:
    """IAM clients per account: the caller's own account directly, any other through the provisioning role."""

    def __init__(self, clients: ClientFactory, *, partition: str, provisioning_role_name: str) -> None:
        self._clients = clients
        self._partition = partition
        self._role_name = provisioning_role_name
        self._caller: dict[str, str] | None = None
        self._last: tuple[str, Any] | None = None

    @property
    def caller(self) -> dict[str, str]:
        """``sts:GetCallerIdentity`` of the operator (Account, Arn, UserId), asked once."""
        if self._caller is None:
            answer = self._clients.client("sts").get_caller_identity()
            self._caller = {k: str(answer[k]) for k in ("Account", "Arn", "UserId")}
        return self._caller

    def provisioning_role_arn(self, account_id: str) -> str:
        return f"arn:{self._partition}:iam::{account_id}:role/{self._role_name}"

    def iam(self, account_id: str) -> Any:
        """An IAM client acting in ``account_id``; raises botocore's errors if the role cannot be assumed.
        The last one is kept: apply reads an account and then changes it with the same credentials."""
        if self._last is not None and self._last[0] == account_id:
            return self._last[1]
        client = self._iam(account_id)
        self._last = (account_id, client)
        return client

    def _iam(self, account_id: str) -> Any:
        if account_id == self.caller["Account"]:
            return self._clients.client("iam")
        answer = self._clients.client("sts").assume_role(
            RoleArn=self.provisioning_role_arn(account_id),
            RoleSessionName=ROLE_SESSION_NAME,
            DurationSeconds=3600,
        )
        creds = answer["Credentials"]
        return self._clients.client(
            "iam",
            TemporaryCredentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]),
        )


def error_text(exc: Exception) -> tuple[str, str]:
    """``(code, message)`` of a botocore error, for provisioning state and audit records."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code = str(error.get("Code") or type(exc).__name__)
        return code, f"{code}: {error.get('Message') or exc}"
    return type(exc).__name__, str(exc) or type(exc).__name__
