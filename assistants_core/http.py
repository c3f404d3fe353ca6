"""The HTTP edge: auth, api-version, body parsing, the one error renderer, request ids and logs.

The only module that knows the web framework: the Functions HTTP-streams extension hands every
HTTP function FastAPI's `Request` and takes back its `Response`. Endpoints see a `Call`, made of
plain values, and run on a thread pool (`run_blocking`), since storage calls block and the event
loop must stay free for other requests and streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hmac
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from fastapi import Request, Response  # what the HTTP-streams extension hands over and takes back
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from . import routing, telemetry
from .backend import ModelBackend
from .errors import (
    ApiError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedApiVersion,
)
from .files import Download
from .run_state import EventStream
from .service import Service
from .settings import Settings
from .storage import StorageUnavailable, Store
from .worker import Worker

log = logging.getLogger(telemetry.LOGGER)

# Every version here speaks the Assistants v2 shapes; a request without one gets the latest.
API_VERSIONS = frozenset(
    {
        "2024-05-01-preview",
        "2024-07-01-preview",
        "2024-08-01-preview",
        "2024-09-01-preview",
        "2024-10-01-preview",
        "2025-01-01-preview",
        "2025-03-01-preview",
        "2025-04-01-preview",
        # Foundry Agent Service (classic), as azure-ai-agents sends them (its spec folder,
        # specification/ai/data-plane/Azure.AI.Agents: stable/v1, stable/2025-05-01,
        # preview/2025-05-15-preview and preview/2024-07-01-preview, already above).
        "v1",
        "2025-05-01",
        "2025-05-15-preview",
    }
)
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_JSON_DEPTH = 64
STREAM_GATHER_BYTES = 1024 * 1024
# Endpoints run on a few threads per core. Storage calls wait on I/O, but the storage SDK's own
# Python is most of a request's CPU: with many threads at it, the event loop's thread rarely gets
# the interpreter lock and every stream and response stalls (make bench: 200 clients on 2 cores
# gave 1 s of loop lag with 64 threads, 25 ms with 4, at the same throughput).
BLOCKING_THREADS = 2 * len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 4

_blocking = ThreadPoolExecutor(max_workers=BLOCKING_THREADS, thread_name_prefix="blocking")
# A streamed run's events are drawn on one of these, for as long as the run lasts (mostly waiting
# on the model): threads kept and reused, never one made per run; many, since each mostly waits.
_runs = ThreadPoolExecutor(max_workers=256, thread_name_prefix="run")
# Uploads wait on the client and on storage for as long as their bytes take: threads of their
# own, so that a few large uploads never hold up the short requests.
_transfers = ThreadPoolExecutor(max_workers=32, thread_name_prefix="transfer")
P = ParamSpec("P")
T = TypeVar("T")


async def run_blocking(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function` on the edge's thread pool, in the caller's context (so that its spans nest
    under the request's)."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_blocking, call)


@dataclass(frozen=True)
class Call:
    """One request as an endpoint sees it: plain values, no web framework."""

    service: Service
    query: tuple[tuple[str, str], ...] = ()
    route: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    response_headers: dict[str, str] = field(default_factory=dict)  # what the endpoint adds
    headers: Mapping[str, str] = field(default_factory=dict)  # lowercase names
    # A streamed request's body (uploads), read as the endpoint goes; `body` is then empty.
    stream: Iterator[bytes] = field(default_factory=lambda: iter(()))

    @property
    def params(self) -> Mapping[str, str]:
        """The query parameters; a repeated one by its first value."""
        params: dict[str, str] = {}
        for name, value in self.query:
            params.setdefault(name, value)
        return params

    def param_values(self, name: str) -> list[str]:
        return [value for key, value in self.query if key == name]

    def path(self, name: str) -> str:
        return self.route[name]

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; an empty body is an empty object."""
        raw = self.body
        if not raw.strip():
            return {}
        try:
            value = json.loads(
                raw.decode("utf-8"),
                object_pairs_hook=_object_without_duplicates,
                parse_constant=_reject_constant,
                parse_float=_finite_float,
            )
        except UnicodeDecodeError:
            raise InvalidRequest("The request body is not valid UTF-8.", code="invalid_encoding") from None
        except _DuplicateKey as exc:
            raise InvalidRequest(
                f"The JSON body names '{exc.key}' more than once.", param=exc.key, code="duplicate_parameter"
            ) from None
        except (ValueError, RecursionError):
            raise InvalidRequest(
                "We could not parse the JSON body of your request. The API expects a JSON object.",
                code="invalid_json",
            ) from None
        if not isinstance(value, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
        _check_json_values(value)
        return value


Endpoint = Callable[[Call], BaseModel | EventStream | Download]


class Api:
    """What every HTTP function goes through, around its endpoint."""

    def __init__(self, settings: Settings) -> None:
        self._keys = settings.api_keys
        # A comment line this often keeps a quiet stream open through proxies and read timeouts.
        self._heartbeat = settings.stream_heartbeat_seconds
        store = Store(settings)
        backend = (
            ModelBackend(settings.model_base_url, settings.model_api_key) if settings.model_base_url else None
        )
        self._service = Service(store, backend)
        service = self._service
        self.worker = Worker(store, service.runs, service.files, service.vector_stores, service.code)

    @classmethod
    def from_environment(cls) -> Api:
        """Raises ConfigurationError, so that the app refuses to start, when settings are missing;
        starts telemetry when it is configured."""
        api = cls(Settings.from_environ())
        telemetry.configure()
        return api

    async def handle(
        self, request: Request, endpoint: Endpoint, streamed_up_to: int | None = None
    ) -> Response:
        """`streamed_up_to`, if given, hands the endpoint the body as it arrives (`Call.stream`),
        up to that many bytes (then a 413), on a thread of its own."""
        request_id = "req_" + secrets.token_hex(16)
        telemetry.tag_request(request_id)
        started = time.perf_counter()
        response: Response
        try:
            self._admit(request)
            query = tuple(request.query_params.multi_items())
            headers = {name.lower(): value for name, value in request.headers.items()}
            if streamed_up_to is None:
                call = Call(
                    self._service, query, dict(request.path_params), await _body(request), headers=headers
                )
                result = await run_blocking(endpoint, call)
            else:
                stream = _streamed(request, streamed_up_to)
                call = Call(self._service, query, dict(request.path_params), headers=headers, stream=stream)
                context = contextvars.copy_context()
                result = await asyncio.get_running_loop().run_in_executor(
                    _transfers, functools.partial(context.run, endpoint, call)
                )
            if isinstance(result, EventStream):
                response = _event_stream(result, self._heartbeat)
            elif isinstance(result, Download):
                response = StreamingResponse(result.chunks, status_code=result.status, headers=result.headers)
            else:
                response = _json_response(200, result.model_dump_json().encode(), call.response_headers)
        except ApiError as error:
            response = _error_response(error)
        except StorageUnavailable:
            log.warning("storage unavailable request_id=%s", request_id, exc_info=True)
            response = _error_response(ServiceUnavailable())
        except Exception:
            log.exception("unhandled error request_id=%s", request_id)
            response = _error_response(InternalError())
        response.headers["x-request-id"] = request_id
        log.info(
            "%s %s -> %d in %.1f ms request_id=%s",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            request_id,
        )
        return response

    async def handle_unmatched(self, request: Request, app: routing.FunctionApp) -> Response:
        """For the catch-all route: a JSON 405 where the path exists with other methods, else 404."""
        routes = [r for r in app.http_routes if not r.is_catch_all]
        path = str(request.path_params.get("path", ""))
        allowed = sorted({m for route, _ in routing.matching(routes, path) for m in route.methods})
        where = f"({request.method} {request.url.path})"

        def unmatched(call: Call) -> BaseModel:
            if allowed:
                raise MethodNotAllowed(f"Method not allowed {where}.", allowed=allowed)
            raise NotFound(f"Invalid URL {where}.")

        return await self.handle(request, unmatched)

    def _admit(self, request: Request) -> None:
        """Key and api-version: checked before the body is read."""
        if not (self._is_key(request.headers.get("api-key")) or self._is_key(_bearer(request))):
            raise Unauthorized()
        version = request.query_params.get("api-version")
        if version is not None and version not in API_VERSIONS:
            raise UnsupportedApiVersion()

    def _is_key(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        given = candidate.encode("utf-8", "replace")
        # Compare with every key, always, so timing reveals neither a key nor which one matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        return matched


def _too_large(limit: int = MAX_BODY_BYTES) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than this service's limit of {limit:,} bytes.")


def _streamed(request: Request, limit: int) -> Iterator[bytes]:
    """The body as a blocking iterator for a thread off the event loop: each chunk awaited on
    the loop as the reader asks for it; a 413 once past `limit`, a 400 if the client goes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    loop = asyncio.get_running_loop()
    source = request.stream().__aiter__()

    ended = False

    async def following() -> bytes | None:
        """What has arrived, up to STREAM_GATHER_BYTES: one thread hop per that many bytes,
        not one per network read (about 64 KiB)."""
        nonlocal ended
        gathered: list[bytes] = []
        size = 0
        while not ended and size < STREAM_GATHER_BYTES:
            try:
                chunk = await source.__anext__()
            except StopAsyncIteration:
                ended = True
                break
            gathered.append(chunk)
            size += len(chunk)
        return b"".join(gathered) if gathered else None

    def chunks() -> Iterator[bytes]:
        size = 0
        while True:
            try:
                chunk = asyncio.run_coroutine_threadsafe(following(), loop).result()
            except ClientDisconnect:
                raise InvalidRequest("The client went away before the request body was complete.") from None
            if chunk is None:
                return
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            yield chunk

    return chunks()


async def _body(request: Request) -> bytes:
    """The whole body, however many chunks it arrives in; a 413 as soon as it passes the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _too_large()
            chunks.append(chunk)
    except ClientDisconnect:  # nobody to answer; nothing was done
        raise InvalidRequest("The client went away before the request body was complete.") from None
    return b"".join(chunks)


def _bearer(request: Request) -> str | None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _json_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        content=body, status_code=status, headers=dict(headers or {}), media_type="application/json"
    )


def _error_response(error: ApiError) -> Response:
    """The one place an error becomes a response."""
    return _json_response(error.status, json.dumps(error.body()).encode(), error.headers())


def _event_stream(stream: EventStream, heartbeat: float) -> StreamingResponse:
    """Server-Sent Events, as the SDKs read them: `event:` and one `data:` line per event, a
    comment now and then while nothing happens, and `done` last. The run's events are drawn on
    a thread of the runs pool (`_runs`) that does not depend on the client: one that hangs up
    stops reading, and the run goes on to its end all the same. Events reach the response in
    batches: what the run produced while the response was busy goes out as one chunk, with one
    wake-up of the event loop, not one per event."""
    loop = asyncio.get_running_loop()
    lock = threading.Lock()
    pending: list[bytes | None] = []  # None: the end
    woken = False  # a wake-up is on its way to the loop for what is pending
    waiter: asyncio.Future[None] | None = None

    def wake() -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def deliver(chunk: bytes | None) -> None:
        nonlocal woken
        with lock:
            pending.append(chunk)
            if woken:
                return
            woken = True
        with contextlib.suppress(RuntimeError):  # the loop is gone (shutting down): nobody to tell
            loop.call_soon_threadsafe(wake)

    def pump() -> None:
        try:
            for event in stream.events:
                deliver(_sse(event.event, event.data.model_dump_json()))
        except Exception as exc:
            # The run's own state could not be written or read (storage): say so in the stream;
            # the run itself is ended by whoever looks at it once its lease lapses.
            log.warning("run stream broke", exc_info=True)
            error = ServiceUnavailable() if isinstance(exc, StorageUnavailable) else InternalError()
            detail = error.body()["error"]
            deliver(_sse("error", json.dumps({**detail, "error": detail})))
        deliver(_sse("done", "[DONE]"))
        deliver(None)

    _runs.submit(contextvars.Context().run, pump)  # as a thread of its own would: a fresh context

    async def body() -> AsyncIterator[bytes]:
        nonlocal waiter, woken
        while True:
            with lock:
                chunks = pending[:]
                pending.clear()
                woken = False
            if not chunks:
                waiter = loop.create_future()
                try:
                    async with asyncio.timeout(heartbeat):
                        await waiter
                except TimeoutError:
                    # A comment line, without the blank line that would end an event of its own:
                    # SSE readers skip it either way, but azure-ai-agents takes all up to a blank
                    # line for one event and fails on one without an `event:` line.
                    yield b": keep-alive\n"
                continue
            ended = chunks[-1] is None
            yield b"".join(chunk for chunk in chunks if chunk is not None)
            if ended:
                return

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _check_json_values(body: dict[str, Any]) -> None:
    """Refuses strings that are not valid Unicode (lone surrogates) and nesting beyond reason:
    neither can be stored or returned faithfully."""
    stack: list[tuple[str, Any, int]] = [("", body, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequest(
                f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.",
                param=path or None,
                code="invalid_value",
            )
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path)  # a key that is not text cannot be named in `param` either
                stack.append((f"{path}.{key}" if path else key, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path)


def _check_text(text: str, param: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(
            f"Invalid '{param or 'body'}': a string contains an unpaired UTF-16 surrogate.",
            param=param or None,
            code="invalid_value",
        ) from None
