"""The Azure sandbox: Azure Container Apps dynamic sessions (a PythonLTS session pool, each session
a Hyper-V isolated VM with egress disabled), over the pool's data-plane REST API (2025-10-02-preview:
/executions, /files, /session), called as the app's managed identity with a token for
https://dynamicsessions.io. The session identifier is the caller's key (an HMAC of the thread), never
the thread id. Only this module knows the pool."""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from assistants_core.sandbox import (
    DataFile,
    Execution,
    Image,
    InputFile,
    Logs,
    Output,
    Sandbox,
    SandboxError,
    changed_files,
    check_file_name,
    merge_outputs,
)
from assistants_core.settings import SandboxSettings

API_VERSION = "2025-10-02-preview"
SCOPE = "https://dynamicsessions.io/.default"
MAX_UPLOAD_BYTES = 128 * 1024 * 1024  # the pool answers 413 above
_IDENTIFIER = re.compile(r"[A-Za-z0-9_|}{\[\]:\";'<>?/.,@#$%^&*()\-+=!~`]{4,128}")
# Beyond the execution's own timeout: the round trip, and allocating a session.
_HTTP_MARGIN_SECONDS = 30.0
_TOKEN_MARGIN_SECONDS = 300


class Token(Protocol):
    @property
    def token(self) -> str: ...
    @property
    def expires_on(self) -> int: ...


class TokenSource(Protocol):
    """azure-identity's credentials (DefaultAzureCredential: the managed identity in Azure)."""

    def get_token(self, *scopes: str) -> Token: ...


class DynamicSessionsSandbox(Sandbox):
    def __init__(
        self,
        settings: SandboxSettings,
        *,
        credential: TokenSource | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        if not settings.endpoint:
            raise SandboxError("no session pool endpoint (ASSISTANTS_SANDBOX_ENDPOINT)")
        self.settings = settings
        self.endpoint = settings.endpoint.rstrip("/")
        self._credential = credential
        self._client = client or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._running: dict[str, threading.Event] = {}  # session -> its call's interrupt flag
        self._seen: set[str] = set()

    # The interface.

    def execute(
        self,
        session: str,
        code: str,
        *,
        files_in: Sequence[InputFile] = (),
        timeout: float | None = None,
    ) -> Execution:
        seconds = int(timeout or self.settings.timeout_seconds)
        before = self.list_files(session)
        present = {f.name for f in before}
        put = []
        for file in files_in:
            if check_file_name(file.name) not in present:
                self.put_file(session, file.name, file.read())
                put.append(file.name)
        if put:
            before = self.list_files(session)
        new = bool(put) or session not in self._seen
        self._seen.add(session)
        interrupted = threading.Event()
        with self._lock:
            self._running[session] = interrupted
        try:
            response = self._request(
                "POST",
                "/executions",
                session,
                json={
                    "codeInputType": "Inline",
                    "executionType": "Synchronous",
                    "code": code,
                    "timeoutInSeconds": seconds,
                },
                timeout=seconds + _HTTP_MARGIN_SECONDS,
                ok_statuses=(200, 202),
            )
        except SandboxError:
            if interrupted.is_set():
                return Execution(outputs=(Logs("[interrupted: the session was ended]\n"),), interrupted=True)
            raise
        finally:
            with self._lock:
                self._running.pop(session, None)
        outputs, error, timed_out = _outputs(response.json(), seconds)
        return Execution(
            outputs=merge_outputs(outputs),
            files_written=changed_files(before, self.list_files(session)),
            error=error,
            timed_out=timed_out,
            interrupted=interrupted.is_set(),
            new_session=new,
            files_put=tuple(put),
        )

    def put_file(self, session: str, name: str, data: bytes) -> None:
        check_file_name(name)
        if len(data) > MAX_UPLOAD_BYTES:
            raise SandboxError(f"{name} is larger than the {MAX_UPLOAD_BYTES} bytes a session accepts")
        self._request("POST", "/files", session, files={"file": (name, data, "application/octet-stream")})

    def list_files(self, session: str) -> list[DataFile]:
        files = []
        url: str | None = None
        while True:
            if url is None:
                page = self._request("GET", "/files", session).json()
            else:
                page = self._request("GET", url, session, absolute=True).json()
            for item in page.get("value", []):
                if item.get("type", "file").lower() != "file" or item.get("directory") not in (
                    None,
                    "",
                    "/mnt/data",
                    "/mnt/data/",
                ):
                    continue
                files.append(DataFile(item["name"], int(item.get("sizeInBytes") or 0), _timestamp(item)))
            url = page.get("nextLink")
            if not url:
                return sorted(files, key=lambda f: f.name)

    def read_file(self, session: str, name: str) -> bytes:
        check_file_name(name)
        response = self._request("GET", f"/files/{quote(name, safe='')}/content", session, not_found=True)
        return response.content

    def interrupt(self, session: str) -> None:
        """A synchronous execution cannot be stopped: the session is released, which ends it (its
        variables and files are gone; the next call gets a new one and the inputs put back)."""
        with self._lock:
            running = self._running.get(session)
        if running is not None:
            running.set()
            self.end(session)

    def end(self, session: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._request("DELETE", "/session", session, not_found=True, ok_statuses=(200, 202, 204))
        self._seen.discard(session)

    def close(self) -> None:
        self._client.close()

    # The wire.

    def _request(
        self,
        method: str,
        path: str,
        session: str,
        *,
        absolute: bool = False,
        not_found: bool = False,
        ok_statuses: tuple[int, ...] = (200, 201, 202, 204),
        timeout: float | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        if not _IDENTIFIER.fullmatch(session):
            raise ValueError("a session identifier is 4-128 characters of the documented set")
        url = path if absolute else f"{self.endpoint}{path}"
        params = None if absolute else {"api-version": API_VERSION, "identifier": session}
        try:
            response = self._client.request(
                method,
                url,
                params=params,
                headers={"Authorization": f"Bearer {self._bearer()}"},
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                **kwargs,
            )
        except httpx.HTTPError as error:
            raise SandboxError(f"the session pool could not be reached: {type(error).__name__}") from error
        if response.status_code == 404 and not_found:
            raise FileNotFoundError(path)
        if response.status_code not in ok_statuses:
            raise SandboxError(
                f"the session pool answered {method} {path} with {response.status_code}: "
                f"{_error_message(response)}"
            )
        return response

    def _bearer(self) -> str:
        now = time.time()
        with self._lock:
            if self._token is None or self._token[1] - _TOKEN_MARGIN_SECONDS < now:
                if self._credential is None:
                    from azure.identity import DefaultAzureCredential

                    self._credential = DefaultAzureCredential()
                try:
                    token = self._credential.get_token(SCOPE)
                except Exception as error:  # any credential's failure: the sandbox is unreachable
                    raise SandboxError(
                        f"no token for the session pool ({type(error).__name__}): the app's identity "
                        "needs the Azure ContainerApps Session Executor role on the pool"
                    ) from error
                self._token = (token.token, float(token.expires_on))
            return self._token[0]


def _outputs(body: dict[str, Any], seconds: int) -> tuple[list[Output], str | None, bool]:
    result = body.get("result") or {}
    outputs: list[Output] = [Logs(str(result.get("stdout") or "")), Logs(str(result.get("stderr") or ""))]
    error: str | None = None
    timed_out = False
    value = result.get("executionResult")
    if isinstance(value, dict) and value.get("type") == "image" and value.get("base64_data"):
        with contextlib.suppress(binascii.Error, ValueError):
            outputs.append(Image(base64.b64decode(value["base64_data"])))
    elif value not in (None, ""):
        outputs.append(Logs(f"{value}\n"))
    failure = body.get("error") or {}
    if str(body.get("status", "")).lower() == "failed" or failure:
        detail = failure.get("error", failure) if isinstance(failure, dict) else {}
        code = str(detail.get("code") or "Error")
        message = str(detail.get("message") or "")
        timed_out = "timeout" in code.lower() or "timed out" in message.lower()
        if timed_out:
            outputs.append(Logs(f"\nExecution timed out after {seconds} seconds and was stopped.\n"))
            error = "TimeoutError"
        else:
            outputs.append(Logs(f"{code}: {message}\n" if message else f"{code}\n"))
            error = code
    stderr = str(result.get("stderr") or "")
    if error is None and "Traceback (most recent call last)" in stderr:
        last = stderr.strip().splitlines()[-1]
        error = last.split(":", 1)[0].strip() or "Error"
    return outputs, error, timed_out


def _timestamp(item: dict[str, Any]) -> float:
    stamp = item.get("lastModifiedAt") or item.get("lastModifiedTime")
    if not stamp:
        return 0.0
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    return 0.0


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    detail = body.get("error", body) if isinstance(body, dict) else {}
    return str(detail.get("message") or detail.get("code") or body)[:200] if isinstance(detail, dict) else ""
