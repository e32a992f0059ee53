"""`keyhall aws import`: accounts and OU paths from AWS Organizations (moto's server on loopback), on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from keyhall.access.models import AccountSpec
from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.db.tables import audit_events
from keyhall.federation.orgs import ImportProgress, import_organization
from keyhall.instance import create_instance

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class Org:
    """An organisation of its own per test: a fresh management account (moto lets anyone assume any role,
    and the credentials act in that role's account), so tests never need moto's reset."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.management = f"{secrets.randbelow(9 * 10**11) + 10**11:012d}"
        creds = boto3.client(
            "sts",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).assume_role(RoleArn=f"arn:aws:iam::{self.management}:role/Operator", RoleSessionName="operator")[
            "Credentials"
        ]
        self.credentials = {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }
        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=REGION,
        )
        self.client: Any = session.client("organizations", endpoint_url=endpoint)  # type: ignore[call-overload]
        self.client.create_organization(FeatureSet="ALL")
        self.root = self.client.list_roots()["Roots"][0]["Id"]

    def ou(self, name: str, parent: str | None = None) -> str:
        created = self.client.create_organizational_unit(ParentId=parent or self.root, Name=name)
        return str(created["OrganizationalUnit"]["Id"])

    def account(self, name: str, parent: str | None = None) -> str:
        account_id = str(
            self.client.create_account(Email=f"{name.lower()}@example.com", AccountName=name)[
                "CreateAccountStatus"
            ]["AccountId"]
        )
        if parent is not None:
            self.client.move_account(
                AccountId=account_id, SourceParentId=self.root, DestinationParentId=parent
            )
        return account_id


@pytest.fixture
def org(moto_endpoint: str) -> Org:
    return Org(moto_endpoint)


@pytest.fixture
def instance(container: Container, actor: Actor) -> None:
    with container.db.write() as conn:
        create_instance(conn, actor, container.audit, container.clock, "Test")


def audit_count(container: Container) -> int:
    with container.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())


def accounts_by_id(container: Container) -> dict[str, Any]:
    with container.db.read() as conn:
        return {a.id: a for a in container.access.all_accounts(conn)}


@pytest.mark.usefixtures("instance")
def test_import_creates_accounts_with_ou_paths_and_is_idempotent(
    container: Container, actor: Actor, org: Org
) -> None:
    workloads = org.ou("Workloads")
    prod_ou = org.ou("Prod", workloads)
    dev_ou = org.ou("Dev", workloads)
    org.ou("Empty")
    prod = org.account("Payments", prod_ou)
    dev = org.account("Sandbox", dev_ou)
    shared = org.account("Shared", workloads)

    events: list[ImportProgress] = []
    summary = import_organization(container, actor, org.client, on_progress=events.append)
    assert summary.organizational_units == 4
    assert (summary.count("created"), summary.count("updated"), summary.count("unchanged")) == (4, 0, 0)
    found = accounts_by_id(container)
    assert {a: (found[a].name, found[a].ou_path, found[a].kind, found[a].status) for a in found} == {
        org.management: ("master", "/Root", "aws", "ACTIVE"),
        prod: ("Payments", "/Root/Workloads/Prod", "aws", "ACTIVE"),
        dev: ("Sandbox", "/Root/Workloads/Dev", "aws", "ACTIVE"),
        shared: ("Shared", "/Root/Workloads", "aws", "ACTIVE"),
    }
    assert found[prod].email == "payments@example.com"
    assert not found[prod].managed
    assert [e.done for e in events if e.phase == "import"] == [1, 2, 3, 4]
    assert events[-1].total == 4

    # a second import changes nothing, not even the audit log
    before = audit_count(container)
    again = import_organization(container, actor, org.client)
    assert (again.count("created"), again.count("updated"), again.count("unchanged")) == (0, 0, 4)
    assert audit_count(container) == before
    assert accounts_by_id(container) == found


@pytest.mark.usefixtures("instance")
def test_import_follows_moves_and_never_reactivates(container: Container, actor: Actor, org: Org) -> None:
    team = org.ou("Team")
    moved = org.account("Mover")
    closed = org.account("Closing")
    paused = org.account("Paused")
    import_organization(container, actor, org.client)
    org.client.move_account(AccountId=moved, SourceParentId=org.root, DestinationParentId=team)
    org.client.close_account(AccountId=closed)
    with container.db.write() as conn:  # an administrator cuts off access in Keyhall
        container.access.update_account(
            conn,
            actor,
            paused,
            AccountSpec(
                "Paused", "paused@example.com", id=paused, kind="aws", status="SUSPENDED", ou_path="/Root"
            ),
        )
        container.access.update_account(
            conn,
            actor,
            closed,
            AccountSpec(
                "Closing", "closing@example.com", id=closed, kind="aws", ou_path="/Root", tags={"team": "x"}
            ),
        )

    summary = import_organization(container, actor, org.client)
    items = {i.account_id: i for i in summary.items}
    assert (items[moved].outcome, items[moved].changed) == ("updated", ("ou_path",))
    assert (items[closed].outcome, items[closed].changed) == ("updated", ("status",))
    assert items[paused].outcome == "unchanged"
    found = accounts_by_id(container)
    assert found[moved].ou_path == "/Root/Team"
    assert found[closed].status == "SUSPENDED"
    assert found[closed].tags == {"team": "x"}  # Keyhall's own fields stay
    assert found[paused].status == "SUSPENDED"


@pytest.mark.usefixtures("instance")
def test_import_reports_what_it_leaves_alone(container: Container, actor: Actor, org: Org) -> None:
    declared = org.account("Declared")
    local = org.account("LocalTwin")
    clash = org.account("Clash")
    with container.db.write() as conn:
        container.access.create_account(
            conn, actor, AccountSpec("Declared", "old@example.com", id=declared, kind="aws"), managed=True
        )
        container.access.create_account(conn, actor, AccountSpec("Twin", "twin@example.com", id=local))
        container.access.create_account(conn, actor, AccountSpec("clash", "other@example.com"))
        container.access.create_account(
            conn, actor, AccountSpec("Gone", "gone@example.com", id="999988887777", kind="aws")
        )
    summary = import_organization(container, actor, org.client)
    items = {i.account_id: i for i in summary.items}
    assert items[declared].outcome == "skipped"
    assert "keyhall apply" in (items[declared].message or "")
    assert items[local].outcome == "conflict"
    assert "--kind aws" in (items[local].message or "")
    assert items[clash].outcome == "conflict"
    assert "already exists" in (items[clash].message or "")
    assert summary.not_in_organization == ["999988887777"]
    found = accounts_by_id(container)
    assert found[declared].email == "old@example.com"
    assert found[local].kind == "local"
    assert clash not in found


@pytest.mark.usefixtures("instance")
def test_import_pages_through_large_parents(container: Container, actor: Actor, org: Org) -> None:
    big = org.ou("Big")
    ids = {org.account(f"Acct{i:02d}", big) for i in range(23)}  # more than one page of 20
    for i in range(21):
        org.ou(f"Unit{i:02d}", big)
    summary = import_organization(container, actor, org.client)
    assert summary.organizational_units == 22
    found = accounts_by_id(container)
    assert ids <= set(found)
    assert {found[i].ou_path for i in ids} == {"/Root/Big"}


# ---- the command line --------------------------------------------------------------------------------


def aws_cli_app() -> Any:
    import typer

    from keyhall.cli import aws_cmd, main

    try:
        if not any(g.name == "users" for g in main.app.registered_groups):
            main._register()
    except ImportError:  # another command module is being written; `aws` alone will do
        pass
    if any(g.name == "aws" for g in main.app.registered_groups):
        return main.app
    app = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode=None)
    app.callback()(main._root)
    app.add_typer(aws_cmd.app, name="aws")
    return app


@pytest.mark.usefixtures("instance")
def test_cli_import(container: Container, actor: Actor, org: Org) -> None:
    prod_ou = org.ou("Prod")
    prod = org.account("Payments", prod_ou)
    runner = CliRunner(
        env={
            "COLUMNS": "250",
            "KEYHALL_DATA_DIR": None,
            "KEYHALL_DATABASE_URL": None,
            "AWS_ENDPOINT_URL": org.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_PROFILE": None,
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            **org.credentials,
        }
    )

    def run(*args: str, code: int = 0) -> Result:
        from keyhall.cli.context import CliState

        cli_state = CliState()
        try:
            result = runner.invoke(
                aws_cli_app(), ["--database-url", container.db.url, "aws", *args], obj=cli_state
            )
        finally:
            cli_state.close()
        assert result.exit_code == code, f"{result.stdout}\n{result.stderr}\n{result.exception!r}"
        return result

    first = run("import")
    assert f"Created Payments ({prod})" in first.stdout
    assert "2 accounts in 1 OUs: 2 created, 0 updated, 0 unchanged, 0 skipped, 0 conflicts." in first.stdout
    second = json.loads(run("import", "--json").stdout)
    assert (second["created"], second["unchanged"], second["conflict"]) == (0, 2, 0)
    assert {i["account_id"]: i["outcome"] for i in second["items"]} == {
        prod: "unchanged",
        org.management: "unchanged",
    }

    # a clash is reported and makes the exit code 1, the rest is imported
    clash = org.account("Taken")
    with container.db.write() as conn:
        container.access.create_account(conn, actor, AccountSpec("taken", "t@example.com"))
    failed = run("import", code=1)
    assert f"Conflict Taken ({clash})" in failed.stderr
