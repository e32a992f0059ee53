"""GetRoleCredentials' write path on both databases: group commit, its failure, the reader connection, the
SQLite write queue and the WAL checkpoint."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from dbs import DATABASES
from keyhall.access.models import AccountSpec, PermissionSetSpec
from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.db import wal
from keyhall.db.fast import WriteQueue
from keyhall.db.tables import audit_events
from keyhall.directory.models import UserSpec
from keyhall.errors import ServiceUnavailableError
from keyhall.instance import create_instance
from loops import loop_thread, run_async
from minting import cli_access_token

ONLY_POSTGRESQL = [d for d in DATABASES if d == "postgresql"]
ONLY_SQLITE = [d for d in DATABASES if d == "sqlite"]
CALLER = Actor(type="Anonymous", source_ip="192.0.2.7", user_agent="botocore/1.43", request_id="r-7")
ACCOUNT = "222222222222"


@pytest.fixture
def token(container: Container, actor: Actor) -> str:
    c = container
    with c.db.write() as conn:
        create_instance(conn, actor, c.audit, c.clock, "Test")
        account = c.access.create_account(conn, actor, AccountSpec("Prod", "prod@example.com", id=ACCOUNT))
        role = c.access.create_permission_set(conn, actor, PermissionSetSpec("ReadOnly"))
        alice = c.directory.create_user(conn, actor, UserSpec("alice"))
        c.access.create_assignment(conn, actor, account.id, role.id, "USER", alice.id)
        return cli_access_token(c, conn, alice.id, lifetime=3600)[0]


def _grc_records(container: Container) -> list[str]:
    with container.db.read() as conn:
        rows = conn.execute(
            select(audit_events.c.response_elements).where(audit_events.c.event_name == "GetRoleCredentials")
        )
        return [r.response_elements["accessKeyId"] for r in rows]


def test_concurrent_requests_are_each_audited_once(container: Container, token: str) -> None:
    async def many() -> list[str]:
        issued = await asyncio.gather(
            *(
                container.portal.get_role_credentials_async(CALLER, token, ACCOUNT, "ReadOnly")
                for _ in range(40)
            )
        )
        return [c.access_key_id for c in issued]

    keys = run_async(many)
    assert len(set(keys)) == 40
    assert sorted(_grc_records(container)) == sorted(keys)


def test_no_credentials_leave_when_their_audit_record_cannot_be_written(
    container: Container, token: str
) -> None:
    with container.db.write() as conn:  # the audit store refuses every new record
        if container.db.is_sqlite:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events"
                    " BEGIN SELECT RAISE(ABORT, 'audit store refuses'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS"
                    " $$ BEGIN RAISE EXCEPTION 'audit store refuses'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events"
                    " FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
                )
            )

    async def many() -> list[object]:
        return await asyncio.gather(
            *(
                container.portal.get_role_credentials_async(CALLER, token, ACCOUNT, "ReadOnly")
                for _ in range(5)
            ),
            return_exceptions=True,
        )

    outcomes = run_async(many)
    assert all(isinstance(o, ServiceUnavailableError) for o in outcomes), outcomes
    with pytest.raises(Exception, match="audit store refuses"):  # the one-transaction path refuses too
        container.portal.get_role_credentials(CALLER, token, ACCOUNT, "ReadOnly")
    assert _grc_records(container) == []
    with container.db.write() as conn:
        conn.execute(
            text("DROP TRIGGER refuse_audit" + ("" if container.db.is_sqlite else " ON audit_events"))
        )
    assert run_async(lambda: container.portal.get_role_credentials_async(CALLER, token, ACCOUNT, "ReadOnly"))
    assert len(_grc_records(container)) == 1


@pytest.mark.parametrize("database_url", ONLY_POSTGRESQL, indirect=True)  # SQLite has no server to drop it
def test_the_reader_connection_comes_back_after_the_database_drops_it(
    container: Container, token: str
) -> None:
    portal = container.portal
    with loop_thread() as run:

        def on_the_loop() -> object:
            return run(lambda: portal.get_role_credentials_async(CALLER, token, ACCOUNT, "ReadOnly"))

        assert on_the_loop()
        with container.db.write() as conn:  # what a server restart or an idle timeout does to it
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
        assert ended
        # the pool checks a connection before lending it, so the synchronous path never notices
        assert portal.get_role_credentials(CALLER, token, ACCOUNT, "ReadOnly")
        # the loop thread's own connection died too: it is replaced and the read run again, unnoticed
        assert on_the_loop()


def test_the_write_queue_is_shared_between_processes_and_reentrant(tmp_path: Path) -> None:
    path = str(tmp_path / "db.write-lock")
    mine, another_process = WriteQueue(path), WriteQueue(path)  # two open files: as two processes have
    try:
        with mine.held():
            with mine.held():  # re-entrant in one thread
                pass
            with another_process.try_held() as got:
                assert got is False  # the inner release did not let go of the file lock
        with another_process.try_held() as got:
            assert got is True
            with mine.try_held() as also:
                assert also is False
    finally:
        mine.close()
        another_process.close()


@pytest.mark.parametrize("database_url", ONLY_SQLITE, indirect=True)  # PostgreSQL checkpoints by itself
def test_a_checkpoint_lets_the_wal_start_over(
    container: Container, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = container.db.engine.url.database
    assert path and container.db.fast.queue is not None
    monkeypatch.setattr(wal, "RESTART_FRAMES", 1)
    checkpointer = wal.WalCheckpointer(path, container.db.fast.queue)
    for _ in range(20):
        container.portal.get_role_credentials(CALLER, token, ACCOUNT, "ReadOnly")
    probe = sqlite3.connect(path)
    try:
        before = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        assert checkpointer.checkpoint(probe) == 0
        container.portal.get_role_credentials(CALLER, token, ACCOUNT, "ReadOnly")
        after = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    finally:
        probe.close()
    assert 0 < after < before  # the last write started the WAL over instead of appending to it
    with container.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(audit_events)).scalar_one() > 21
