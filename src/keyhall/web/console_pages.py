"""``GET /console?account_id=…&role_name=…``: sign in to the AWS Management Console of a real AWS account as
the permission set's role, from the signed-in browser session.

With SAML federation the page carries the signed SAML response in a form that a small static script posts
to AWS sign-in at once (a Continue button does it without JavaScript); the page's CSP lets forms go to the
partition's sign-in and console hosts only. With OIDC federation the browser is redirected to the federation
endpoint's login URL. Either way the entitlement is checked from current data and the sign-in is audited
(``Federate``) before anything is shown (keyhall.federation.console).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keyhall.federation.console import ConsoleRedirect, ConsoleService
from keyhall.web.pages import _Page, _page, _this_url
from keyhall.web.security import content_security_policy

_MAX_PARAMETER = 64


@_page
async def console(page: _Page) -> Response:
    current = page.current
    if current is None:
        return page.to_login(_this_url(page.request))
    service: ConsoleService | None = getattr(page.container, "console", None)
    if service is None:
        return page.error("Console sign-in to AWS accounts is not available on this server.", status=503)
    account_id = page.request.query_params.get("account_id", "")[:_MAX_PARAMETER]
    role_name = page.request.query_params.get("role_name", "")[:_MAX_PARAMETER]
    result = await run_in_threadpool(
        service.sign_in,
        page.actor(),
        user_id=current.user.id,
        user_name=current.user.user_name,
        session_id=current.session.id,
        account_id=account_id,
        role_name=role_name,
    )
    if isinstance(result, ConsoleRedirect):
        return page.redirect(result.url)
    return page.render(
        "console_post.html",
        csp=content_security_policy(form_targets=result.form_sources()),
        form=result,
        account_id=account_id,
        role_name=role_name,
    )


routes: list[BaseRoute] = [Route("/console", console, methods=["GET"])]
