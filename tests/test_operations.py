"""Running the service: settings at start-up, storage outages, request ids."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from openai import OpenAI

from assistants_core.settings import ConfigurationError, Settings
from tests.support import (
    API_KEYS,
    ROOT,
    Azurite,
    DevHost,
    devhost_env,
    free_port,
    running_devhost,
)


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        (
            {"ASSISTANTS_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"},
            "ASSISTANTS_API_KEYS is not set",
        ),
        (
            {"ASSISTANTS_API_KEYS": " , ", "ASSISTANTS_STORAGE_CONNECTION_STRING": "x"},
            "ASSISTANTS_API_KEYS is not set",
        ),
        (
            {"ASSISTANTS_API_KEYS": "k"},
            "Neither ASSISTANTS_STORAGE_ACCOUNT_URL nor ASSISTANTS_STORAGE_CONNECTION_STRING",
        ),
        (
            {
                "ASSISTANTS_API_KEYS": "k",
                "ASSISTANTS_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
                "ASSISTANTS_STORAGE_ACCOUNT_URL": "https://acct.table.core.windows.net/",
            },
            "Both ASSISTANTS_STORAGE_CONNECTION_STRING and ASSISTANTS_STORAGE_ACCOUNT_URL are set",
        ),
        (
            {
                "ASSISTANTS_API_KEYS": "k",
                "ASSISTANTS_STORAGE_CONNECTION_STRING": "x",
                "ASSISTANTS_TABLE_PREFIX": "a-b",
            },
            "ASSISTANTS_TABLE_PREFIX must be",
        ),
        (
            {
                "ASSISTANTS_API_KEYS": "k",
                "ASSISTANTS_STORAGE_CONNECTION_STRING": "AccountName=a;AccountKey=b;TableEndpoint=http://127.0.0.1:1/a;",
            },
            "names a TableEndpoint but no QueueEndpoint",
        ),
        (
            {
                "ASSISTANTS_API_KEYS": "k",
                "ASSISTANTS_STORAGE_CONNECTION_STRING": "x",
                "ASSISTANTS_RUNS_QUEUE": "Runs",
            },
            "ASSISTANTS_RUNS_QUEUE must be a storage queue name",
        ),
        (
            {
                "ASSISTANTS_API_KEYS": "k",
                "ASSISTANTS_STORAGE_CONNECTION_STRING": "x",
                "ASSISTANTS_RUN_EXPIRY_SECONDS": "0",
            },
            "ASSISTANTS_RUN_EXPIRY_SECONDS must be",
        ),
        (
            {
                "ASSISTANTS_API_KEYS": "k",
                "ASSISTANTS_STORAGE_CONNECTION_STRING": "x",
                "ASSISTANTS_STREAM_HEARTBEAT_SECONDS": "soon",
            },
            "ASSISTANTS_STREAM_HEARTBEAT_SECONDS must be",
        ),
    ],
)
def test_settings_refuse_to_start_with_a_clear_message(environ: dict[str, str], complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        Settings.from_environ(environ)


def test_storage_is_reached_by_identity_or_by_connection_string() -> None:
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.identity import DefaultAzureCredential

    from assistants_core.storage.store import table_service

    by_identity = Settings.from_environ(
        {"ASSISTANTS_API_KEYS": "k", "ASSISTANTS_STORAGE_ACCOUNT_URL": "https://acct.table.core.windows.net/"}
    )
    client = table_service(by_identity)
    assert isinstance(client.credential, DefaultAzureCredential)
    assert client.url.startswith("https://acct.table.core.windows.net")

    by_key = Settings.from_environ(
        {"ASSISTANTS_API_KEYS": "k", "ASSISTANTS_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}
    )
    client = table_service(by_key)
    assert isinstance(client.credential, AzureNamedKeyCredential)
    assert client.url.startswith("http://127.0.0.1:10002/devstoreaccount1")

    with pytest.raises(ConfigurationError, match="No storage is configured"):
        table_service(Settings(api_keys=(b"k",)))


def test_storage_sessions_read_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistants_core.storage.store import transport

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ours.pem")
    plain = transport()
    assert plain.session.trust_env is False  # nothing to find per request
    assert plain.connection_config.verify == "/etc/ssl/certs/ours.pem"  # read once, still honoured
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert transport().session.trust_env is True  # requests then honours it, and NO_PROXY


def test_storage_sessions_send_what_requests_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage session's short way to its adapter sends the request `requests` itself
    would (its default headers merged under the request's, a None header dropped, the body),
    and reads the response the same way; with a proxy in the environment it goes the whole way."""
    import http.server
    import threading

    import requests

    from assistants_core.storage.store import transport

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    seen: list[tuple[str, list[tuple[str, str]], bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((self.requestline, list(self.headers.items()), body))
            self.send_response(201)
            self.send_header("Content-Length", "2")
            self.send_header("ETag", 'W/"1"')
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/t(PartitionKey='a',RowKey='b')?x=1"
    headers: Any = {"x-ms-version": "2019-02-02", "Accept": "application/json", "X-Gone": None}
    try:
        session = transport().session
        assert type(session).request is not requests.Session.request
        kwargs: Any = {"timeout": (5, 5), "allow_redirects": False, "verify": True, "cert": None}
        for stream in (False, True):
            ours = session.request("PUT", url, headers=headers, data=b'{"a":1}', stream=stream, **kwargs)
            theirs = requests.Session().request(
                "PUT", url, headers=headers, data=b'{"a":1}', stream=stream, **kwargs
            )
            assert (ours.status_code, ours.headers["ETag"], ours.content) == (201, 'W/"1"', b"ok")
            assert (theirs.status_code, theirs.content) == (201, b"ok")
            assert seen[-2] == seen[-1]
        assert "X-Gone" not in dict(seen[-1][1]) and dict(seen[-1][1])["Accept"] == "application/json"
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # honoured: the whole way, then straight there
        proxied = transport().session
        assert proxied.trust_env is True
        assert proxied.request("PUT", url, headers=headers, data=b"x", **kwargs).status_code == 201
    finally:
        server.shutdown()


def test_storage_that_never_answers_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage clients' read timeout reaches their transport: a storage that takes the
    request and says nothing is a StorageUnavailable, not a wait of minutes."""
    import socket
    import threading

    from assistants_core.storage import StorageUnavailable, Store
    from assistants_core.storage import store as store_module
    from tests.support import connection_string

    monkeypatch.setitem(store_module.CLIENT_OPTIONS, "read_timeout", 0.5)
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def take_and_say_nothing() -> None:
        while True:
            try:
                held.append(silent.accept()[0])
            except OSError:  # closed
                return

    threading.Thread(target=take_and_say_nothing, daemon=True).start()
    settings = Settings.from_environ(
        {
            "ASSISTANTS_API_KEYS": "k",
            "ASSISTANTS_STORAGE_CONNECTION_STRING": connection_string(silent.getsockname()[1], free_port()),
        }
    )
    started = time.monotonic()
    try:
        with pytest.raises(StorageUnavailable):
            Store(settings).assistants()
    finally:
        silent.close()
        for connection in held:
            connection.close()
    assert time.monotonic() - started < 10  # the transport kept its own 300 s before


def test_keys_are_comma_separated_and_trimmed() -> None:
    settings = Settings.from_environ(
        {"ASSISTANTS_API_KEYS": " one , two,,", "ASSISTANTS_STORAGE_CONNECTION_STRING": "x"}
    )
    assert settings.api_keys == (b"one", b"two")


def test_dev_host_refuses_to_serve_without_a_key(azurite: Azurite) -> None:
    env = devhost_env(azurite.connection_string, "tnokeys", ASSISTANTS_API_KEYS="")
    result = subprocess.run(
        [sys.executable, "-m", "devhost", "--port", str(free_port()), "--no-azurite"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ASSISTANTS_API_KEYS is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_function_app_import_refuses_without_a_key() -> None:
    """What Core Tools and Azure see: indexing function_app fails, with the reason."""
    env = devhost_env("UseDevelopmentStorage=true", "", ASSISTANTS_API_KEYS="")
    result = subprocess.run(
        [sys.executable, "-c", "import function_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ConfigurationError: ASSISTANTS_API_KEYS is not set" in result.stderr


def test_storage_down_is_a_quick_503_and_service_resumes_when_it_returns() -> None:
    storage = Azurite(free_port())  # a private one: it is stopped, and comes back empty
    storage.start()
    try:
        with (
            running_devhost(storage.connection_string) as host,
            httpx.Client(base_url=host.api_url, headers={"api-key": API_KEYS[0]}, timeout=30) as http,
        ):
            assert http.post("/assistants", json={"model": "m"}).status_code == 200
            storage.stop()
            for method, path in [
                ("GET", "/assistants"),
                ("POST", "/assistants"),
                ("GET", "/assistants/asst_000000000000000000000000"),
                ("POST", "/threads"),
            ]:
                started = time.monotonic()
                response = http.request(method, path, json={"model": "m"} if path == "/assistants" else {})
                assert response.status_code == 503
                assert time.monotonic() - started < 10
                assert response.headers["retry-after"] == "5"
                assert response.headers["x-request-id"].startswith("req_")
                error = response.json()["error"]
                assert (error["type"], error["code"], error["param"]) == (
                    "server_error",
                    "service_unavailable",
                    None,
                )
            assert httpx.get(host.api_url + "/assistants").status_code == 401  # auth still comes first
            assert http.post("/assistants", json={"model": 5}).status_code == 400  # and validation

            # Back, but empty (in memory): the tables this process made are gone. The first call
            # finds that out and makes them again; a retry, as the SDKs do on a 503, succeeds.
            storage.start()
            statuses = [http.post("/assistants", json={"model": "m"}).status_code for _ in range(2)]
            assert statuses in ([200, 200], [503, 200])
            retrying = OpenAI(base_url=host.api_url, api_key=API_KEYS[0], max_retries=2)
            thread = retrying.beta.threads.create(messages=[{"role": "user", "content": "back"}])
            assert retrying.beta.threads.messages.list(thread.id).data[0].thread_id == thread.id
    finally:
        storage.stop()


def test_each_response_has_its_own_request_id(http: httpx.Client, devhost: DevHost) -> None:
    seen = {http.get("/assistants", params={"limit": 1}).headers["x-request-id"] for _ in range(5)}
    seen.add(httpx.get(devhost.api_url + "/assistants").headers["x-request-id"])
    seen.add(http.get("/nowhere").headers["x-request-id"])
    assert len(seen) == 7
