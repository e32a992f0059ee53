"""One error hierarchy for the whole server.

Each error carries its wire identity; one renderer per protocol (``keyhall.protocols``) turns it into bytes.

    KeyhallError                     500 InternalServerException
    ├── ValidationError              400 ValidationException          (bad input; carries problems)
    ├── NotFoundError                404 ResourceNotFoundException
    ├── ConflictError                409 ConflictException
    ├── AccessDeniedError            403 AccessDeniedException
    ├── UnauthorizedError            401 UnauthorizedException        (missing/invalid credentials)
    ├── ThrottlingError              429 ThrottlingException
    ├── ServiceUnavailableError      503 ServiceUnavailableException  (database down: fail closed)
    └── OAuthError                   400 + RFC 6749 ``error`` code    (sso-oidc; subclasses per code)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, with where it is (a field name, a JSON path, or ``file:line``)."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class KeyhallError(Exception):
    """Base of every error Keyhall reports to a caller."""

    status: int = 500
    aws_code: str = "InternalServerException"
    #: awsQuery (STS) <Code>; defaults to aws_code without the Exception suffix.
    query_code: str | None = None
    #: awsQuery <Type>: Sender (client fault) or Receiver (server fault).
    query_type: str = "Receiver"

    def __init__(self, message: str = "Internal server error") -> None:
        super().__init__(message)
        self.message = message

    @property
    def wire_query_code(self) -> str:
        if self.query_code:
            return self.query_code
        return self.aws_code.removesuffix("Exception")


class ValidationError(KeyhallError):
    status = 400
    aws_code = "ValidationException"
    query_type = "Sender"

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems: list[Problem] = list(problems or [])
        if self.problems and message == "":
            message = "; ".join(str(p) for p in self.problems)
        super().__init__(message)

    @classmethod
    def from_problems(cls, problems: list[Problem]) -> ValidationError:
        return cls("; ".join(str(p) for p in problems), problems)


class NotFoundError(KeyhallError):
    status = 404
    aws_code = "ResourceNotFoundException"
    query_type = "Sender"

    def __init__(self, resource_type: str, resource_id: str, message: str | None = None) -> None:
        self.resource_type = resource_type
        self.resource_id = resource_id
        super().__init__(
            message or f"{resource_type.replace('_', ' ').capitalize()} {resource_id!r} not found"
        )


class ConflictError(KeyhallError):
    status = 409
    aws_code = "ConflictException"
    query_type = "Sender"


class AccessDeniedError(KeyhallError):
    status = 403
    aws_code = "AccessDeniedException"
    query_type = "Sender"


class UnauthorizedError(KeyhallError):
    status = 401
    aws_code = "UnauthorizedException"
    query_type = "Sender"


class ThrottlingError(KeyhallError):
    status = 429
    aws_code = "ThrottlingException"
    query_type = "Sender"


class ServiceUnavailableError(KeyhallError):
    status = 503
    aws_code = "ServiceUnavailableException"


@dataclass
class _OAuthFields:
    error: str
    description: str | None = field(default=None)


class OAuthError(KeyhallError):
    """An RFC 6749 / RFC 8628 error. sso-oidc sends it with ``x-amzn-ErrorType`` set to ``aws_code``."""

    status = 400
    aws_code = "InvalidRequestException"
    error = "invalid_request"
    query_type = "Sender"

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.error)
        self.description = description


class InvalidRequest(OAuthError):
    aws_code, error = "InvalidRequestException", "invalid_request"


class InvalidClient(OAuthError):
    status = 401
    aws_code, error = "InvalidClientException", "invalid_client"


class InvalidGrant(OAuthError):
    aws_code, error = "InvalidGrantException", "invalid_grant"


class UnauthorizedClient(OAuthError):
    aws_code, error = "UnauthorizedClientException", "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    aws_code, error = "UnsupportedGrantTypeException", "unsupported_grant_type"


class InvalidScope(OAuthError):
    aws_code, error = "InvalidScopeException", "invalid_scope"


class AuthorizationPending(OAuthError):
    """RFC 8628 §3.5."""

    aws_code, error = "AuthorizationPendingException", "authorization_pending"


class SlowDown(OAuthError):
    """RFC 8628 §3.5: the client must add 5 seconds to its polling interval."""

    aws_code, error = "SlowDownException", "slow_down"


class OAuthAccessDenied(OAuthError):
    aws_code, error = "AccessDeniedException", "access_denied"


class ExpiredToken(OAuthError):
    aws_code, error = "ExpiredTokenException", "expired_token"


class InvalidClientMetadata(OAuthError):
    aws_code, error = "InvalidClientMetadataException", "invalid_client_metadata"


class InvalidRedirectUri(OAuthError):
    aws_code, error = "InvalidRedirectUriException", "invalid_redirect_uri"
