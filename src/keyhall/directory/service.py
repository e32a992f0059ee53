"""Directory operations: validate, change, audit, all on the caller's transaction.

Callers open the transaction (``with db.write() as conn``) so several operations, and their audit
records, can commit as one (``keyhall apply`` relies on this).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, update

from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.db.tables import account_assignments, portal_sessions
from keyhall.directory import store
from keyhall.directory.models import (
    Group,
    User,
    UserSpec,
    check_group_name,
    check_user_name,
    check_user_spec,
    name_key,
)
from keyhall.errors import ConflictError, NotFoundError, Problem, ValidationError
from keyhall.ids import is_principal_id, new_uuid
from keyhall.pagination import Page, keyset_page

SOURCE = "identitystore.amazonaws.com"


class DirectoryService:
    def __init__(self, clock: Clock, audit: AuditWriter) -> None:
        self._clock = clock
        self._audit = audit

    # ---- users ---------------------------------------------------------------------------------

    def create_user(
        self,
        conn: Connection,
        actor: Actor,
        spec: UserSpec,
        *,
        password_hash: str | None = None,
        must_change_password: bool = False,
        source: str = "builtin",
        managed: bool = False,
    ) -> User:
        problems = check_user_spec(spec)
        if problems:
            raise ValidationError.from_problems(problems)
        key = name_key(spec.user_name)
        if store.get_user_by_name_key(conn, key):
            raise ConflictError(f"A user named {spec.user_name!r} already exists")
        now = self._clock.timestamp()
        user_id = new_uuid()
        store.insert_user(
            conn,
            {
                "id": user_id,
                "user_name": spec.user_name,
                "user_name_key": key,
                "display_name": spec.display_name,
                "status": spec.status,
                "source": source,
                "is_admin": spec.is_admin,
                "managed": managed,
                "attributes": spec.full_attributes(),
                "external_ids": [],
                "password_hash": password_hash,
                "must_change_password": must_change_password,
                "created_at": now,
                "updated_at": now,
                "created_by": actor.label,
                "updated_by": actor.label,
            },
        )
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "CreateUser",
                resource_type="User",
                resource_id=user_id,
                request_parameters={
                    "UserName": spec.user_name,
                    "Status": spec.status,
                    "Admin": spec.is_admin,
                },
            ),
        )
        user = store.get_user(conn, user_id)
        assert user is not None
        return user

    def get_user(self, conn: Connection, user_id: str) -> User:
        user = store.get_user(conn, user_id) if is_principal_id(user_id) else None
        if user is None:
            raise NotFoundError("USER", user_id)
        return user

    def find_user(self, conn: Connection, user_name: str) -> User | None:
        return store.get_user_by_name_key(conn, name_key(user_name))

    def resolve_user(self, conn: Connection, name_or_id: str) -> User:
        """A user by id or by user name (case-insensitive); for the CLI and config files."""
        user = store.get_user(conn, name_or_id) if is_principal_id(name_or_id) else None
        user = user or self.find_user(conn, name_or_id)
        if user is None:
            raise NotFoundError("USER", name_or_id)
        return user

    def list_users(
        self, conn: Connection, *, limit: int | None = None, next_token: str | None = None
    ) -> Page[User]:
        return keyset_page(
            lambda after, n: store.list_users(conn, after_key=after, limit=n),
            lambda user: name_key(user.user_name),
            limit=limit,
            next_token=next_token,
            maximum=1000,
        )

    def all_users(self, conn: Connection) -> list[User]:
        return store.list_users(conn, after_key=None, limit=10_000_000)

    def update_user(
        self,
        conn: Connection,
        actor: Actor,
        user_id: str,
        *,
        user_name: str | None = None,
        display_name: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        email: str | None = None,
        is_admin: bool | None = None,
        attributes: dict[str, Any] | None = None,
        managed: bool | None = None,
    ) -> User:
        user = self.get_user(conn, user_id)
        spec = UserSpec(
            user_name=user_name if user_name is not None else user.user_name,
            display_name=display_name if display_name is not None else user.display_name,
            status=user.status,
            is_admin=is_admin if is_admin is not None else user.is_admin,
            attributes=dict(user.attributes if attributes is None else attributes),
            given_name=given_name,
            family_name=family_name,
            email=email,
        )
        problems = check_user_spec(spec)
        if problems:
            raise ValidationError.from_problems(problems)
        values: dict[str, Any] = {
            "display_name": spec.display_name,
            "is_admin": spec.is_admin,
            "attributes": spec.full_attributes(),
        }
        if user_name is not None and user_name != user.user_name:
            other = store.get_user_by_name_key(conn, name_key(user_name))
            if other and other.id != user.id:
                raise ConflictError(f"A user named {user_name!r} already exists")
            values.update(user_name=user_name, user_name_key=name_key(user_name))
        if managed is not None:
            values["managed"] = managed
        changed = {k for k, v in values.items() if _current(user, k) != v}
        if not changed:
            return user
        values.update(updated_at=self._clock.timestamp(), updated_by=actor.label)
        store.update_user(conn, user.id, values)
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "UpdateUser",
                resource_type="User",
                resource_id=user.id,
                request_parameters={"UserName": spec.user_name, "Changed": sorted(changed)},
            ),
        )
        return self.get_user(conn, user.id)

    def set_status(self, conn: Connection, actor: Actor, user_id: str, status: str) -> User:
        if status not in ("ENABLED", "DISABLED"):
            raise ValidationError(f'UserStatus must be "ENABLED" or "DISABLED", got {status!r}')
        user = self.get_user(conn, user_id)
        if user.status == status:
            return user
        now = self._clock.timestamp()
        store.update_user(conn, user.id, {"status": status, "updated_at": now, "updated_by": actor.label})
        if status == "DISABLED":
            # ASVS 7.4.2: a disabled account's sessions end with it (and every token of them)
            conn.execute(
                update(portal_sessions)
                .where(portal_sessions.c.user_id == user.id, portal_sessions.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        name = "EnableUser" if status == "ENABLED" else "DisableUser"
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                name,
                resource_type="User",
                resource_id=user.id,
                request_parameters={"UserName": user.user_name},
            ),
        )
        return self.get_user(conn, user.id)

    def set_password_hash(
        self, conn: Connection, actor: Actor, user_id: str, password_hash: str, *, must_change: bool
    ) -> None:
        """Store a new password hash (the caller hashed it: this layer never sees a password)."""
        user = self.get_user(conn, user_id)
        store.update_user(
            conn,
            user.id,
            {
                "password_hash": password_hash,
                "must_change_password": must_change,
                "updated_at": self._clock.timestamp(),
                "updated_by": actor.label,
            },
        )
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "ResetPassword" if must_change else "ChangePassword",
                resource_type="User",
                resource_id=user.id,
                request_parameters={"UserName": user.user_name, "MustChange": must_change},
            ),
        )

    def delete_user(self, conn: Connection, actor: Actor, user_id: str) -> User:
        user = self.get_user(conn, user_id)
        # assignments reference principals without a foreign key (USER or GROUP); remove them with the user
        conn.execute(
            delete(account_assignments).where(
                account_assignments.c.principal_type == "USER", account_assignments.c.principal_id == user.id
            )
        )
        store.delete_user(conn, user.id)
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "DeleteUser",
                resource_type="User",
                resource_id=user.id,
                request_parameters={"UserName": user.user_name},
            ),
        )
        return user

    # ---- groups --------------------------------------------------------------------------------

    def create_group(
        self,
        conn: Connection,
        actor: Actor,
        display_name: str,
        description: str | None = None,
        *,
        managed: bool = False,
    ) -> Group:
        problems = check_group_name(display_name)
        if description is not None and len(description) > 1024:
            problems.append(Problem("Description", "must be at most 1024 characters"))
        if problems:
            raise ValidationError.from_problems(problems)
        key = name_key(display_name)
        if store.get_group_by_name_key(conn, key):
            raise ConflictError(f"A group named {display_name!r} already exists")
        now = self._clock.timestamp()
        group_id = new_uuid()
        store.insert_group(
            conn,
            {
                "id": group_id,
                "display_name": display_name,
                "display_name_key": key,
                "description": description,
                "external_ids": [],
                "managed": managed,
                "created_at": now,
                "updated_at": now,
                "created_by": actor.label,
                "updated_by": actor.label,
            },
        )
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "CreateGroup",
                resource_type="Group",
                resource_id=group_id,
                request_parameters={"DisplayName": display_name},
            ),
        )
        return self.get_group(conn, group_id)

    def get_group(self, conn: Connection, group_id: str) -> Group:
        group = store.get_group(conn, group_id) if is_principal_id(group_id) else None
        if group is None:
            raise NotFoundError("GROUP", group_id)
        return group

    def find_group(self, conn: Connection, display_name: str) -> Group | None:
        return store.get_group_by_name_key(conn, name_key(display_name))

    def resolve_group(self, conn: Connection, name_or_id: str) -> Group:
        group = store.get_group(conn, name_or_id) if is_principal_id(name_or_id) else None
        group = group or self.find_group(conn, name_or_id)
        if group is None:
            raise NotFoundError("GROUP", name_or_id)
        return group

    def list_groups(
        self, conn: Connection, *, limit: int | None = None, next_token: str | None = None
    ) -> Page[Group]:
        return keyset_page(
            lambda after, n: store.list_groups(conn, after_key=after, limit=n),
            lambda group: name_key(group.display_name),
            limit=limit,
            next_token=next_token,
            maximum=1000,
        )

    def all_groups(self, conn: Connection) -> list[Group]:
        return store.list_groups(conn, after_key=None, limit=10_000_000)

    def update_group(
        self,
        conn: Connection,
        actor: Actor,
        group_id: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        managed: bool | None = None,
    ) -> Group:
        group = self.get_group(conn, group_id)
        values: dict[str, Any] = {}
        if display_name is not None and display_name != group.display_name:
            problems = check_group_name(display_name)
            if problems:
                raise ValidationError.from_problems(problems)
            other = store.get_group_by_name_key(conn, name_key(display_name))
            if other and other.id != group.id:
                raise ConflictError(f"A group named {display_name!r} already exists")
            values.update(display_name=display_name, display_name_key=name_key(display_name))
        if description is not None and description != (group.description or ""):
            values["description"] = description or None
        if managed is not None and managed != group.managed:
            values["managed"] = managed
        if not values:
            return group
        changed = sorted(values)
        values.update(updated_at=self._clock.timestamp(), updated_by=actor.label)
        store.update_group(conn, group.id, values)
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "UpdateGroup",
                resource_type="Group",
                resource_id=group.id,
                request_parameters={"Changed": changed},
            ),
        )
        return self.get_group(conn, group.id)

    def delete_group(self, conn: Connection, actor: Actor, group_id: str) -> Group:
        group = self.get_group(conn, group_id)
        conn.execute(
            delete(account_assignments).where(
                account_assignments.c.principal_type == "GROUP",
                account_assignments.c.principal_id == group.id,
            )
        )
        store.delete_group(conn, group.id)
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "DeleteGroup",
                resource_type="Group",
                resource_id=group.id,
                request_parameters={"DisplayName": group.display_name},
            ),
        )
        return group

    # ---- memberships ---------------------------------------------------------------------------

    def add_member(self, conn: Connection, actor: Actor, group_id: str, user_id: str) -> str:
        group = self.get_group(conn, group_id)
        user = self.get_user(conn, user_id)
        existing = store.get_membership(conn, group.id, user.id)
        if existing:
            raise ConflictError(f"{user.user_name!r} is already a member of {group.display_name!r}")
        membership_id = new_uuid()
        store.insert_membership(
            conn,
            {
                "id": membership_id,
                "group_id": group.id,
                "user_id": user.id,
                "created_at": self._clock.timestamp(),
                "created_by": actor.label,
            },
        )
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "CreateGroupMembership",
                resource_type="GroupMembership",
                resource_id=membership_id,
                request_parameters={"GroupId": group.id, "MemberId": {"UserId": user.id}},
            ),
        )
        return membership_id

    def remove_member(self, conn: Connection, actor: Actor, group_id: str, user_id: str) -> None:
        group = self.get_group(conn, group_id)
        user = self.get_user(conn, user_id)
        membership = store.get_membership(conn, group.id, user.id)
        if membership is None:
            raise NotFoundError("GROUP_MEMBERSHIP", f"{group.display_name}/{user.user_name}")
        store.delete_membership(conn, membership.id)
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "DeleteGroupMembership",
                resource_type="GroupMembership",
                resource_id=membership.id,
                request_parameters={"GroupId": group.id, "MemberId": {"UserId": user.id}},
            ),
        )

    def members(self, conn: Connection, group_id: str) -> list[User]:
        return store.group_members(conn, self.get_group(conn, group_id).id)

    def groups_of(self, conn: Connection, user_id: str) -> list[Group]:
        return store.groups_of_user(conn, self.get_user(conn, user_id).id)


def _current(user: User, key: str) -> Any:
    if key == "attributes":
        return user.attributes
    if key == "user_name_key":
        return name_key(user.user_name)
    return getattr(user, key)


__all__ = ["DirectoryService", "check_user_name"]
