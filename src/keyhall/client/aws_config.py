"""`keyhall configure`: Keyhall's sso-session, endpoints and a profile per account and role in ~/.aws/config.

Everything Keyhall writes sits between two marker comments::

    # BEGIN keyhall [sso-session keyhall]
    [sso-session keyhall]      sso_start_url, sso_region, sso_registration_scopes, keyhall_url
    [services keyhall]         sso, sso_oidc, sts, identitystore, sso_admin → endpoint_url = <Keyhall URL>
    [profile sandbox.ReadOnly] sso_session, sso_account_id, sso_role_name, region, services = keyhall
    # END keyhall [sso-session keyhall]

A second run replaces the block in place (the same input gives byte-identical output, so nothing is
written); comments, blank lines and every other section of the file stay exactly as they were. A profile
of the same name outside the block is left alone and reported, never duplicated (botocore refuses a file
with a section twice). Key names: aws-wire.md §2.2, real-clients.md §1 B.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from keyhall.client import ini
from keyhall.client._files import write_text_atomic
from keyhall.client.config import KEYHALL_URL_KEY, SessionConfig
from keyhall.client.errors import ConfigError
from keyhall.client.portal import AccountInfo, RoleInfo

#: ``[services]`` keys (serviceId lower-cased, spaces to ``_``) that point at Keyhall.
SERVICES = ("sso", "sso_oidc", "sts", "identitystore", "sso_admin")
#: a real AWS account signs in through Keyhall but calls AWS itself, STS included
AWS_ACCOUNT_SERVICES = ("sso", "sso_oidc")
AWS_SERVICES_SUFFIX = "-aws"
PROCESS_SUFFIX = ".process"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def begin_marker(session_name: str) -> str:
    return f"# BEGIN keyhall [sso-session {session_name}]"


def end_marker(session_name: str) -> str:
    return f"# END keyhall [sso-session {session_name}]"


def sanitise(value: str, *, lower: bool = False) -> str:
    """Keep ``[A-Za-z0-9_-]`` and turn runs of anything else into one ``-``: safe in a header and a shell."""
    out: list[str] = []
    for char in value.lower() if lower else value:
        if char in _NAME_CHARS:
            out.append(char)
        elif out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")


@dataclass(frozen=True)
class ProfilePlan:
    name: str
    account_id: str
    account_name: str
    role_name: str
    account_kind: str = "local"


@dataclass(frozen=True)
class ConfigureResult:
    path: Path
    old_text: str
    new_text: str
    profiles: list[ProfilePlan]
    skipped: list[str] = field(default_factory=list)
    written: bool = False

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text


def plan_profiles(access: Sequence[tuple[AccountInfo, Sequence[RoleInfo]]]) -> list[ProfilePlan]:
    """``<account-name>.<role>`` per account and role; accounts whose names collide get ``-<account id>``."""
    bases = {
        account.account_id: sanitise(account.account_name, lower=True) or account.account_id
        for account, _ in access
    }
    counts: dict[str, int] = {}
    for base in bases.values():
        counts[base] = counts.get(base, 0) + 1
    plans: list[ProfilePlan] = []
    for account, roles in sorted(access, key=lambda item: (bases[item[0].account_id], item[0].account_id)):
        base = bases[account.account_id]
        if counts[base] > 1 and base != account.account_id:
            base = f"{base}-{account.account_id}"
        for role in sorted(roles, key=lambda r: r.role_name):
            plans.append(
                ProfilePlan(
                    name=f"{base}.{sanitise(role.role_name) or 'role'}",
                    account_id=account.account_id,
                    account_name=account.account_name,
                    role_name=role.role_name,
                    account_kind=account.kind,
                )
            )
    return plans


def render_block(
    *,
    session: SessionConfig,
    profiles: Sequence[ProfilePlan],
    region: str,
    process_command: Sequence[str] | None = None,
) -> str:
    """The managed block, markers included, ending in a newline."""
    name = session.name
    lines = [
        begin_marker(name),
        "# Written by `keyhall configure`; a new run replaces everything up to the END line.",
        f"[sso-session {name}]",
        f"sso_start_url = {session.start_url}",
        f"sso_region = {session.region}",
        f"sso_registration_scopes = {','.join(session.scopes)}",
        f"{KEYHALL_URL_KEY} = {session.base_url}",
        "",
        f"[services {name}]",
    ]
    for service in SERVICES:
        lines += [f"{service} =", f"  endpoint_url = {session.base_url}"]
    if any(plan.account_kind == "aws" for plan in profiles):
        lines += ["", f"[services {name}{AWS_SERVICES_SUFFIX}]"]
        for service in AWS_ACCOUNT_SERVICES:
            lines += [f"{service} =", f"  endpoint_url = {session.base_url}"]
    for plan in profiles:
        lines += [
            "",
            f"[profile {plan.name}]",
            f"# {plan.account_name or plan.account_id} ({plan.account_id}), role {plan.role_name}",
            f"sso_session = {name}",
            f"sso_account_id = {plan.account_id}",
            f"sso_role_name = {plan.role_name}",
            f"region = {region}",
            f"services = {name}{AWS_SERVICES_SUFFIX if plan.account_kind == 'aws' else ''}",
        ]
        if process_command is not None:
            command = [
                *process_command,
                "credential-process",
                "--sso-session",
                name,
                "--account",
                plan.account_id,
                "--role",
                plan.role_name,
            ]
            lines += [
                "",
                f"[profile {plan.name}{PROCESS_SUFFIX}]",
                "# the same role through credential_process, for tools without SSO support",
                f"credential_process = {shlex.join(command)}",
                f"region = {region}",
                f"services = {name}",
            ]
    lines.append(end_marker(name))
    return "\n".join(lines) + "\n"


def _split_block(text: str, session_name: str) -> tuple[list[str], list[str], list[str]]:
    """(lines before, the block's lines, lines after); the block is empty when there is none."""
    lines = text.splitlines(keepends=True)
    begin, end = begin_marker(session_name), end_marker(session_name)
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if not starts and not ends:
        return lines, [], []
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ConfigError(
            [f"the markers {begin!r} and {end!r} are not one BEGIN followed by one END; fix the file by hand"]
        )
    return lines[: starts[0]], lines[starts[0] : ends[0] + 1], lines[ends[0] + 1 :]


def merge(
    text: str,
    *,
    session: SessionConfig,
    profiles: Sequence[ProfilePlan],
    region: str,
    process_command: Sequence[str] | None = None,
) -> tuple[str, list[ProfilePlan], list[str]]:
    """The new file text, the profiles written, and the names skipped because the user has them already."""
    before, existing, after = _split_block(text, session.name)
    outside = ini.parse_config("".join(before + after))
    conflicts = [
        f"[{kind} {session.name}] exists outside Keyhall's block: remove it, or use --sso-session OTHER"
        for kind in ("sso-session", "services")
        if any(section.split() == [kind, session.name] for section in outside)
    ]
    if conflicts:
        raise ConfigError(conflicts)
    taken = {" ".join(section.split()) for section in outside}
    kept: list[ProfilePlan] = []
    skipped: list[str] = []
    for plan in profiles:
        names = [plan.name] + ([plan.name + PROCESS_SUFFIX] if process_command is not None else [])
        clash = [n for n in names if f"profile {n}" in taken]
        if clash:
            skipped.extend(clash)
        else:
            kept.append(plan)
    block = render_block(session=session, profiles=kept, region=region, process_command=process_command)
    if existing:
        return "".join(before) + block + "".join(after), kept, skipped
    if not text.strip():
        return block, kept, skipped
    # One blank line between the user's last line and the block.
    separator = "" if text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
    return text + separator + block, kept, skipped


def configure(
    *,
    session: SessionConfig,
    access: Sequence[tuple[AccountInfo, Sequence[RoleInfo]]],
    config_file: str | Path,
    region: str | None = None,
    process_command: Sequence[str] | None = None,
    dry_run: bool = False,
) -> ConfigureResult:
    """Write (or with *dry_run* only compute) the managed block; nothing is written when nothing changed."""
    path = Path(config_file)
    try:
        old_text = path.read_text(encoding="utf-8")
        mode: int | None = path.stat().st_mode & 0o777
    except FileNotFoundError:
        old_text, mode = "", None
    new_text, kept, skipped = merge(
        old_text,
        session=session,
        profiles=plan_profiles(access),
        region=region or session.region,
        process_command=process_command,
    )
    written = False
    if new_text != old_text and not dry_run:
        write_text_atomic(path, new_text, mode=mode if mode is not None else 0o600)
        written = True
    return ConfigureResult(
        path=path, old_text=old_text, new_text=new_text, profiles=kept, skipped=skipped, written=written
    )
