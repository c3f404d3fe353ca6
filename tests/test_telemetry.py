"""Telemetry: spans and logs carry the request id and never a key or a message's content.

OpenTelemetry is set up here with in-memory exporters (Application Insights is not reachable
from these machines), around the app's real request handling on Azurite, with the storage SDK's
tracing on, as the Azure Monitor distro turns it on in Azure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.settings import settings as azure_settings
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.requests import Request
from starlette.responses import Response

from assistants_core import endpoints, telemetry
from assistants_core.http import Api
from assistants_core.settings import Settings
from tests.support import DEV_ACCOUNT_KEY, Azurite

KEY = "key-" + secrets.token_hex(16)
CONTENT = "content-" + secrets.token_hex(16)


@pytest.fixture
def exported(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[InMemorySpanExporter, InMemoryLogRecordExporter]]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    handler = LoggingHandler(logger_provider=logger_provider)
    watched = [logging.getLogger(telemetry.LOGGER), logging.getLogger("azure")]
    for logger in watched:
        logger.addHandler(handler)
    monkeypatch.setattr(logging.getLogger(telemetry.LOGGER), "level", logging.INFO)
    azure_settings.tracing_implementation = "opentelemetry"  # what the Azure Monitor distro turns on
    monkeypatch.setattr(telemetry, "_enabled", False)
    telemetry.enable_request_ids()
    yield spans, logs
    azure_settings.tracing_implementation.unset_value()
    for logger in watched:
        logger.removeHandler(handler)


def call(api: Api, method: str, path: str, endpoint: Any, body: Any = None, **route: str) -> Response:
    """A request as the worker hands it to a function (route values in `path_params`)."""
    payload = json.dumps(body).encode() if body is not None else b""
    scope = {
        "type": "http",
        "method": method,
        "scheme": "https",
        "server": ("app.example", 443),
        "path": f"/openai/{path}",
        "raw_path": f"/openai/{path}".encode(),
        "query_string": b"",
        "headers": [(b"api-key", KEY.encode()), (b"content-type", b"application/json")],
        "path_params": route,
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": payload, "more_body": False}

    tracer = trace.get_tracer("functions-host")
    with tracer.start_as_current_span(f"{method} /openai/{path}"):  # as the host's invocation span
        return asyncio.run(api.handle(Request(scope, receive), endpoint))


def test_spans_and_logs_carry_request_ids_but_no_keys_or_content(
    azurite: Azurite, exported: tuple[InMemorySpanExporter, InMemoryLogRecordExporter]
) -> None:
    spans, logs = exported
    settings = Settings(
        api_keys=(KEY.encode(),),
        storage_connection_string=azurite.connection_string,
        table_prefix="t" + secrets.token_hex(4),
    )
    api = Api(settings)
    created = call(
        api, "POST", "threads", endpoints.create_thread, {"messages": [{"role": "user", "content": CONTENT}]}
    )
    assert created.status_code == 200
    thread_id = json.loads(bytes(created.body))["id"]
    listed = call(api, "GET", f"threads/{thread_id}/messages", endpoints.list_messages, thread_id=thread_id)
    assert CONTENT in bytes(listed.body).decode()  # the content did pass through

    finished = spans.get_finished_spans()
    invocations = [s for s in finished if s.name.startswith(("POST /openai", "GET /openai"))]
    request_ids = [response.headers["x-request-id"] for response in (created, listed)]
    assert [s.attributes[telemetry.REQUEST_ID] for s in invocations] == request_ids  # type: ignore[index]
    storage_spans = [s for s in finished if s not in invocations]
    assert storage_spans, "the storage calls were traced"
    assert all(s.parent is not None for s in storage_spans)  # nested under their request

    records = [r.log_record for r in logs.get_finished_logs()]
    assert any(request_ids[0] in str(r.body) for r in records)
    everything = json.dumps(
        [
            [s.name, dict(s.attributes or {}), [(e.name, dict(e.attributes or {})) for e in s.events]]
            for s in finished
        ]
        + [[str(r.body), dict(r.attributes or {})] for r in records],
        default=str,
    )
    for secret in (KEY, CONTENT, DEV_ACCOUNT_KEY):
        assert secret not in everything
