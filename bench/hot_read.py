"""The hot read behind GetRoleCredentials: bearer-token lookup plus the assignment check, single thread.

Every variant runs the same request list on the same seeded database and must give the same answers:

* ``core_read``: our path as written, ``with db.read()`` + a SQLAlchemy Core token select +
  ``keyhall.access.store.entitled_permission_set`` (statements built per call, as the store does);
* ``core_prebuilt_read``: the same Core statements built once at import with ``bindparam`` placeholders;
* ``driver_sql_read``: ``with db.read()`` + ``conn.exec_driver_sql`` of hand-written SQL (pool and
  transaction from SQLAlchemy, no statement compilation or result processing);
* ``dbapi_read``: the same two queries and transaction shape through the raw driver (sqlite3 / psycopg);
* ``*_audit``: the read, then one audit record in its own write transaction: the GetRoleCredentials shape.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import re
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
import sqlalchemy
from psycopg.types.json import Json
from sqlalchemy import BindParameter, Connection, and_, bindparam, event, insert, or_, select

from bench.pg import throwaway_cluster
from bench.seed import Org, OrgShape, analyze, bench_tokens, seed_org
from bench.stats import summarise
from keyhall.access import store
from keyhall.access.models import PermissionSet
from keyhall.audit.events import Actor, AuditEvent
from keyhall.container import Container
from keyhall.db import migrate
from keyhall.db.database import Database
from keyhall.db.tables import account_assignments, accounts, audit_events, group_memberships, permission_sets
from keyhall.settings import Settings

HIT_RATIO = 0.9

# The raw-driver queries mirror what SQLAlchemy compiles for our path (same joins, IN subquery, LIMIT 1).
_PS_COLUMNS = ", ".join(f"permission_sets.{c.name}" for c in permission_sets.columns)
TOKEN_SQL = "SELECT user_id, expires_at FROM bench_tokens WHERE token_hash = ?"
ENTITLED_SQL = f"""
SELECT {_PS_COLUMNS}
FROM permission_sets
JOIN account_assignments ON account_assignments.permission_set_id = permission_sets.id
JOIN accounts ON accounts.id = account_assignments.account_id
WHERE permission_sets.name_key = ? AND account_assignments.account_id = ? AND accounts.status = 'ACTIVE'
  AND ((account_assignments.principal_type = 'USER' AND account_assignments.principal_id = ?)
    OR (account_assignments.principal_type = 'GROUP' AND account_assignments.principal_id IN
        (SELECT group_memberships.group_id FROM group_memberships WHERE group_memberships.user_id = ?)))
LIMIT 1
"""
_AUDIT_COLUMNS = [
    "event_id",
    "event_time",
    "event_source",
    "event_name",
    "actor_type",
    "actor_id",
    "actor_name",
    "source_ip",
    "user_agent",
    "request_id",
    "resource_type",
    "resource_id",
    "request_parameters",
    "response_elements",
    "additional_data",
    "error_code",
    "read_only",
]
_AUDIT_JSON = {"request_parameters", "response_elements", "additional_data"}
AUDIT_SQL = (
    f"INSERT INTO audit_events ({', '.join(_AUDIT_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _AUDIT_COLUMNS)})"
)


def to_pyformat(sql: str) -> str:
    """qmark/named placeholders (sqlite3) to psycopg's %s / %(name)s."""
    return re.sub(r":(\w+)", r"%(\1)s", sql.replace("?", "%s"))


@dataclass(frozen=True)
class Request:
    token: str
    account_id: str
    ps_name_key: str
    entitled: bool


@dataclass(frozen=True)
class Grant:
    user_id: str
    permission_set: PermissionSet


class HotPath(Protocol):
    def check(self, request: Request) -> Grant | None: ...

    def audit(self, request: Request, grant: Grant | None) -> None: ...

    def close(self) -> None: ...


def make_requests(org: Org, count: int, rng: random.Random) -> list[Request]:
    """``count`` requests with valid tokens: HIT_RATIO of them entitled, the rest refused."""
    requests = []
    pairs = len(org.account_ids) * len(org.ps_name_keys)
    for _ in range(count):
        token, user_id = rng.choice(org.tokens)
        reach = org.reach_of(user_id)
        if reach and (rng.random() < HIT_RATIO or len(reach) == pairs):
            account_id, ps_key = rng.choice(sorted(reach))
        else:
            while (pair := (rng.choice(org.account_ids), rng.choice(org.ps_name_keys))) in reach:
                pass
            account_id, ps_key = pair
        requests.append(Request(token, account_id, ps_key, (account_id, ps_key) in reach))
    return requests


def _audit_event(request: Request, grant: Grant | None) -> tuple[Actor, AuditEvent]:
    actor = Actor(
        type="IdentityCenterUser",
        id=grant.user_id if grant else None,
        source_ip="127.0.0.1",
        user_agent="keyhall-bench",
        request_id=uuid.uuid4().hex,
    )
    return actor, AuditEvent(
        "sso.amazonaws.com",
        "GetRoleCredentials",
        resource_type="PermissionSet",
        resource_id=grant.permission_set.id if grant else None,
        request_parameters={"accountId": request.account_id, "roleName": request.ps_name_key},
        error_code=None if grant else "ForbiddenException",
        read_only=True,
    )


class CorePath:
    """Our path: the Database's pooled read transaction and SQLAlchemy Core, as the server will run it."""

    def __init__(self, container: Container) -> None:
        self._db: Database = container.db
        self._clock = container.clock
        self._writer = container.audit

    def check(self, request: Request) -> Grant | None:
        digest = hashlib.sha256(request.token.encode()).digest()
        with self._db.read() as conn:
            row = conn.execute(
                select(bench_tokens.c.user_id, bench_tokens.c.expires_at).where(
                    bench_tokens.c.token_hash == digest
                )
            ).first()
            if row is None or row.expires_at <= self._clock.timestamp():
                return None
            ps = store.entitled_permission_set(conn, row.user_id, request.account_id, request.ps_name_key)
        return Grant(row.user_id, ps) if ps else None

    def audit(self, request: Request, grant: Grant | None) -> None:
        actor, audit_event = _audit_event(request, grant)
        with self._db.write() as conn:
            self._writer.record(conn, actor, audit_event)

    def close(self) -> None:
        """The container's engine is disposed by the caller."""


# The same two queries as the path above, built once: execution then skips expression construction and
# cache-key generation on the statement's structure (SQLAlchemy still looks the compiled form up per call).
_user_id: BindParameter[str] = bindparam("user_id")
PREBUILT_TOKEN = select(bench_tokens.c.user_id, bench_tokens.c.expires_at).where(
    bench_tokens.c.token_hash == bindparam("digest")
)
PREBUILT_ENTITLED = (
    select(permission_sets)
    .join(account_assignments, account_assignments.c.permission_set_id == permission_sets.c.id)
    .join(accounts, accounts.c.id == account_assignments.c.account_id)
    .where(
        permission_sets.c.name_key == bindparam("ps_name_key"),
        account_assignments.c.account_id == bindparam("account_id"),
        accounts.c.status == "ACTIVE",
        or_(
            and_(
                account_assignments.c.principal_type == "USER", account_assignments.c.principal_id == _user_id
            ),
            and_(
                account_assignments.c.principal_type == "GROUP",
                account_assignments.c.principal_id.in_(
                    select(group_memberships.c.group_id).where(group_memberships.c.user_id == _user_id)
                ),
            ),
        ),
    )
    .limit(1)
)
PREBUILT_AUDIT = insert(audit_events)


class CorePrebuiltPath(CorePath):
    """Our path with module-level Core statements; the audit insert passes its row as parameters."""

    def check(self, request: Request) -> Grant | None:
        digest = hashlib.sha256(request.token.encode()).digest()
        with self._db.read() as conn:
            row = conn.execute(PREBUILT_TOKEN, {"digest": digest}).first()
            if row is None or row.expires_at <= self._clock.timestamp():
                return None
            params = {
                "user_id": row.user_id,
                "account_id": request.account_id,
                "ps_name_key": request.ps_name_key,
            }
            ps_row = conn.execute(PREBUILT_ENTITLED, params).first()
        return Grant(row.user_id, store.permission_set_from_row(ps_row)) if ps_row else None

    def audit(self, request: Request, grant: Grant | None) -> None:
        actor, audit_event = _audit_event(request, grant)
        with self._db.write() as conn:
            conn.execute(PREBUILT_AUDIT, self._writer.row(actor, audit_event, str(uuid.uuid4())))


class DriverSqlPath(CorePath):
    """SQLAlchemy's pool and transaction, hand-written SQL through ``exec_driver_sql`` (no compilation)."""

    def __init__(self, container: Container) -> None:
        super().__init__(container)
        self._sqlite = container.db.is_sqlite
        self._token_sql = TOKEN_SQL if self._sqlite else to_pyformat(TOKEN_SQL)
        self._entitled_sql = ENTITLED_SQL if self._sqlite else to_pyformat(ENTITLED_SQL)

    def check(self, request: Request) -> Grant | None:
        digest = hashlib.sha256(request.token.encode()).digest()
        with self._db.read() as conn:
            row = conn.exec_driver_sql(self._token_sql, (digest,)).first()
            if row is None or row[1] <= self._clock.timestamp():
                return None
            user_id = row[0]
            params = (request.ps_name_key, request.account_id, user_id, user_id)
            ps_row = conn.exec_driver_sql(self._entitled_sql, params).first()
        return Grant(user_id, _ps_from_tuple(tuple(ps_row), decode_json=self._sqlite)) if ps_row else None


def _ps_from_tuple(row: tuple[Any, ...], *, decode_json: bool) -> PermissionSet:
    m = dict(zip((c.name for c in permission_sets.columns), row, strict=True))
    for key in ("managed_policy_arns", "customer_managed_policies", "permissions_boundary", "tags"):
        if decode_json and m[key] is not None:
            m[key] = json.loads(m[key])
    m.pop("name_key")
    m["managed"] = bool(m["managed"])
    return PermissionSet(**m)


class SqliteDbapiPath:
    """The same work through sqlite3 on one long-lived connection, no pool, no SQLAlchemy."""

    def __init__(self, container: Container, path: str) -> None:
        self._clock = container.clock
        self._writer = container.audit
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "busy_timeout=5000"):
            self._conn.execute(f"PRAGMA {pragma}")

    def check(self, request: Request) -> Grant | None:
        digest = hashlib.sha256(request.token.encode()).digest()
        conn = self._conn
        conn.execute("BEGIN")
        try:
            row = conn.execute(TOKEN_SQL, (digest,)).fetchone()
            if row is None or row[1] <= self._clock.timestamp():
                return None
            user_id = row[0]
            ps = conn.execute(
                ENTITLED_SQL, (request.ps_name_key, request.account_id, user_id, user_id)
            ).fetchone()
        finally:
            conn.execute("COMMIT")
        return Grant(user_id, _ps_from_tuple(ps, decode_json=True)) if ps else None

    def audit(self, request: Request, grant: Grant | None) -> None:
        actor, audit_event = _audit_event(request, grant)
        values = self._writer.row(actor, audit_event, str(uuid.uuid4()))
        for key in _AUDIT_JSON:
            values[key] = None if values[key] is None else json.dumps(values[key])
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(AUDIT_SQL, values)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


class PsycopgDbapiPath:
    """The same work through psycopg 3 on one long-lived connection (psycopg prepares repeated statements)."""

    def __init__(self, container: Container, url: str) -> None:
        self._clock = container.clock
        self._writer = container.audit
        self._conn = psycopg.connect(url)
        self._token_sql = to_pyformat(TOKEN_SQL)
        self._entitled_sql = to_pyformat(ENTITLED_SQL)
        self._audit_sql = to_pyformat(AUDIT_SQL)

    def check(self, request: Request) -> Grant | None:
        digest = hashlib.sha256(request.token.encode()).digest()
        conn = self._conn
        try:
            row = conn.execute(self._token_sql, (digest,)).fetchone()
            if row is None or row[1] <= self._clock.timestamp():
                return None
            user_id = row[0]
            ps = conn.execute(
                self._entitled_sql,
                (request.ps_name_key, request.account_id, user_id, user_id),
            ).fetchone()
        finally:
            conn.commit()
        return Grant(user_id, _ps_from_tuple(ps, decode_json=False)) if ps else None

    def audit(self, request: Request, grant: Grant | None) -> None:
        actor, audit_event = _audit_event(request, grant)
        values = self._writer.row(actor, audit_event, str(uuid.uuid4()))
        for key in _AUDIT_JSON:
            values[key] = None if values[key] is None else Json(values[key])
        with self._conn.transaction():
            self._conn.execute(self._audit_sql, values)

    def close(self) -> None:
        self._conn.close()


def _run(
    step: Callable[[Request], Grant | None], requests: list[Request], *, max_seconds: float
) -> tuple[list[int], float, int]:
    """Latencies (ns), elapsed seconds and wrong answers; stops at the end of the list or the time limit."""
    latencies: list[int] = []
    wrong = 0
    clock = time.perf_counter_ns
    started = clock()
    deadline = started + int(max_seconds * 1e9)
    for request in requests:
        t0 = clock()
        grant = step(request)
        t1 = clock()
        latencies.append(t1 - t0)
        if (grant is not None) != request.entitled:
            wrong += 1
        if t1 > deadline:
            break
    return latencies, (clock() - started) / 1e9, wrong


def measure(
    path: HotPath,
    requests: list[Request],
    warmup: list[Request],
    *,
    with_audit: bool,
    max_seconds: float,
) -> dict[str, Any]:
    def step(request: Request) -> Grant | None:
        grant = path.check(request)
        if with_audit:
            path.audit(request, grant)
        return grant

    _run(step, warmup, max_seconds=max_seconds)
    gc.collect()  # start every variant from the same heap, not with the previous variant's garbage
    latencies, elapsed, wrong = _run(step, requests, max_seconds=max_seconds)
    return {**summarise(latencies, elapsed).as_dict(), "wrong_answers": wrong}


# ---- query plans -----------------------------------------------------------------------------------

LARGE_TABLES = ("account_assignments", "group_memberships", "bench_tokens", "users", "audit_events")


@contextmanager
def _captured_selects(db: Database) -> Iterator[list[tuple[str, Any]]]:
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        yield captured
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)


def query_plans(container: Container, request: Request) -> dict[str, Any]:
    """EXPLAIN (QUERY PLAN) of exactly the SQL our path sends, and whether every large table uses an index."""
    db = container.db
    with _captured_selects(db) as captured:
        CorePath(container).check(request)
    plans = []
    full_scans: list[str] = []
    with db.read() as conn:
        for statement, parameters in captured:
            if db.is_sqlite:
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
                lines = [str(r[-1]) for r in rows]
                full_scans += [
                    line
                    for line in lines
                    if line.startswith("SCAN")
                    and "INDEX" not in line
                    and any(t in line for t in LARGE_TABLES)
                ]
            else:
                rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
                lines = [str(r[0]) for r in rows]
                full_scans += [
                    line.strip().removeprefix("->").strip()
                    for line in lines
                    if "Seq Scan" in line and any(t in line for t in LARGE_TABLES)
                ]
            plans.append({"sql": " ".join(statement.split()), "plan": lines})
    return {"statements": plans, "full_scans_of_large_tables": full_scans, "uses_indexes": not full_scans}


# ---- one database, end to end ------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    kind: str  # sqlite | postgresql
    url: str  # what Settings.database_url gets
    raw: str  # what the raw driver connects to (file path or libpq URL)
    data_dir: Path


@contextmanager
def bench_database(kind: str) -> Iterator[Target]:
    with tempfile.TemporaryDirectory(prefix="keyhall-bench-") as tmp:
        if kind == "sqlite":
            path = Path(tmp) / "keyhall.db"
            yield Target(kind, f"sqlite:///{path}", str(path), Path(tmp))
        else:
            with throwaway_cluster() as url:
                yield Target(kind, url, url, Path(tmp))


def _database_facts(container: Container, target: Target) -> dict[str, Any]:
    facts: dict[str, Any] = {"kind": target.kind, "sqlalchemy": sqlalchemy.__version__}
    with container.db.read() as conn:
        if target.kind == "sqlite":
            facts["sqlite"] = sqlite3.sqlite_version
            facts["journal_mode"] = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            facts["synchronous"] = "NORMAL"
        else:
            facts["server"] = conn.exec_driver_sql("SHOW server_version").scalar()
            facts["psycopg"] = psycopg.__version__
            facts["fsync"] = conn.exec_driver_sql("SHOW fsync").scalar()
            facts["synchronous_commit"] = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
    return facts


#: (path, with audit write) in the order measured: reads first, so audit rows do not grow under them
VARIANTS = (
    ("core", False),
    ("core_prebuilt", False),
    ("driver_sql", False),
    ("dbapi", False),
    ("core", True),
    ("core_prebuilt", True),
    ("dbapi", True),
)


def prepare(target: Target, shape: OrgShape, seed: int) -> Org:
    """Migrate and seed one database (run in a worker process for one database while the other seeds)."""
    container = Container.build(Settings(data_dir=target.data_dir, database_url=target.url))
    try:
        migrate.upgrade(container.db.engine)
        started = time.perf_counter()
        org = seed_org(container, shape, random.Random(seed))
        org.seconds["total"] = time.perf_counter() - started
        return org
    finally:
        container.db.dispose()


def measure_database(
    target: Target, org: Org, *, iterations: int, max_seconds: float, seed: int
) -> dict[str, Any]:
    container = Container.build(Settings(data_dir=target.data_dir, database_url=target.url))
    paths: dict[str, HotPath] = {}
    try:
        load_before = os.getloadavg()
        rng = random.Random(seed)
        requests = make_requests(org, iterations, rng)
        warmup = make_requests(org, max(50, iterations // 10), rng)
        # plans as a fresh database has them (Keyhall never runs ANALYZE on SQLite), then with statistics
        plans_unanalysed = query_plans(container, requests[0])
        analyze(container)
        plans = query_plans(container, requests[0])
        paths["core"] = CorePath(container)
        paths["core_prebuilt"] = CorePrebuiltPath(container)
        paths["driver_sql"] = DriverSqlPath(container)
        if target.kind == "sqlite":
            paths["dbapi"] = SqliteDbapiPath(container, target.raw)
        else:
            paths["dbapi"] = PsycopgDbapiPath(container, target.raw)
        variants: dict[str, dict[str, Any]] = {}
        for name, with_audit in VARIANTS:
            label = f"{name}_read_audit" if with_audit else f"{name}_read"
            print(f"  hot read / {target.kind} / {label}", flush=True)
            variants[label] = measure(
                paths[name], requests, warmup, with_audit=with_audit, max_seconds=max_seconds
            )
        facts = _database_facts(container, target)
    finally:
        for path in paths.values():
            path.close()
        container.db.dispose()
    return {
        "database": facts,
        "org": org.counts,
        "seed_seconds": {k: round(v, 2) for k, v in org.seconds.items()},
        "iterations": iterations,
        "max_seconds_per_variant": max_seconds,
        "hit_ratio": HIT_RATIO,
        "load_average_before": load_before,
        "variants": variants,
        "query_plan": plans,
        "query_plan_before_analyze": plans_unanalysed,
    }
