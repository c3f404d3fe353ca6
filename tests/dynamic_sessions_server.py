"""A local stand-in for an Azure Container Apps dynamic sessions pool, for the tests.

A real HTTP/1.1 server on 127.0.0.1 (a free port) that speaks the pool's data-plane REST shapes
(api-version 2025-10-02-preview: `POST /executions`, `GET|POST /files`, `GET /files/{name}/content`,
`DELETE /session`), checks what the real one checks (bearer token, api-version, the identifier's
pattern, 128 MB uploads, here smaller) and records every request. Each identifier gets a session:
its files, and a namespace the code runs in -- in this process, with `print` captured: the fake
isolates nothing, it only lets the client's behaviour be tested. The code may call
`save(name, bytes)` to write a file to its /mnt/data and `show_png(bytes)` to display an image.
`script(body)` makes the next execution answer with that body instead (failures, timeouts)::

    with DynamicSessionsServer(token="t") as pool:
        sandbox = DynamicSessionsSandbox(settings(pool.endpoint), credential=StaticToken("t"))
        ...
        assert pool.requests[-1].query["identifier"] == key
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_VERSION = "2025-10-02-preview"
_IDENTIFIER = re.compile(r"[A-Za-z0-9_|}{\[\]:\";'<>?/.,@#$%^&*()\-+=!~`]{4,128}")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeSession:
    files: dict[str, tuple[bytes, float]] = field(default_factory=dict)
    namespace: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)


class DynamicSessionsServer:
    def __init__(self, *, token: str = "test-token", max_upload: int = 128 * 1024 * 1024) -> None:
        self.token = token
        self.max_upload = max_upload
        self.requests: list[RecordedRequest] = []
        self.sessions: dict[str, FakeSession] = {}
        self.deleted: list[str] = []
        self.directories = False  # list a subdirectory too, which the client must skip
        self._scripted: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/subscriptions/sub/resourceGroups/rg/sessionPools/pool"

    def __enter__(self) -> DynamicSessionsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def script(self, body: dict[str, Any]) -> None:
        self._scripted.append(body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        pool = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def do_DELETE(self) -> None:
                self._serve()

            def _serve(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                prefix = urlsplit(pool.endpoint).path
                path = url.path[len(prefix) :] if url.path.startswith(prefix) else url.path
                with pool._lock:
                    pool.requests.append(RecordedRequest(self.command, path, query, headers, body))
                status, reply = pool._answer(self.command, path, query, headers, body)
                payload = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                kind = "application/octet-stream" if isinstance(reply, bytes) else "application/json"
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, _error("Unauthorized", "no valid bearer token")
        if query.get("api-version") != API_VERSION:
            return 400, _error("InvalidApiVersion", f"api-version {query.get('api-version')!r}")
        identifier = query.get("identifier", "")
        if not _IDENTIFIER.fullmatch(identifier):
            return 400, _error("InvalidIdentifier", "identifier does not match the pattern")
        if method == "DELETE" and path == "/session":
            with self._lock:
                if self.sessions.pop(identifier, None) is None:
                    return 404, _error("NotFound", "no such session")
                self.deleted.append(identifier)
            return 204, b""
        with self._lock:
            session = self.sessions.setdefault(identifier, FakeSession())
        if method == "POST" and path == "/executions":
            return 200, self._execute(identifier, session, json.loads(body))
        if method == "GET" and path == "/files":
            listed = [_file(name, data, mtime) for name, (data, mtime) in session.files.items()]
            if self.directories:
                listed.append({"name": "sub", "directory": "", "type": "Directory", "lastModifiedAt": "x"})
            return 200, {"value": listed, "nextLink": None}
        if method == "POST" and path == "/files":
            if len(body) > self.max_upload:
                return 413, _error("PayloadTooLarge", "upload too large")
            name, data = _multipart_file(headers["content-type"], body)
            session.files[name] = (data, time.time())
            return 200, _file(name, data, session.files[name][1])
        match = re.fullmatch(r"/files/([^/]+)/content", path)
        if method == "GET" and match:
            name = unquote(match[1])
            if name not in session.files:
                return 404, _error("NotFound", f"no file {name}")
            return 200, session.files[name][0]
        return 404, _error("NotFound", f"{method} {path}")

    def _execute(self, identifier: str, session: FakeSession, request: dict[str, Any]) -> dict[str, Any]:
        assert set(request) == {"codeInputType", "executionType", "code", "timeoutInSeconds"}, request
        if self._scripted:
            return {
                "id": "exec-1",
                "identifier": identifier,
                "executionType": "Synchronous",
                **self._scripted.pop(0),
            }
        out, err = io.StringIO(), io.StringIO()
        shown: list[bytes] = []

        def save(name: str, data: bytes) -> None:
            session.files[name] = (data, time.time())

        def show_png(data: bytes) -> None:
            shown.append(data)

        namespace: dict[str, Callable[..., None] | Any] = session.namespace
        namespace.update(save=save, show_png=show_png)
        started = time.monotonic()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                exec(request["code"], namespace)
            except Exception:
                err.write(traceback.format_exc())
        result: dict[str, Any] = {
            "stdout": out.getvalue(),
            "stderr": err.getvalue(),
            "executionResult": (
                {"type": "image", "format": "png", "base64_data": base64.b64encode(shown[0]).decode()}
                if shown
                else ""
            ),
            "executionTimeInMilliseconds": int((time.monotonic() - started) * 1000),
        }
        return {
            "id": "exec-1",
            "identifier": identifier,
            "executionType": "Synchronous",
            "status": "Succeeded",
            "result": result,
        }


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _file(name: str, data: bytes, mtime: float) -> dict[str, Any]:
    return {
        "name": name,
        "directory": "",  # as the spec's example lists a file at the top of /mnt/data
        "type": "File",
        "contentType": "application/octet-stream",
        "sizeInBytes": len(data),
        "lastModifiedAt": datetime.fromtimestamp(mtime, UTC).isoformat().replace("+00:00", "Z"),
    }


def _multipart_file(content_type: str, body: bytes) -> tuple[str, bytes]:
    message = BytesParser(policy=HTTP).parsebytes(f"content-type: {content_type}\r\n\r\n".encode() + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            filename = part.get_filename()
            payload = part.get_payload(decode=True)
            assert filename and isinstance(payload, bytes)
            return filename, payload
    raise AssertionError("no file part")
