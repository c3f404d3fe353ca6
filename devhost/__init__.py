"""A small stand-in for the Azure Functions host and its Python worker, for machines where Core
Tools cannot be installed.

It serves a v2-programming-model `FunctionApp` the way the host and the worker do with HTTP
streams on: uvicorn on one asyncio loop (the worker's own stack), HTTP functions by their route
templates under host.json's route prefix (see http.py), queue triggers against the storage
queue service (queues.py) and timer triggers on their NCRONTAB schedules (timers.py). Coroutine
functions run on the loop; plain functions on a thread pool, as the worker runs them. Like Core
Tools, it runs a non-HTTP function on demand: `POST /admin/functions/<name>` with
`{"input": "..."}` answers 202. It is not part of the service; Core Tools and Azure run the same
app without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import azure.functions as func
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from devhost.http import http_app

log = logging.getLogger("devhost")

LOOP_PROBE_SECONDS = 0.05


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


def host_json(root: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((root / "host.json").read_text())
    return value


def route_prefix(root: Path) -> str:
    prefix: str = host_json(root).get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return prefix.strip("/")


class Trigger(Protocol):
    """A non-HTTP trigger: `run` listens until cancelled; `fire` runs the function once now, with
    `text` as its input, as Core Tools' admin endpoint does."""

    async def run(self) -> None: ...

    async def fire(self, text: str) -> None: ...


class Invoker:
    """Calls a function as the worker does: a coroutine function on the loop, any other on the
    worker's thread pool (PYTHON_THREADPOOL_THREAD_COUNT threads, else Python's default)."""

    def __init__(self, settings: Mapping[str, str]) -> None:
        count = settings.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
        self._pool = ThreadPoolExecutor(int(count) if count.isdigit() else None, thread_name_prefix="worker")

    async def __call__(self, function: Callable[..., Any], arguments: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(function):
            return await function(**arguments)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: function(**arguments))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class LoopLag:
    """How late the loop wakes a task that asked to sleep `LOOP_PROBE_SECONDS`: a blocked loop
    shows here. `GET /admin/devhost/loop` reports it (and `?reset=1` starts afresh)."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LOOP_PROBE_SECONDS)
            self.samples.append(max(0.0, loop.time() - started - LOOP_PROBE_SECONDS))
            del self.samples[:-100_000]

    def report(self) -> dict[str, float | int]:
        ordered = sorted(self.samples)
        if not ordered:
            return {"samples": 0}

        def at(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

        return {"samples": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}


class FunctionsHost:
    def __init__(self, app: func.FunctionApp, root: Path, settings: Mapping[str, str]) -> None:
        from devhost.queues import queue_triggers
        from devhost.timers import timer_triggers

        functions = app.get_functions()  # once: like the worker's indexing, it can run only once
        self.invoke = Invoker(settings)
        self.lag = LoopLag()
        self.triggers: dict[str, Trigger] = {
            **queue_triggers(functions, settings, host_json(root), self.invoke),
            **timer_triggers(functions, settings, self.invoke),
        }
        self.app: FastAPI = http_app(functions, route_prefix(root), self.invoke, self._admin)

    async def _admin(self, request: Request, path: str) -> Response:
        if request.method == "GET" and path == "devhost/loop":
            if request.query_params.get("reset"):
                self.lag.samples.clear()
            return JSONResponse(self.lag.report())
        name = path.removeprefix("functions/")
        if request.method != "POST" or name == path or name not in self.triggers:
            return Response(status_code=404)
        body = await request.body()
        try:
            text = str(json.loads(body or b"{}").get("input", ""))
        except (ValueError, AttributeError):
            return Response(status_code=400)
        # Core Tools answers at once and runs the function in the background.
        task = asyncio.create_task(self.triggers[name].fire(text))
        task.add_done_callback(_log_failure)
        return Response(status_code=202)

    async def serve(self, host: str, port: int) -> None:
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=3,  # open streams end with the host, as they would
            timeout_keep_alive=130,  # as long as the Functions host keeps an idle connection
        )
        server = uvicorn.Server(config)
        runners = [self.lag.run(), *(t.run() for t in self.triggers.values())]
        background = [asyncio.create_task(runner) for runner in runners]
        try:
            await server.serve()
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.invoke.close()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("function run from /admin failed", exc_info=task.exception())
