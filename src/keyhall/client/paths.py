"""Where the AWS clients keep their files, all under one home directory that tests replace.

Stdlib only, and ``os.path`` rather than pathlib: the credential_process fast path imports this module on
every AWS SDK process start, and pathlib alone costs more than the rest of that path.
"""

# ruff: noqa: PTH111, PTH118

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


class AwsPaths:
    """The config file and cache directories of one (possibly fake) home directory."""

    __slots__ = ("config_file", "home")

    def __init__(self, *, home: str, config_file: str | None = None) -> None:
        self.home = home
        self.config_file = config_file or os.path.join(home, ".aws", "config")

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, *, home: str | None = None) -> AwsPaths:
        """Paths as the AWS CLI finds them: ``$HOME`` (or *home*) and ``AWS_CONFIG_FILE``."""
        env = os.environ if env is None else env
        if home is None:
            home = env.get("HOME") or os.path.expanduser("~")
        config_file = env.get("AWS_CONFIG_FILE")
        if config_file:
            config_file = os.path.expanduser(config_file)
        return cls(home=home, config_file=config_file or None)

    @property
    def sso_cache_dir(self) -> str:
        """``~/.aws/sso/cache``: SSO access tokens and client registrations (AWS CLI format)."""
        return os.path.join(self.home, ".aws", "sso", "cache")

    @property
    def cli_cache_dir(self) -> str:
        """``~/.aws/cli/cache``: role credentials, shared with the AWS CLI (same key, same format)."""
        return os.path.join(self.home, ".aws", "cli", "cache")

    def __repr__(self) -> str:
        return f"AwsPaths(home={self.home!r}, config_file={self.config_file!r})"
