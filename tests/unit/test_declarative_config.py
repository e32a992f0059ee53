"""Reading an apply file: typed desired state, and every problem reported at FILE:LINE:COL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyhall.declarative.config import InvalidConfigError, Position, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "keyhall.example.yaml"


def problems(text: str) -> list[tuple[int, int, str]]:
    state = parse_config(text, source="f.yaml")
    return sorted((p.line, p.column, p.message) for p in state.problems)


def test_the_example_file_is_valid_and_fully_typed() -> None:
    state = load_config(EXAMPLE.read_text(encoding="utf-8"), source="example.yaml")
    assert [a.id for a in state.accounts] == ["123456789012", "111122223333", "444455556666", "777788889999"]
    management = state.accounts[0]
    assert (management.kind, management.status, management.ou_path) == ("aws", "ACTIVE", "/Root")
    assert state.accounts[3].kind == "local"
    read_only, developer, admin = state.permission_sets
    assert read_only.session_duration == "PT2H"
    assert json.loads(read_only.inline_policy or "")["Statement"][0]["Sid"] == "NoSecrets"
    assert developer.permissions_boundary == {
        "CustomerManagedPolicyReference": {"Name": "DeveloperBoundary", "Path": "/boundaries/"}
    }
    assert developer.customer_managed_policies == [{"Name": "DeveloperExtras", "Path": "/keyhall/"}]
    assert admin.relay_state == "https://console.aws.amazon.com/billing/home"
    assert admin.session_duration == "PT1H"
    assert [u.user_name for u in state.users if u.admin] == ["alice"]
    assert [u.status for u in state.users if u.user_name == "mallory"] == ["DISABLED"]
    assert [g.members for g in state.groups] == [("alice",), ("bob", "carol", "dave"), ("erin",)]
    assert state.assignments[5].users == ("alice",) and state.assignments[5].groups == ("Developers",)
    assert state.sections["users"].column == 1


def test_an_empty_file_declares_nothing() -> None:
    for text in ("", "# nothing yet\n", "---\n", "accounts:\nusers: []\n"):
        state = load_config(text)
        assert (state.accounts, state.users, state.groups, state.assignments) == ((), (), (), ())


def test_yaml_syntax_errors_point_at_the_place() -> None:
    assert problems("accounts:\n  - id: '1\n") == [
        (3, 1, "not valid YAML: while scanning a quoted scalar found unexpected end of stream")
    ]
    ((line, _, message),) = problems("accounts: [\n  {id: 1\n")
    assert message.startswith("not valid YAML") and line == 3
    assert problems("a: 1\n---\nb: 2\n")[0][:2] == (2, 1)


def test_unknown_duplicate_and_missing_keys() -> None:
    text = """\
acounts: []
users:
  - user_name: alice
    user_name: bob
    emial: a@example.com
groups:
  - description: no name
"""
    assert problems(text) == [
        (
            1,
            1,
            "unknown key 'acounts' (expected one of: accounts, permission_sets, groups, users, assignments); "
            "did you mean 'accounts'?",
        ),
        (4, 5, "users[0]: duplicate key 'user_name' (first at line 3)"),
        (
            5,
            5,
            "users[0]: unknown key 'emial' (expected one of: user_name, display_name, given_name, "
            "family_name, email, status, admin); did you mean 'email'?",
        ),
        (7, 5, "groups[0]: missing required key 'name'"),
    ]


def test_types_are_checked_and_yaml_1_1_surprises_are_caught() -> None:
    text = """\
accounts:
  - id: 1234
    name: 42
    email: a@example.com
    tags: {env: prod, cost: 12}
users:
  - user_name: bob
    admin: "yes"
    status: on
    display_name: [Bob]
permission_sets:
  - name: X
    managed_policies: arn:aws:iam::aws:policy/ReadOnlyAccess
"""
    assert problems(text) == [
        (2, 9, 'accounts[0].id: account id must be 12 digits, got 1234; quote it: "012345678901"'),
        (
            3,
            11,
            "accounts[0].name: expected a string, got the number 42; put it in quotes to make it a string",
        ),
        (
            5,
            29,
            "accounts[0].tags.cost: expected a string, got the number 12; "
            "put it in quotes to make it a string",
        ),
        (8, 12, "users[0].admin: expected true or false, got the string 'yes'"),
        (
            9,
            13,
            "users[0].status: expected a string, got the boolean on; put it in quotes to make it a string",
        ),
        (10, 19, "users[0].display_name: expected a string, got a list"),
        (
            13,
            23,
            "permission_sets[0].managed_policies: expected a list of strings, got the string "
            "'arn:aws:iam::aws:policy/ReadOnlyAccess'",
        ),
    ]


def test_an_unquoted_account_id_keeps_its_digits() -> None:
    # YAML 1.1 reads 011122223333 as an octal number; the id is taken as written
    state = load_config("accounts:\n  - {id: 011122223333, name: A, email: a@example.com}\n")
    assert state.accounts[0].id == "011122223333"


def test_the_services_checks_are_reported_at_the_field() -> None:
    text = """\
accounts:
  - id: "111122223333"
    name: Prod
    email: nope
    kind: azure
    ou: Root/Prod
permission_sets:
  - name: Read Only
    session_duration: PT30M
    relay_state: http://example.com
    managed_policies:
      - arn:aws:iam::aws:policy/ReadOnlyAccess
      - arn:aws:iam::123456789012:policy/Mine
    customer_managed_policies:
      - {name: "bad name"}
    permissions_boundary:
      managed_policy_arn: arn:aws:iam::aws:policy/PowerUserAccess
      customer_managed_policy: {name: B}
    tags:
      aws:owner: me
users:
  - user_name: Administrator
    email: nope
groups:
  - name: "  "
"""
    found = problems(text)
    assert [(line, column) for line, column, _ in found] == [
        (4, 12),
        (5, 11),
        (6, 9),
        (8, 11),
        (9, 23),
        (10, 18),
        (13, 9),
        (15, 9),
        (17, 7),
        (20, 7),
        (22, 16),
        (23, 12),
        (25, 11),
    ]
    messages = [m for _, _, m in found]
    assert messages[1] == "accounts[0].kind: must be one of local, aws, got 'azure'"
    assert messages[2].startswith("accounts[0].ou: OU path must look like /Root/Workloads/Prod")
    assert messages[6].startswith("permission_sets[0].managed_policies[1]: ")
    assert messages[10] == "users[0].user_name: 'Administrator' is a reserved name"


def test_inline_policy_problems_point_into_the_yaml_mapping() -> None:
    text = """\
permission_sets:
  - name: Dev
    inline_policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Action: s3:GetObject
          Resource: "*"
        - Effect: Permit
          Action: [s3:PutObject, 42]
          Resource: "*"
"""
    found = problems(text)
    assert [(line, column) for line, column, _ in found] == [(9, 19), (10, 34)]
    assert found[0][2].startswith(
        'permission_sets[0].inline_policy.Statement[1].Effect: Effect must be "Allow"'
    )
    assert found[1][2].startswith("permission_sets[0].inline_policy.Statement[1].Action[1]: ")


def test_inline_policy_duplicate_keys_and_json_strings() -> None:
    text = """\
permission_sets:
  - name: A
    inline_policy:
      Version: "2012-10-17"
      Version: "2008-10-17"
      Statement: []
  - name: B
    inline_policy: '{"Version": "2012-10-17", "Statement": [}'
"""
    found = problems(text)
    assert [(line, column) for line, column, _ in found] == [(5, 7), (6, 18), (8, 20)]
    assert "duplicate key 'Version'" in found[0][2]
    assert found[1][2].startswith("permission_sets[0].inline_policy.Statement: ")
    assert found[2][2].startswith("permission_sets[1].inline_policy: invalid JSON at line 1")


def test_declared_twice_is_reported_at_the_second() -> None:
    text = """\
accounts:
  - {id: "111122223333", name: Prod, email: a@example.com}
  - {id: "111122223333", name: prod, email: b@example.com}
groups:
  - name: Devs
    members: [alice, ALICE]
  - name: devs
"""
    assert problems(text) == [
        (3, 10, "accounts[1].id: account id declared twice (first at line 2)"),
        (3, 32, "accounts[1].name: account name declared twice (first at line 2)"),
        (6, 22, "groups[0].members[1]: 'ALICE' is listed twice (first at line 6)"),
        (7, 11, "groups[1].name: group declared twice (first at line 5)"),
    ]


def test_assignments_need_a_principal_and_accept_an_account_id_number() -> None:
    text = """\
assignments:
  - account: 111122223333
    permission_set: ReadOnly
    groups: [Devs]
  - account: Prod
    permission_set: ReadOnly
  - permission_set: ReadOnly
    users: [bob]
"""
    state = parse_config(text, source="f.yaml")
    assert state.assignments[0].account == "111122223333"
    assert sorted((p.line, p.column, p.message) for p in state.problems) == [
        (5, 5, "assignments[1]: name at least one principal under groups: or users:"),
        (7, 5, "assignments[2]: missing required key 'account'"),
    ]


def test_a_boundary_gives_exactly_one_kind_and_merge_keys_are_refused() -> None:
    text = """\
permission_sets:
  - &base
    name: A
    permissions_boundary: {}
  - <<: *base
    name: B
"""
    assert problems(text) == [
        (
            4,
            27,
            "permission_sets[0].permissions_boundary: give exactly one of managed_policy_arn or "
            "customer_managed_policy",
        ),
        (5, 5, "permission_sets[1]: merge keys (<<) are not supported; write the keys out"),
    ]


def test_load_config_refuses_with_every_problem_in_file_order() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        load_config("users:\n  - user_name: a b\n    admin: maybe\n", source="people.yaml")
    assert [str(p) for p in caught.value.config_problems] == [
        "people.yaml:2:16: users[0].user_name: must not contain spaces or control characters",
        "people.yaml:3:12: users[0].admin: expected true or false, got the string 'maybe'",
    ]
    # the error is a ValidationError like any other, with FILE:LINE:COL locations
    assert [p.location for p in caught.value.problems] == ["people.yaml:2:16", "people.yaml:3:12"]


def test_position_of_a_field_falls_back_to_what_holds_it() -> None:
    state = load_config(
        "accounts:\n  - id: '111122223333'\n    name: A\n    email: a@example.com\n    tags: {k: v}\n"
    )
    account = state.accounts[0]
    assert account.where("tags.k") == Position(5, 12)
    assert account.where("tags.missing") == Position(5, 11)
    assert account.where("nothing") == Position(2, 5)  # the entry itself


def test_values_json_cannot_hold_are_reported_once() -> None:
    text = """\
permission_sets:
  - name: A
    inline_policy:
      Version: "2012-10-17"
      Id: !custom x
      Statement: &loop [*loop]
"""
    assert problems(text) == [
        (
            5,
            11,
            "permission_sets[0].inline_policy.Id: could not determine a constructor for the tag '!custom'",
        ),
        (6, 18, "permission_sets[0].inline_policy.Statement[0]: a recursive alias cannot be written as JSON"),
    ]


def test_alias_bombs_and_deep_nesting_are_refused_quickly() -> None:
    lines = [
        "permission_sets:",
        "  - name: A",
        "    inline_policy:",
        "      a0: &a0 [x, x, x, x, x, x, x, x, x, x]",
    ]
    lines += [f"      a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    found = problems("\n".join(lines) + "\n")
    assert any("the policy is too large" in message for _, _, message in found)
    assert problems("a: " + "[" * 5000 + "]" * 5000) == [(1, 1, "the YAML is nested too deeply")]
