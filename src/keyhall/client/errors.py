"""What the client library raises.

    ClientError                      something the user can act on; the CLI prints the message
    ├── ConfigError                  settings missing or contradictory (all problems at once)
    ├── NotLoggedInError             no usable SSO token: run `keyhall login`
    ├── LoginError                   a login flow failed (denied, expired, state mismatch, timeout)
    ├── ConsoleNotAvailableError     no console sign-in for this account
    └── ServiceError                 the server answered with an error this library has no class for

Errors the server sends with a known wire code are raised as the server's own classes from
``keyhall.errors`` (``SlowDown``, ``AuthorizationPending``, ``ExpiredToken``, ``UnauthorizedError`` …), so
one hierarchy names each AWS error; see ``keyhall.client._http.error_from_response``.
"""

from __future__ import annotations


class ClientError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(ClientError):
    """Every missing or contradictory setting, reported together."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = "Keyhall is not configured:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class NotLoggedInError(ClientError):
    def __init__(self, session_name: str, reason: str = "not signed in") -> None:
        self.session_name = session_name
        flag = "" if session_name == "keyhall" else f" --sso-session {session_name}"
        super().__init__(f"Keyhall session {session_name!r}: {reason}. Run `keyhall login{flag}`.")


class LoginError(ClientError):
    pass


class ConsoleNotAvailableError(ClientError):
    pass


class ServiceError(ClientError):
    """An error response with a code this library does not map (or no code at all)."""

    def __init__(self, message: str, *, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
