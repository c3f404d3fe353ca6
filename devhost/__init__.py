"""A small stand-in for the Azure Functions host, for machines where Core Tools cannot be installed.

It serves any v2-programming-model `FunctionApp` the way the host does for HTTP triggers: the route
prefix from host.json, each function's route template and methods (literal routes before
parameterised ones, catch-alls last), an `azure.functions.HttpRequest` in and an `HttpResponse`
out, concurrent requests on threads. It is not part of the service; Core Tools and Azure run the
same app without it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from assistants_core.routing import Route, matching, routes_of

log = logging.getLogger("devhost")

MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's default request size limit


def load_settings(root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`Values` as Core Tools sees them: the sample's, then local.settings.json's, then the real
    environment's, each winning over the one before."""
    values: dict[str, str] = {}
    for name in ("local.settings.sample.json", "local.settings.json"):
        path = root / name
        if path.exists():
            values.update({k: str(v) for k, v in json.loads(path.read_text())["Values"].items()})
    values.update(os.environ if environ is None else environ)
    return values


def route_prefix(root: Path) -> str:
    host = json.loads((root / "host.json").read_text())
    prefix: str = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return prefix.strip("/")


class FunctionsRouter:
    """Finds the function for a request and calls it, as the host would."""

    def __init__(self, app: func.FunctionApp, prefix: str) -> None:
        self._prefix = prefix
        functions = app.get_functions()  # once: like the worker's indexing, it can run only once
        self._routes = routes_of(functions)
        self._functions: dict[str, Callable[[func.HttpRequest], func.HttpResponse]] = {
            f.get_function_name() or "": f.get_user_function() for f in functions
        }

    def dispatch(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> func.HttpResponse:
        parts = urlsplit(url)
        path = parts.path.lstrip("/")
        if self._prefix:
            if path != self._prefix and not path.startswith(self._prefix + "/"):
                return _not_found(method, parts.path)
            path = path[len(self._prefix) :]
        for route, values in matching(self._routes, path):
            if method in route.methods:
                return self._call(route, method, url, headers, body, values)
        return _not_found(method, parts.path)

    def _call(
        self,
        route: Route,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        values: dict[str, str],
    ) -> func.HttpResponse:
        request = func.HttpRequest(
            method=method,
            url=url,
            headers=dict(headers),
            params=_first_values(urlsplit(url).query),
            route_params=values,
            body=body,
        )
        try:
            return self._functions[route.function](request)
        except Exception:
            log.exception("function %s failed", route.function)
            return func.HttpResponse(status_code=500)


def _first_values(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, value)
    return params


def _not_found(method: str, path: str) -> func.HttpResponse:
    body = {
        "error": {
            "message": f"Invalid URL ({method} {path}).",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    return func.HttpResponse(json.dumps(body), status_code=404, mimetype="application/json")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of the real host
    # Headers and body go out in separate writes; with Nagle's algorithm on, the body then
    # waits for the client's delayed ACK (about 40 ms) on every keep-alive response.
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        host = self.headers.get("host") or "{}:{}".format(*self.server.server_address[:2])
        url = f"http://{host}{self.path}"
        response = self.server.router.dispatch(self.command, url, headers, body)
        self._write(response)

    def __getattr__(self, name: str) -> Any:
        # Every method goes through the router, as on the Functions host: one no function takes
        # (TRACE, or anything made up) gets the router's 404, not the stdlib's HTML 501.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    self._refuse_large()
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self._refuse_large()
            return None
        return self.rfile.read(length) if length else b""

    def _refuse_large(self) -> None:
        self.close_connection = True
        self._write(func.HttpResponse(status_code=413))

    def _write(self, response: func.HttpResponse) -> None:
        payload = response.get_body() or b""
        self.send_response(response.status_code)
        headers: dict[str, Any] = dict(response.headers)
        if response.mimetype and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = f"{response.mimetype}; charset={response.charset}"
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], router: FunctionsRouter) -> None:
        self.router = router
        super().__init__(address, _Handler)


def make_server(app: func.FunctionApp, prefix: str, host: str, port: int) -> ThreadingHTTPServer:
    return _Server((host, port), FunctionsRouter(app, prefix))
