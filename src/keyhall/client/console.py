"""`keyhall console`: the AWS Management Console sign-in URL, where there is a console to sign in to.

A local account is emulated by Keyhall: it exists only in Keyhall's STS and has no console. For a real
AWS account the URL would come from the federation endpoint (``signin.aws.amazon.com/federation``) with
credentials Keyhall obtains from AWS; that federation is a later issue, so this raises a clear error.
"""

from __future__ import annotations

from keyhall.client.config import ProfileConfig
from keyhall.client.errors import ConsoleNotAvailableError


def is_local_account(profile: ProfileConfig) -> bool:
    """`keyhall configure` routes STS to Keyhall exactly for the accounts Keyhall emulates."""
    return "sts" in profile.endpoints


def console_sign_in_url(*, profile: ProfileConfig) -> str:
    """The console URL for *profile*'s account and role; not available yet for any account (module doc)."""
    if is_local_account(profile):
        raise ConsoleNotAvailableError(
            f"Account {profile.account_id} (profile {profile.name}) is a local account: it is emulated by "
            "Keyhall and has no AWS Management Console. Use it with the AWS CLI or an SDK instead, e.g. "
            f"`aws sts get-caller-identity --profile {profile.name}`."
        )
    raise ConsoleNotAvailableError(
        f"Console sign-in for account {profile.account_id} needs Keyhall's AWS federation, which this "
        "version does not have yet."
    )
