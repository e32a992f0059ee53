"""Read a ``keyhall apply`` file into typed desired state, with every problem located at FILE:LINE:COL.

We walk PyYAML's composed node tree ourselves instead of calling ``yaml.safe_load``: nodes carry marks, so
each error (a duplicate or unknown key too, which ``safe_load`` would swallow) can point at its place, and
YAML 1.1 surprises (an unquoted account id read as an octal number, ``yes`` read as ``true``) are reported
instead of silently stored. Field values are checked with the same functions the services use, so a file
that passes here does not fail half-way through an apply.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from keyhall.access.models import AccountKind, AccountSpec, PermissionSetSpec
from keyhall.access.policy_grammar import validate_policy_object
from keyhall.access.service import check_account_spec, check_permission_set_spec
from keyhall.directory.models import UserSpec, UserStatus, check_group_name, check_user_spec, name_key
from keyhall.errors import Problem, ValidationError

__all__ = [
    "AccountDecl",
    "AssignmentDecl",
    "ConfigProblem",
    "DesiredState",
    "GroupDecl",
    "InvalidConfigError",
    "PermissionSetDecl",
    "Position",
    "UserDecl",
    "load_config",
    "parse_config",
]

_TAG = "tag:yaml.org,2002:"
_STR: Final = _TAG + "str"
_NULL: Final = _TAG + "null"
_BOOL: Final = _TAG + "bool"
_INT: Final = _TAG + "int"
_MERGE: Final = _TAG + "merge"
_ACCOUNT_ID = re.compile(r"\d{12}")
#: far more than a policy within IAM's 10,240-character limit can hold
_MAX_POLICY_NODES: Final = 20_000
# the plain-member rule of keyhall.access.policy_grammar's paths, so policy problems find their node
_PLAIN_KEY = re.compile(r"[^.\[\]\"\s]+")

SECTIONS: Final = ("accounts", "permission_sets", "groups", "users", "assignments")
_ACCOUNT_KEYS: Final = ("id", "name", "email", "kind", "status", "ou", "tags")
_PERMISSION_SET_KEYS: Final = (
    "name",
    "description",
    "session_duration",
    "relay_state",
    "managed_policies",
    "customer_managed_policies",
    "inline_policy",
    "permissions_boundary",
    "tags",
)
_GROUP_KEYS: Final = ("name", "description", "members")
_USER_KEYS: Final = ("user_name", "display_name", "given_name", "family_name", "email", "status", "admin")
_ASSIGNMENT_KEYS: Final = ("account", "permission_set", "groups", "users")
#: where the services' problem locations live in a file entry
_USER_FIELDS: Final = {
    "UserName": "user_name",
    "DisplayName": "display_name",
    "UserStatus": "status",
    "Emails": "email",
}
_GROUP_FIELDS: Final = {"DisplayName": "name", "Description": "description"}


# ---- positions and problems ------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Position:
    """A place in the file, 1-based like editors count."""

    line: int
    column: int

    @classmethod
    def of(cls, node: Node) -> Position:
        mark = node.start_mark
        return cls(mark.line + 1, mark.column + 1) if mark is not None else cls(1, 1)


START: Final = Position(1, 1)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the file; ``str()`` gives the ``FILE:LINE:COL: message`` form editors jump to."""

    source: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.source, "line": self.line, "column": self.column, "message": self.message}


class InvalidConfigError(ValidationError):
    """The file is refused whole; ``config_problems`` holds every problem found, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.config_problems = sorted(set(problems), key=lambda p: (p.line, p.column, p.message))
        super().__init__(
            "", [Problem(f"{p.source}:{p.line}:{p.column}", p.message) for p in self.config_problems]
        )


# ---- desired state -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Declared:
    """Where an entry is: its path in the file (``accounts[2]``), its start, and the place of each field."""

    path: str
    at: Position
    spots: Mapping[str, Position] = field(repr=False, compare=False)

    def where(self, location: str) -> Position:
        """Where ``location`` (``tags.env``, ``managed_policies[1]``) is, or the nearest thing holding it."""
        return _nearest(self.spots, location, self.at)


_D = TypeVar("_D", bound=_Declared)


@dataclass(frozen=True, kw_only=True)
class AccountDecl(_Declared):
    id: str
    name: str
    email: str
    kind: AccountKind
    status: str
    ou_path: str | None
    tags: dict[str, str]

    def spec(self) -> AccountSpec:
        return AccountSpec(
            name=self.name,
            email=self.email,
            id=self.id,
            kind=self.kind,
            status=self.status,
            ou_path=self.ou_path,
            tags=dict(self.tags),
        )


@dataclass(frozen=True, kw_only=True)
class PermissionSetDecl(_Declared):
    name: str
    description: str | None
    session_duration: str
    relay_state: str | None
    managed_policy_arns: list[str]
    #: in the service's shape: ``[{"Name": …, "Path": …}]``
    customer_managed_policies: list[dict[str, str]]
    #: JSON text (a YAML mapping is turned into JSON; the service stores its canonical form)
    inline_policy: str | None
    #: in the service's shape: ``{"ManagedPolicyArn": …}`` or ``{"CustomerManagedPolicyReference": {…}}``
    permissions_boundary: dict[str, Any] | None
    tags: dict[str, str]

    def spec(self) -> PermissionSetSpec:
        return PermissionSetSpec(
            name=self.name,
            description=self.description,
            session_duration=self.session_duration,
            relay_state=self.relay_state,
            managed_policy_arns=list(self.managed_policy_arns),
            customer_managed_policies=[dict(r) for r in self.customer_managed_policies],
            inline_policy=self.inline_policy,
            permissions_boundary=self.permissions_boundary,
            tags=dict(self.tags),
        )


@dataclass(frozen=True, kw_only=True)
class UserDecl(_Declared):
    user_name: str
    display_name: str | None
    given_name: str | None
    family_name: str | None
    email: str | None
    status: UserStatus
    admin: bool

    def spec(self) -> UserSpec:
        return UserSpec(
            user_name=self.user_name,
            display_name=self.display_name,
            given_name=self.given_name,
            family_name=self.family_name,
            email=self.email,
            status=self.status,
            is_admin=self.admin,
        )


@dataclass(frozen=True, kw_only=True)
class GroupDecl(_Declared):
    name: str
    description: str | None
    #: ``None`` when the file has no ``members`` key: apply then leaves the group's members alone
    members: tuple[str, ...] | None


@dataclass(frozen=True, kw_only=True)
class AssignmentDecl(_Declared):
    #: an account id or name
    account: str
    permission_set: str
    groups: tuple[str, ...]
    users: tuple[str, ...]


@dataclass(frozen=True)
class DesiredState:
    """What the file declares, plus the problems found reading it (checked against the database later)."""

    source: str
    accounts: tuple[AccountDecl, ...] = ()
    permission_sets: tuple[PermissionSetDecl, ...] = ()
    users: tuple[UserDecl, ...] = ()
    groups: tuple[GroupDecl, ...] = ()
    assignments: tuple[AssignmentDecl, ...] = ()
    #: where each top-level key is, for problems about a whole section
    sections: Mapping[str, Position] = field(default_factory=dict, compare=False)
    problems: tuple[ConfigProblem, ...] = ()

    def problem(self, at: Position, message: str) -> ConfigProblem:
        return ConfigProblem(self.source, at.line, at.column, message)

    def section_at(self, name: str) -> Position:
        return self.sections.get(name, START)


def parse_config(text: str, *, source: str = "<string>") -> DesiredState:
    """Read the file's text; never raises for what the text says (problems are in ``.problems``)."""
    reader = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = Position(mark.line + 1, mark.column + 1) if mark is not None else START
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
        return DesiredState(source, problems=(reader.make(at, f"not valid YAML: {message}"),))
    except yaml.reader.ReaderError as exc:
        return DesiredState(
            source, problems=(reader.make(_offset(text, exc.position), f"not valid YAML: {exc.reason}"),)
        )
    except RecursionError:  # PyYAML composes recursively
        return DesiredState(source, problems=(reader.make(START, "the YAML is nested too deeply"),))
    if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL):
        return DesiredState(source)
    return _read_document(reader, root)


def load_config(text: str, *, source: str = "<string>") -> DesiredState:
    """Like :func:`parse_config`, but refuse the file if reading it found any problem."""
    state = parse_config(text, source=source)
    if state.problems:
        raise InvalidConfigError(state.problems)
    return state


# ---- the document ------------------------------------------------------------------------------------


def _read_document(r: _Reader, root: Node) -> DesiredState:
    top = r.fields(root, "", allowed=SECTIONS)
    if top is None:
        return DesiredState(r.source, problems=tuple(r.problems))
    sections = {name: Position.of(key) for name, (key, _) in top.items()}
    accounts = r.entries(top, "accounts", _account)
    permission_sets = r.entries(top, "permission_sets", _permission_set)
    users = r.entries(top, "users", _user)
    groups = r.entries(top, "groups", _group)
    assignments = r.entries(top, "assignments", _assignment)
    _check_unique(r, accounts, "account id", lambda d: d.id, "id")
    _check_unique(r, accounts, "account name", lambda d: name_key(d.name), "name")
    _check_unique(r, permission_sets, "permission set", lambda d: name_key(d.name), "name")
    _check_unique(r, users, "user", lambda d: name_key(d.user_name), "user_name")
    _check_unique(r, groups, "group", lambda d: name_key(d.name), "name")
    return DesiredState(
        r.source,
        accounts=tuple(accounts),
        permission_sets=tuple(permission_sets),
        users=tuple(users),
        groups=tuple(groups),
        assignments=tuple(assignments),
        sections=sections,
        problems=tuple(r.problems),
    )


def _check_unique(
    r: _Reader,
    decls: list[_D],
    what: str,
    key: Callable[[_D], str],
    spot: str,
) -> None:
    first: dict[str, Position] = {}
    for decl in decls:
        k, at = key(decl), decl.where(spot)
        if not k:  # reported already as missing or wrong
            continue
        if k in first:
            r.report(at, f"{decl.path}.{spot}: {what} declared twice (first at line {first[k].line})")
        else:
            first[k] = at


def _account(r: _Reader, node: Node, path: str) -> AccountDecl | None:
    f = r.fields(node, path, allowed=_ACCOUNT_KEYS, required=("id", "name", "email"))
    if f is None:
        return None
    e = _Entry(r, path, f)
    account_id = e.account_id("id")
    name = e.string("name")
    kind = e.choice("kind", ("local", "aws"), "local")
    decl = AccountDecl(
        path=path,
        at=Position.of(node),
        spots=e.spots,
        id=account_id or "",
        name=name or "",
        email=e.string("email") or "",
        kind="aws" if kind == "aws" else "local",
        status=e.choice("status", ("ACTIVE", "SUSPENDED"), "ACTIVE"),
        ou_path=e.optional_string("ou"),
        tags=e.tags("tags"),
    )
    e.report_checks(decl, check_account_spec(decl.spec()), {})
    # kept while either half of its identity is usable, so references to it do not look unknown
    return decl if account_id is not None or name is not None else None


def _permission_set(r: _Reader, node: Node, path: str) -> PermissionSetDecl | None:
    f = r.fields(node, path, allowed=_PERMISSION_SET_KEYS, required=("name",))
    if f is None:
        return None
    e = _Entry(r, path, f)
    name = e.string("name")
    decl = PermissionSetDecl(
        path=path,
        at=Position.of(node),
        spots=e.spots,
        name=name or "",
        description=e.optional_string("description"),
        session_duration=e.optional_string("session_duration") or "PT1H",
        relay_state=e.optional_string("relay_state"),
        managed_policy_arns=list(e.string_list("managed_policies") or ()),
        customer_managed_policies=e.policy_references("customer_managed_policies"),
        inline_policy=e.inline_policy("inline_policy"),
        permissions_boundary=e.boundary("permissions_boundary"),
        tags=e.tags("tags"),
    )
    problems, _, _ = check_permission_set_spec(decl.spec())
    e.report_checks(decl, problems, {})
    return decl if name is not None else None


def _user(r: _Reader, node: Node, path: str) -> UserDecl | None:
    f = r.fields(node, path, allowed=_USER_KEYS, required=("user_name",))
    if f is None:
        return None
    e = _Entry(r, path, f)
    user_name = e.string("user_name")
    status = e.choice("status", ("ENABLED", "DISABLED"), "ENABLED")
    decl = UserDecl(
        path=path,
        at=Position.of(node),
        spots=e.spots,
        user_name=user_name or "",
        display_name=e.optional_string("display_name"),
        given_name=e.optional_string("given_name"),
        family_name=e.optional_string("family_name"),
        email=e.optional_string("email"),
        status="DISABLED" if status == "DISABLED" else "ENABLED",
        admin=e.boolean("admin", default=False),
    )
    e.report_checks(decl, check_user_spec(decl.spec()), _USER_FIELDS)
    return decl if user_name is not None else None


def _group(r: _Reader, node: Node, path: str) -> GroupDecl | None:
    f = r.fields(node, path, allowed=_GROUP_KEYS, required=("name",))
    if f is None:
        return None
    e = _Entry(r, path, f)
    name = e.string("name")
    members = e.string_list("members")
    decl = GroupDecl(
        path=path,
        at=Position.of(node),
        spots=e.spots,
        name=name or "",
        description=e.optional_string("description"),
        members=tuple(members) if members is not None else None,
    )
    problems = check_group_name(decl.name)
    if decl.description is not None and len(decl.description) > 1024:
        problems.append(Problem("Description", "must be at most 1024 characters"))
    e.report_checks(decl, problems, _GROUP_FIELDS)
    seen: dict[str, Position] = {}
    for i, member in enumerate(decl.members or ()):
        at = decl.where(f"members[{i}]")
        first = seen.setdefault(name_key(member), at)
        if first != at:
            r.report(at, f"{path}.members[{i}]: {member!r} is listed twice (first at line {first.line})")
    return decl if name is not None else None


def _assignment(r: _Reader, node: Node, path: str) -> AssignmentDecl | None:
    f = r.fields(node, path, allowed=_ASSIGNMENT_KEYS, required=("account", "permission_set"))
    if f is None:
        return None
    e = _Entry(r, path, f)
    account = e.account_ref("account")
    permission_set = e.string("permission_set")
    groups = e.string_list("groups") or []
    users = e.string_list("users") or []
    if not groups and not users and not e.bad & {"groups", "users"}:
        r.report(Position.of(node), f"{path}: name at least one principal under groups: or users:")
    if account is None or permission_set is None:
        return None
    return AssignmentDecl(
        path=path,
        at=Position.of(node),
        spots=e.spots,
        account=account,
        permission_set=permission_set,
        groups=tuple(groups),
        users=tuple(users),
    )


# ---- reading nodes -----------------------------------------------------------------------------------


class _Reader:
    """Collects problems while walking nodes, so one pass reports everything wrong with the file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[ConfigProblem] = []
        self._constructor = SafeConstructor()
        #: values inline policies may still expand to, over the whole file
        self.budget = _MAX_POLICY_NODES

    def make(self, at: Position, message: str) -> ConfigProblem:
        return ConfigProblem(self.source, at.line, at.column, message)

    def report(self, where: Node | Position, message: str) -> None:
        at = where if isinstance(where, Position) else Position.of(where)
        self.problems.append(self.make(at, message))

    def fields(
        self, node: Node, path: str, *, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, tuple[Node, Node]] | None:
        """The entries of a mapping by key; duplicate, unknown and missing keys are reported."""
        if not isinstance(node, MappingNode):
            self.report(
                node, _at(path, f"expected a mapping of keys ({', '.join(allowed)}), got {_describe(node)}")
            )
            return None
        found: dict[str, tuple[Node, Node]] = {}
        seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self.report(key_node, _at(path, "merge keys (<<) are not supported; write the keys out"))
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                self.report(key_node, _at(path, f"keys must be strings, got {_describe(key_node)}"))
                continue
            key = str(key_node.value)
            if key in seen:
                self.report(key_node, _at(path, f"duplicate key {key!r} (first at line {seen[key].line})"))
                continue
            seen[key] = Position.of(key_node)
            if key not in allowed:
                self.report(key_node, _at(path, f"unknown key {key!r}{_suggest(key, allowed)}"))
                continue
            found[key] = (key_node, value_node)
        for key in required:
            if key not in seen:
                self.report(node, _at(path, f"missing required key {key!r}"))
        return found

    def entries(
        self, top: dict[str, tuple[Node, Node]], section: str, read: Callable[[_Reader, Node, str], _D | None]
    ) -> list[_D]:
        """The entries of one top-level list; an entry too broken to identify is reported and left out."""
        if section not in top:
            return []
        node = top[section][1]
        if self.is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self.report(
                node, f"{section}: expected a list (entries starting with '- '), got {_describe(node)}"
            )
            return []
        result: list[_D] = []
        for i, item in enumerate(node.value):
            decl = read(self, item, f"{section}[{i}]")
            if decl is not None:
                result.append(decl)
        return result

    def is_null(self, node: Node) -> bool:
        return isinstance(node, ScalarNode) and node.tag == _NULL

    def scalar(self, node: ScalarNode) -> Any:
        return self._constructor.construct_object(node)


class _Entry:
    """Reads the fields of one list entry, remembering where each is and which were wrong."""

    def __init__(self, r: _Reader, path: str, found: dict[str, tuple[Node, Node]]) -> None:
        self.r = r
        self.path = path
        self.nodes = {key: value for key, (_, value) in found.items()}
        self.spots: dict[str, Position] = {key: Position.of(value) for key, value in self.nodes.items()}
        #: fields already reported, so the services' checks do not report them again
        self.bad: set[str] = set()

    def _report(self, name: str, node: Node, message: str) -> None:
        self.bad.add(name)
        self.r.report(node, f"{self.path}.{name}: {message}")

    def _str_node(self, node: Node, name: str) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _STR:
            return str(node.value)
        hint = "; put it in quotes to make it a string" if isinstance(node, ScalarNode) else ""
        self._report(name, node, f"expected a string, got {_describe(node)}{hint}")
        return None

    def string(self, name: str) -> str | None:
        node = self.nodes.get(name)
        if node is None:
            self.bad.add(name)  # reported as missing already
            return None
        return self._str_node(node, name)

    def optional_string(self, name: str) -> str | None:
        node = self.nodes.get(name)
        if node is None or self.r.is_null(node):
            return None
        return self._str_node(node, name)

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.optional_string(name)
        if value is None:
            return default
        if value not in choices:
            self._report(name, self.nodes[name], f"must be one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def boolean(self, name: str, *, default: bool) -> bool:
        node = self.nodes.get(name)
        if node is None or self.r.is_null(node):
            return default
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return bool(self.r.scalar(node))
        self._report(name, node, f"expected true or false, got {_describe(node)}")
        return default

    def account_id(self, name: str) -> str | None:
        """A 12-digit id; taken from the text as written, since YAML reads 011122223333 as an octal number."""
        node = self.nodes.get(name)
        if node is None:
            return None
        if isinstance(node, ScalarNode) and node.tag == _INT:
            text = str(node.value)
            if not _ACCOUNT_ID.fullmatch(text):
                self._report(
                    name, node, f'account id must be 12 digits, got {text}; quote it: "012345678901"'
                )
                return None
            return text
        return self._str_node(node, name)

    def account_ref(self, name: str) -> str | None:
        node = self.nodes.get(name)
        if isinstance(node, ScalarNode) and node.tag == _INT:
            return str(node.value)
        return self.string(name)

    def string_list(self, name: str) -> list[str] | None:
        node = self.nodes.get(name)
        if node is None or self.r.is_null(node):
            return [] if node is not None else None
        if not isinstance(node, SequenceNode):
            self._report(name, node, f"expected a list of strings, got {_describe(node)}")
            return None
        result = []
        for i, item in enumerate(node.value):
            self.spots[f"{name}[{i}]"] = Position.of(item)
            value = self._str_node(item, f"{name}[{i}]")
            if value is not None:
                result.append(value)
        return result

    def tags(self, name: str) -> dict[str, str]:
        node = self.nodes.get(name)
        if node is None or self.r.is_null(node):
            return {}
        if not isinstance(node, MappingNode):
            self._report(name, node, f"expected a mapping of tag keys to values, got {_describe(node)}")
            return {}
        tags: dict[str, str] = {}
        seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            key = self._str_node(key_node, name)
            if key is None:
                continue
            if key in seen:
                self._report(name, key_node, f"duplicate tag {key!r} (first at line {seen[key].line})")
                continue
            seen[key] = Position.of(key_node)
            self.spots[f"{name}.{key}"] = Position.of(key_node)
            value = self._str_node(value_node, f"{name}.{key}")
            if value is not None:
                tags[key] = value
        return tags

    def policy_references(self, name: str) -> list[dict[str, str]]:
        node = self.nodes.get(name)
        if node is None or self.r.is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self._report(name, node, f"expected a list of {{name, path}} entries, got {_describe(node)}")
            return []
        result = []
        for i, item in enumerate(node.value):
            here = f"{name}[{i}]"
            self.spots[here] = Position.of(item)
            ref = self._policy_reference(item, here)
            if ref is not None:
                result.append(ref)
        return result

    def _policy_reference(self, node: Node, here: str) -> dict[str, str] | None:
        found = self.r.fields(node, f"{self.path}.{here}", allowed=("name", "path"), required=("name",))
        if found is None or "name" not in found:
            self.bad.add(here)
            return None
        ref_name = self._str_node(found["name"][1], f"{here}.name")
        path_node = found.get("path", (None, None))[1]
        ref_path = (
            None
            if path_node is None or self.r.is_null(path_node)
            else self._str_node(path_node, f"{here}.path")
        )
        if ref_name is None:
            return None
        return {"Name": ref_name, "Path": ref_path or "/"}

    def boundary(self, name: str) -> dict[str, Any] | None:
        node = self.nodes.get(name)
        if node is None or self.r.is_null(node):
            return None
        found = self.r.fields(
            node, f"{self.path}.{name}", allowed=("managed_policy_arn", "customer_managed_policy")
        )
        if found is None:
            self.bad.add(name)
            return None
        if len(found) != 1:
            self._report(name, node, "give exactly one of managed_policy_arn or customer_managed_policy")
            return None
        if "managed_policy_arn" in found:
            value_node = found["managed_policy_arn"][1]
            self.spots[f"{name}.managed_policy_arn"] = Position.of(value_node)
            arn = self._str_node(value_node, f"{name}.managed_policy_arn")
            return {"ManagedPolicyArn": arn} if arn is not None else None
        value_node = found["customer_managed_policy"][1]
        self.spots[f"{name}.customer_managed_policy"] = Position.of(value_node)
        ref = self._policy_reference(value_node, f"{name}.customer_managed_policy")
        return {"CustomerManagedPolicyReference": ref} if ref is not None else None

    def inline_policy(self, name: str) -> str | None:
        """JSON text of the policy: a JSON string as written, or a YAML mapping checked node by node."""
        node = self.nodes.get(name)
        if node is None or self.r.is_null(node):
            return None
        if isinstance(node, ScalarNode) and node.tag == _STR:
            return str(node.value)
        if not isinstance(node, MappingNode):
            self._report(
                name, node, f"expected a policy document (a mapping or a JSON string), got {_describe(node)}"
            )
            return None
        before = len(self.r.problems)
        document = self._plain(node, name)
        problems = [
            Problem(f"{name}.{p.path}" if p.path else name, p.message)
            for p in validate_policy_object(document)
        ]
        if problems or len(self.r.problems) > before:
            self.bad.add(name)
            for problem in problems:
                if problem.location in self.bad:  # a consequence of a value reported already
                    continue
                at = _nearest(self.spots, problem.location, self.spots[name])
                self.r.report(at, f"{self.path}.{problem}")
            return None
        return json.dumps(document, ensure_ascii=False, allow_nan=False)

    def _plain(self, node: Node, path: str, active: frozenset[int] = frozenset()) -> Any:
        """A YAML subtree as JSON-like Python values (for inline policies), with duplicate keys reported."""
        self.spots[path] = Position.of(node)
        self.r.budget -= 1
        if self.r.budget < 0:  # aliases can multiply a small file into a huge document
            if self.r.budget == -1:
                self._report(path, node, f"the policy is too large (more than {_MAX_POLICY_NODES} values)")
            return None
        if id(node) in active:
            self._report(path, node, "a recursive alias cannot be written as JSON")
            return None
        active = active | {id(node)}
        if isinstance(node, SequenceNode):
            return [self._plain(item, f"{path}[{i}]", active) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                    self._report(path, key_node, f"JSON keys must be strings, got {_describe(key_node)}")
                    continue
                key = str(key_node.value)
                child = f"{path}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{path}[{json.dumps(key)}]"
                if key in result:
                    self._report(child, key_node, f"duplicate key {key!r}; only the last value would be kept")
                    continue
                result[key] = self._plain(value_node, child, active)
            return result
        try:
            return self.r.scalar(node)  # type: ignore[arg-type]
        except ConstructorError as exc:
            self._report(path, node, str(exc.problem))
            return None

    def report_checks(self, decl: _Declared, problems: list[Problem], renames: Mapping[str, str]) -> None:
        """Report the services' own checks at the fields they concern, except for fields already reported."""
        for problem in problems:
            location = problem.location
            head = re.split(r"[.\[]", location, maxsplit=1)[0]
            if head in renames:
                location = renames[head] + location[len(head) :]
                head = renames[head]
            if head in self.bad or location in self.bad:
                continue
            shown = location or "entry"
            self.r.report(decl.where(location), f"{self.path}.{shown}: {problem.message}")


# ---- helpers -----------------------------------------------------------------------------------------


def _at(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message


def _suggest(key: str, allowed: tuple[str, ...]) -> str:
    if not allowed:
        return ""
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f" (expected one of: {', '.join(allowed)}){hint}"


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    value = node.value
    names = {
        _STR: f"the string {value!r}",
        _NULL: "nothing (null)",
        _BOOL: f"the boolean {value}",
        _INT: f"the number {value}",
        _TAG + "float": f"the number {value}",
        _TAG + "timestamp": f"the date {value}",
    }
    return names.get(node.tag, f"a value tagged {node.tag}")


def _nearest(spots: Mapping[str, Position], location: str, default: Position) -> Position:
    while location:
        if location in spots:
            return spots[location]
        cut = max(location.rfind("."), location.rfind("["))
        location = location[:cut] if cut > 0 else ""
    return default


def _offset(text: str, index: int) -> Position:
    line = text.count("\n", 0, index) + 1
    return Position(line, index - (text.rfind("\n", 0, index) + 1) + 1)
