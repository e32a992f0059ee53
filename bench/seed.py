"""A realistic organisation seeded through Keyhall's own services, plus the prototype bearer-token table.

The token tables do not exist yet, so ``bench_tokens`` (sha256 of the token -> user, expiry) lives in the
bench only; it is what the GetRoleCredentials bearer lookup is expected to look like.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
from dataclasses import dataclass, field

from sqlalchemy import Column, Float, ForeignKey, LargeBinary, MetaData, String, Table, insert, text

from keyhall.access.models import AccountSpec, PermissionSetSpec
from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.db.tables import users
from keyhall.directory.models import UserSpec, name_key

bench_metadata = MetaData()
bench_tokens = Table(
    "bench_tokens",
    bench_metadata,
    Column(
        "token_hash", LargeBinary(32), primary_key=True
    ),  # sha256(token): a stolen database holds no token
    Column("user_id", String(47), ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    Column("expires_at", Float, nullable=False),
)

ACTOR = Actor(type="LocalOperator", id="bench")
TOKEN_LIFETIME_S = 8 * 3600.0


@dataclass(frozen=True)
class OrgShape:
    users: int = 1000
    groups: int = 50
    groups_per_user: int = 3
    accounts: int = 100
    permission_sets: int = 10
    group_assignments: int = 18_000
    direct_assignments: int = 2_000
    tokens: int = 10_000


@dataclass
class Org:
    """What was seeded, with the answers the hot check must give (computed here, independently of SQL).

    Kept small on purpose (per-group reach, not per-user): a few hundred thousand live tuples would make
    every garbage collection during the measurements slow and show up as latency that is not Keyhall's.
    """

    user_ids: list[str]
    account_ids: list[str]
    ps_name_keys: list[str]
    groups_of: dict[str, list[str]]
    #: group id -> (account id, permission set name key) pairs assigned to the group
    group_reach: dict[str, list[tuple[str, str]]]
    #: user id -> pairs assigned to the user directly
    direct_reach: dict[str, list[tuple[str, str]]]
    #: (token, owning user id)
    tokens: list[tuple[str, str]]
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def reach_of(self, user_id: str) -> set[tuple[str, str]]:
        """Every (account id, permission set name key) the user may use."""
        reach = set(self.direct_reach.get(user_id, ()))
        for group_id in self.groups_of[user_id]:
            reach.update(self.group_reach[group_id])
        return reach


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def analyze(container: Container) -> None:
    """Planner statistics, as autovacuum (PostgreSQL) or `PRAGMA optimize` (SQLite) would gather them."""
    with container.db.write() as conn:
        conn.execute(text("ANALYZE"))


def seed_org(container: Container, shape: OrgShape, rng: random.Random) -> Org:
    """Create the organisation through the real services (validation, audit records and all)."""
    access, directory, db = container.access, container.directory, container.db
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    with db.write() as conn:
        account_ids = [
            access.create_account(
                conn,
                ACTOR,
                AccountSpec(f"acct-{i:03d}", f"acct{i:03d}@example.com", id=f"{100_000_000_000 + i}"),
            ).id
            for i in range(shape.accounts)
        ]
        sets = [
            access.create_permission_set(
                conn,
                ACTOR,
                PermissionSetSpec(
                    f"Role{i:02d}",
                    description=f"Bench permission set {i}",
                    session_duration="PT1H",
                    managed_policy_arns=["arn:aws:iam::aws:policy/ReadOnlyAccess"],
                    tags={"team": f"t{i % 4}"},
                ),
            )
            for i in range(shape.permission_sets)
        ]
        group_ids = [
            directory.create_group(conn, ACTOR, f"group-{i:02d}", f"Bench group {i}").id
            for i in range(shape.groups)
        ]
    with db.write() as conn:
        user_ids = [
            directory.create_user(
                conn,
                ACTOR,
                UserSpec(
                    f"user{i:04d}",
                    display_name=f"User {i}",
                    given_name="Bench",
                    family_name=f"User{i}",
                    email=f"user{i:04d}@example.com",
                ),
            ).id
            for i in range(shape.users)
        ]
    seconds["directory"] = time.perf_counter() - started

    started = time.perf_counter()
    groups_of: dict[str, list[str]] = {}
    with db.write() as conn:
        for user_id in user_ids:
            groups_of[user_id] = rng.sample(group_ids, shape.groups_per_user)
            for group_id in groups_of[user_id]:
                directory.add_member(conn, ACTOR, group_id, user_id)
    seconds["memberships"] = time.perf_counter() - started

    ps_keys = {ps.id: name_key(ps.name) for ps in sets}
    ps_ids = list(ps_keys)
    triples = [(g, a, p) for g in group_ids for a in account_ids for p in ps_ids]
    group_triples = rng.sample(triples, shape.group_assignments)
    direct_triples: set[tuple[str, str, str]] = set()
    while len(direct_triples) < shape.direct_assignments:
        direct_triples.add((rng.choice(user_ids), rng.choice(account_ids), rng.choice(ps_ids)))

    started = time.perf_counter()
    with db.write() as conn:
        for group_id, account_id, ps_id in group_triples:
            access.create_assignment(conn, ACTOR, account_id, ps_id, "GROUP", group_id)
        for user_id, account_id, ps_id in sorted(direct_triples):
            access.create_assignment(conn, ACTOR, account_id, ps_id, "USER", user_id)
    seconds["assignments"] = time.perf_counter() - started

    group_reach: dict[str, list[tuple[str, str]]] = {g: [] for g in group_ids}
    for group_id, account_id, ps_id in group_triples:
        group_reach[group_id].append((account_id, ps_keys[ps_id]))
    direct_reach: dict[str, list[tuple[str, str]]] = {}
    for user_id, account_id, ps_id in sorted(direct_triples):
        direct_reach.setdefault(user_id, []).append((account_id, ps_keys[ps_id]))

    started = time.perf_counter()
    tokens = [
        (base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode(), user_ids[i % len(user_ids)])
        for i in range(shape.tokens)
    ]
    expires_at = container.clock.timestamp() + TOKEN_LIFETIME_S
    bench_metadata.create_all(db.engine)
    with db.write() as conn:
        conn.execute(
            insert(bench_tokens),
            [{"token_hash": token_digest(t), "user_id": u, "expires_at": expires_at} for t, u in tokens],
        )
    seconds["tokens"] = time.perf_counter() - started

    org = Org(user_ids, account_ids, list(ps_keys.values()), groups_of, group_reach, direct_reach, tokens)
    org.counts = {
        "users": len(user_ids),
        "groups": len(group_ids),
        "memberships": sum(len(g) for g in groups_of.values()),
        "accounts": len(account_ids),
        "permission_sets": len(sets),
        "group_assignments": len(group_triples),
        "direct_assignments": len(direct_triples),
        "tokens": len(tokens),
        "mean_entitlements_per_user": round(sum(len(org.reach_of(u)) for u in user_ids) / len(user_ids)),
    }
    org.seconds = seconds
    return org
