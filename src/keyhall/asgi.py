"""ASGI entry point for server workers: settings come from KEYHALL_* variables set by `keyhall serve`."""

from __future__ import annotations

from starlette.applications import Starlette

from keyhall.app import create_app
from keyhall.container import Container
from keyhall.keys import load_master_key
from keyhall.logs import configure_logging
from keyhall.settings import Settings


def create_from_env() -> Starlette:
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(Container.build(settings, master_key=load_master_key(settings)))
