"""SQL for accounts, permission sets and assignments, on the caller's connection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, and_, cast, delete, func, insert, null, or_, select, update

from keyhall.access.models import Account, Assignment, PermissionSet
from keyhall.db.tables import account_assignments, accounts, group_memberships, groups, permission_sets, users


def account_from_row(row: Row[Any]) -> Account:
    m = row._mapping
    return Account(
        id=m["id"],
        name=m["name"],
        email=m["email"],
        status=m["status"],
        kind=m["kind"],
        ou_path=m["ou_path"],
        tags=dict(m["tags"] or {}),
        managed=bool(m["managed"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def permission_set_from_row(row: Row[Any]) -> PermissionSet:
    m = row._mapping
    return PermissionSet(
        id=m["id"],
        name=m["name"],
        description=m["description"],
        session_duration=m["session_duration"],
        session_seconds=m["session_seconds"],
        relay_state=m["relay_state"],
        managed_policy_arns=list(m["managed_policy_arns"] or []),
        customer_managed_policies=list(m["customer_managed_policies"] or []),
        inline_policy=m["inline_policy"],
        permissions_boundary=m["permissions_boundary"],
        tags=dict(m["tags"] or {}),
        managed=bool(m["managed"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def assignment_from_row(row: Row[Any]) -> Assignment:
    m = row._mapping
    return Assignment(
        id=m["id"],
        account_id=m["account_id"],
        permission_set_id=m["permission_set_id"],
        principal_type=m["principal_type"],
        principal_id=m["principal_id"],
        managed=bool(m["managed"]),
        created_at=m["created_at"],
    )


# ---- accounts ------------------------------------------------------------------------------------


def get_account(conn: Connection, account_id: str) -> Account | None:
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
    return account_from_row(row) if row else None


def get_account_by_name_key(conn: Connection, key: str) -> Account | None:
    row = conn.execute(select(accounts).where(accounts.c.name_key == key)).first()
    return account_from_row(row) if row else None


def list_accounts(conn: Connection, *, after_id: str | None, limit: int) -> list[Account]:
    query = select(accounts).order_by(accounts.c.id).limit(limit)
    if after_id is not None:
        query = query.where(accounts.c.id > after_id)
    return [account_from_row(r) for r in conn.execute(query)]


def insert_account(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(accounts).values(**values))


def update_account(conn: Connection, account_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))


def delete_account(conn: Connection, account_id: str) -> None:
    conn.execute(delete(account_assignments).where(account_assignments.c.account_id == account_id))
    conn.execute(delete(accounts).where(accounts.c.id == account_id))


# ---- permission sets -----------------------------------------------------------------------------


def get_permission_set(conn: Connection, ps_id: str) -> PermissionSet | None:
    row = conn.execute(select(permission_sets).where(permission_sets.c.id == ps_id)).first()
    return permission_set_from_row(row) if row else None


def get_permission_set_by_name_key(conn: Connection, key: str) -> PermissionSet | None:
    row = conn.execute(select(permission_sets).where(permission_sets.c.name_key == key)).first()
    return permission_set_from_row(row) if row else None


def list_permission_sets(conn: Connection, *, after_key: str | None, limit: int) -> list[PermissionSet]:
    query = select(permission_sets).order_by(permission_sets.c.name_key).limit(limit)
    if after_key is not None:
        query = query.where(permission_sets.c.name_key > after_key)
    return [permission_set_from_row(r) for r in conn.execute(query)]


def insert_permission_set(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(permission_sets).values(**values))


def update_permission_set(conn: Connection, ps_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(permission_sets).where(permission_sets.c.id == ps_id).values(**values))


def delete_permission_set(conn: Connection, ps_id: str) -> None:
    conn.execute(delete(permission_sets).where(permission_sets.c.id == ps_id))


def count_assignments_of_permission_set(conn: Connection, ps_id: str) -> int:
    query = select(func.count()).where(account_assignments.c.permission_set_id == ps_id)
    return int(conn.execute(query).scalar_one())


# ---- assignments ---------------------------------------------------------------------------------


def find_assignment(
    conn: Connection, account_id: str, ps_id: str, principal_type: str, principal_id: str
) -> Assignment | None:
    row = conn.execute(
        select(account_assignments).where(
            account_assignments.c.account_id == account_id,
            account_assignments.c.permission_set_id == ps_id,
            account_assignments.c.principal_type == principal_type,
            account_assignments.c.principal_id == principal_id,
        )
    ).first()
    return assignment_from_row(row) if row else None


def insert_assignment(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(account_assignments).values(**values))


def delete_assignment(conn: Connection, assignment_id: str) -> None:
    conn.execute(delete(account_assignments).where(account_assignments.c.id == assignment_id))


def list_assignments(
    conn: Connection,
    *,
    account_id: str | None = None,
    ps_id: str | None = None,
    principal_type: str | None = None,
    principal_id: str | None = None,
) -> list[Assignment]:
    query = select(account_assignments).order_by(
        account_assignments.c.account_id, account_assignments.c.permission_set_id, account_assignments.c.id
    )
    if account_id is not None:
        query = query.where(account_assignments.c.account_id == account_id)
    if ps_id is not None:
        query = query.where(account_assignments.c.permission_set_id == ps_id)
    if principal_type is not None:
        query = query.where(account_assignments.c.principal_type == principal_type)
    if principal_id is not None:
        query = query.where(account_assignments.c.principal_id == principal_id)
    return [assignment_from_row(r) for r in conn.execute(query)]


# ---- effective access ----------------------------------------------------------------------------


def principal_match(user_id: str) -> Any:
    """Assignments reaching a user: to the user, or to any group the user is a member of."""
    member_groups = select(group_memberships.c.group_id).where(group_memberships.c.user_id == user_id)
    return or_(
        and_(account_assignments.c.principal_type == "USER", account_assignments.c.principal_id == user_id),
        and_(
            account_assignments.c.principal_type == "GROUP",
            account_assignments.c.principal_id.in_(member_groups),
        ),
    )


def entitled_permission_set(
    conn: Connection, user_id: str, account_id: str, ps_name_key: str
) -> PermissionSet | None:
    """The hot check behind GetRoleCredentials: one indexed query, evaluated from current data each call."""
    query = (
        select(permission_sets)
        .join(account_assignments, account_assignments.c.permission_set_id == permission_sets.c.id)
        .join(accounts, accounts.c.id == account_assignments.c.account_id)
        .where(
            permission_sets.c.name_key == ps_name_key,
            account_assignments.c.account_id == account_id,
            accounts.c.status == "ACTIVE",
            principal_match(user_id),
        )
        .limit(1)
    )
    row = conn.execute(query).first()
    return permission_set_from_row(row) if row else None


def user_assignment_rows(conn: Connection, user_id: str) -> list[Row[Any]]:
    """Every assignment reaching a user, with the group name when it is reached through a group."""
    query = (
        select(
            account_assignments.c.account_id,
            account_assignments.c.permission_set_id,
            account_assignments.c.principal_type,
            groups.c.display_name.label("group_name"),
        )
        .outerjoin(
            groups,
            and_(
                account_assignments.c.principal_type == "GROUP",
                groups.c.id == account_assignments.c.principal_id,
            ),
        )
        .where(principal_match(user_id))
    )
    return list(conn.execute(query))


def account_access_rows(conn: Connection, account_id: str) -> list[Row[Any]]:
    """For an account: every (user, permission set, group-or-direct) that reaches it."""
    direct = (
        select(
            users.c.id.label("user_id"),
            users.c.user_name,
            account_assignments.c.permission_set_id,
            cast(null(), groups.c.display_name.type).label("group_name"),
        )
        .join(users, users.c.id == account_assignments.c.principal_id)
        .where(account_assignments.c.account_id == account_id, account_assignments.c.principal_type == "USER")
    )
    via_group = (
        select(
            users.c.id.label("user_id"),
            users.c.user_name,
            account_assignments.c.permission_set_id,
            groups.c.display_name.label("group_name"),
        )
        .join(groups, groups.c.id == account_assignments.c.principal_id)
        .join(group_memberships, group_memberships.c.group_id == groups.c.id)
        .join(users, users.c.id == group_memberships.c.user_id)
        .where(
            account_assignments.c.account_id == account_id, account_assignments.c.principal_type == "GROUP"
        )
    )
    return list(conn.execute(direct.union_all(via_group)))
