"""Real servers for the tests: Azurite (tables, queues and blobs, in memory, on free ports) and the dev
host serving function_app, as subprocesses, and the official `openai` clients pointed at them."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from azure.core.pipeline import PipelineResponse
from openai import AzureOpenAI, OpenAI

from assistants_core.service import Service
from assistants_core.settings import Settings
from assistants_core.storage import Store

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin"  # azurite-table, azurite-queue, azurite-blob
API_KEYS = ("test-key-primary", "test-key-secondary")
API_VERSION = "2025-03-01-preview"
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], object], seconds: float, what: str) -> None:
    """Until `condition()` holds; fails the test, naming `what`, after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.1)


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port} within {seconds} s")
        time.sleep(0.05)


def connection_string(port: int, queue_port: int | None = None, blob_port: int | None = None) -> str:
    """Azurite's account at `port` (tables) and, if given, `queue_port` (queues) and `blob_port`
    (blobs)."""
    queues = f"QueueEndpoint=http://127.0.0.1:{queue_port}/devstoreaccount1;" if queue_port else ""
    blobs = f"BlobEndpoint=http://127.0.0.1:{blob_port}/devstoreaccount1;" if blob_port else ""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={DEV_ACCOUNT_KEY};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;{queues}{blobs}"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Azurite:
    """Azurite's table service on `port`, its queue service on `queue_port` and its blob service
    on `blob_port`, in memory; one connection string reaches all three. Stopped and started again,
    it comes back empty, on the same ports."""

    port: int
    queue_port: int = field(default_factory=free_port)
    blob_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, self.queue_port, self.blob_port)

    @property
    def services(self) -> tuple[tuple[str, int], ...]:
        return (("table", self.port), ("queue", self.queue_port), ("blob", self.blob_port))

    def start(self) -> None:
        for service, port in self.services:
            self.processes.append(
                subprocess.Popen(
                    [
                        str(AZURITE / f"azurite-{service}"),
                        "--inMemoryPersistence",
                        "--disableTelemetry",
                        "--skipApiVersionCheck",
                        f"--{service}Host",
                        "127.0.0.1",
                        f"--{service}Port",
                        str(port),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        try:
            for process, (_, port) in zip(self.processes, self.services, strict=True):
                wait_for_port(port, process, "Azurite")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        while self.processes:
            stop(self.processes.pop())


@dataclass
class DevHost:
    base_url: str  # what AzureOpenAI(azure_endpoint=...) takes; the API is under /openai
    table_prefix: str
    storage: str
    pid: int = 0

    @property
    def api_url(self) -> str:
        return self.base_url + "/openai"


def devhost_env(storage: str, table_prefix: str, **overrides: str) -> dict[str, str]:
    """A dev host's settings: its own tables (`table_prefix`) and runs queue, on `storage`."""
    env = dict(os.environ)
    env.update(
        ASSISTANTS_API_KEYS=",".join(API_KEYS),
        ASSISTANTS_STORAGE_CONNECTION_STRING=storage,
        ASSISTANTS_TABLE_PREFIX=table_prefix,
        ASSISTANTS_RUNS_QUEUE=f"{table_prefix.lower() or 'tests'}-runs",
        ASSISTANTS_INGEST_QUEUE=f"{table_prefix.lower() or 'tests'}-ingest",
    )
    env.update(overrides)
    return env


@contextmanager
def running_devhost(
    storage: str, table_prefix: str | None = None, log: Path | None = None, **env: str
) -> Iterator[DevHost]:
    """A dev host process of its own (own table prefix unless given), stopped on exit; its
    output goes to `log` if given. A host that cannot start says why, in the error raised."""
    prefix = table_prefix or "t" + secrets.token_hex(4)
    with tempfile.TemporaryDirectory() as scratch:
        path = log or Path(scratch) / "devhost.log"
        for attempt in range(3):
            port = free_port()
            with path.open("ab") as output:
                process = subprocess.Popen(
                    [sys.executable, "-m", "devhost", "--port", str(port), "--no-azurite"],
                    cwd=ROOT,
                    env=devhost_env(storage, prefix, **env),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_for_port(port, process, "dev host")
                break
            except RuntimeError as exc:
                stop(process)
                said = path.read_text(errors="replace")
                # The free port was taken before the host bound it (another process's outgoing
                # connection can draw it from the same ephemeral range): take another.
                if "address already in use" in said.lower() and attempt < 2:
                    continue
                raise RuntimeError(f"{exc}; its output:\n{said[-3000:]}") from None
        try:
            yield DevHost(f"http://127.0.0.1:{port}", prefix, storage, process.pid)
        finally:
            stop(process)


def sdk_clients(host: DevHost) -> dict[str, OpenAI]:
    return {
        "azure": AzureOpenAI(
            azure_endpoint=host.base_url, api_key=API_KEYS[0], api_version=API_VERSION, max_retries=0
        ),
        "openai": OpenAI(base_url=host.api_url, api_key=API_KEYS[1], max_retries=0),
    }


def stored_rows(storage: str, table: str, partition: str | None = None) -> int:
    """How many rows a table (or one partition of it) holds: for proving nothing was written,
    or that everything was removed."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    client = TableClient.from_connection_string(storage, table)
    query, parameters = (
        ("PartitionKey eq @pk", {"pk": partition}) if partition else ("PartitionKey ne ''", {})
    )
    try:
        return sum(1 for _ in client.query_entities(query, parameters=parameters, select=["RowKey"]))
    except ResourceNotFoundError:  # the table was never created
        return 0


class StorageMeter:
    """Counts storage requests, and the most rows they may return: a query's `$top`, else one;
    and the methods of the requests, in order."""

    def __init__(self) -> None:
        self.requests = 0
        self.rows = 0
        self.methods: list[str] = []

    def __call__(self, response: PipelineResponse[Any, Any]) -> None:
        self.requests += 1
        self.methods.append(response.http_request.method)
        top = parse_qs(urlsplit(response.http_request.url).query).get("$top", ["1"])[0]
        self.rows += int(top)

    def reset(self) -> None:
        self.requests = self.rows = 0
        self.methods = []


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) of each Server-Sent Event in a stream's lines, as they come; the data is
    parsed JSON, or the text "[DONE]"."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
            yield name, data if data == "[DONE]" else json.loads(data)


def text_of(message: Any) -> str:
    """The text of a message's first content part (an SDK Message)."""
    return str(message.model_dump()["content"][0]["text"]["value"])


def error_of(exc: Any) -> dict[str, Any]:
    """The error object the SDK parsed from an error response (`APIStatusError.body`)."""
    body = exc.body
    assert isinstance(body, dict)
    return body


def assert_error(
    response: httpx.Response, status: int, param: str | None, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"].startswith("req_")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    assert error["message"]
    return dict(error)


def run_concurrently(actions: list[Any]) -> None:
    """Start every action on its own thread at once; raise the first error any of them hit."""
    import threading

    errors: list[BaseException] = []

    def run(action: Any) -> None:
        try:
            action()
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(action,)) for action in actions]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]


class FaultyProxy:
    """An HTTP/1.1 proxy in front of Azurite's tables that counts requests and, from a chosen one
    on, drops connections without answering, as an unreachable storage would, until healed. Its
    connection string reaches the queues, if given their port, directly."""

    def __init__(self, target_port: int, queue_port: int | None = None) -> None:
        import threading

        self.target_port = target_port
        self.queue_port = queue_port
        self.port = free_port()
        self.requests = 0
        self._fail_from: int | None = None
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, self.queue_port)

    def fail_after(self, allowed: int) -> None:
        """Let `allowed` more requests through, then fail every one after them."""
        with self._lock:
            self._fail_from = self.requests + allowed

    def heal(self) -> None:
        with self._lock:
            self._fail_from = None

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        import threading

        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        reader = client.makefile("rb")
        try:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = reader.read(length) if length else b""
                with self._lock:
                    self.requests += 1
                    failing = self._fail_from is not None and self.requests > self._fail_from
                if failing:
                    return
                upstream.sendall(head + body)
        except OSError:
            return
        finally:
            for s in (client, upstream):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        # Storage closed this connection (an idle keep-alive): close the client's too, so it
        # reconnects rather than waiting on a connection nobody answers.
        with suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)


def in_process_store(
    storage: str, table_prefix: str | None = None, meter: StorageMeter | None = None
) -> Store:
    """The storage layer, in this process, on real storage: beside a dev host (same
    `table_prefix`), or on tables of its own (a fresh prefix); `meter` counts its requests."""
    settings = Settings(
        api_keys=(b"unused",),
        storage_connection_string=storage,
        table_prefix=table_prefix or "t" + secrets.token_hex(4),
    )
    return Store(settings, observe=meter)


def in_process_service(
    storage: str, table_prefix: str | None = None, meter: StorageMeter | None = None
) -> Service:
    """The service itself, in this process, on a store from `in_process_store`."""
    return Service(in_process_store(storage, table_prefix, meter))
