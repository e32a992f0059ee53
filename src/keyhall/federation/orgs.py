"""`keyhall aws import`: accounts and organizational units from AWS Organizations into Keyhall.

The organisation is walked from its root (``ListRoots``, ``ListOrganizationalUnitsForParent``,
``ListAccountsForParent``, at most 20 per page as the API allows; aws-wire.md 1.6), building OU paths like
``/Root/Workloads/Prod``. Each account is upserted as kind ``aws`` in its own short transaction, so an
interrupted import is simply run again.

Organizations is the source of truth for what it knows (name, email, status, OU), as in IAM Identity Center,
where account names come from Organizations: an import overwrites those fields, except that it never
re-activates an account suspended in Keyhall. Keyhall keeps what is its own (tags, assignments).

Three cases are left alone and reported: accounts declared by `keyhall apply` (the file owns them),
``local`` accounts with the same id (changing the kind changes how credentials are issued, so that is an
explicit `keyhall accounts update --kind aws`), and name clashes with another Keyhall account. Accounts that
left the organisation are reported, never deleted (their assignments would go with them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from keyhall.access import store as access_store
from keyhall.access.models import Account, AccountSpec
from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.errors import KeyhallError

#: the most Organizations returns per page (MaxResults 1..20)
PAGE_SIZE = 20

ImportOutcome = Literal["created", "updated", "unchanged", "skipped", "conflict"]


@dataclass(frozen=True)
class OrgAccount:
    """An account as Organizations reports it, with the OU path it sits in."""

    id: str
    name: str
    email: str
    status: str
    ou_path: str


@dataclass(frozen=True)
class ImportProgress:
    """Reported while importing: ``phase`` is "walk" (OUs found so far) or "import" (accounts done)."""

    phase: Literal["walk", "import"]
    done: int
    total: int | None
    ous: int
    accounts: int


@dataclass(frozen=True)
class ImportItem:
    account_id: str
    name: str
    outcome: ImportOutcome
    message: str | None = None
    changed: tuple[str, ...] = ()


@dataclass
class ImportSummary:
    organizational_units: int = 0
    items: list[ImportItem] = field(default_factory=list)
    #: ``aws`` accounts in Keyhall that the organisation no longer lists
    not_in_organization: list[str] = field(default_factory=list)

    def count(self, outcome: ImportOutcome) -> int:
        return sum(1 for i in self.items if i.outcome == outcome)

    @property
    def conflicts(self) -> list[ImportItem]:
        return [i for i in self.items if i.outcome == "conflict"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "organizational_units": self.organizational_units,
            "accounts": len(self.items),
            **{o: self.count(o) for o in ("created", "updated", "unchanged", "skipped", "conflict")},
            "items": [
                {
                    "account_id": i.account_id,
                    "name": i.name,
                    "outcome": i.outcome,
                    "message": i.message,
                    "changed": list(i.changed),
                }
                for i in self.items
            ],
            "not_in_organization": self.not_in_organization,
        }


def keyhall_status(account: dict[str, Any]) -> str:
    """ACTIVE only for an account Organizations calls active (``State``, or the older ``Status``); every other
    state (suspended, pending closure, closed) means no one gets credentials for it."""
    state = account.get("State") or account.get("Status") or "ACTIVE"
    return "ACTIVE" if state == "ACTIVE" else "SUSPENDED"


def _pages(call: Callable[..., dict[str, Any]], key: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every item of a paginated Organizations list; an empty page with a NextToken is not the end."""
    token: str | None = None
    while True:
        page = call(**params, MaxResults=PAGE_SIZE, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


def walk_organization(
    organizations: Any, *, on_progress: Callable[[ImportProgress], None] | None = None
) -> tuple[list[OrgAccount], int]:
    """Every account of the organisation with its OU path, and the number of OUs."""
    found: list[OrgAccount] = []
    ous = 0
    queue: list[tuple[str, str]] = [
        (root["Id"], f"/{root.get('Name') or 'Root'}") for root in _pages(organizations.list_roots, "Roots")
    ]
    while queue:
        parent_id, path = queue.pop(0)
        for account in _pages(organizations.list_accounts_for_parent, "Accounts", ParentId=parent_id):
            found.append(
                OrgAccount(
                    id=account["Id"],
                    name=account.get("Name") or account["Id"],
                    email=account.get("Email") or "",
                    status=keyhall_status(account),
                    ou_path=path,
                )
            )
        for ou in _pages(
            organizations.list_organizational_units_for_parent, "OrganizationalUnits", ParentId=parent_id
        ):
            ous += 1
            queue.append((ou["Id"], f"{path}/{ou['Name']}"))
        if on_progress is not None:
            on_progress(ImportProgress("walk", ous, None, ous, len(found)))
    found.sort(key=lambda a: a.id)
    return found, ous


def import_organization(
    container: Container,
    actor: Actor,
    organizations: Any,
    *,
    on_progress: Callable[[ImportProgress], None] | None = None,
) -> ImportSummary:
    """Walk the organisation and upsert its accounts; idempotent (a second run reports them unchanged)."""
    found, ous = walk_organization(organizations, on_progress=on_progress)
    summary = ImportSummary(organizational_units=ous)
    for done, org_account in enumerate(found, start=1):
        summary.items.append(_upsert(container, actor, org_account))
        if on_progress is not None:
            on_progress(ImportProgress("import", done, len(found), ous, len(found)))
    listed = {a.id for a in found}
    with container.db.read() as conn:
        summary.not_in_organization = [
            a.id for a in container.access.all_accounts(conn) if a.kind == "aws" and a.id not in listed
        ]
    return summary


def _upsert(container: Container, actor: Actor, org: OrgAccount) -> ImportItem:
    access = container.access
    try:
        with container.db.write() as conn:
            existing = access_store.get_account(conn, org.id)
            if existing is None:
                spec = AccountSpec(
                    name=org.name,
                    email=org.email,
                    id=org.id,
                    kind="aws",
                    status=org.status,
                    ou_path=org.ou_path,
                )
                access.create_account(conn, actor, spec, managed=False)
                return ImportItem(org.id, org.name, "created")
            if existing.kind != "aws":
                return ImportItem(
                    org.id,
                    existing.name,
                    "conflict",
                    f"exists in Keyhall as a {existing.kind} account; make it an aws account with "
                    f"`keyhall accounts update {org.id} --kind aws`, then import again",
                )
            changed = _changed_fields(existing, org)
            if not changed:
                return ImportItem(org.id, existing.name, "unchanged")
            if existing.managed:
                return ImportItem(
                    org.id,
                    existing.name,
                    "skipped",
                    "declared by `keyhall apply`, which owns it; differs from Organizations in "
                    + ", ".join(changed),
                    tuple(changed),
                )
            spec = AccountSpec(
                name=org.name,
                email=org.email,
                id=org.id,
                kind="aws",
                status=_status(existing, org),
                ou_path=org.ou_path,
                tags=dict(existing.tags),
            )
            access.update_account(conn, actor, org.id, spec)
            return ImportItem(org.id, org.name, "updated", None, tuple(changed))
    except KeyhallError as exc:
        return ImportItem(org.id, org.name, "conflict", exc.message)


def _status(existing: Account, org: OrgAccount) -> str:
    """An import suspends an account AWS suspended, but never re-activates one: suspending an account in
    Keyhall is how an administrator cuts off access, and an import must not undo that."""
    return "SUSPENDED" if org.status == "SUSPENDED" else existing.status


def _changed_fields(existing: Account, org: OrgAccount) -> list[str]:
    pairs = {
        "name": (existing.name, org.name),
        "email": (existing.email, org.email),
        "status": (existing.status, _status(existing, org)),
        "ou_path": (existing.ou_path, org.ou_path),
    }
    return [k for k, (old, new) in pairs.items() if old != new]
