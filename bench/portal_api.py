"""GetRoleCredentials and CreateToken (refresh) over HTTP: the issue's throughput and latency targets.

Per database (SQLite, PostgreSQL with fsync on): a fresh instance made by `keyhall init`, the bench org seeded
through the services (bench/seed.py), then bearer and refresh tokens minted with the real code
(``SessionService.create`` + ``keyhall.oauth.tokens.issue_tokens``) for a client registered through
``OidcService.register_client``. Then `keyhall serve --workers 1` and `--workers 2` (a real process on
127.0.0.1, access log off as by default) under ``wrk -t2 -c64 --latency`` driven by bench/portal.lua:

* ``GET /healthz``: the bare JSON endpoint of the same server, the yardstick for the ratios;
* ``GET /federation/credentials``: GetRoleCredentials, rotating through a few hundred users' tokens and a
  role each is entitled to (one audit record written per call);
* ``POST /token`` with ``grantType`` ``refresh_token``: CreateToken, each refresh token sent exactly once.

Every response's status is counted (bench/portal.lua); a run with any non-200 is flagged.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import multiprocessing
import os
import random
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, text

from bench.http_servers import HOST, ServerConfig, parse_wrk, running
from bench.pg import throwaway_cluster
from bench.seed import Org, OrgShape, seed_org

LUA = Path(__file__).resolve().parent / "portal.lua"
BIN = Path(sys.executable).parent
CONNECTIONS = 64
THREADS = 2
WORKERS = (1, 2)
SESSION_SECONDS = 8 * 3600.0
TOKEN_HEADER = "x-amz-sso_bearer_token"
#: the issue's targets (issue 3 item 8), for GetRoleCredentials on SQLite with the audit record written
TARGET_GRC_PER_S = 5000.0
TARGET_GRC_P99_MS = 25.0
#: GetRoleCredentials calls per event-loop turn in the in-process breakdown (grc_parts)
GROUP = 32


@dataclass(frozen=True)
class MintShape:
    grc_users: int = 300  # users with a bearer token in the GetRoleCredentials rotation
    grc_pairs_per_user: int = 4  # (account, role) each of them is entitled to, one line each
    refresh_sessions: int = 1000  # CLI sessions holding the refresh tokens
    #: spread over those sessions, each used once: per worker count ~850 for the warm-up and ~5,100 for
    #: the measured 5 s, room for 1,000 refreshes/s where ~450/s were measured
    refresh_tokens: int = 12_000


QUICK_MINT = MintShape(grc_users=50, grc_pairs_per_user=2, refresh_sessions=100, refresh_tokens=4000)


@dataclass
class Minted:
    """What the load generator sends: written to files, never to the results."""

    client_id: str
    client_secret: str
    grc_lines: list[tuple[str, str, str]]  # (access token, account id, role name)
    refresh_tokens: list[str]
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    kind: str  # sqlite | postgresql
    data_dir: Path
    url: str


# ---- setup: instance, org, tokens ------------------------------------------------------------------


def init_instance(instance: Instance, *, demo: bool = False) -> None:
    """`keyhall init` as an operator runs it (schema, master key, instance ids, the first administrator)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYHALL_")}
    env["KEYHALL_BENCH_ADMIN_PASSWORD"] = secrets.token_urlsafe(24) + "-Aa1"
    argv = [str(BIN / "keyhall"), "--data-dir", str(instance.data_dir), "--database-url", instance.url]
    subprocess.run(
        [*argv, "init", "--password-env", "KEYHALL_BENCH_ADMIN_PASSWORD", *(["--demo"] if demo else [])],
        env=env,
        check=True,
        capture_output=True,
    )


def _container(instance: Instance) -> Any:
    from keyhall.container import Container
    from keyhall.settings import Settings

    return Container.build(Settings(data_dir=instance.data_dir, database_url=instance.url))


def mint(container: Any, org: Org, shape: MintShape, rng: random.Random) -> Minted:
    """A registered client, CLI sessions and their tokens, all through Keyhall's own functions."""
    from keyhall.audit.events import Actor
    from keyhall.db.tables import permission_sets
    from keyhall.oauth.clients import DEVICE_GRANT, REFRESH_GRANT
    from keyhall.oauth.tokens import issue_tokens

    seconds: dict[str, float] = {}
    db, sessions, clock = container.db, container.sessions, container.clock
    started = time.perf_counter()
    registration = container.oidc.register_client(
        Actor(type="Anonymous", source_ip="127.0.0.1", user_agent="keyhall-bench"),
        name="keyhall-bench",
        client_type="public",
        scopes=["sso:account:access"],
        grant_types=[DEVICE_GRANT, REFRESH_GRANT],
        redirect_uris=None,
        issuer_url=None,
    )
    client_id = registration.client.id
    scopes = ["sso:account:access"]
    with db.read() as conn:
        names = {r[0]: r[1] for r in conn.execute(select(permission_sets.c.name_key, permission_sets.c.name))}

    def new_session(conn: Any, user_id: str) -> Any:
        session, _ = sessions.create(
            conn,
            user_id=user_id,
            kind="cli",
            lifetime_seconds=SESSION_SECONDS,
            client_id=client_id,
            source_ip="127.0.0.1",
            user_agent="keyhall-bench",
        )
        return session

    def tokens_for(conn: Any, session: Any) -> Any:
        return issue_tokens(
            conn,
            clock,
            session_id=session.id,
            user_id=session.user_id,
            client_id=client_id,
            scopes=scopes,
            session_expires_at=session.expires_at,
        )

    entitled = [u for u in org.user_ids if org.reach_of(u)]
    grc_lines: list[tuple[str, str, str]] = []
    with db.write() as conn:
        for user_id in rng.sample(entitled, min(shape.grc_users, len(entitled))):
            access = tokens_for(conn, new_session(conn, user_id)).access_token
            reach = sorted(org.reach_of(user_id))
            for account_id, ps_key in rng.sample(reach, min(shape.grc_pairs_per_user, len(reach))):
                grc_lines.append((access, account_id, names[ps_key]))
    rng.shuffle(grc_lines)
    seconds["grc_tokens"] = time.perf_counter() - started

    started = time.perf_counter()
    refresh: list[str] = []
    per_session = max(1, math.ceil(shape.refresh_tokens / shape.refresh_sessions))
    users = rng.sample(org.user_ids, min(shape.refresh_sessions, len(org.user_ids)))
    batch = 2000  # tokens per transaction
    while len(refresh) < shape.refresh_tokens:
        with db.write() as conn:
            goal = min(shape.refresh_tokens, len(refresh) + batch)
            while len(refresh) < goal:
                session = new_session(conn, users[(len(refresh) // per_session) % len(users)])
                for _ in range(min(per_session, goal - len(refresh))):
                    refresh.append(tokens_for(conn, session).refresh_token)
    rng.shuffle(refresh)
    seconds["refresh_tokens"] = time.perf_counter() - started
    return Minted(client_id, registration.client_secret, grc_lines, refresh, seconds)


def prepare(instance: Instance, shape: OrgShape, mint_shape: MintShape, seed: int) -> tuple[Org, Minted]:
    """`keyhall init`, the org through the services, tokens; run in a worker process for one database."""
    started = time.perf_counter()
    init_instance(instance)
    container = _container(instance)
    try:
        # one row in the prototype bench_tokens table (it cannot insert none): the real tables serve here
        org = seed_org(container, replace(shape, tokens=1), random.Random(seed))
        if (
            instance.kind == "postgresql"
        ):  # as autovacuum would after a bulk load; Keyhall never ANALYZEs SQLite
            with container.db.write() as conn:
                conn.execute(text("ANALYZE"))
        minted = mint(container, org, mint_shape, random.Random(seed + 1))
    finally:
        container.db.dispose()
    minted.seconds["seed"] = org.seconds.get("assignments", 0.0) + org.seconds.get("directory", 0.0)
    minted.seconds["total"] = time.perf_counter() - started
    return org, minted


@contextmanager
def instances(*, postgres: bool) -> Iterator[dict[str, Instance]]:
    """A temporary data directory per database; PostgreSQL in a throwaway cluster (fsync on)."""
    with ExitStack() as stack:
        found: dict[str, Instance] = {}
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="keyhall-bench-portal-")))
        sqlite_dir = tmp / "sqlite"
        found["sqlite"] = Instance("sqlite", sqlite_dir, f"sqlite:///{sqlite_dir / 'keyhall.db'}")
        if postgres:
            try:
                url = stack.enter_context(throwaway_cluster())
                found["postgresql"] = Instance("postgresql", tmp / "postgresql", url)
            except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                print(f"  PostgreSQL skipped: {exc}", flush=True)
        yield found


class PortalSetup:
    """The instances, prepared in worker processes (one per database) from the moment this is made, so
    bench.run can let them seed while another stage seeds too; ``result()`` waits for them."""

    def __init__(
        self, stack: ExitStack, *, postgres: bool, shape: OrgShape, mint_shape: MintShape, seed: int
    ) -> None:
        self.instances = stack.enter_context(instances(postgres=postgres))
        pool = stack.enter_context(  # entered after the instances: shut down before they are removed
            ProcessPoolExecutor(
                max_workers=len(self.instances), mp_context=multiprocessing.get_context("spawn")
            )
        )
        print(f"portal: init + seed + tokens for {', '.join(self.instances)} (in the background) ...")
        self._started = time.perf_counter()
        self._futures: dict[str, Future[tuple[Org, Minted]]] = {
            kind: pool.submit(prepare, instance, shape, mint_shape, seed)
            for kind, instance in self.instances.items()
        }
        self._done: dict[str, tuple[Org, Minted]] | None = None
        self.seconds = 0.0

    def result(self) -> dict[str, tuple[Org, Minted]]:
        if self._done is None:
            self._done = {kind: future.result() for kind, future in self._futures.items()}
            self.seconds = time.perf_counter() - self._started
            print(f"  portal setup ready after {self.seconds:.0f} s", flush=True)
        return self._done


# ---- load ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalServer(ServerConfig):
    """`keyhall serve` on a given database (the colleague's ServerConfig assumes the SQLite default)."""

    database_url: str = ""

    def env(self, data_dir: Path, port: int) -> dict[str, str]:
        env = {k: v for k, v in super().env(data_dir, port).items() if k not in ("KEYHALL_ACCESS_LOG",)}
        env["KEYHALL_DATABASE_URL"] = self.database_url
        env.pop("KEYHALL_WORKERS", None)
        return env


def _request(
    port: int, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def grc_path(account_id: str, role_name: str) -> str:
    return f"/federation/credentials?role_name={role_name}&account_id={account_id}"


def refresh_body(minted: Minted, token: str) -> bytes:
    return json.dumps(
        {
            "clientId": minted.client_id,
            "clientSecret": minted.client_secret,
            "grantType": "refresh_token",
            "refreshToken": token,
        }
    ).encode()


def verify(port: int, minted: Minted, probe_refresh: list[str], rng: random.Random) -> None:
    """A sample of the lines wrk will send must answer 200 (and with credentials) before any load."""
    for token, account_id, role_name in rng.sample(minted.grc_lines, min(20, len(minted.grc_lines))):
        status, body = _request(port, "GET", grc_path(account_id, role_name), headers={TOKEN_HEADER: token})
        if status != 200 or "roleCredentials" not in json.loads(body):
            raise RuntimeError(f"GetRoleCredentials probe answered {status}: {body[:300]!r}")
    for token in probe_refresh:
        status, body = _request(
            port,
            "POST",
            "/token",
            headers={"Content-Type": "application/json"},
            body=refresh_body(minted, token),
        )
        if status != 200 or "accessToken" not in json.loads(body):
            raise RuntimeError(f"CreateToken (refresh) probe answered {status}: {body[:300]!r}")


def server_pids(port: int) -> list[int]:
    """The `keyhall serve --port PORT` process and its workers (forked, so they share its command line)."""
    pids = []
    needle = b"serve\0"
    port_arg = f"--port\0{port}\0".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and port_arg in cmdline:
            pids.append(int(entry.name))
    return pids


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, …]; field N of stat(5) is index N - 3."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of these processes so far (their threads included)."""
    ticks = os.sysconf("SC_CLK_TCK")
    return {pid: (int(f[11]) + int(f[12])) / ticks for pid in pids if (f := _stat(pid)) is not None}


def postgres_pids(url: str) -> list[int]:
    """The throwaway cluster's postmaster (found by its port) and every backend it has forked now."""
    port = urlsplit(url).port
    if port is None:
        return []
    port_arg = f"-p\0{port}\0".encode()
    master = None
    procs = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    for pid in procs:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"postgres" in cmdline and port_arg in cmdline:
            master = pid
            break
    if master is None:
        return []
    return [master] + [pid for pid in procs if (f := _stat(pid)) is not None and int(f[1]) == master]


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two snapshots; a process that appeared in between counts from zero."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idle and I/O wait so far (the first line of /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


_BENCH_LINE = re.compile(r"^KEYHALL_BENCH statuses=(\S*) exhausted=(\d+) first_bad=(.*)$", re.MULTILINE)


def run_wrk(
    wrk: str, port: int, path: str, script_args: list[str], *, seconds: int, database_url: str = ""
) -> dict[str, Any]:
    """One wrk run with bench/portal.lua; wrk's own figures plus the status counts of every response."""
    url = f"http://{HOST}:{port}{path}"
    argv = [
        wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s", "--latency",
        "-s", str(LUA), url, "--", *script_args,
    ]  # fmt: skip
    pids = server_pids(port)
    database = database_url.startswith("postgresql")
    server_before, wrk_before, busy_before = cpu_seconds(pids), _children_cpu(), machine_busy_seconds()
    db_before = cpu_seconds(postgres_pids(database_url)) if database else {}
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    elapsed = time.perf_counter() - started
    server_cpu = _spent(server_before, cpu_seconds(pids))
    wrk_cpu = _children_cpu() - wrk_before
    db_cpu = _spent(db_before, cpu_seconds(postgres_pids(database_url))) if database else 0.0
    busy = machine_busy_seconds() - busy_before
    result = parse_wrk(done.stdout)
    if result["requests"]:
        # where the cores went: the server (all its processes), PostgreSQL, wrk, anything else
        result["server_cpu_us_per_request"] = round(server_cpu / result["requests"] * 1e6, 1)
        result["server_cores"] = round(server_cpu / elapsed, 2)
        if database:
            result["database_cpu_us_per_request"] = round(db_cpu / result["requests"] * 1e6, 1)
            result["database_cores"] = round(db_cpu / elapsed, 2)
        result["wrk_cores"] = round(wrk_cpu / elapsed, 2)
        result["other_cores"] = round(max(0.0, busy - server_cpu - db_cpu - wrk_cpu) / elapsed, 2)
    found = _BENCH_LINE.search(done.stdout)
    if found is None:
        raise RuntimeError(f"bench/portal.lua printed no summary:\n{done.stdout}\n{done.stderr}")
    statuses = {
        int(float(k)): int(float(v)) for k, v in (p.split(":") for p in found.group(1).split(",") if p)
    }
    result["statuses"] = {str(k): v for k, v in sorted(statuses.items())}
    result["non_200"] = sum(n for status, n in statuses.items() if status != 200)
    result["ok_per_s"] = round(statuses.get(200, 0) * result["req_per_s"] / max(1, result["requests"]), 1)
    result["exhausted"] = int(found.group(2))
    if found.group(3):
        result["first_non_200"] = found.group(3)[:300]
    if done.stderr.strip():
        result["wrk_stderr"] = done.stderr.strip()[-300:]
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


@dataclass
class RefreshPool:
    """Hands out disjoint slices of the minted refresh tokens: each token is sent once in the whole run."""

    tokens: list[str]
    used: int = 0

    def take(self, n: int) -> list[str]:
        n = min(n, len(self.tokens) - self.used)
        slice_ = self.tokens[self.used : self.used + n]
        self.used += n
        return slice_

    @property
    def left(self) -> int:
        return len(self.tokens) - self.used


def measure_workers(
    wrk: str,
    instance: Instance,
    minted: Minted,
    pool: RefreshPool,
    workers: int,
    *,
    seconds: int,
    warmup_seconds: int,
    refresh_budget: int,
    files: Path,
    rng: random.Random,
) -> dict[str, Any]:
    """healthz, GetRoleCredentials and CreateToken on one `keyhall serve --workers N`."""
    config = PortalServer(
        name=f"keyhall serve w{workers}",
        server="granian",
        workers=workers,
        loop="asyncio",
        log_level="info",  # the default; the access log is off unless --access-log
        database_url=instance.url,
    )
    grc_file = _write_lines(files / "grc.tsv", ["\t".join(line) for line in minted.grc_lines])
    rows: dict[str, Any] = {}
    with running(config, instance.data_dir) as port:
        verify(port, minted, pool.take(3), rng)
        rows["probes"] = {"get_role_credentials": min(20, len(minted.grc_lines)), "create_token_refresh": 3}
        plan: list[tuple[str, str, list[str]]] = [
            ("healthz", "/healthz", ["plain", str(THREADS)]),
            ("get_role_credentials", "/federation/credentials", ["grc", str(THREADS), str(grc_file)]),
        ]
        for name, path, args in plan:
            print(f"  portal / {instance.kind} / w{workers} / {name}", flush=True)
            try:
                warm_run = run_wrk(wrk, port, path, args, seconds=warmup_seconds)
                rows[name] = run_wrk(wrk, port, path, args, seconds=seconds, database_url=instance.url)
                rows[name]["warmup_200s"] = warm_run["statuses"].get("200", 0)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print(f"    failed: {exc}", flush=True)
                rows[name] = {"error": str(exc)[-500:]}
        print(f"  portal / {instance.kind} / w{workers} / create_token_refresh", flush=True)
        try:
            # the warm-up gets a share by its length (and some); a warm-up that runs out only stops early
            warm_count = refresh_budget * (warmup_seconds + 1) // (seconds + warmup_seconds + 1)
            warm = _write_lines(files / f"refresh-w{workers}-warmup.txt", pool.take(warm_count))
            measured_tokens = pool.take(refresh_budget - warm_count)
            measured = _write_lines(files / f"refresh-w{workers}.txt", measured_tokens)
            extra = [minted.client_id, minted.client_secret]
            run_wrk(wrk, port, "/token", ["refresh", str(THREADS), str(warm), *extra], seconds=warmup_seconds)
            result = run_wrk(
                wrk,
                port,
                "/token",
                ["refresh", str(THREADS), str(measured), *extra],
                seconds=seconds,
                database_url=instance.url,
            )
            result["tokens_available"] = len(measured_tokens)
            rows["create_token_refresh"] = result
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"    failed: {exc}", flush=True)
            rows["create_token_refresh"] = {"error": str(exc)[-500:]}
    base = rows.get("healthz", {}).get("req_per_s")
    for name in ("get_role_credentials", "create_token_refresh"):
        row = rows[name]
        if base and "req_per_s" in row:
            row["ratio_to_healthz"] = round(row["req_per_s"] / base, 3)
        problems = []
        if row.get("non_200"):
            problems.append(f"{row['non_200']} non-200 responses ({row.get('first_non_200', '')})")
        if row.get("exhausted"):
            problems.append("ran out of refresh tokens: the rate is a floor")
        if row.get("socket_errors"):
            problems.append(f"{row['socket_errors']} socket errors")
        if problems:
            row["problems"] = problems
            print(f"    !!! {instance.kind} w{workers} {name}: {'; '.join(problems)}", flush=True)
    return rows


def grc_parts(
    instance: Instance, minted: Minted, *, rounds: int = 2000, max_seconds: float = 1.0
) -> dict[str, float]:
    """Mean µs of GetRoleCredentials and of its steps, in-process on the same instance (no HTTP).

    ``get_role_credentials_grouped``: ``PortalService.get_role_credentials_async`` as the HTTP API runs
    it, GROUP calls per event-loop turn, per call. ``get_role_credentials``: the synchronous form, whose
    audit record gets a transaction of its own. Then the steps: the token and entitlement reads on the
    reader connection; minting (``LocalPortalIssuer.issue``); building the audit record; and writing it, in
    a transaction of its own or as one of GROUP records in a group commit (per record).
    """
    from keyhall.access import hot_path
    from keyhall.access.portal import IssueRequest
    from keyhall.audit.events import Actor, AuditEvent
    from keyhall.container import Container
    from keyhall.credentials.portal_issuer import LocalPortalIssuer
    from keyhall.directory.models import name_key
    from keyhall.keys import load_master_key
    from keyhall.settings import Settings

    settings = Settings(data_dir=instance.data_dir, database_url=instance.url)
    container = Container.build(settings, master_key=load_master_key(settings))
    portal, fast, clock = container.portal, container.db.fast, container.clock
    lines = minted.grc_lines
    actor = Actor(type="Anonymous", source_ip="127.0.0.1", user_agent="keyhall-bench", request_id="0" * 32)
    loop = asyncio.new_event_loop()

    def full(i: int) -> None:
        token, account_id, role = lines[i % len(lines)]
        portal.get_role_credentials(actor, token, account_id, role)

    async def turn(first: int) -> None:
        await asyncio.gather(
            *(
                portal.get_role_credentials_async(actor, *lines[(first + k) % len(lines)])
                for k in range(GROUP)
            )
        )

    def grouped(i: int) -> None:
        if i % GROUP == 0:
            loop.run_until_complete(turn(i))

    def reads(i: int) -> None:
        token, account_id, role = lines[i % len(lines)]

        def lookup(cursor: Any) -> None:
            owner = hot_path.token_owner(cursor, fast.is_sqlite, token, clock.timestamp())
            assert owner is not None
            entitled = hot_path.entitlement(cursor, fast.is_sqlite, owner.user_id, account_id, name_key(role))
            assert entitled is not None

        fast.run_read(lookup)

    def record(_i: int) -> hot_path.AuditRecord:
        event = AuditEvent(
            "sso.amazonaws.com",
            "GetRoleCredentials",
            resource_type="Account",
            resource_id="100000000001",
            request_parameters={"accountId": "100000000001", "roleName": "Role01"},
            response_elements={"accessKeyId": "ASIA" + "A" * 16, "expiration": clock.timestamp() + 3600},
            additional_data={"SessionId": "0" * 36, "PermissionSetId": "ps-" + "0" * 16},
        )
        return hot_path.audit_record(actor, event, clock.timestamp())

    def write_one(i: int) -> None:
        with fast.write() as cursor:
            hot_path.insert_audit(cursor, fast.is_sqlite, [record(i)])

    def write_grouped(i: int) -> None:
        if i % GROUP == 0:
            rows = {hot_path.AUDIT.text(fast.is_sqlite): [record(i) for _ in range(GROUP)]}
            while not fast.try_write_rows(rows):
                time.sleep(0.0005)

    assert container.local_sts is not None
    issuer = LocalPortalIssuer(container.local_sts)  # what the container hands the portal for local accounts
    request = IssueRequest(
        instance_id="0" * 36, account_id="100000000001", permission_set_id="ps-" + "0" * 16,
        permission_set_name="Role01", user_id="0" * 36, user_name="user0001", session_id="0" * 36,
        duration_seconds=3600,
    )  # fmt: skip

    steps: dict[str, Callable[[int], object]] = {
        "get_role_credentials_grouped": grouped,
        "get_role_credentials": full,
        "reads": reads,
        "mint_credentials": lambda _i: issuer.issue(request, now=clock.timestamp()),
        "audit_record": record,
        "audit_write_own_transaction": write_one,
        "audit_write_grouped": write_grouped,
    }
    parts: dict[str, float] = {"group": GROUP}
    try:
        for name, step in steps.items():
            for i in range(100):
                step(i)
            started = time.perf_counter()
            deadline = started + max_seconds
            done = 0
            while done < rounds and (done % GROUP or time.perf_counter() < deadline):
                step(done)
                done += 1
            parts[name] = round((time.perf_counter() - started) / done * 1e6, 1)
    finally:
        loop.close()
        container.db.dispose()
    return parts


def _facts(instance: Instance) -> dict[str, Any]:
    import sqlite3

    if instance.kind == "sqlite":
        return {
            "kind": "sqlite",
            "sqlite": sqlite3.sqlite_version,
            "journal_mode": "wal",
            "synchronous": "NORMAL",
        }
    container = _container(instance)
    try:
        with container.db.read() as conn:
            return {
                "kind": "postgresql",
                "server": conn.exec_driver_sql("SHOW server_version").scalar(),
                "fsync": conn.exec_driver_sql("SHOW fsync").scalar(),
                "synchronous_commit": conn.exec_driver_sql("SHOW synchronous_commit").scalar(),
            }
    finally:
        container.db.dispose()


def _audit_rows(instance: Instance) -> int:
    container = _container(instance)
    try:
        with container.db.read() as conn:
            return int(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM audit_events WHERE event_name = 'GetRoleCredentials'"
                ).scalar()
                or 0
            )
    finally:
        container.db.dispose()


def run_portal(
    *, wrk: str, setup: PortalSetup, seed: int, seconds: int, warmup_seconds: int
) -> dict[str, Any]:
    databases: dict[str, Any] = {}
    prepared = setup.result()
    load_before = os.getloadavg()
    for kind, instance in setup.instances.items():
        org, minted = prepared[kind]
        pool = RefreshPool(list(minted.refresh_tokens))
        # each worker count gets an equal share of what is left after the probes (3 per server)
        budget = (pool.left - 3 * len(WORKERS)) // len(WORKERS)
        rows: dict[str, Any] = {}
        audit_before = _audit_rows(instance)
        with tempfile.TemporaryDirectory(prefix="keyhall-bench-wrk-") as files:
            for workers in WORKERS:
                try:
                    rows[f"w{workers}"] = measure_workers(
                        wrk,
                        instance,
                        minted,
                        pool,
                        workers,
                        seconds=seconds,
                        warmup_seconds=warmup_seconds,
                        refresh_budget=budget,
                        files=Path(files),
                        rng=random.Random(seed),
                    )
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # keep the other runs
                    print(f"    !!! {kind} w{workers} failed: {exc}", flush=True)
                    rows[f"w{workers}"] = {"error": str(exc)[-500:]}
        databases[kind] = {
            "database": _facts(instance),
            "org": {k: v for k, v in org.counts.items() if k != "tokens"},
            "grc_users": len({line[0] for line in minted.grc_lines}),
            "grc_lines": len(minted.grc_lines),
            "refresh_tokens_minted": len(minted.refresh_tokens),
            "setup_seconds": {k: round(v, 1) for k, v in minted.seconds.items()},
            "grc_audit_records_written": _audit_rows(instance) - audit_before,
            "grc_answered": sum(
                r["probes"]["get_role_credentials"]
                + r["get_role_credentials"].get("warmup_200s", 0)
                + int(r["get_role_credentials"].get("statuses", {}).get("200", 0))
                for r in rows.values()
                if "probes" in r
            ),
            "workers": rows,
            "grc_parts_us": grc_parts(instance, minted),
        }
    return {
        "load_generator": f"wrk -t{THREADS} -c{CONNECTIONS} -d{seconds}s --latency -s bench/portal.lua "
        f"(after {warmup_seconds} s of warm-up)",
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "connections": CONNECTIONS,
        "targets": {"grc_per_s": TARGET_GRC_PER_S, "grc_p99_ms": TARGET_GRC_P99_MS},
        "setup_seconds": round(setup.seconds, 1),
        "load_average_before": load_before,
        "databases": databases,
    }
