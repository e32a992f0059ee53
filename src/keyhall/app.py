"""The ASGI application factory: builds services once and mounts the protocol routers."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyhall.api import federation as federation_api
from keyhall.api import sso_oidc, sso_portal
from keyhall.api.sts import StsDeps, handle_sts
from keyhall.container import Container
from keyhall.credentials.errors import InvalidAction as InvalidActionError
from keyhall.db import migrate
from keyhall.db.housekeeping import Housekeeper
from keyhall.errors import KeyhallError
from keyhall.logs import request_id_var
from keyhall.protocols.errors import render_aws_json, render_rest_json
from keyhall.signin.sessions import credential_session_alive
from keyhall.web import admin_pages, console_pages, portal_pages
from keyhall.web import pages as web_pages

log = logging.getLogger("keyhall.http")


class RequestContextMiddleware:
    """Gives every request an id (``x-amzn-RequestId``) and writes one access-log line without the query
    string, where OAuth and SCIM clients may put sensitive values. ``hot_paths`` maps a path to a bare ASGI
    app that serves it without Starlette's router (GetRoleCredentials: keyhall.api.sso_portal)."""

    def __init__(
        self, app: ASGIApp, *, access_log: bool = False, hot_paths: dict[str, ASGIApp] | None = None
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.hot_paths = hot_paths or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-amzn-requestid" for k, _ in headers):
                    headers.append((b"x-amzn-requestid", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.hot_paths.get(scope["path"], self.app)(scope, receive, send_with_id)
        finally:
            if self.access_log and log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                )
            request_id_var.reset(token)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def create_app(container: Container) -> Starlette:
    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    head = migrate.head_revision()  # the code's schema cannot change while the process runs

    async def readyz(_request: Request) -> Response:
        if not container.db.ping():
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        if migrate.current_revision(container.db.engine) != head:
            return JSONResponse({"status": "unavailable", "database": "schema out of date"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def on_keyhall_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, KeyhallError)
        return render_rest_json(exc, request_id(request))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return render_rest_json(KeyhallError(), request_id(request))

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/readyz", readyz)]
    # the portal's pages come before the sso API: both answer POST /logout (browser form or bearer token)
    routes += sso_oidc.routes + portal_pages.routes + sso_portal.routes + federation_api.routes
    routes += web_pages.routes + admin_pages.routes + console_pages.routes
    if container.local_sts is not None:
        routes.append(Route("/", _root_dispatcher(container), methods=["GET", "POST"]))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # beside the requests: SQLite's WAL checkpoints, and deleting what has expired
        housekeeper = Housekeeper(container.db, container.clock)
        container.db.start_background()
        housekeeper.start()
        try:
            yield
        finally:
            housekeeper.stop()
            container.db.stop_background()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={KeyhallError: on_keyhall_error, Exception: on_unexpected},
    )
    app.state.container = container
    app.add_middleware(
        RequestContextMiddleware,
        access_log=container.settings.access_log,
        hot_paths={sso_portal.ROLE_CREDENTIALS_PATH: sso_portal.role_credentials_app(container)},
    )
    return app


def _root_dispatcher(container: Container) -> Callable[[Request], Awaitable[Response]]:
    """One port serves every AWS protocol: ``POST /`` with ``X-Amz-Target`` is JSON 1.1 (identitystore,
    sso-admin), anything else at ``/`` is the STS query protocol (real-clients.md §3)."""
    assert container.local_sts is not None
    deps = StsDeps(
        issuer=container.local_sts,
        db=container.db,
        clock=container.clock,
        session_alive=credential_session_alive,
    )

    async def dispatch(request: Request) -> Response:
        if "x-amz-target" in request.headers:
            target = request.headers["x-amz-target"]
            return render_aws_json(InvalidActionError(f"Unknown operation {target!r}"), request_id(request))
        return await handle_sts(request, deps)

    return dispatch
