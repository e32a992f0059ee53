"""`keyhall aws plan|apply|status` against moto's server on loopback (an Organization with member accounts),
on SQLite and PostgreSQL.

moto plays IAM, STS and Organizations (testing-recipes.md 3): member accounts are reached through the
OrganizationAccountAccessRole moto creates with each account; IAM policy enforcement stays off (moto attaches
no permissions to that role). What is checked is what IAM holds afterwards, read with boto3 as the member
account.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import moto.iam.models
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer
from sqlalchemy import select
from typer.testing import CliRunner, Result

from keyhall.access.models import AccountSpec, PermissionSetSpec
from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.crypto import master_key_to_text
from keyhall.db.tables import audit_events, provisioning_state
from keyhall.directory.models import UserSpec
from keyhall.federation import naming
from keyhall.federation.aws_clients import Boto3ClientFactory, ClientFactory, TemporaryCredentials
from keyhall.federation.provisioning import ApplyResult, Provisioner, ProvisioningPlan, provisioning_status
from keyhall.federation.settings import FederationSettings, save_federation_settings
from keyhall.instance import Instance, create_instance

REGION = "us-east-1"
ADMIN_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY_ARN = "arn:aws:iam::aws:policy/ReadOnlyAccess"
POWER_USER_ARN = "arn:aws:iam::aws:policy/PowerUserAccess"
INLINE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}],
}
CUSTOMER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}],
}
AUDIENCE = "https://signin.aws.amazon.com/saml"


# ---- moto on loopback ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with pytest.MonkeyPatch.context() as patch:
        # AWS managed policies (AdministratorAccess …) exist in moto's accounts only with this setting; and
        # only the few the tests attach are loaded: all ~1,400 cost seconds per account
        patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        every = json.loads(moto.iam.models.aws_managed_policies_data)
        used = {arn.rsplit("/", 1)[1] for arn in (ADMIN_ARN, READ_ONLY_ARN, POWER_USER_ARN)}
        patch.setattr(moto.iam.models, "aws_managed_policies_data", json.dumps({k: every[k] for k in used}))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


class Aws:
    """The test's own view of AWS, as an operator sees it: a management account with an organisation, and
    member accounts through OrganizationAccountAccessRole.

    Every test gets a management account of its own (moto lets anyone assume any role, and the credentials
    act in that role's account), so no test needs moto's reset, which reloads every account's AWS managed
    policies and grows slower with each test.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.management = f"{secrets.randbelow(9 * 10**11) + 10**11:012d}"
        bootstrap = boto3.client(
            "sts",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        creds = bootstrap.assume_role(
            RoleArn=f"arn:aws:iam::{self.management}:role/Operator", RoleSessionName="operator"
        )["Credentials"]
        self.credentials = {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }
        self.session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=REGION,
        )
        self.client("organizations").create_organization(FeatureSet="ALL")

    def client(self, service: str, account: str | None = None) -> Any:
        if account is None or account == self.management:
            return self.session.client(service, endpoint_url=self.endpoint)  # type: ignore[call-overload]
        creds = self.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
            RoleSessionName="test-reader",
        )["Credentials"]
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    def factory(self) -> Boto3ClientFactory:
        return Boto3ClientFactory(session=self.session, endpoint_url=self.endpoint)

    def create_account(self, name: str) -> str:
        status = self.client("organizations").create_account(
            Email=f"{name.lower()}@example.com", AccountName=name
        )
        return str(status["CreateAccountStatus"]["AccountId"])

    def keyhall_roles(self, account: str) -> dict[str, dict[str, Any]]:
        """Every role on /keyhall/ in the account, read in full."""
        iam = self.client("iam", account)
        roles = {}
        for listed in iam.list_roles(PathPrefix=naming.ROLE_PATH)["Roles"]:
            name = listed["RoleName"]
            role = iam.get_role(RoleName=name)["Role"]
            role["Attached"] = sorted(
                p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
            )
            role["Inline"] = {
                p: iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
                for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
            }
            roles[name] = role
        return roles


@pytest.fixture
def aws(moto_endpoint: str) -> Aws:
    return Aws(moto_endpoint)


class FakeMetadata:
    """Stands in for Keyhall's published SAML metadata (keyhall.federation.saml_metadata_source); IAM needs at
    least 1000 characters, and moto stores the document as it is."""

    def __init__(self) -> None:
        self.certificate = "MIIC" + "A" * 1200

    def saml_metadata(self, conn: object) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://keyhall.test/saml/metadata">'
            '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
            f"<ds:X509Certificate>{self.certificate}</ds:X509Certificate>"
            "</ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
            '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
            'Location="https://keyhall.test/saml/metadata"/>'
            "</md:IDPSSODescriptor></md:EntityDescriptor>"
        )


# ---- Keyhall's side -----------------------------------------------------------------------------------


class World:
    """An instance with two member accounts of kind aws, a local account, and assignments."""

    def __init__(self, container: Container, actor: Actor, aws: Aws) -> None:
        self.container = container
        self.actor = actor
        self.aws = aws
        self.metadata = FakeMetadata()
        self.slept: list[float] = []
        with container.db.write() as conn:
            self.instance: Instance = create_instance(conn, actor, container.audit, container.clock, "Test")
        self.prod = aws.create_account("Prod")
        self.dev = aws.create_account("Dev")
        # the customer managed policies a permission set refers to must exist in the account (as with IdC)
        for account in (self.prod, self.dev):
            iam = aws.client("iam", account)
            for name in ("DataRead", "TeamBoundary"):
                iam.create_policy(PolicyName=name, Path="/team/", PolicyDocument=json.dumps(CUSTOMER_POLICY))
        access = container.access
        with container.db.write() as conn:
            for account_id, name in ((self.prod, "Prod"), (self.dev, "Dev")):
                access.create_account(
                    conn, actor, AccountSpec(name, f"{name.lower()}@example.com", id=account_id, kind="aws")
                )
            self.local = access.create_account(conn, actor, AccountSpec("Sandbox", "sandbox@example.com")).id
            self.admin = access.create_permission_set(
                conn,
                actor,
                PermissionSetSpec(
                    "Admin",
                    session_duration="PT8H",
                    managed_policy_arns=[ADMIN_ARN],
                    inline_policy=json.dumps(INLINE),
                ),
            )
            self.read_only = access.create_permission_set(
                conn,
                actor,
                PermissionSetSpec(
                    "ReadOnly",
                    managed_policy_arns=[READ_ONLY_ARN],
                    customer_managed_policies=[{"Name": "DataRead", "Path": "/team/"}],
                    permissions_boundary={
                        "CustomerManagedPolicyReference": {"Name": "TeamBoundary", "Path": "/team/"}
                    },
                ),
            )
            self.alice = container.directory.create_user(conn, actor, UserSpec("alice")).id
            self.ops = container.directory.create_group(conn, actor, "Ops").id

    def assign(self, account: str, ps_id: str, principal: tuple[str, str] | None = None) -> None:
        principal_type, principal_id = principal or ("USER", self.alice)
        with self.container.db.write() as conn:
            self.container.access.create_assignment(
                conn, self.actor, account, ps_id, principal_type, principal_id
            )

    def unassign(self, account: str, ps_id: str, principal: tuple[str, str] | None = None) -> None:
        principal_type, principal_id = principal or ("USER", self.alice)
        with self.container.db.write() as conn:
            self.container.access.delete_assignment(
                conn, self.actor, account, ps_id, principal_type, principal_id
            )

    def role_name(self, account: str, ps_id: str) -> str:
        name = self.admin.name if ps_id == self.admin.id else self.read_only.name
        return naming.role_name(name, self.instance.id, account, ps_id)

    def provisioner(self, clients: ClientFactory | None = None) -> Provisioner:
        return Provisioner(
            self.container,
            clients=clients or self.aws.factory(),
            metadata=self.metadata,
            sleep=self.slept.append,
        )

    def plan(self, **kwargs: Any) -> ProvisioningPlan:
        return self.provisioner().plan(**kwargs)

    def apply(self, clients: ClientFactory | None = None, **kwargs: Any) -> ApplyResult:
        return self.provisioner(clients).apply(self.actor, **kwargs)

    def state(self) -> dict[tuple[str, str], Any]:
        with self.container.db.read() as conn:
            return {(r.account_id, r.role_name): r for r in conn.execute(select(provisioning_state))}

    def audit_names(self) -> list[str]:
        with self.container.db.read() as conn:
            return list(
                conn.execute(select(audit_events.c.event_name).order_by(audit_events.c.seq)).scalars()
            )

    def configure(self, **changes: Any) -> None:
        with self.container.db.write() as conn:
            save_federation_settings(
                conn, self.actor, self.container.audit, self.container.clock, FederationSettings(**changes)
            )


@pytest.fixture
def world(container: Container, actor: Actor, aws: Aws) -> World:
    return World(container, actor, aws)


def changes_of(plan: ProvisioningPlan) -> list[tuple[str, str, str, str]]:
    return [(a.account_id, c.action, c.kind, c.name) for a in plan.accounts for c in a.changes]


def fields_of(plan: ProvisioningPlan, name: str) -> dict[str, list[tuple[Any, Any]]]:
    found: dict[str, list[tuple[Any, Any]]] = {}
    for change in plan.changes:
        if change.name == name:
            for f in change.fields:
                found.setdefault(f.field, []).append((f.old, f.new))
    return found


def expected_trust(account: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{account}:saml-provider/Keyhall"},
                "Action": ["sts:AssumeRoleWithSAML", "sts:SetSourceIdentity", "sts:TagSession"],
                "Condition": {"StringEquals": {"SAML:aud": AUDIENCE}},
            }
        ],
    }


# ---- provisioning creates exactly what it should --------------------------------------------------------


def test_apply_creates_exactly_the_provider_roles_and_policies(world: World) -> None:
    world.assign(world.prod, world.admin.id)
    world.assign(world.prod, world.read_only.id)
    world.assign(world.prod, world.read_only.id, ("GROUP", world.ops))  # the same role, not a second one
    world.assign(world.local, world.admin.id)  # a local account is Keyhall's own STS: nothing in AWS
    admin_role = world.role_name(world.prod, world.admin.id)
    ro_role = world.role_name(world.prod, world.read_only.id)

    plan = world.plan()
    assert changes_of(plan) == [
        (world.prod, "create", "provider", "Keyhall"),
        (world.prod, "create", "role", admin_role),
        (world.prod, "create", "role", ro_role),
    ]
    assert plan.summary == "Plan: 3 to create, 0 to update, 0 to delete."
    assert world.aws.keyhall_roles(world.prod) == {}  # plan changed nothing

    result = world.apply()
    assert result.ok, result.outcomes
    assert [(o.kind, o.name, o.status) for o in result.outcomes] == [
        ("provider", "Keyhall", "PROVISIONED"),
        ("role", admin_role, "PROVISIONED"),
        ("role", ro_role, "PROVISIONED"),
    ]

    iam = world.aws.client("iam", world.prod)
    [provider] = iam.list_saml_providers()["SAMLProviderList"]
    assert provider["Arn"] == f"arn:aws:iam::{world.prod}:saml-provider/Keyhall"
    assert iam.get_saml_provider(SAMLProviderArn=provider["Arn"])["SAMLMetadataDocument"] == (
        world.metadata.saml_metadata(None)
    )
    roles = world.aws.keyhall_roles(world.prod)
    assert sorted(roles) == sorted([admin_role, ro_role])
    admin, ro = roles[admin_role], roles[ro_role]
    for role in (admin, ro):
        assert role["Path"] == "/keyhall/"
        assert role["AssumeRolePolicyDocument"] == expected_trust(world.prod)
    assert admin["Arn"] == f"arn:aws:iam::{world.prod}:role/keyhall/{admin_role}"
    assert admin["MaxSessionDuration"] == 43200  # 12 h like IdC: STS gets the duration on each call
    assert admin["Attached"] == [ADMIN_ARN]
    assert admin["Inline"] == {"KeyhallInlinePolicy": INLINE}
    assert "PermissionsBoundary" not in admin
    assert {t["Key"]: t["Value"] for t in admin["Tags"]} == {
        "keyhall:instance": world.instance.id,
        "keyhall:permission-set": world.admin.id,
    }
    assert ro["MaxSessionDuration"] == 43200
    assert ro["Attached"] == sorted([READ_ONLY_ARN, f"arn:aws:iam::{world.prod}:policy/team/DataRead"])
    assert ro["Inline"] == {}
    assert (
        ro["PermissionsBoundary"]["PermissionsBoundaryArn"]
        == f"arn:aws:iam::{world.prod}:policy/team/TeamBoundary"
    )
    # only the accounts with assignments are touched
    assert world.aws.keyhall_roles(world.dev) == {}
    assert world.aws.client("iam", world.dev).list_saml_providers()["SAMLProviderList"] == []
    assert world.aws.keyhall_roles(world.aws.management) == {}

    state = world.state()
    assert {k: r.status for k, r in state.items()} == {
        (world.prod, admin_role): "PROVISIONED",
        (world.prod, ro_role): "PROVISIONED",
    }
    assert state[(world.prod, admin_role)].permission_set_id == world.admin.id
    assert state[(world.prod, admin_role)].role_arn == admin["Arn"]
    assert state[(world.prod, admin_role)].provisioned_at is not None
    names = world.audit_names()
    assert names.count("ProvisionPermissionSet") == 2
    assert names.count("CreateSAMLProvider") == 1

    # a second apply plans nothing and changes nothing, in AWS or in Keyhall
    assert world.plan().changes == []
    audit_before = world.audit_names()
    again = world.apply()
    assert again.ok
    assert again.outcomes == ()
    assert world.aws.keyhall_roles(world.prod) == roles
    assert world.audit_names() == audit_before
    assert world.state() == state


def test_plan_shows_drift_and_apply_repairs_it(world: World) -> None:
    world.assign(world.prod, world.admin.id)
    world.assign(world.prod, world.read_only.id)
    assert world.apply().ok
    admin_role = world.role_name(world.prod, world.admin.id)
    ro_role = world.role_name(world.prod, world.read_only.id)
    before = world.aws.keyhall_roles(world.prod)

    iam = world.aws.client("iam", world.prod)
    iam.detach_role_policy(RoleName=admin_role, PolicyArn=ADMIN_ARN)
    iam.attach_role_policy(RoleName=admin_role, PolicyArn=POWER_USER_ARN)
    widened = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_role_policy(
        RoleName=admin_role, PolicyName="KeyhallInlinePolicy", PolicyDocument=json.dumps(widened)
    )
    iam.put_role_policy(RoleName=admin_role, PolicyName="Extra", PolicyDocument=json.dumps(widened))
    anyone = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.update_assume_role_policy(RoleName=ro_role, PolicyDocument=json.dumps(anyone))
    iam.update_role(RoleName=ro_role, MaxSessionDuration=3600, Description="changed by hand")
    iam.delete_role_permissions_boundary(RoleName=ro_role)

    plan = world.plan()
    assert changes_of(plan) == [
        (world.prod, "update", "role", admin_role),
        (world.prod, "update", "role", ro_role),
    ]
    admin_fields = fields_of(plan, admin_role)
    assert admin_fields["managed_policy"] == [(POWER_USER_ARN, None), (None, ADMIN_ARN)]
    assert admin_fields["inline_policy"] == [(widened, INLINE)]
    assert admin_fields["inline_policy:Extra"] == [(widened, None)]
    ro_fields = fields_of(plan, ro_role)
    assert ro_fields["trust_policy"] == [(anyone, expected_trust(world.prod))]
    assert ro_fields["max_session_duration"] == [(3600, 43200)]
    assert ro_fields["permissions_boundary"] == [
        (None, f"arn:aws:iam::{world.prod}:policy/team/TeamBoundary")
    ]
    assert "description" in ro_fields

    result = world.apply()
    assert result.ok
    assert [(o.name, o.action, o.status) for o in result.outcomes] == [
        (admin_role, "update", "PROVISIONED"),
        (ro_role, "update", "PROVISIONED"),
    ]
    assert world.aws.keyhall_roles(world.prod) == before
    assert world.plan().changes == []


def test_a_changed_permission_set_is_an_update(world: World) -> None:
    world.assign(world.prod, world.admin.id)
    assert world.apply().ok
    role = world.role_name(world.prod, world.admin.id)
    with world.container.db.read() as conn:
        assert [r.pending for r in provisioning_status(conn)] == [None]
    with world.container.db.write() as conn:
        world.container.access.update_permission_set(
            conn,
            world.actor,
            world.admin.id,
            PermissionSetSpec("Admin", session_duration="PT2H", managed_policy_arns=[READ_ONLY_ARN]),
        )
    with world.container.db.read() as conn:
        [row] = provisioning_status(conn)
    assert (row.role_name, row.status, row.pending) == (role, "PROVISIONED", "update")

    fields = fields_of(world.plan(), role)
    assert "max_session_duration" not in fields  # the duration is sent to STS with each call
    assert fields["managed_policy"] == [(ADMIN_ARN, None), (None, READ_ONLY_ARN)]
    assert fields["inline_policy"] == [(INLINE, None)]
    assert world.apply().ok
    [actual] = world.aws.keyhall_roles(world.prod).values()
    assert (actual["Attached"], actual["Inline"]) == ([READ_ONLY_ARN], {})
    with world.container.db.read() as conn:
        assert [r.pending for r in provisioning_status(conn)] == [None]


def test_new_metadata_updates_the_provider(world: World) -> None:
    world.assign(world.prod, world.admin.id)
    assert world.apply().ok
    world.metadata.certificate = "MIIC" + "B" * 1200  # a key rotation publishes a second certificate
    plan = world.plan()
    assert changes_of(plan) == [(world.prod, "update", "provider", "Keyhall")]
    assert world.apply().ok
    iam = world.aws.client("iam", world.prod)
    document = iam.get_saml_provider(SAMLProviderArn=f"arn:aws:iam::{world.prod}:saml-provider/Keyhall")
    assert "B" * 1200 in document["SAMLMetadataDocument"]
    assert world.plan().changes == []


# ---- removal -------------------------------------------------------------------------------------------


def test_removing_the_last_assignment_removes_the_role(world: World) -> None:
    world.assign(world.prod, world.admin.id)
    world.assign(world.prod, world.read_only.id)
    world.assign(world.prod, world.read_only.id, ("GROUP", world.ops))
    assert world.apply().ok
    admin_role = world.role_name(world.prod, world.admin.id)
    ro_role = world.role_name(world.prod, world.read_only.id)

    world.unassign(world.prod, world.read_only.id)  # the group still has it
    assert world.plan().changes == []

    world.unassign(world.prod, world.read_only.id, ("GROUP", world.ops))
    plan = world.plan()
    assert changes_of(plan) == [(world.prod, "delete", "role", ro_role)]
    assert fields_of(plan, ro_role)["permissions_boundary"] == [
        (f"arn:aws:iam::{world.prod}:policy/team/TeamBoundary", None)
    ]
    result = world.apply()
    assert result.ok
    assert sorted(world.aws.keyhall_roles(world.prod)) == [admin_role]
    assert world.state()[(world.prod, ro_role)].status == "REMOVED"
    with world.container.db.read() as conn:
        assert [r.role_name for r in provisioning_status(conn)] == [admin_role]
        assert len(provisioning_status(conn, include_removed=True)) == 2

    # the last role of the account goes, and with it the identity provider
    world.unassign(world.prod, world.admin.id)
    assert changes_of(world.plan()) == [
        (world.prod, "delete", "role", admin_role),
        (world.prod, "delete", "provider", "Keyhall"),
    ]
    removed = world.apply()
    assert [(o.kind, o.status) for o in removed.outcomes] == [("role", "REMOVED"), ("provider", "REMOVED")]
    assert world.aws.keyhall_roles(world.prod) == {}
    assert world.aws.client("iam", world.prod).list_saml_providers()["SAMLProviderList"] == []
    assert {r.status for r in world.state().values()} == {"REMOVED"}
    assert world.plan().changes == []


def test_roles_without_keyhalls_tag_are_never_touched(world: World) -> None:
    iam = world.aws.client("iam", world.prod)
    admin_role = world.role_name(world.prod, world.admin.id)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    # a role with the very name Keyhall wants, one with another instance's tag, one with none
    iam.create_role(Path="/keyhall/", RoleName=admin_role, AssumeRolePolicyDocument=json.dumps(trust))
    iam.attach_role_policy(RoleName=admin_role, PolicyArn=READ_ONLY_ARN)
    iam.create_role(
        Path="/keyhall/",
        RoleName="KeyhallReserved_Other_0000000000000000",
        AssumeRolePolicyDocument=json.dumps(trust),
        Tags=[{"Key": "keyhall:instance", "Value": "ssoins-0000000000000000"}],
    )
    iam.create_role(Path="/keyhall/", RoleName="HandMade", AssumeRolePolicyDocument=json.dumps(trust))
    before = world.aws.keyhall_roles(world.prod)

    world.assign(world.prod, world.admin.id)
    world.assign(world.prod, world.read_only.id)
    plan = world.plan()
    [account_plan] = plan.accounts
    assert [(b.name, "without the tag" in b.reason) for b in account_plan.blocked] == [(admin_role, True)]
    assert plan.problems == 1
    result = world.apply()
    assert not result.ok
    assert [(o.name, o.status) for o in result.failed] == [(admin_role, "FAILED")]
    after = world.aws.keyhall_roles(world.prod)
    assert {k: after[k] for k in before} == before
    assert world.state()[(world.prod, admin_role)].status == "FAILED"

    # with no assignments left, Keyhall removes only its own role; the provider stays for the others
    world.unassign(world.prod, world.admin.id)
    world.unassign(world.prod, world.read_only.id)
    plan = world.plan()
    assert changes_of(plan) == [
        (world.prod, "delete", "role", world.role_name(world.prod, world.read_only.id))
    ]
    assert any("stays" in w for w in plan.accounts[0].warnings)
    assert world.apply().ok
    assert world.aws.keyhall_roles(world.prod) == before


def test_a_missing_customer_managed_policy_blocks_the_role(world: World) -> None:
    world.aws.client("iam", world.dev).delete_policy(
        PolicyArn=f"arn:aws:iam::{world.dev}:policy/team/DataRead"
    )
    world.assign(world.dev, world.read_only.id)
    world.assign(world.dev, world.admin.id)
    plan = world.plan()
    [account_plan] = plan.accounts
    [blocked] = account_plan.blocked
    assert blocked.name == world.role_name(world.dev, world.read_only.id)
    assert f"arn:aws:iam::{world.dev}:policy/team/DataRead" in blocked.reason
    result = world.apply()
    assert not result.ok
    assert sorted(world.aws.keyhall_roles(world.dev)) == [world.role_name(world.dev, world.admin.id)]


# ---- failures and interruptions ----------------------------------------------------------------------


class Killed(BaseException):
    """What Ctrl-C or a killed process looks like to apply: nothing catches it."""


class Faulty:
    """A ClientFactory whose IAM clients fail on one call, chosen by operation name and arguments."""

    def __init__(
        self, inner: ClientFactory, when: Callable[[str, dict[str, Any]], BaseException | None]
    ) -> None:
        self._inner = inner
        self._when = when

    def client(self, service: str, credentials: TemporaryCredentials | None = None) -> Any:
        client = self._inner.client(service, credentials)
        return _FaultyClient(client, self._when) if service == "iam" else client


class _FaultyClient:
    def __init__(self, client: Any, when: Callable[[str, dict[str, Any]], BaseException | None]) -> None:
        self._client = client
        self._when = when

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith(("get_paginator", "_")):
            return attribute

        def call(**kwargs: Any) -> Any:
            error = self._when(name, kwargs)
            if error is not None:
                raise error
            return attribute(**kwargs)

        return call


def test_an_interrupted_apply_converges_when_run_again(world: World) -> None:
    world.assign(world.prod, world.admin.id)
    world.assign(world.prod, world.read_only.id)
    admin_role = world.role_name(world.prod, world.admin.id)
    ro_role = world.role_name(world.prod, world.read_only.id)

    def kill_during_second_role(operation: str, kwargs: dict[str, Any]) -> BaseException | None:
        if operation == "attach_role_policy" and kwargs["RoleName"] == ro_role:
            return Killed()
        return None

    with pytest.raises(Killed):
        world.apply(Faulty(world.aws.factory(), kill_during_second_role))
    # the first role is done and recorded; the second exists half-made and is not recorded yet
    roles = world.aws.keyhall_roles(world.prod)
    assert sorted(roles) == sorted([admin_role, ro_role])
    assert roles[ro_role]["Attached"] == []
    assert {k[1]: r.status for k, r in world.state().items()} == {admin_role: "PROVISIONED"}

    plan = world.plan()
    assert changes_of(plan) == [(world.prod, "update", "role", ro_role)]
    assert sorted(new for _, new in fields_of(plan, ro_role)["managed_policy"]) == [READ_ONLY_ARN]
    result = world.apply()
    assert result.ok
    assert world.plan().changes == []
    assert {k[1]: r.status for k, r in world.state().items()} == {
        admin_role: "PROVISIONED",
        ro_role: "PROVISIONED",
    }
    assert world.aws.keyhall_roles(world.prod)[ro_role]["Attached"] == sorted(
        [READ_ONLY_ARN, f"arn:aws:iam::{world.prod}:policy/team/DataRead"]
    )


def test_a_failure_is_recorded_and_other_accounts_go_on(world: World) -> None:
    world.assign(world.prod, world.admin.id)
    world.assign(world.dev, world.admin.id)
    dev_role = world.role_name(world.dev, world.admin.id)
    prod_role = world.role_name(world.prod, world.admin.id)

    def deny_in_dev(operation: str, kwargs: dict[str, Any]) -> BaseException | None:
        if operation == "create_role" and kwargs["RoleName"] == dev_role:
            return ClientError({"Error": {"Code": "AccessDenied", "Message": "not today"}}, "CreateRole")
        return None

    result = world.apply(Faulty(world.aws.factory(), deny_in_dev))
    assert not result.ok
    assert [(o.name, o.message) for o in result.failed] == [(dev_role, "AccessDenied: not today")]
    assert sorted(world.aws.keyhall_roles(world.prod)) == [prod_role]
    state = world.state()
    assert state[(world.dev, dev_role)].status == "FAILED"
    assert state[(world.dev, dev_role)].message == "AccessDenied: not today"
    assert state[(world.dev, dev_role)].provisioned_at is None
    assert state[(world.prod, prod_role)].status == "PROVISIONED"
    with world.container.db.read() as conn:
        rows = {r.role_name: r for r in provisioning_status(conn)}
    assert (rows[dev_role].status, rows[dev_role].pending) == ("FAILED", "retry")

    assert world.apply().ok
    assert world.state()[(world.dev, dev_role)].status == "PROVISIONED"
    assert world.plan().changes == []


def test_a_provider_iam_does_not_know_yet_is_waited_for(world: World) -> None:
    world.assign(world.prod, world.admin.id)
    refusals = iter([True, True])

    def not_yet(operation: str, kwargs: dict[str, Any]) -> BaseException | None:
        if operation == "create_role" and next(refusals, False):
            message = 'Invalid principal in policy: "FEDERATED":"arn:aws:iam::1:saml-provider/Keyhall"'
            return ClientError(
                {"Error": {"Code": "MalformedPolicyDocument", "Message": message}}, "CreateRole"
            )
        return None

    assert world.apply(Faulty(world.aws.factory(), not_yet)).ok
    assert world.slept == [1.0, 2.0]
    assert world.plan().changes == []


def test_an_account_that_cannot_be_reached_fails_alone(world: World) -> None:
    world.assign(world.prod, world.admin.id)
    world.assign(world.dev, world.admin.id)

    class NoDev:
        def __init__(self, inner: ClientFactory) -> None:
            self._inner = inner

        def client(self, service: str, credentials: TemporaryCredentials | None = None) -> Any:
            client = self._inner.client(service, credentials)
            if service != "sts":
                return client
            real = client.assume_role

            def assume_role(**kwargs: Any) -> Any:
                if world.dev in kwargs["RoleArn"]:
                    raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")
                return real(**kwargs)

            client.assume_role = assume_role
            return client

    result = world.apply(NoDev(world.aws.factory()))
    assert not result.ok
    [dev_plan] = [a for a in result.plan.accounts if a.account_id == world.dev]
    assert dev_plan.error is not None
    assert f"arn:aws:iam::{world.dev}:role/OrganizationAccountAccessRole" in dev_plan.error
    assert world.state()[(world.dev, world.role_name(world.dev, world.admin.id))].status == "FAILED"
    assert world.state()[(world.prod, world.role_name(world.prod, world.admin.id))].status == "PROVISIONED"


def test_account_filter_and_suspended_accounts(world: World) -> None:
    world.assign(world.prod, world.admin.id)
    world.assign(world.dev, world.admin.id)
    assert [a.account_id for a in world.plan(accounts=["Dev"]).accounts] == [world.dev]
    [local] = world.plan(accounts=[world.local]).accounts
    assert local.skipped is not None
    assert "local account" in local.skipped
    with world.container.db.write() as conn:
        world.container.access.update_account(
            conn,
            world.actor,
            world.dev,
            AccountSpec("Dev", "dev@example.com", id=world.dev, kind="aws", status="SUSPENDED"),
        )
    plan = world.plan()
    [dev_plan] = [a for a in plan.accounts if a.account_id == world.dev]
    assert dev_plan.skipped == "the account is suspended"
    assert changes_of(plan)[0][0] == world.prod


# ---- OIDC --------------------------------------------------------------------------------------------


def test_oidc_provider_and_trust(world: World) -> None:
    world.configure(method="oidc", oidc_issuer_url="https://keyhall.test/oidc")
    world.assign(world.prod, world.admin.id)
    result = world.apply()
    assert result.ok, result.outcomes
    iam = world.aws.client("iam", world.prod)
    arn = f"arn:aws:iam::{world.prod}:oidc-provider/keyhall.test/oidc"
    assert [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]] == [arn]
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)["ClientIDList"] == [
        "sts.amazonaws.com"
    ]
    assert iam.list_saml_providers()["SAMLProviderList"] == []
    [role] = world.aws.keyhall_roles(world.prod).values()
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Federated": arn},
            "Action": ["sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity", "sts:TagSession"],
            "Condition": {"StringEquals": {"keyhall.test/oidc:aud": "sts.amazonaws.com"}},
        }
    ]
    assert world.plan().changes == []


# ---- the command line --------------------------------------------------------------------------------


def aws_cli_app() -> Any:
    """The real `keyhall` app if main.py registers `aws` already; otherwise the root callback plus `aws`."""
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


def test_cli_configure_plan_apply_status(world: World, aws: Aws) -> None:
    assert world.container.master_key is not None
    runner = CliRunner(
        env={
            "COLUMNS": "250",
            "KEYHALL_DATA_DIR": None,
            "KEYHALL_DATABASE_URL": None,
            "KEYHALL_MASTER_KEY": master_key_to_text(world.container.master_key),
            "KEYHALL_PUBLIC_URL": "https://keyhall.test",
            "AWS_ENDPOINT_URL": aws.endpoint,
            **aws.credentials,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_PROFILE": None,
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        }
    )
    app = aws_cli_app()

    def run(*args: str, code: int = 0) -> Result:
        from keyhall.cli.context import CliState

        cli_state = CliState()
        try:
            result = runner.invoke(
                app, ["--database-url", world.container.db.url, "aws", *args], obj=cli_state
            )
        finally:
            cli_state.close()
        assert result.exit_code == code, f"{result.stdout}\n{result.stderr}\n{result.exception!r}"
        return result

    shown = json.loads(run("configure", "--show", "--json").stdout)
    assert (shown["method"], shown["provisioning_role_name"]) == ("saml", "OrganizationAccountAccessRole")
    configured = json.loads(
        run(
            "configure", "--entity-id", "https://keyhall.test/saml", "--abac", "Team=${path:title}", "--json"
        ).stdout
    )
    assert configured["entity_id"] == "https://keyhall.test/saml"
    assert configured["access_control_attributes"] == {"Team": "${path:title}"}
    keys = json.loads(run("keys", "list", "--json").stdout)
    assert [(k["status"], k["published"]) for k in keys] == [("active", True)]
    refused = run("configure", "--method", "oidc", code=1)  # no issuer URL
    assert "issuer" in refused.stderr.lower()

    world.assign(world.prod, world.admin.id)
    role = world.role_name(world.prod, world.admin.id)
    status = json.loads(run("status", "--json").stdout)
    assert [(r["role_name"], r["status"], r["pending"]) for r in status] == [(role, None, "create")]

    planned = run("plan", "--detailed-exitcode", code=2)
    assert f"+ create role {role} (permission set Admin)" in planned.stdout
    assert "+ create identity provider Keyhall" in planned.stdout
    assert "Plan: 2 to create, 0 to update, 0 to delete." in planned.stdout
    plan_json = json.loads(run("plan", "--json").stdout)
    assert plan_json["summary"] == {"create": 2, "update": 0, "delete": 0, "problems": 0}
    assert plan_json["caller"] == f"arn:aws:sts::{aws.management}:assumed-role/Operator/operator"

    applied = run("apply")
    assert "Apply complete: 2 changes made, 0 failed." in applied.stdout
    iam = aws.client("iam", world.prod)
    [provider] = iam.list_saml_providers()["SAMLProviderList"]
    metadata = iam.get_saml_provider(SAMLProviderArn=provider["Arn"])["SAMLMetadataDocument"]
    assert 'entityID="https://keyhall.test/saml"' in metadata
    assert keys[0]["kid"]  # the published certificate is what IAM holds
    assert "X509Certificate" in metadata

    assert "up to date" in run("plan", "--detailed-exitcode").stdout
    status = json.loads(run("status", "--json").stdout)
    assert [(r["role_name"], r["status"], r["pending"], r["permission_set_name"]) for r in status] == [
        (role, "PROVISIONED", None, "Admin")
    ]
    table = run("status").stdout
    assert "PROVISIONED" in table
    assert role in table

    # drift by hand shows in the plan as a policy diff, and apply repairs it
    iam.put_role_policy(
        RoleName=role,
        PolicyName="KeyhallInlinePolicy",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    drift = run("plan", "--detailed-exitcode", code=2).stdout
    assert f"~ update role {role}" in drift
    assert "~ inline_policy:" in drift
    assert '-      "Action": "s3:*",' in drift
    assert json.loads(run("apply", "--json").stdout)["failed"] == 0
    run("plan", "--detailed-exitcode")
