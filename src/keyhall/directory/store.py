"""SQL for the directory. Knows nothing of protocols; every function runs on the caller's connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from keyhall.db.tables import group_memberships, groups, users
from keyhall.directory.models import Group, Membership, User


def user_from_row(row: Row[Any]) -> User:
    m = row._mapping
    return User(
        id=m["id"],
        user_name=m["user_name"],
        display_name=m["display_name"],
        status=m["status"],
        source=m["source"],
        is_admin=bool(m["is_admin"]),
        attributes=dict(m["attributes"] or {}),
        external_ids=list(m["external_ids"] or []),
        has_password=m["password_hash"] is not None,
        must_change_password=bool(m["must_change_password"]),
        managed=bool(m["managed"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        created_by=m["created_by"],
        updated_by=m["updated_by"],
    )


def group_from_row(row: Row[Any]) -> Group:
    m = row._mapping
    return Group(
        id=m["id"],
        display_name=m["display_name"],
        description=m["description"],
        external_ids=list(m["external_ids"] or []),
        managed=bool(m["managed"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        member_count=m.get("member_count"),
    )


def get_user(conn: Connection, user_id: str) -> User | None:
    row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return user_from_row(row) if row else None


def get_user_by_name_key(conn: Connection, key: str) -> User | None:
    row = conn.execute(select(users).where(users.c.user_name_key == key)).first()
    return user_from_row(row) if row else None


def get_password_hash(conn: Connection, user_id: str) -> str | None:
    value = conn.execute(select(users.c.password_hash).where(users.c.id == user_id)).scalar()
    return str(value) if value is not None else None


def list_users(conn: Connection, *, after_key: str | None, limit: int) -> list[User]:
    query = select(users).order_by(users.c.user_name_key).limit(limit)
    if after_key is not None:
        query = query.where(users.c.user_name_key > after_key)
    return [user_from_row(r) for r in conn.execute(query)]


def insert_user(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(users).values(**values))


def update_user(conn: Connection, user_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(**values))


def delete_user(conn: Connection, user_id: str) -> None:
    conn.execute(delete(users).where(users.c.id == user_id))


def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def get_group(conn: Connection, group_id: str) -> Group | None:
    row = conn.execute(select(groups).where(groups.c.id == group_id)).first()
    return group_from_row(row) if row else None


def get_group_by_name_key(conn: Connection, key: str) -> Group | None:
    row = conn.execute(select(groups).where(groups.c.display_name_key == key)).first()
    return group_from_row(row) if row else None


def list_groups(conn: Connection, *, after_key: str | None, limit: int) -> list[Group]:
    counts = (
        select(group_memberships.c.group_id, func.count().label("member_count"))
        .group_by(group_memberships.c.group_id)
        .subquery()
    )
    query = (
        select(groups, func.coalesce(counts.c.member_count, 0).label("member_count"))
        .outerjoin(counts, counts.c.group_id == groups.c.id)
        .order_by(groups.c.display_name_key)
        .limit(limit)
    )
    if after_key is not None:
        query = query.where(groups.c.display_name_key > after_key)
    return [group_from_row(r) for r in conn.execute(query)]


def insert_group(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(groups).values(**values))


def update_group(conn: Connection, group_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(groups).where(groups.c.id == group_id).values(**values))


def delete_group(conn: Connection, group_id: str) -> None:
    conn.execute(delete(groups).where(groups.c.id == group_id))


def get_membership(conn: Connection, group_id: str, user_id: str) -> Membership | None:
    row = conn.execute(
        select(group_memberships).where(
            group_memberships.c.group_id == group_id, group_memberships.c.user_id == user_id
        )
    ).first()
    if row is None:
        return None
    m = row._mapping
    return Membership(id=m["id"], group_id=m["group_id"], user_id=m["user_id"], created_at=m["created_at"])


def insert_membership(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(group_memberships).values(**values))


def delete_membership(conn: Connection, membership_id: str) -> None:
    conn.execute(delete(group_memberships).where(group_memberships.c.id == membership_id))


def group_members(conn: Connection, group_id: str) -> list[User]:
    query = (
        select(users)
        .join(group_memberships, group_memberships.c.user_id == users.c.id)
        .where(group_memberships.c.group_id == group_id)
        .order_by(users.c.user_name_key)
    )
    return [user_from_row(r) for r in conn.execute(query)]


def groups_of_user(conn: Connection, user_id: str) -> list[Group]:
    query = (
        select(groups)
        .join(group_memberships, group_memberships.c.group_id == groups.c.id)
        .where(group_memberships.c.user_id == user_id)
        .order_by(groups.c.display_name_key)
    )
    return [group_from_row(r) for r in conn.execute(query)]


def group_ids_of_user(conn: Connection, user_id: str) -> Sequence[str]:
    query = select(group_memberships.c.group_id).where(group_memberships.c.user_id == user_id)
    return list(conn.execute(query).scalars())
