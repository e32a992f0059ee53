"""Check IAM JSON policy documents before a permission set stores them.

The rules come from the IAM User Guide ("Grammar of the IAM JSON policy language" and the
"IAM JSON policy elements reference") and from the IAM Identity Center API reference
(``PutInlinePolicyToPermissionSet``, ``CustomerManagedPolicyReference``). Every problem is
reported at once, each with a path such as ``Statement[1].Action[0]``, so an editor or a
YAML error report can point at the place.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from keyhall.errors import Problem

__all__ = [
    "INLINE_POLICY_MAX_CHARS",
    "INLINE_POLICY_MAX_NON_WHITESPACE_CHARS",
    "PolicyKind",
    "PolicyProblem",
    "is_valid_managed_policy_arn",
    "normalise_policy_document",
    "validate_customer_managed_policy_reference",
    "validate_policy_document",
    "validate_policy_object",
]

PolicyKind = Literal["identity", "trust"]

#: ``InlinePolicy`` length limit of ``PutInlinePolicyToPermissionSet``.
INLINE_POLICY_MAX_CHARS: Final = 32_768
#: IAM's size quota for a role's inline policy; IAM does not count whitespace.
INLINE_POLICY_MAX_NON_WHITESPACE_CHARS: Final = 10_240

_CURRENT_VERSION: Final = "2012-10-17"
_VERSIONS: Final = frozenset({"2012-10-17", "2008-10-17"})
_TOP_LEVEL_KEYS: Final = ("Version", "Id", "Statement")
_STATEMENT_KEYS: Final = (
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)
_PRINCIPAL_TYPES: Final = ("AWS", "Federated", "Service", "CanonicalUser")
_CONDITION_OPERATORS: Final = (
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Null",
)
_SET_OPERATORS: Final = ("ForAllValues", "ForAnyValue")

# The IAM docs say service prefixes and action names are case-insensitive
# ("iam:ListAccessKeys" equals "IAM:listaccesskeys"), so upper case is accepted here.
_ACTION = re.compile(r"[A-Za-z0-9-]+:[A-Za-z0-9*?]+")
_SID = re.compile(r"[A-Za-z0-9]*")
_POLICY_VARIABLE = re.compile(r"\$\{[^}]*\}")
_PARTITION = re.compile(r"aws(?:-[a-z]+)*|[a-z*?-]*[*?][a-z*?-]*|\$\{[^}]+\}")
_CONDITION_KEY = re.compile(r"[^:\s]+:\S.*")
# Characters IAM Identity Center accepts in an inline policy: tab, LF, CR, U+0020..U+00FF.
_DISALLOWED_CHAR = re.compile(r"[^\t\n\r\x20-\xff]")
_PLAIN_KEY = re.compile(r"[^.\[\]\"\s]+")
_JSON_WHITESPACE: Final = " \t\n\r"
_ItemCheck = Callable[[str, str], None]
# Long values are cut short in messages so one bad entry cannot flood an error report.
_DESCRIBE_MAX: Final = 80

_NAME_CHARS = r"[\w+=,.@-]"
_MANAGED_POLICY_ARN = re.compile(
    rf"arn:aws(?:-[a-z]+)*:iam::aws:policy/(?:{_NAME_CHARS}+/)*{_NAME_CHARS}+", re.ASCII
)
_POLICY_NAME = re.compile(rf"{_NAME_CHARS}+", re.ASCII)
_POLICY_PATH = re.compile(r"(?:/[A-Za-z0-9.,+@=_-]+)*/")
_MANAGED_POLICY_ARN_MIN: Final = 20
_MANAGED_POLICY_ARN_MAX: Final = 2048
_POLICY_NAME_MAX: Final = 128
_POLICY_PATH_MAX: Final = 512


@dataclass(frozen=True)
class PolicyProblem:
    """One thing wrong with a policy document.

    ``path`` locates it: ``""`` is the whole document, then member names joined with ``.`` and
    array indexes in brackets (``Statement[0].Condition.StringEquals``). A member name that
    contains ``.``, brackets, quotes or whitespace is written as ``["name"]``.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def to_problem(self) -> Problem:
        """The same problem in the shape ``keyhall.errors.ValidationError`` carries."""
        return Problem(location=self.path, message=self.message)


def validate_policy_document(text: str, *, kind: PolicyKind = "identity") -> list[PolicyProblem]:
    """Check a policy document given as JSON text; an empty list means it is valid.

    ``kind`` is ``"identity"`` for the policies a permission set holds (no ``Principal``, a
    ``Resource`` in every statement) or ``"trust"`` for a role trust policy (a ``Principal`` in
    every statement, no ``Resource``). Size and character limits apply to ``text`` as given.
    """
    problems = _check_text_limits(text)
    if not text.strip(_JSON_WHITESPACE):
        problems.append(PolicyProblem("", "the policy document is empty; expected a JSON object"))
        return problems
    try:
        document = json.loads(text, object_pairs_hook=_JsonObject.from_pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        problems.append(
            PolicyProblem("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
        )
        return problems
    except _NonJsonConstantError as exc:
        problems.append(PolicyProblem("", f"invalid JSON: {exc.constant} is not a JSON value"))
        return problems
    except RecursionError:
        problems.append(PolicyProblem("", "invalid JSON: arrays or objects are nested too deeply"))
        return problems
    problems.extend(_duplicate_key_problems(document))
    problems.extend(_PolicyChecker(kind).check(document))
    return problems


def validate_policy_object(doc: object, *, kind: PolicyKind = "identity") -> list[PolicyProblem]:
    """Check an already-parsed policy document (from JSON or YAML); an empty list means valid.

    Size limits are measured on the compact JSON that :func:`normalise_policy_document`
    would store. Values that JSON cannot hold (a YAML date, a tuple) are reported.
    """
    problems = _PolicyChecker(kind).check(doc)
    try:
        compact = _dump_compact(doc)
    except (TypeError, ValueError, RecursionError):
        if not problems:
            problems.append(PolicyProblem("", "the policy contains values that cannot be written as JSON"))
        return problems
    return _check_text_limits(compact) + problems


def normalise_policy_document(text: str) -> str:
    """Return the canonical form of a policy for storing and comparing.

    Key order and values are kept; whitespace between tokens is dropped (separators ``,`` and
    ``:``); numbers are written in Python's shortest form (``1e5`` becomes ``100000.0``).
    Characters above U+00FF become ``\\uXXXX`` escapes, so the result stays within the characters
    IAM Identity Center accepts. When a key is repeated the last value is kept; run
    :func:`validate_policy_document` first to have that reported.

    Raises :class:`ValueError` (a :class:`json.JSONDecodeError` for malformed text) if ``text``
    is not JSON.
    """
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except _NonJsonConstantError as exc:
        raise ValueError(f"{exc.constant} is not a JSON value") from None
    return _dump_compact(document)


def is_valid_managed_policy_arn(arn: str) -> bool:
    """Whether ``arn`` names an AWS-managed policy, as ``AttachManagedPolicyToPermissionSet`` needs.

    The form is ``arn:<partition>:iam::aws:policy/[<path>/]<name>``, for example
    ``arn:aws:iam::aws:policy/job-function/ViewOnlyAccess``. Customer-managed policies are
    referred to by name and path instead (:func:`validate_customer_managed_policy_reference`).
    """
    return (
        _MANAGED_POLICY_ARN_MIN <= len(arn) <= _MANAGED_POLICY_ARN_MAX
        and _MANAGED_POLICY_ARN.fullmatch(arn) is not None
    )


def validate_customer_managed_policy_reference(name: str, path: str | None) -> list[str]:
    """Check a ``CustomerManagedPolicyReference`` (IAM Identity Center API); empty means valid.

    ``Name`` is 1..128 characters of letters, digits and ``_+=,.@-``; ``Path`` (default ``/``)
    is ``/`` or ``/segment/.../`` of letters, digits and ``.,+@=_-``, at most 512 characters.
    """
    problems: list[str] = []
    if not name:
        problems.append("Name must not be empty; expected 1 to 128 characters")
    elif len(name) > _POLICY_NAME_MAX:
        problems.append(f"Name is {len(name)} characters long; at most {_POLICY_NAME_MAX} are allowed")
    if name and _POLICY_NAME.fullmatch(name) is None:
        problems.append(
            f"Name {json.dumps(name)} may contain only letters, digits and the characters _+=,.@-"
        )
    if path is not None:
        if len(path) > _POLICY_PATH_MAX:
            problems.append(f"Path is {len(path)} characters long; at most {_POLICY_PATH_MAX} are allowed")
        if _POLICY_PATH.fullmatch(path) is None:
            problems.append(
                f'Path {json.dumps(path)} must be "/" or start and end with "/" '
                '(for example "/team/app/"), with non-empty segments of letters, digits and .,+@=_-'
            )
    return problems


# --- parsing ---------------------------------------------------------------------------------


class _NonJsonConstantError(ValueError):
    def __init__(self, constant: str) -> None:
        super().__init__(constant)
        self.constant = constant


def _reject_constant(constant: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and IAM) do not.
    raise _NonJsonConstantError(constant)


class _JsonObject(dict[str, Any]):
    """A parsed JSON object that remembers which of its keys appeared more than once."""

    __slots__ = ("duplicate_keys",)

    duplicate_keys: tuple[str, ...]

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> _JsonObject:
        obj = cls(pairs)
        if len(obj) == len(pairs):
            obj.duplicate_keys = ()
        else:
            seen: set[str] = set()
            duplicates: dict[str, None] = {}
            for key, _ in pairs:
                if key in seen:
                    duplicates[key] = None
                seen.add(key)
            obj.duplicate_keys = tuple(duplicates)
        return obj


def _duplicate_key_problems(document: object) -> list[PolicyProblem]:
    # Iterative, so a deeply nested document cannot exhaust the Python stack.
    problems: list[PolicyProblem] = []
    stack: list[tuple[object, str]] = [(document, "")]
    while stack:
        value, path = stack.pop()
        children: list[tuple[object, str]] = []
        if isinstance(value, _JsonObject):
            problems.extend(
                PolicyProblem(
                    _member(path, key),
                    f"duplicate key {json.dumps(key)}; keys in a JSON object must be unique "
                    "(only the last value would be kept)",
                )
                for key in value.duplicate_keys
            )
            children = [(child, _member(path, key)) for key, child in value.items()]
        elif isinstance(value, list):
            children = [(child, _item(path, index)) for index, child in enumerate(value)]
        stack.extend(reversed(children))
    return problems


def _dump_compact(document: object) -> str:
    text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return _DISALLOWED_CHAR.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    # Control characters never get here (json.dumps escapes them), so only code points above
    # U+00FF do, and those only occur inside strings.
    code = ord(match.group())
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _check_text_limits(text: str) -> list[PolicyProblem]:
    problems: list[PolicyProblem] = []
    if len(text) > INLINE_POLICY_MAX_CHARS:
        problems.append(
            PolicyProblem(
                "",
                f"the policy is {len(text):,} characters long; "
                f"IAM Identity Center accepts at most {INLINE_POLICY_MAX_CHARS:,}",
            )
        )
    non_whitespace = len(text) - sum(text.count(char) for char in _JSON_WHITESPACE)
    if non_whitespace > INLINE_POLICY_MAX_NON_WHITESPACE_CHARS:
        problems.append(
            PolicyProblem(
                "",
                f"the policy has {non_whitespace:,} characters other than whitespace; IAM allows at most "
                f"{INLINE_POLICY_MAX_NON_WHITESPACE_CHARS:,} (split it or use managed policies)",
            )
        )
    bad = _DISALLOWED_CHAR.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        problems.append(
            PolicyProblem(
                "",
                f"the character U+{ord(bad.group()):04X} at line {line}, column {column} is not allowed; "
                "IAM Identity Center accepts tab, line feed, carriage return and U+0020 to U+00FF "
                "(write other characters as \\uXXXX escapes)",
            )
        )
    return problems


# --- paths and descriptions ------------------------------------------------------------------


def _member(path: str, key: object) -> str:
    name = key if isinstance(key, str) else str(key)
    if _PLAIN_KEY.fullmatch(name):
        return f"{path}.{name}" if path else name
    return f"{path}[{json.dumps(name)}]"


def _item(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _describe(value: object) -> str:
    """How a value reads in a message, in JSON terms: ``"allow"``, ``5``, ``null``, ``an array``."""
    if isinstance(value, str):
        quoted = json.dumps(value)
        return quoted if len(quoted) <= _DESCRIBE_MAX else f'{quoted[: _DESCRIBE_MAX - 4]}..."'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()} (in YAML, quote it to keep it a string)"
    return f"a {type(value).__name__} value"


def _is_json_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | bool | int)


# --- the grammar ---------------------------------------------------------------------------


class _PolicyChecker:
    """Walks one document; collects problems instead of stopping at the first."""

    def __init__(self, kind: PolicyKind) -> None:
        self._kind: PolicyKind = kind
        self._problems: list[PolicyProblem] = []
        self._sids: dict[str, str] = {}
        self._first_variable: str | None = None

    def check(self, document: object) -> list[PolicyProblem]:
        if not isinstance(document, dict):
            self._add("", f"a policy must be a JSON object, got {_describe(document)}")
            return self._problems
        self._check_keys(document, "", _TOP_LEVEL_KEYS, "a policy")
        if "Version" in document:
            self._check_version(document["Version"])
        if "Id" in document and not isinstance(document["Id"], str):
            self._add("Id", f"Id must be a string, got {_describe(document['Id'])}")
        if "Statement" in document:
            self._check_statements(document["Statement"])
        else:
            self._add("", "Statement is required; add an array of statements")
        self._check_variables_need_current_version(document)
        return self._problems

    def _add(self, path: str, message: str) -> None:
        self._problems.append(PolicyProblem(path, message))

    def _check_keys(self, obj: dict[Any, Any], path: str, allowed: tuple[str, ...], what: str) -> None:
        for key in obj:
            if key in allowed:
                continue
            hint = ""
            if isinstance(key, str):
                same_letters = [name for name in allowed if name.lower() == key.lower()]
                if same_letters:
                    hint = f' (did you mean "{same_letters[0]}"? element names are case-sensitive)'
            self._add(
                _member(path, key),
                f"unknown key {_describe(key)}{hint}; {what} may contain only {', '.join(allowed)}",
            )

    def _check_version(self, version: object) -> None:
        if isinstance(version, str) and version in _VERSIONS:
            return
        if isinstance(version, str):
            self._add(
                "Version",
                f'Version must be "{_CURRENT_VERSION}" (recommended) or "2008-10-17", '
                f"got {_describe(version)}",
            )
        else:
            self._add("Version", f'Version must be the string "{_CURRENT_VERSION}", got {_describe(version)}')

    def _check_variables_need_current_version(self, document: dict[Any, Any]) -> None:
        version = document.get("Version")
        if self._first_variable is None or version == _CURRENT_VERSION:
            return
        if "Version" in document and version not in _VERSIONS:
            return  # already reported as an invalid Version
        where = "Version" if "Version" in document else ""
        self._add(
            where,
            f"policy variables such as ${{aws:username}} (used at {self._first_variable}) need "
            f'"Version": "{_CURRENT_VERSION}"; with an older or missing Version they are matched '
            "as literal text",
        )

    def _check_statements(self, statements: object) -> None:
        if isinstance(statements, dict):
            self._check_statement(statements, "Statement")
        elif isinstance(statements, list):
            if not statements:
                self._add("Statement", "Statement must not be an empty array; add at least one statement")
            for index, statement in enumerate(statements):
                self._check_statement(statement, _item("Statement", index))
        else:
            self._add(
                "Statement",
                f"Statement must be an object or an array of objects, got {_describe(statements)}",
            )

    def _check_statement(self, statement: object, path: str) -> None:
        if not isinstance(statement, dict):
            self._add(path, f"a statement must be a JSON object, got {_describe(statement)}")
            return
        self._check_keys(statement, path, _STATEMENT_KEYS, "a statement")
        if "Sid" in statement:
            self._check_sid(statement["Sid"], _member(path, "Sid"))
        self._check_effect(statement, path)
        self._check_principal(statement, path)
        self._check_exactly_one(statement, path, "Action", "NotAction", self._check_action)
        if self._kind == "identity":
            self._check_exactly_one(statement, path, "Resource", "NotResource", self._check_resource)
        else:
            for name in ("Resource", "NotResource"):
                if name in statement:
                    self._add(
                        _member(path, name),
                        f"{name} is not allowed in a role trust policy; the role it is attached to "
                        "is the resource, so remove the element",
                    )
        if "Condition" in statement:
            self._check_condition(statement["Condition"], _member(path, "Condition"))

    def _check_sid(self, sid: object, path: str) -> None:
        if not isinstance(sid, str):
            self._add(path, f"Sid must be a string, got {_describe(sid)}")
            return
        if _SID.fullmatch(sid) is None:
            self._add(path, f"Sid {_describe(sid)} may contain only ASCII letters and digits (A-Z, a-z, 0-9)")
        if not sid:
            return
        first = self._sids.setdefault(sid, path)
        if first != path:
            self._add(
                path, f"Sid {_describe(sid)} is already used at {first}; Sids must be unique in a policy"
            )

    def _check_effect(self, statement: dict[Any, Any], path: str) -> None:
        if "Effect" not in statement:
            self._add(path, 'Effect is required; it must be "Allow" or "Deny"')
            return
        effect = statement["Effect"]
        if effect not in ("Allow", "Deny"):
            self._add(_member(path, "Effect"), f'Effect must be "Allow" or "Deny", got {_describe(effect)}')

    def _check_principal(self, statement: dict[Any, Any], path: str) -> None:
        if self._kind == "identity":
            for name in ("Principal", "NotPrincipal"):
                if name in statement:
                    self._add(
                        _member(path, name),
                        f"{name} is not allowed in an identity-based policy; the principal is the "
                        "role or user the policy is attached to, so remove the element",
                    )
            return
        if "NotPrincipal" in statement:
            self._add(
                _member(path, "NotPrincipal"),
                "NotPrincipal is not allowed in a role trust policy; use Principal",
            )
        if "Principal" in statement:
            self._check_principal_value(statement["Principal"], _member(path, "Principal"))
        elif "NotPrincipal" not in statement:
            self._add(
                path, 'Principal is required in a role trust policy, for example {"Federated": "<arn>"}'
            )

    def _check_principal_value(self, principal: object, path: str) -> None:
        if principal == "*":
            return
        if not isinstance(principal, dict):
            self._add(
                path,
                f'Principal must be "*" or an object keyed by {", ".join(_PRINCIPAL_TYPES)}, '
                f"got {_describe(principal)}",
            )
            return
        if not principal:
            self._add(path, f"Principal must name at least one of {', '.join(_PRINCIPAL_TYPES)}")
        for key, value in principal.items():
            entry_path = _member(path, key)
            if key not in _PRINCIPAL_TYPES:
                self._add(
                    entry_path,
                    f"unknown principal type {_describe(key)}; expected one of {', '.join(_PRINCIPAL_TYPES)}",
                )
            self._check_string_or_list(value, entry_path, f"Principal {key}", self._check_principal_id)

    def _check_principal_id(self, value: str, path: str) -> None:
        if not value:
            self._add(path, "a principal identifier must not be empty")

    def _check_exactly_one(
        self, statement: dict[Any, Any], path: str, name: str, not_name: str, check_item: _ItemCheck
    ) -> None:
        present = [key for key in (name, not_name) if key in statement]
        if len(present) == 2:
            self._add(path, f"a statement must have exactly one of {name} or {not_name}, found both")
        elif not present:
            self._add(path, f"a statement must have exactly one of {name} or {not_name}, found neither")
        for key in present:
            self._check_string_or_list(statement[key], _member(path, key), key, check_item)

    def _check_string_or_list(self, value: object, path: str, name: str, check_item: _ItemCheck) -> None:
        if isinstance(value, str):
            check_item(value, path)
        elif isinstance(value, list):
            if not value:
                self._add(path, f"{name} must not be an empty array; list at least one value")
            for index, item in enumerate(value):
                item_path = _item(path, index)
                if isinstance(item, str):
                    check_item(item, item_path)
                else:
                    self._add(item_path, f"each {name} entry must be a string, got {_describe(item)}")
        else:
            self._add(path, f"{name} must be a string or an array of strings, got {_describe(value)}")

    def _check_action(self, action: str, path: str) -> None:
        if action == "*" or _ACTION.fullmatch(action):
            return
        self._add(
            path,
            f'action {_describe(action)} must be "*" or "service:action" such as "s3:GetObject"; '
            "the service prefix is letters, digits and hyphens, the action letters, digits "
            "and the wildcards * and ?",
        )

    def _check_resource(self, resource: str, path: str) -> None:
        self._note_variables(resource, path)
        if resource == "*":
            return
        parts = _split_arn(resource)
        expected = 'must be "*" or an ARN of the form arn:partition:service:region:account-id:resource'
        if len(parts) < 6 or parts[0] != "arn":
            self._add(path, f"resource {_describe(resource)} {expected}")
            return
        partition, service, resource_part = parts[1], parts[2], ":".join(parts[5:])
        if not _PARTITION.fullmatch(partition):
            self._add(
                path,
                f"resource {_describe(resource)} has partition {_describe(partition)}; expected aws, "
                "aws-cn, aws-us-gov, another aws-* partition, a wildcard or a policy variable",
            )
        if not service:
            self._add(path, f"resource {_describe(resource)} has an empty service; {expected}")
        if not resource_part:
            self._add(path, f"resource {_describe(resource)} has an empty resource part; {expected}")

    def _check_condition(self, condition: object, path: str) -> None:
        if not isinstance(condition, dict):
            self._add(
                path,
                "Condition must be an object mapping condition operators to {key: value} objects, "
                f"got {_describe(condition)}",
            )
            return
        for operator, block in condition.items():
            operator_path = _member(path, operator)
            self._check_condition_operator(operator, operator_path)
            if not isinstance(block, dict):
                self._add(
                    operator_path,
                    f"the {operator} block must be an object mapping condition keys to values, "
                    f"got {_describe(block)}",
                )
                continue
            for key, values in block.items():
                key_path = _member(operator_path, key)
                self._check_condition_key(key, key_path)
                self._check_condition_values(values, key_path)

    def _check_condition_operator(self, operator: object, path: str) -> None:
        if not isinstance(operator, str):
            self._add(path, f"a condition operator must be a string, got {_describe(operator)}")
            return
        base = operator
        if ":" in base:
            qualifier, base = base.split(":", 1)
            if qualifier not in _SET_OPERATORS:
                self._add(
                    path,
                    f"unknown set operator {_describe(qualifier)} in {_describe(operator)}; expected "
                    "ForAllValues: or ForAnyValue:",
                )
                return
        if_exists = base.endswith("IfExists")
        if if_exists:
            base = base.removesuffix("IfExists")
        if base == "Null" and if_exists:
            self._add(
                path,
                "IfExists cannot be used with the Null operator; Null already tests whether a key exists",
            )
            return
        if base in _CONDITION_OPERATORS:
            return
        close = difflib.get_close_matches(base, _CONDITION_OPERATORS, n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        self._add(
            path,
            f"unknown condition operator {_describe(operator)}{hint}; expected an IAM condition operator "
            "such as StringEquals, StringLike, ArnLike, Bool, IpAddress or Null, optionally prefixed "
            "with ForAllValues: or ForAnyValue: and suffixed with IfExists",
        )

    def _check_condition_key(self, key: object, path: str) -> None:
        if not isinstance(key, str):
            self._add(path, f"a condition key must be a string, got {_describe(key)}")
        elif not key:
            self._add(
                path, 'a condition key must not be empty; expected "prefix:name" such as "aws:SourceIp"'
            )
        elif _CONDITION_KEY.fullmatch(key) is None:
            self._add(
                path,
                f'condition key {_describe(key)} must have the form "prefix:name", '
                'such as "aws:SourceIp" or "s3:prefix"',
            )

    def _check_condition_values(self, values: object, path: str) -> None:
        expected = "a string, number or boolean"
        if isinstance(values, list):
            for index, value in enumerate(values):
                if _is_json_scalar(value):
                    self._note_variables(value, _item(path, index))
                else:
                    self._add(
                        _item(path, index), f"each condition value must be {expected}, got {_describe(value)}"
                    )
        elif _is_json_scalar(values):
            self._note_variables(values, path)
        else:
            self._add(
                path, f"a condition value must be {expected}, or an array of them, got {_describe(values)}"
            )

    def _note_variables(self, value: object, path: str) -> None:
        if self._first_variable is None and isinstance(value, str) and _POLICY_VARIABLE.search(value):
            self._first_variable = path


def _split_arn(arn: str) -> list[str]:
    """Split an ARN on ``:``, except inside ``${...}`` policy variables such as ``${aws:username}``."""
    parts: list[str] = []
    current: list[str] = []
    in_variable = False
    index = 0
    while index < len(arn):
        char = arn[index]
        if not in_variable and arn.startswith("${", index):
            in_variable = True
        elif in_variable and char == "}":
            in_variable = False
        if char == ":" and not in_variable:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts
