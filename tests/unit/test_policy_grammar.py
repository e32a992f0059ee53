"""Unit tests for the IAM policy document validator used by permission sets."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from keyhall.access.policy_grammar import (
    INLINE_POLICY_MAX_CHARS,
    INLINE_POLICY_MAX_NON_WHITESPACE_CHARS,
    PolicyKind,
    PolicyProblem,
    is_valid_managed_policy_arn,
    normalise_policy_document,
    validate_customer_managed_policy_reference,
    validate_policy_document,
    validate_policy_object,
)
from keyhall.errors import Problem

ALLOW_ALL: dict[str, Any] = {"Effect": "Allow", "Action": "*", "Resource": "*"}


def policy(*statements: dict[str, Any], version: str | None = "2012-10-17") -> dict[str, Any]:
    doc: dict[str, Any] = {} if version is None else {"Version": version}
    doc["Statement"] = list(statements)
    return doc


def check(doc: object, kind: PolicyKind = "identity") -> list[PolicyProblem]:
    return validate_policy_document(json.dumps(doc, indent=2), kind=kind)


def only(problems: list[PolicyProblem]) -> PolicyProblem:
    assert len(problems) == 1, problems
    return problems[0]


# --- valid policies -------------------------------------------------------------------------

ADMINISTRATOR_ACCESS = policy(ALLOW_ALL)

READ_ONLY = policy(
    {
        "Sid": "ReadS3",
        "Effect": "Allow",
        "Action": ["s3:Get*", "s3:List*", "s3:?etObjectAcl"],
        "Resource": ["arn:aws:s3:::reports", "arn:aws:s3:::reports/*"],
    },
    {
        "Sid": "DescribeEc2",
        "Effect": "Allow",
        "Action": "ec2:Describe*",
        "Resource": "*",
    },
    {
        "Sid": "ReadLogs",
        "Effect": "Allow",
        "Action": ["logs:GetLogEvents", "logs:FilterLogEvents"],
        "Resource": "arn:aws:logs:eu-west-1:123456789012:log-group:/app/web:*",
    },
)

CONDITIONS = policy(
    {
        "Effect": "Allow",
        "Action": ["ec2:StartInstances", "ec2:StopInstances"],
        "Resource": "arn:aws:ec2:*:123456789012:instance/*",
        "Condition": {
            "ForAnyValue:StringLikeIfExists": {"aws:TagKeys": ["team", "project*"]},
            "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "project"]},
            "StringEqualsIfExists": {"aws:RequestedRegion": "eu-west-1"},
            "IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]},
            "Bool": {"aws:MultiFactorAuthPresent": True, "aws:SecureTransport": "true"},
            "NumericLessThanEquals": {"aws:MultiFactorAuthAge": 3600},
            "DateGreaterThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"},
            "Null": {"aws:TokenIssueTime": "false"},
            "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/AWSReservedSSO_*"},
            "StringEquals": {"AWS:ResourceTag/app.name": "web", "s3:prefix": ["", "home/"]},
        },
    },
)

NOT_ACTION = policy(
    {
        "Sid": "DenyAllButIam",
        "Effect": "Deny",
        "NotAction": ["iam:*", "sts:GetCallerIdentity"],
        "NotResource": ["arn:aws:iam::123456789012:role/Admin"],
    },
    ALLOW_ALL,
)

POLICY_VARIABLES = policy(
    {
        "Effect": "Allow",
        "Action": "s3:*",
        "Resource": "arn:${aws:partition}:s3:::home/${aws:username}/*",
        "Condition": {"StringLike": {"s3:prefix": ["${aws:userid}/*", "${*}"]}},
    }
)

IDENTITY_CENTER_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {
                "Federated": "arn:aws:iam::123456789012:saml-provider/AWSSSO_0123456789abcdef_DO_NOT_DELETE"
            },
            "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
            "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
        }
    ],
}


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(ADMINISTRATOR_ACCESS, id="administrator-access"),
        pytest.param(READ_ONLY, id="read-only-several-statements"),
        pytest.param(CONDITIONS, id="conditions-foranyvalue-ifexists"),
        pytest.param(NOT_ACTION, id="notaction-notresource"),
        pytest.param(POLICY_VARIABLES, id="policy-variables"),
        pytest.param(
            {"Version": "2012-10-17", "Id": "Doc1", "Statement": ALLOW_ALL}, id="single-statement-object"
        ),
        pytest.param(policy(ALLOW_ALL, version="2008-10-17"), id="version-2008"),
        pytest.param(policy(ALLOW_ALL, version=None), id="no-version"),
        pytest.param(
            policy({"Sid": "", "Effect": "Allow", "Action": "IAM:listaccesskeys", "Resource": "*"}),
            id="action-case-insensitive-and-empty-sid",
        ),
        pytest.param(
            policy(
                {
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": [
                        "arn:aws-cn:s3:::bucket/*",
                        "arn:aws-us-gov:s3:::bucket/*",
                        "arn:aws-iso-b:s3:::bucket/*",
                        "arn:*:s3:::bucket/*",
                        "arn:aws:s3:::bucket/my report.pdf",
                    ],
                }
            ),
            id="resource-partitions",
        ),
    ],
)
def test_valid_identity_policies(doc: dict[str, Any]) -> None:
    assert check(doc) == []
    assert validate_policy_object(doc) == []


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(IDENTITY_CENTER_TRUST, id="identity-center-saml"),
        pytest.param(
            policy({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}),
            id="principal-star",
        ),
        pytest.param(
            policy(
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": ["arn:aws:iam::123456789012:root"], "Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ),
            id="principal-map",
        ),
    ],
)
def test_valid_trust_policies(doc: dict[str, Any]) -> None:
    assert check(doc, kind="trust") == []


# --- one problem, at one path ---------------------------------------------------------------


def stmt(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", **fields}


def without(statement: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in statement.items() if key not in keys}


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        # Document level.
        pytest.param([ALLOW_ALL], "", "a policy must be a JSON object, got an array", id="not-object"),
        pytest.param(
            {**ADMINISTRATOR_ACCESS, "Foo": 1},
            "Foo",
            'unknown key "Foo"; a policy may contain only',
            id="unknown-key",
        ),
        pytest.param(
            {"Version": "2012-10-17", "statement": [ALLOW_ALL], "Statement": [ALLOW_ALL]},
            "statement",
            'did you mean "Statement"?',
            id="key-case",
        ),
        pytest.param(
            policy(ALLOW_ALL, version="2012-10-18"),
            "Version",
            'Version must be "2012-10-17" (recommended) or "2008-10-17", got "2012-10-18"',
            id="bad-version",
        ),
        pytest.param({"Version": 2012, "Statement": [ALLOW_ALL]}, "Version", "got 2012", id="version-number"),
        pytest.param({"Id": 7, "Statement": [ALLOW_ALL]}, "Id", "Id must be a string, got 7", id="id-number"),
        pytest.param({"Version": "2012-10-17"}, "", "Statement is required", id="no-statement"),
        pytest.param(policy(), "Statement", "must not be an empty array", id="empty-statement"),
        pytest.param(
            {"Statement": "Allow"},
            "Statement",
            'an object or an array of objects, got "Allow"',
            id="statement-string",
        ),
        pytest.param(
            {"Statement": [ALLOW_ALL, "x"]},
            "Statement[1]",
            'a statement must be a JSON object, got "x"',
            id="statement-item",
        ),
        # Statement keys, Sid, Effect.
        pytest.param(
            policy(stmt(Actions="s3:*")), "Statement[0].Actions", 'unknown key "Actions"', id="stmt-key"
        ),
        pytest.param(
            policy(stmt(Sid="read-s3")), "Statement[0].Sid", "only ASCII letters and digits", id="sid-chars"
        ),
        pytest.param(policy(stmt(Sid=1)), "Statement[0].Sid", "Sid must be a string, got 1", id="sid-type"),
        pytest.param(
            policy(stmt(Sid="Same"), stmt(), stmt(Sid="Same")),
            "Statement[2].Sid",
            'Sid "Same" is already used at Statement[0].Sid',
            id="sid-duplicate",
        ),
        pytest.param(
            policy(without(stmt(), "Effect")),
            "Statement[0]",
            'Effect is required; it must be "Allow"',
            id="no-effect",
        ),
        pytest.param(
            policy(stmt(Effect="allow")),
            "Statement[0].Effect",
            'Effect must be "Allow" or "Deny", got "allow"',
            id="effect-case",
        ),
        pytest.param(policy(stmt(Effect=True)), "Statement[0].Effect", "got true", id="effect-type"),
        # Principal in an identity policy.
        pytest.param(
            policy(stmt(Principal="*")),
            "Statement[0].Principal",
            "Principal is not allowed in an identity-based policy",
            id="principal",
        ),
        pytest.param(
            policy(stmt(NotPrincipal={"AWS": "x"})),
            "Statement[0].NotPrincipal",
            "NotPrincipal is not allowed in an identity-based policy",
            id="not-principal",
        ),
        # Action.
        pytest.param(
            policy(stmt(NotAction="s3:*")),
            "Statement[0]",
            "exactly one of Action or NotAction, found both",
            id="both",
        ),
        pytest.param(
            policy(without(stmt(), "Action")),
            "Statement[0]",
            "Action or NotAction, found neither",
            id="no-action",
        ),
        pytest.param(
            policy(stmt(Action=[])), "Statement[0].Action", "must not be an empty array", id="action-empty"
        ),
        pytest.param(
            policy(stmt(Action={"s3": "Get"})),
            "Statement[0].Action",
            "Action must be a string or an array of strings, got an object",
            id="action-type",
        ),
        pytest.param(
            policy(stmt(Action=["s3:GetObject", "s3GetObject"])),
            "Statement[0].Action[1]",
            'action "s3GetObject" must be "*" or "service:action"',
            id="action-no-prefix",
        ),
        pytest.param(
            policy(stmt(Action="s3:Get Object")), "Statement[0].Action", '"s3:Get Object"', id="action-space"
        ),
        pytest.param(
            policy(stmt(Action="*:Get")), "Statement[0].Action", "service:action", id="action-service-star"
        ),
        pytest.param(
            policy(without(stmt(NotAction=["iam:*", None]), "Action")),
            "Statement[0].NotAction[1]",
            "each NotAction entry must be a string, got null",
            id="notaction-item-type",
        ),
        # Resource.
        pytest.param(
            policy(without(stmt(), "Resource")),
            "Statement[0]",
            "Resource or NotResource, found neither",
            id="no-res",
        ),
        pytest.param(
            policy(stmt(NotResource="*")),
            "Statement[0]",
            "Resource or NotResource, found both",
            id="both-res",
        ),
        pytest.param(
            policy(stmt(Resource="arn:aws:s3")),
            "Statement[0].Resource",
            'resource "arn:aws:s3" must be "*" or an ARN of the form '
            "arn:partition:service:region:account-id:resource",
            id="short-arn",
        ),
        pytest.param(policy(stmt(Resource="my-bucket")), "Statement[0].Resource", "must be", id="not-arn"),
        pytest.param(
            policy(stmt(Resource=["*", "arn:amazon:s3:::bucket"])),
            "Statement[0].Resource[1]",
            'has partition "amazon"; expected aws, aws-cn, aws-us-gov',
            id="partition",
        ),
        pytest.param(
            policy(stmt(Resource="arn:aws::eu-west-1:123456789012:thing")),
            "Statement[0].Resource",
            "has an empty service",
            id="empty-service",
        ),
        pytest.param(
            policy(stmt(Resource="arn:aws:s3:::")),
            "Statement[0].Resource",
            "has an empty resource part",
            id="empty-resource-part",
        ),
        pytest.param(policy(stmt(Resource=5)), "Statement[0].Resource", "got 5", id="resource-type"),
        # Condition.
        pytest.param(
            policy(stmt(Condition=["StringEquals"])),
            "Statement[0].Condition",
            "Condition must be an object mapping condition operators",
            id="condition-type",
        ),
        pytest.param(
            policy(stmt(Condition={"StringEqual": {"aws:username": "alice"}})),
            "Statement[0].Condition.StringEqual",
            'unknown condition operator "StringEqual" (did you mean "StringEquals"?)',
            id="operator-typo",
        ),
        pytest.param(
            policy(stmt(Condition={"ForAll:StringEquals": {"aws:TagKeys": "a"}})),
            "Statement[0].Condition.ForAll:StringEquals",
            'unknown set operator "ForAll"',
            id="set-operator",
        ),
        pytest.param(
            policy(stmt(Condition={"ForAnyValue:Regex": {"aws:TagKeys": "a"}})),
            "Statement[0].Condition.ForAnyValue:Regex",
            'unknown condition operator "ForAnyValue:Regex"',
            id="qualified-unknown",
        ),
        pytest.param(
            policy(stmt(Condition={"IfExists": {"aws:TagKeys": "a"}})),
            "Statement[0].Condition.IfExists",
            "unknown condition operator",
            id="bare-ifexists",
        ),
        pytest.param(
            policy(stmt(Condition={"NullIfExists": {"aws:TokenIssueTime": "true"}})),
            "Statement[0].Condition.NullIfExists",
            "IfExists cannot be used with the Null operator",
            id="null-ifexists",
        ),
        pytest.param(
            policy(stmt(Condition={"StringEquals": "aws:username"})),
            "Statement[0].Condition.StringEquals",
            "the StringEquals block must be an object mapping condition keys to values",
            id="block-type",
        ),
        pytest.param(
            policy(stmt(Condition={"StringEquals": {"": "x"}})),
            'Statement[0].Condition.StringEquals[""]',
            "a condition key must not be empty",
            id="empty-key",
        ),
        pytest.param(
            policy(stmt(Condition={"StringEquals": {"username": "x"}})),
            "Statement[0].Condition.StringEquals.username",
            'condition key "username" must have the form "prefix:name"',
            id="key-no-prefix",
        ),
        pytest.param(
            policy(stmt(Condition={"StringEquals": {"aws:": "x"}})),
            "Statement[0].Condition.StringEquals.aws:",
            "must have the form",
            id="key-no-name",
        ),
        pytest.param(
            policy(stmt(Condition={"Bool": {"aws:SecureTransport": None}})),
            "Statement[0].Condition.Bool.aws:SecureTransport",
            "a condition value must be a string, number or boolean, or an array of them, got null",
            id="value-null",
        ),
        pytest.param(
            policy(stmt(Condition={"StringEquals": {"aws:ResourceTag/app.name": ["a", {"b": 1}]}})),
            'Statement[0].Condition.StringEquals["aws:ResourceTag/app.name"][1]',
            "each condition value must be a string, number or boolean, got an object",
            id="value-item-quoted-path",
        ),
        # Policy variables need Version 2012-10-17.
        pytest.param(
            policy(stmt(Resource="arn:aws:s3:::home/${aws:username}/*"), version=None),
            "",
            "policy variables such as ${aws:username} (used at Statement[0].Resource) "
            'need "Version": "2012-10-17"',
            id="variables-no-version",
        ),
        pytest.param(
            policy(
                stmt(Condition={"StringLike": {"s3:prefix": ["x", "${aws:userid}/*"]}}), version="2008-10-17"
            ),
            "Version",
            "used at Statement[0].Condition.StringLike.s3:prefix[1]",
            id="variables-old-version",
        ),
    ],
)
def test_identity_policy_problems(doc: object, path: str, fragment: str) -> None:
    problem = only(check(doc))
    assert problem.path == path
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("statement", "path", "fragment"),
    [
        pytest.param(
            {"Effect": "Allow", "Action": "sts:AssumeRole"},
            "Statement[0]",
            "Principal is required in a role trust policy",
            id="no-principal",
        ),
        pytest.param(
            {
                "Effect": "Deny",
                "NotPrincipal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
            },
            "Statement[0].NotPrincipal",
            "NotPrincipal is not allowed in a role trust policy",
            id="not-principal",
        ),
        pytest.param(
            {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole", "Resource": "*"},
            "Statement[0].Resource",
            "Resource is not allowed in a role trust policy",
            id="resource",
        ),
        pytest.param(
            {"Effect": "Allow", "Principal": "arn:aws:iam::123456789012:root", "Action": "sts:AssumeRole"},
            "Statement[0].Principal",
            'Principal must be "*" or an object keyed by AWS, Federated, Service, CanonicalUser',
            id="principal-string",
        ),
        pytest.param(
            {"Effect": "Allow", "Principal": {"User": "alice"}, "Action": "sts:AssumeRole"},
            "Statement[0].Principal.User",
            'unknown principal type "User"',
            id="principal-type",
        ),
        pytest.param(
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam::123456789012:root", 5]},
                "Action": "sts:AssumeRole",
            },
            "Statement[0].Principal.AWS[1]",
            "each Principal AWS entry must be a string, got 5",
            id="principal-item",
        ),
        pytest.param(
            {"Effect": "Allow", "Principal": {}, "Action": "sts:AssumeRole"},
            "Statement[0].Principal",
            "Principal must name at least one of",
            id="principal-empty",
        ),
        pytest.param(
            {"Effect": "Allow", "Principal": {"Service": ""}, "Action": "sts:AssumeRole"},
            "Statement[0].Principal.Service",
            "must not be empty",
            id="principal-id-empty",
        ),
        pytest.param(
            {"Effect": "Allow", "Principal": "*"},
            "Statement[0]",
            "Action or NotAction, found neither",
            id="no-action",
        ),
    ],
)
def test_trust_policy_problems(statement: dict[str, Any], path: str, fragment: str) -> None:
    problem = only(check(policy(statement), kind="trust"))
    assert problem.path == path
    assert fragment in problem.message


def test_identity_policy_without_resource_is_fine_as_trust_policy_only() -> None:
    trust = policy({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"})
    assert check(trust, kind="trust") == []
    assert [p.path for p in check(trust)] == ["Statement[0].Principal", "Statement[0]"]


def test_every_problem_is_reported_at_once() -> None:
    doc = {
        "Version": "1",
        "Extra": True,
        "Statement": [
            {
                "Sid": "A",
                "Effect": "Permit",
                "Action": "bad",
                "Resource": "bad",
                "Condition": {"Eq": {"k": "v"}},
            },
            {"Sid": "A", "Principal": "*"},
        ],
    }
    assert [p.path for p in check(doc)] == [
        "Extra",
        "Version",
        "Statement[0].Effect",
        "Statement[0].Action",
        "Statement[0].Resource",
        "Statement[0].Condition.Eq",
        "Statement[0].Condition.Eq.k",
        "Statement[1].Sid",
        "Statement[1]",
        "Statement[1].Principal",
        "Statement[1]",
        "Statement[1]",
    ]


def test_long_values_are_cut_short_in_messages() -> None:
    problem = only(check(policy(stmt(Action="x" * 5000))))
    assert len(problem.message) < 400
    assert '..."' in problem.message


# --- JSON text -----------------------------------------------------------------------------


def test_invalid_json_names_line_and_column() -> None:
    text = '{\n  "Version": "2012-10-17",\n  "Statement": [\n    {"Effect": "Allow",}\n  ]\n}'
    problem = only(validate_policy_document(text))
    assert problem.path == ""
    assert (
        problem.message
        == "invalid JSON at line 4, column 24: Expecting property name enclosed in double quotes"
    )


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_invalid(constant: str) -> None:
    text = '{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", '
    text += '"Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": ' + constant + "}}}]}"
    problem = only(validate_policy_document(text))
    assert (problem.path, problem.message) == ("", f"invalid JSON: {constant} is not a JSON value")


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_document(text: str) -> None:
    assert (
        only(validate_policy_document(text)).message == "the policy document is empty; expected a JSON object"
    )


def test_duplicate_keys_are_reported_with_their_path() -> None:
    text = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Effect": "Allow", '
        '"Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true", '
        '"aws:SecureTransport": "false", "aws:SecureTransport": "x"}}}]}'
    )
    problems = validate_policy_document(text)
    assert [p.path for p in problems] == [
        "Statement[0].Effect",
        "Statement[0].Condition.Bool.aws:SecureTransport",
    ]
    assert problems[0].message == (
        'duplicate key "Effect"; keys in a JSON object must be unique (only the last value would be kept)'
    )


def test_deeply_nested_json_does_not_crash() -> None:
    text = '{"Version": "2012-10-17", "Statement": ' + "[" * 20_000 + "]" * 20_000 + "}"
    problems = validate_policy_document(text)
    assert problems[-1].path in ("", "Statement")


# --- size and character limits -------------------------------------------------------------


def test_whitespace_counts_towards_length_but_not_towards_the_iam_quota() -> None:
    text = json.dumps(ADMINISTRATOR_ACCESS) + " " * INLINE_POLICY_MAX_CHARS
    problem = only(validate_policy_document(text))
    assert problem.path == ""
    assert problem.message.startswith(f"the policy is {len(text):,} characters long;")
    assert "at most 32,768" in problem.message


def test_too_many_non_whitespace_characters() -> None:
    actions = [f"ec2:Describe{index:05d}" for index in range(600)]
    text = json.dumps(policy(stmt(Action=actions)))
    assert len(text) <= INLINE_POLICY_MAX_CHARS
    problem = only(validate_policy_document(text))
    assert problem.path == ""
    assert "characters other than whitespace; IAM allows at most 10,240" in problem.message


def test_at_the_limits_is_fine() -> None:
    base = json.dumps(policy(stmt(Condition={"StringEquals": {"aws:username": ""}})), separators=(",", ":"))
    text = base.replace('""', '"' + "a" * (INLINE_POLICY_MAX_NON_WHITESPACE_CHARS - len(base)) + '"')
    assert len(text) == INLINE_POLICY_MAX_NON_WHITESPACE_CHARS
    assert validate_policy_document(text) == []
    assert len(validate_policy_document(text.replace('"a', '"aa'))) == 1


def test_characters_outside_latin_1_are_rejected_unless_escaped() -> None:
    doc = policy(stmt(Condition={"StringEquals": {"aws:username": "sn\u2603w"}}))
    raw = '{"Version": "2012-10-17",\n"Statement": ' + json.dumps(doc["Statement"], ensure_ascii=False) + "}"
    column = raw.split("\n")[1].index("\u2603") + 1
    problem = only(validate_policy_document(raw))
    assert problem.path == ""
    assert f"the character U+2603 at line 2, column {column} is not allowed" in problem.message
    assert validate_policy_document(json.dumps(doc)) == []  # ensure_ascii writes \u2603
    assert validate_policy_document(json.dumps(doc, ensure_ascii=False).replace("\u2603", "\u00e9")) == []


# --- already-parsed documents ---------------------------------------------------------------


def test_yaml_date_version_gets_a_hint() -> None:
    doc = {"Version": datetime.date(2012, 10, 17), "Statement": [ALLOW_ALL]}
    problem = only(validate_policy_object(doc))
    assert problem.path == "Version"
    assert problem.message == (
        'Version must be the string "2012-10-17", '
        "got the date 2012-10-17 (in YAML, quote it to keep it a string)"
    )


def test_values_json_cannot_hold_are_reported() -> None:
    doc = policy(stmt(Action=("s3:GetObject",), Condition={"NumericEquals": {"aws:x": float("nan")}}))
    assert [p.path for p in validate_policy_object(doc)] == [
        "Statement[0].Action",
        "Statement[0].Condition.NumericEquals.aws:x",
    ]
    unknown_member = {**ADMINISTRATOR_ACCESS, "Id": "x", "Statement": [{**ALLOW_ALL, "Sid": "A"}]}
    unknown_member["Statement"][0]["Condition"] = {"Null": {"aws:x": "true"}}
    assert validate_policy_object(unknown_member) == []
    assert validate_policy_object({"Statement": [ALLOW_ALL], "Id": "x", 1: {2, 3}})[-1].path == "1"


def test_object_size_is_measured_on_the_stored_form() -> None:
    actions = [f"ec2:Describe{index:05d}" for index in range(600)]
    problem = only(validate_policy_object(policy(stmt(Action=actions))))
    assert "characters other than whitespace" in problem.message


def test_object_must_be_a_mapping() -> None:
    assert only(validate_policy_object("{}")).message == 'a policy must be a JSON object, got "{}"'
    assert only(validate_policy_object(None)).message == "a policy must be a JSON object, got null"


# --- normalising ---------------------------------------------------------------------------


def test_normalise_keeps_key_order_and_drops_whitespace() -> None:
    text = (
        '{\n  "Version" : "2012-10-17",\n'
        '  "Statement" : [ { "Resource": "*", "Effect": "Allow", "Action": "*" } ]\n}'
    )
    assert normalise_policy_document(text) == (
        '{"Version":"2012-10-17","Statement":[{"Resource":"*","Effect":"Allow","Action":"*"}]}'
    )


def test_normalise_escapes_characters_identity_center_would_reject() -> None:
    normal = normalise_policy_document('{"a": "caf\u00e9 \u2603 \U0001f600 \\n", "b": [1, 2.5, true, null]}')
    assert normal == '{"a":"caf\u00e9 \\u2603 \\ud83d\\ude00 \\n","b":[1,2.5,true,null]}'
    assert json.loads(normal) == {"a": "caf\u00e9 \u2603 \U0001f600 \n", "b": [1, 2.5, True, None]}


def test_normalise_is_idempotent_and_validates_like_the_original() -> None:
    original = json.dumps(CONDITIONS, indent=4)
    normal = normalise_policy_document(original)
    assert normalise_policy_document(normal) == normal
    assert validate_policy_document(normal) == validate_policy_document(original) == []


@pytest.mark.parametrize("text", ["{", '{"a": NaN}', ""])
def test_normalise_rejects_non_json(text: str) -> None:
    with pytest.raises(ValueError, match=r"JSON|Expecting"):
        normalise_policy_document(text)


# --- managed policy references -------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::aws:policy/AdministratorAccess",
        "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws-cn:iam::aws:policy/ReadOnlyAccess",
        "arn:aws-us-gov:iam::aws:policy/ReadOnlyAccess",
        "arn:aws-iso-b:iam::aws:policy/ReadOnlyAccess",
    ],
)
def test_aws_managed_policy_arns(arn: str) -> None:
    assert is_valid_managed_policy_arn(arn)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:policy/MyPolicy",  # customer managed
        "arn:aws:iam::aws:policy/",
        "arn:aws:iam::aws:policy//ReadOnlyAccess",
        "arn:aws:iam::aws:policy/Read Only",
        "arn:aws:iam::aws:role/ReadOnlyAccess",
        "arn:azure:iam::aws:policy/ReadOnlyAccess",
        "ReadOnlyAccess",
        "arn:aws:iam::aws:policy/" + "a" * 2048,
        " arn:aws:iam::aws:policy/ReadOnlyAccess",
        "arn:aws:iam::aws:policy/ReadOnlyAccess\n",
    ],
)
def test_not_aws_managed_policy_arns(arn: str) -> None:
    assert not is_valid_managed_policy_arn(arn)


@pytest.mark.parametrize(
    ("name", "path"),
    [("MyPolicy", None), ("a", "/"), ("team_app+=,.@-1", "/team/app-1/"), ("x" * 128, "/" + "p" * 510 + "/")],
)
def test_valid_customer_managed_policy_references(name: str, path: str | None) -> None:
    assert validate_customer_managed_policy_reference(name, path) == []


@pytest.mark.parametrize(
    ("name", "path", "fragment"),
    [
        ("", None, "Name must not be empty"),
        ("x" * 129, None, "Name is 129 characters long; at most 128"),
        ("My Policy", None, 'Name "My Policy" may contain only letters, digits'),
        ("caf\u00e9", None, "may contain only"),
        ("ok", "", 'Path "" must be "/"'),
        ("ok", "team/", 'Path "team/" must be "/" or start and end with "/"'),
        ("ok", "/team", "start and end"),
        ("ok", "//", "start and end"),
        ("ok", "/a b/", "start and end"),
        ("ok", "/" + "p" * 511 + "/", "Path is 513 characters long; at most 512"),
    ],
)
def test_invalid_customer_managed_policy_references(name: str, path: str | None, fragment: str) -> None:
    problems = validate_customer_managed_policy_reference(name, path)
    assert len(problems) == 1, problems
    assert fragment in problems[0]


# --- the problem type ---------------------------------------------------------------------


def test_policy_problem_reads_well_and_converts() -> None:
    problem = PolicyProblem("Statement[0].Effect", 'Effect must be "Allow" or "Deny", got "allow"')
    assert str(problem) == 'Statement[0].Effect: Effect must be "Allow" or "Deny", got "allow"'
    assert str(PolicyProblem("", "invalid JSON")) == "invalid JSON"
    assert problem.to_problem() == Problem(location="Statement[0].Effect", message=problem.message)
    with pytest.raises(AttributeError):
        problem.path = "x"  # type: ignore[misc]
