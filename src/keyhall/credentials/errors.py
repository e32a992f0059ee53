"""Errors of Keyhall's STS and of SigV4 authentication, each carrying its AWS wire codes.

    KeyhallError                      status  query <Code>                json __type
    ├── SigV4AuthError                403     (base; never raised itself)
    │   ├── MissingAuthenticationToken        MissingAuthenticationToken  MissingAuthenticationTokenException
    │   ├── IncompleteSignature               IncompleteSignature         IncompleteSignatureException
    │   ├── InvalidClientTokenId              InvalidClientTokenId        UnrecognizedClientException
    │   │   └── InvalidSessionToken           (a session token that does not open)
    │   └── SignatureDoesNotMatch             SignatureDoesNotMatch       InvalidSignatureException
    ├── ExpiredSecurityToken          400     ExpiredToken                ExpiredTokenException
    ├── MissingAction                 400     MissingAction               MissingAction
    └── InvalidAction                 400     InvalidAction               UnknownOperationException

``query_code`` is what the awsQuery renderer puts in ``<Code>`` (STS); ``aws_code`` is the ``__type`` the
awsJson renderer sends, which for the JSON 1.1 services is the name AWS itself uses there, so the same
errors serve identitystore and sso-admin when they authenticate callers with SigV4.

Classes are named after their AWS codes (hence no ``Error`` suffix), so a search for the code an SDK
reports lands here.
"""

from __future__ import annotations

from keyhall.errors import KeyhallError


class SigV4AuthError(KeyhallError):
    """A request whose SigV4 authentication failed; the caller is not told more than AWS would tell."""

    status = 403
    query_type = "Sender"


class MissingAuthenticationToken(SigV4AuthError):
    aws_code = "MissingAuthenticationTokenException"
    query_code = "MissingAuthenticationToken"

    def __init__(self, message: str = "Request is missing Authentication Token") -> None:
        super().__init__(message)


class IncompleteSignature(SigV4AuthError):
    aws_code = "IncompleteSignatureException"
    query_code = "IncompleteSignature"


class InvalidClientTokenId(SigV4AuthError):
    aws_code = "UnrecognizedClientException"
    query_code = "InvalidClientTokenId"

    def __init__(self, message: str = "The security token included in the request is invalid.") -> None:
        super().__init__(message)


class InvalidSessionToken(InvalidClientTokenId):
    """A session token that Keyhall did not mint for this access key id, or that was altered.

    The causes (tampered, truncated, minted under another master key, paired with another access key
    id) are deliberately not told apart: every one means "not ours".
    """


class SignatureDoesNotMatch(SigV4AuthError):
    aws_code = "InvalidSignatureException"
    query_code = "SignatureDoesNotMatch"

    def __init__(
        self,
        message: str = (
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. "
            "Consult the service documentation for details."
        ),
    ) -> None:
        super().__init__(message)


class ExpiredSecurityToken(KeyhallError):
    """Role credentials past their expiration (wire code ``ExpiredToken``).

    Named apart from ``keyhall.errors.ExpiredToken``, which is sso-oidc's OAuth error.
    """

    status = 400
    aws_code = "ExpiredTokenException"
    query_code = "ExpiredToken"
    query_type = "Sender"

    def __init__(self, message: str = "The security token included in the request is expired") -> None:
        super().__init__(message)


class MissingAction(KeyhallError):
    status = 400
    aws_code = "MissingAction"
    query_code = "MissingAction"
    query_type = "Sender"

    def __init__(self, message: str = "The request must contain the parameter Action") -> None:
        super().__init__(message)


class InvalidAction(KeyhallError):
    status = 400
    aws_code = "UnknownOperationException"
    query_code = "InvalidAction"
    query_type = "Sender"
