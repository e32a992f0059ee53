"""Read ``~/.aws/config`` the way botocore does, with string operations only.

botocore parses the file with ``configparser.RawConfigParser`` (keys lower-cased, no inline comments,
indented lines continue the previous value) and then turns a value that starts on the next line into a
nested dict (``[services x]`` → ``sts =`` / ``  endpoint_url = …``). This reader gives the same result for
every file botocore accepts, without importing configparser and re: the credential_process fast path
reads the config file when it is called with ``--profile``.
"""

from __future__ import annotations

Value = str | dict[str, str]
Section = dict[str, Value]


def parse_config(text: str) -> dict[str, Section]:
    """Sections by their raw name (``"profile dev"``, ``"sso-session keyhall"``, ``"default"``)."""
    sections: dict[str, Section] = {}
    current: Section | None = None
    key: str | None = None
    raw: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        indented = line[0] in " \t"
        if indented and current is not None and key is not None:
            raw[key] = raw[key] + "\n" + stripped
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            if current is not None:
                _finish(current, raw)
            name = stripped[1:-1].strip()
            current = sections.setdefault(name, {})
            raw = {}
            key = None
            continue
        cut = _delimiter(stripped)
        if current is None or cut < 0:
            key = None
            continue
        key = stripped[:cut].strip().lower()
        raw[key] = stripped[cut + 1 :].strip()
    if current is not None:
        _finish(current, raw)
    return sections


def _delimiter(line: str) -> int:
    """Index of the first ``=`` or ``:`` (configparser accepts both), or -1."""
    positions = [i for i in (line.find("="), line.find(":")) if i >= 0]
    return min(positions) if positions else -1


def _finish(section: Section, raw: dict[str, str]) -> None:
    for key, value in raw.items():
        if value.startswith("\n"):
            nested: dict[str, str] = {}
            for sub in value.splitlines():
                sub_key, sep, sub_value = sub.partition("=")
                if sep:
                    nested[sub_key.strip().lower()] = sub_value.strip()
            section[key] = nested
        else:
            section[key] = value


def read_config(path: str) -> dict[str, Section]:
    """The parsed file, or no sections when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123 (no pathlib on the fast path)
            return parse_config(handle.read())
    except FileNotFoundError:
        return {}


def _named(config: dict[str, Section], kind: str, name: str) -> Section | None:
    for section_name, values in config.items():
        parts = section_name.split()
        if len(parts) == 2 and parts[0] == kind and parts[1] == name:
            return values
    return None


def profile(config: dict[str, Section], name: str) -> Section | None:
    """``[profile NAME]`` (or ``[default]`` for ``default``), as botocore resolves it."""
    if name == "default":
        found = _named(config, "profile", "default")
        return found if found is not None else config.get("default")
    return _named(config, "profile", name)


def sso_session(config: dict[str, Section], name: str) -> Section | None:
    return _named(config, "sso-session", name)


def services(config: dict[str, Section], name: str) -> Section | None:
    return _named(config, "services", name)


def text_value(section: Section | None, key: str) -> str | None:
    """A plain (not nested) value, or None."""
    if section is None:
        return None
    value = section.get(key)
    return value if isinstance(value, str) and value else None
