"""HTTP triggers, served as the Python worker serves them with HTTP streams on.

The worker runs the extension's `WebApp` (FastAPI with one catch-all route) on uvicorn; the
host forwards each request to it, and the worker finds the function, puts the Functions route
values in `request.path_params`, calls it (a coroutine on the loop, a plain function on the
worker's thread pool) and sends back what it returned: a `Response` as it is (a
`StreamingResponse` chunk by chunk), anything else as JSON. Here the routing the host does
(route prefix, templates, methods, literal routes first) happens in the same catch-all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from azure.functions.decorators.function_app import Function
from azurefunctions.extensions.http.fastapi import WebApp
from fastapi import FastAPI, Request, Response

from assistants_core.routing import matching, routes_of

log = logging.getLogger("devhost")

MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's default request size limit

Invoke = Callable[[Callable[..., Any], dict[str, Any]], Awaitable[Any]]
Admin = Callable[[Request, str], Awaitable[Response]]


def http_app(functions: Iterable[Function], prefix: str, invoke: Invoke, admin: Admin) -> FastAPI:
    """The ASGI app that serves the HTTP functions among `functions` under `prefix`, and hands
    the host's own `/admin/...` paths to `admin`."""
    functions = list(functions)
    routes = routes_of(functions)
    by_name = {f.get_function_name() or "": f for f in functions}

    async def catch_all(request: Request) -> Any:
        # The path as sent, not yet decoded: route values are decoded segment by segment.
        raw_path = bytes(request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return Response(status_code=413)
        if raw_path.startswith("/admin/"):
            return await admin(request, raw_path.removeprefix("/admin/"))
        path = raw_path.lstrip("/")
        if prefix:
            if path != prefix and not path.startswith(prefix + "/"):
                return _not_found(request.method, raw_path)
            path = path[len(prefix) :]
        for route, values in matching(routes, path):
            if request.method in route.methods:
                function = by_name[route.function]
                request.path_params.clear()
                request.path_params.update(values)
                return await invoke(function.get_user_function(), {_argument(function): request})
        return _not_found(request.method, raw_path)

    web = WebApp()
    web.route(catch_all)
    app: FastAPI = web.get_app()
    return app


def _argument(function: Function) -> str:
    """The name of the function's trigger parameter."""
    trigger = function.get_trigger()
    assert trigger is not None
    return str(trigger.name)


def _not_found(method: str, path: str) -> Response:
    body = {
        "error": {
            "message": f"Invalid URL ({method} {path}).",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    return Response(json.dumps(body), status_code=404, media_type="application/json")
