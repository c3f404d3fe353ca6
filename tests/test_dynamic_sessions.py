"""The Azure Container Apps dynamic sessions client against a local pool of the project's own
(tests/dynamic_sessions_server.py) that speaks the documented REST shapes and records requests."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from assistants_core.sandbox import InputFile, SandboxError, open_sandbox, session_key
from assistants_core.sandbox.dynamic_sessions import API_VERSION, SCOPE, DynamicSessionsSandbox
from assistants_core.settings import SandboxSettings
from tests.dynamic_sessions_server import DynamicSessionsServer

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
KEY = session_key(b"pool-secret", "thread_abc")


@dataclass
class Token:
    token: str
    expires_on: int


class Credential:
    """Stands in for the managed identity: counts the tokens it hands out."""

    def __init__(self, token: str = "test-token", lifetime: int = 3600) -> None:
        self.token = token
        self.lifetime = lifetime
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str) -> Token:
        import time

        self.scopes.append(scopes)
        return Token(self.token, int(time.time()) + self.lifetime)


@pytest.fixture
def pool() -> Iterator[DynamicSessionsServer]:
    with DynamicSessionsServer(token="test-token", max_upload=1024) as server:
        yield server


def client(pool: DynamicSessionsServer, credential: Credential | None = None) -> DynamicSessionsSandbox:
    settings = SandboxSettings(kind="dynamic_sessions", endpoint=pool.endpoint, timeout_seconds=45)
    return DynamicSessionsSandbox(settings, credential=credential or Credential())


def test_execute_sends_the_documented_request(pool: DynamicSessionsServer) -> None:
    credential = Credential()
    sandbox = client(pool, credential)
    result = sandbox.execute(KEY, "x = 6 * 7\nprint(x)")
    assert result.logs == "42\n" and result.error is None and result.new_session
    (execution,) = [r for r in pool.requests if r.path == "/executions"]
    assert execution.method == "POST"
    assert execution.query == {"api-version": API_VERSION, "identifier": KEY}
    assert execution.headers["authorization"] == "Bearer test-token"
    assert execution.json() == {
        "codeInputType": "Inline",
        "executionType": "Synchronous",
        "code": "x = 6 * 7\nprint(x)",
        "timeoutInSeconds": 45,
    }
    assert "thread_abc" not in str(pool.requests)  # the identifier is the keyed hash only
    second = sandbox.execute(KEY, "print(x + 1)", timeout=5)
    assert second.logs == "43\n" and not second.new_session
    assert pool.requests[-2].json()["timeoutInSeconds"] == 5
    assert credential.scopes == [(SCOPE,)]  # one token, reused
    assert SCOPE == "https://dynamicsessions.io/.default"


def test_a_failing_cell_is_logs(pool: DynamicSessionsServer) -> None:
    result = client(pool).execute(KEY, "print('before')\n1 / 0")
    assert result.error == "ZeroDivisionError"
    assert result.logs.startswith("before\nTraceback (most recent call last)")


def test_files_in_are_uploaded_once_and_files_out_listed_and_read(pool: DynamicSessionsServer) -> None:
    sandbox = client(pool)
    reads: list[str] = []

    def read() -> bytes:
        reads.append("data")
        return b"a,b\n1,2\n"

    inputs = [InputFile("data v1.csv", read)]
    result = sandbox.execute(KEY, "save('out.csv', b'x,y\\n')", files_in=inputs)
    assert result.files_put == ("data v1.csv",)
    assert [f.path for f in result.files_written] == ["/mnt/data/out.csv"]
    upload = next(r for r in pool.requests if r.method == "POST" and r.path == "/files")
    assert upload.query["identifier"] == KEY
    assert upload.headers["content-type"].startswith("multipart/form-data")
    assert b'name="file"; filename="data v1.csv"' in upload.body
    again = sandbox.execute(KEY, "print('ok')", files_in=inputs)
    assert again.files_put == () and again.files_written == () and reads == ["data"]
    assert sandbox.read_file(KEY, "out.csv") == b"x,y\n"
    assert sandbox.read_file(KEY, "data v1.csv") == b"a,b\n1,2\n"
    assert pool.requests[-1].path == "/files/data%20v1.csv/content"
    pool.directories = True
    assert [f.name for f in sandbox.list_files(KEY)] == ["data v1.csv", "out.csv"]
    with pytest.raises(FileNotFoundError):
        sandbox.read_file(KEY, "missing.txt")
    with pytest.raises(ValueError):
        sandbox.put_file(KEY, "../x", b"")
    with pytest.raises(SandboxError, match="413"):
        sandbox.put_file(KEY, "big.bin", b"x" * 2048)  # over this pool's limit


def test_an_image_result_is_a_png(pool: DynamicSessionsServer) -> None:
    result = client(pool).execute(KEY, f"show_png({PNG!r})\nprint('drawn')")
    assert result.images == [PNG] and "drawn" in result.logs


def test_a_timeout_and_a_failed_execution(pool: DynamicSessionsServer) -> None:
    sandbox = client(pool)
    pool.script({"status": "Failed", "error": {"code": "ExecutionTimeout", "message": "timed out"}})
    timed = sandbox.execute(KEY, "while True: pass", timeout=3)
    assert timed.timed_out and "timed out after 3 seconds" in timed.logs
    pool.script(
        {
            "status": "Succeeded",
            "result": {
                "stdout": "",
                "stderr": "",
                "executionResult": {
                    "type": "image",
                    "format": "png",
                    "base64_data": base64.b64encode(PNG).decode(),
                },
            },
        }
    )
    assert sandbox.execute(KEY, "plt.show()").images == [PNG]
    pool.script({"status": "Failed", "error": {"code": "SessionFailed", "message": "kernel died"}})
    failed = sandbox.execute(KEY, "x")
    assert failed.error == "SessionFailed" and "kernel died" in failed.logs


def test_end_releases_the_session(pool: DynamicSessionsServer) -> None:
    sandbox = client(pool)
    sandbox.execute(KEY, "v = 1")
    sandbox.end(KEY)
    assert pool.deleted == [KEY]
    assert pool.requests[-1].method == "DELETE" and pool.requests[-1].path == "/session"
    sandbox.end(KEY)  # gone already: nothing
    after = sandbox.execute(KEY, "print('v' in globals())")
    assert after.new_session and after.logs == "False\n"


def test_the_token_is_renewed_before_it_expires(pool: DynamicSessionsServer) -> None:
    credential = Credential(lifetime=60)  # inside the renewal margin: asked for at every call
    sandbox = client(pool, credential)
    sandbox.list_files(KEY)
    sandbox.list_files(KEY)
    assert len(credential.scopes) == 2


def test_refusals_and_an_unreachable_pool_are_sandbox_errors(pool: DynamicSessionsServer) -> None:
    with pytest.raises(SandboxError, match="401"):
        client(pool, Credential("wrong")).execute(KEY, "print(1)")

    class Failing:
        def get_token(self, *scopes: str) -> Token:
            raise RuntimeError("no identity")

    settings = SandboxSettings(kind="dynamic_sessions", endpoint=pool.endpoint)
    with pytest.raises(SandboxError, match="Session Executor"):
        DynamicSessionsSandbox(settings, credential=Failing()).execute(KEY, "print(1)")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    gone = SandboxSettings(kind="dynamic_sessions", endpoint=f"http://127.0.0.1:{port}/pool")
    with pytest.raises(SandboxError, match="could not be reached"):
        DynamicSessionsSandbox(gone, credential=Credential()).execute(KEY, "print(1)")
    with pytest.raises(ValueError):
        client(pool).execute("abc", "print(1)")  # shorter than an identifier may be


def test_open_sandbox_picks_the_pool_from_the_settings(pool: DynamicSessionsServer) -> None:
    settings = SandboxSettings.from_environ({"ASSISTANTS_SANDBOX_ENDPOINT": pool.endpoint})
    sandbox = open_sandbox(settings)
    assert isinstance(sandbox, DynamicSessionsSandbox)
    sandbox.close()


def test_interrupt_releases_a_session_whose_call_runs(pool: DynamicSessionsServer) -> None:
    sandbox = client(pool)
    sandbox.execute(KEY, "import time")
    timer = threading.Timer(0.5, sandbox.interrupt, args=(KEY,))
    timer.start()
    try:
        result = sandbox.execute(KEY, "time.sleep(2)\nprint('done')")
    finally:
        timer.join()
    assert result.interrupted
    assert pool.deleted == [KEY]  # a synchronous execution cannot be stopped: the session is let go
    sandbox.interrupt(KEY)  # nothing runs: nothing is released
    assert pool.deleted == [KEY]
