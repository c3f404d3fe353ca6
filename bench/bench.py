"""`make bench`: the service against the storage floor, storage round trips, cost as threads grow,
cold start and memory, in one table.

    .venv/bin/python -m bench.bench [--iterations 40]

Starts its own in-memory Azurite and two dev hosts on the same tables: one straight to Azurite,
for latency, and one behind a request-counting proxy, for round trips. The floor of an endpoint
is the least storage work its job needs, done directly with azure-data-tables on the same
Azurite (a retrieve is one point read, a list one page query), timed interleaved with the
endpoint (A/B, then B/A) so that machine noise falls on both.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from azure.core import MatchConditions
from azure.data.tables import TableClient, TableServiceClient, UpdateMode
from fastapi import Request, Response

from assistants_core import ids
from assistants_core.storage.collection import DATA, INDEX, data_key
from assistants_core.storage.store import transport
from tests.support import API_KEYS, ROOT, Azurite, FaultyProxy, free_port, running_devhost

Call = Callable[[], Any]


@dataclass
class Endpoint:
    name: str
    setup: Callable[[], dict[str, Any]]  # untimed; what one service call and one floor call use
    service: Callable[[dict[str, Any]], Any]
    floor: Callable[[dict[str, Any]], Any]
    round_trip_target: int | None
    latency_target: float | None = None


def ignoring_context(call: Call) -> Callable[[dict[str, Any]], Any]:
    return lambda context: call()


def timed(call: Call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def p95(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(0.95 * len(values)))]


class Bench:
    def __init__(
        self, http: httpx.Client, proxy: FaultyProxy, tables: TableServiceClient, prefix: str
    ) -> None:
        self.proxy = proxy
        self.assistants: TableClient = tables.get_table_client(prefix + "assistants")
        self.threads: TableClient = tables.get_table_client(prefix + "threads")
        self.assistant = self.ok(http.post("/assistants", json={"model": "gpt-4o", "name": "bench"}))["id"]
        body = {"messages": [{"role": "user", "content": f"message {i}"} for i in range(20)]}
        self.thread = self.ok(http.post("/threads", json=body))["id"]
        self.message = self.ok(http.get(f"/threads/{self.thread}/messages", params={"limit": 1}))["data"][0][
            "id"
        ]
        self.document = json.dumps(self.ok(http.get(f"/assistants/{self.assistant}"))).encode()
        self.floor_thread_id = self.floor_thread()  # floors write only to partitions of their own

    @staticmethod
    def ok(response: httpx.Response) -> Any:
        assert response.status_code == 200, response.text[:300]
        return response.json()

    # --- floors: the least storage work each job needs ------------------------------------

    def floor_rows(self, partition: str, object_id: str) -> list[dict[str, Any]]:
        key = ids.sort_key(object_id)
        return [
            {
                "PartitionKey": partition,
                "RowKey": data_key(object_id),
                "id": object_id,
                "rev": "r",
                "rows": 1,
                "p00": self.document,
            },
            {"PartitionKey": partition, "RowKey": INDEX + key},
        ]

    def floor_object(self, prefix: str = ids.ASSISTANT, partition: str = "floor") -> str:
        object_id, _ = ids.new_id(prefix)
        self.assistants.submit_transaction([("create", row) for row in self.floor_rows(partition, object_id)])
        return object_id

    def floor_read_replace(self, table: TableClient, partition: str, row_key: str) -> None:
        entity = table.get_entity(partition, row_key)
        table.update_entity(
            entity,
            mode=UpdateMode.REPLACE,
            etag=entity.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )

    def floor_read_delete(self, partition: str, object_id: str) -> None:
        entity = self.assistants.get_entity(partition, data_key(object_id))
        self.assistants.submit_transaction(
            [
                (
                    "delete",
                    entity,
                    {"etag": entity.metadata["etag"], "match_condition": MatchConditions.IfNotModified},
                ),
                ("delete", {"PartitionKey": partition, "RowKey": INDEX + ids.sort_key(object_id)}),
            ]
        )

    def floor_page(self, table: TableClient, partition: str, size: int) -> list[Any]:
        query = table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": partition, "low": DATA, "high": "e"},
            results_per_page=size + 1,
        )
        return list(islice(query, size + 1))

    # --- the 14 endpoints --------------------------------------------------------------------

    def endpoints(self, http: httpx.Client) -> list[Endpoint]:
        """The 14 endpoints, called through `http`."""
        a, t, m = self.assistant, self.thread, self.message
        small_thread = {"messages": [{"role": "user", "content": f"m{i}"} for i in range(3)]}
        none: Callable[[], dict[str, Any]] = dict

        def fresh_assistant() -> dict[str, Any]:
            return {
                "api": self.ok(http.post("/assistants", json={"model": "m"}))["id"],
                "floor": self.floor_object(),
            }

        def fresh_thread() -> dict[str, Any]:
            return {
                "api": self.ok(http.post("/threads", json=small_thread))["id"],
                "floor": self.floor_thread(),
            }

        def fresh_message() -> dict[str, Any]:
            created = self.ok(http.post(f"/threads/{t}/messages", json={"role": "user", "content": "x"}))[
                "id"
            ]
            return {"api": created, "floor": self.floor_object(ids.MESSAGE, partition="floor-messages")}

        return [
            Endpoint(
                "create assistant",
                none,
                lambda c: http.post("/assistants", json={"model": "gpt-4o"}),
                lambda c: self.floor_object(),
                1,
            ),
            Endpoint(
                "list assistants (20)",
                none,
                lambda c: http.get("/assistants", params={"limit": 20}),
                lambda c: self.floor_page(self.assistants, "assistants", 20),
                2,
            ),
            Endpoint(
                "retrieve assistant",
                none,
                lambda c: http.get(f"/assistants/{a}"),
                lambda c: self.assistants.get_entity("assistants", data_key(a)),
                1,
                1.3,
            ),
            Endpoint(
                "modify assistant",
                none,
                lambda c: http.post(f"/assistants/{a}", json={"metadata": {"k": "v"}}),
                lambda c: self.floor_read_replace(self.assistants, "assistants", data_key(a)),
                2,
            ),
            Endpoint(
                "delete assistant",
                fresh_assistant,
                lambda c: http.delete(f"/assistants/{c['api']}"),
                lambda c: self.floor_read_delete("floor", c["floor"]),
                2,
            ),
            Endpoint(
                "create thread (3 messages)",
                none,
                lambda c: http.post("/threads", json=small_thread),
                lambda c: self.floor_thread(),
                1,
            ),
            Endpoint(
                "retrieve thread",
                none,
                lambda c: http.get(f"/threads/{t}"),
                lambda c: self.threads.get_entity(t, "t"),
                1,
            ),
            Endpoint(
                "modify thread",
                none,
                lambda c: http.post(f"/threads/{t}", json={"metadata": {"k": "v"}}),
                lambda c: self.floor_read_replace(self.threads, t, "t"),
                2,
            ),
            Endpoint(
                "delete thread (3 messages)",
                fresh_thread,
                lambda c: http.delete(f"/threads/{c['api']}"),
                lambda c: self.floor_delete_partition(c["floor"]),
                None,
            ),
            Endpoint(
                "create message",
                none,
                lambda c: http.post(f"/threads/{t}/messages", json={"role": "user", "content": "x"}),
                lambda c: self.floor_add_message(self.floor_thread_id),
                2,
            ),
            Endpoint(
                "list messages (20)",
                none,
                lambda c: http.get(f"/threads/{t}/messages", params={"limit": 20}),
                lambda c: self.floor_page(self.threads, t, 20),
                2,
                1.5,
            ),
            Endpoint(
                "retrieve message",
                none,
                lambda c: http.get(f"/threads/{t}/messages/{m}"),
                lambda c: self.threads.get_entity(t, data_key(m)),
                1,
            ),
            Endpoint(
                "modify message",
                none,
                lambda c: http.post(f"/threads/{t}/messages/{m}", json={"metadata": {"k": "v"}}),
                lambda c: self.floor_read_replace(self.threads, t, data_key(m)),
                2,
            ),
            Endpoint(
                "delete message",
                fresh_message,
                lambda c: http.delete(f"/threads/{t}/messages/{c['api']}"),
                lambda c: self.floor_read_delete("floor-messages", c["floor"]),
                None,
            ),
        ]

    def floor_thread(self) -> str:
        thread_id, _ = ids.new_id(ids.THREAD)
        rows = [
            {"PartitionKey": thread_id, "RowKey": "t", "id": thread_id, "rows": 1, "next": 3, "p00": b"{}"}
        ]
        for n in range(3):
            rows += self.floor_rows(thread_id, ids.sequential_id(ids.MESSAGE, n))
        self.threads.submit_transaction([("create", row) for row in rows])
        return thread_id

    def floor_delete_partition(self, thread_id: str) -> None:
        keys = [
            e["RowKey"]
            for e in self.threads.query_entities(
                "PartitionKey eq @pk", parameters={"pk": thread_id}, select=["RowKey"]
            )
        ]
        self.threads.submit_transaction([("delete", {"PartitionKey": thread_id, "RowKey": k}) for k in keys])

    def floor_add_message(self, thread_id: str) -> None:
        thread = self.threads.get_entity(thread_id, "t")
        message_id = ids.sequential_id(ids.MESSAGE, 10**9 + int(time.time_ns() % 10**9))
        bump = {"PartitionKey": thread_id, "RowKey": "t", "next": thread["next"]}
        self.threads.submit_transaction(
            [
                (
                    "update",
                    bump,
                    {
                        "mode": "merge",
                        "etag": thread.metadata["etag"],
                        "match_condition": MatchConditions.IfNotModified,
                    },
                ),
                *[("create", row) for row in self.floor_rows(thread_id, message_id)],
            ]
        )

    def round_trips(self, endpoint: Endpoint) -> int:
        """Storage requests one call makes, counted at the proxy the second dev host goes through
        (`endpoint` must call that host)."""
        endpoint.service(endpoint.setup())  # warm: tables known, connections open
        context = endpoint.setup()
        before = self.proxy.requests
        response = endpoint.service(context)
        assert response.status_code == 200, response.text[:200]
        return self.proxy.requests - before


def latency(endpoint: Endpoint, iterations: int) -> tuple[list[float], list[float]]:
    service: list[float] = []
    floor: list[float] = []
    for i in range(iterations + 5):
        context = endpoint.setup()
        pair = [("s", lambda c=context: endpoint.service(c)), ("f", lambda c=context: endpoint.floor(c))]
        if i % 2:
            pair.reverse()
        times = {name: timed(call) for name, call in pair}
        if i >= 5:  # the first few warm caches and connections
            service.append(times["s"])
            floor.append(times["f"])
    return service, floor


def in_process(
    azurite: Azurite, prefix: str, bench: Bench, iterations: int
) -> list[tuple[str, float, float]]:
    """The app's own cost: the HTTP function awaited directly with the Request the worker would
    hand it (route values in `path_params`), on one event loop of this process, no dev host."""
    os.environ.update(
        ASSISTANTS_API_KEYS=API_KEYS[0],
        ASSISTANTS_STORAGE_CONNECTION_STRING=azurite.connection_string,
        ASSISTANTS_TABLE_PREFIX=prefix,
    )
    sys.path.insert(0, str(ROOT))
    app = importlib.import_module("function_app")
    loop = asyncio.new_event_loop()

    def request(path: str, route: dict[str, str], query: dict[str, str] | None = None) -> Request:
        scope = {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "server": ("localhost", 80),
            "path": f"/openai/{path}",
            "raw_path": f"/openai/{path}".encode(),
            "query_string": urlencode(query or {}).encode(),
            "headers": [(b"api-key", API_KEYS[0].encode())],
            "path_params": route,
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        return Request(scope, receive)

    def call(function: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
        response = loop.run_until_complete(function(request))
        assert response.status_code == 200, bytes(response.body)[:200]
        return response

    cases = [
        (
            "retrieve assistant, in-process",
            lambda: call(
                app.retrieve_assistant,
                request(f"assistants/{bench.assistant}", {"assistant_id": bench.assistant}),
            ),
            lambda: bench.assistants.get_entity("assistants", data_key(bench.assistant)),
        ),
        (
            "list messages (20), in-process",
            lambda: call(
                app.list_messages,
                request(f"threads/{bench.thread}/messages", {"thread_id": bench.thread}, {"limit": "20"}),
            ),
            lambda: bench.floor_page(bench.threads, bench.thread, 20),
        ),
    ]
    results = []
    try:
        for name, service_call, floor_call in cases:
            endpoint = Endpoint(
                name, dict, ignoring_context(service_call), ignoring_context(floor_call), None
            )
            service, floor = latency(endpoint, iterations)
            results.append((name, statistics.median(service), statistics.median(floor)))
    finally:
        loop.close()
    return results


def growth(http: httpx.Client, bench: Bench, iterations: int) -> list[tuple[str, float, float, float]]:
    """Page latency in a 10,000-message thread against a 10-message one. Message ids sort by
    their number, so an id-shaped cursor marks a position: `at(n)` is just before message n."""

    def at(n: int) -> str:
        return ids.sequential_id(ids.MESSAGE, n)[:-16] + "0" * 16  # message n's number, lowest suffix

    def thread_of(count: int) -> str:
        body = {"messages": [{"role": "user", "content": f"m{i}"} for i in range(count)]}
        return str(Bench.ok(http.post("/threads", json=body, timeout=600))["id"])

    def page(thread: str, query: dict[str, str]) -> Callable[[dict[str, Any]], Any]:
        return lambda context: Bench.ok(http.get(f"/threads/{thread}/messages", params=query))

    threads = {10: thread_of(10), 10_000: thread_of(10_000)}
    # The same raw page query on both threads: how much of any growth is the emulator's own.
    floor = Endpoint(
        "floor",
        dict,
        ignoring_context(lambda: bench.floor_page(bench.threads, threads[10_000], 5)),
        ignoring_context(lambda: bench.floor_page(bench.threads, threads[10], 5)),
        None,
    )
    floor_large, floor_small = latency(floor, iterations)
    floor_growth = statistics.median(floor_large) / statistics.median(floor_small)
    pages: dict[str, Callable[[int], dict[str, str]]] = {
        "newest page": lambda count: {"limit": "5"},
        "oldest page": lambda count: {"limit": "5", "order": "asc"},
        "page after a deep cursor": lambda count: {"limit": "5", "order": "asc", "after": at(count // 2)},
    }
    results = []
    for name, params in pages.items():
        endpoint = Endpoint(
            name, dict, page(threads[10_000], params(10_000)), page(threads[10], params(10)), None
        )
        large, small = latency(endpoint, iterations)
        results.append((name, statistics.median(large), statistics.median(small), floor_growth))
    return results


def deletion_times(http: httpx.Client) -> list[tuple[int, float]]:
    results = []
    for count in (100, 1_000, 10_000):
        body = {"messages": [{"role": "user", "content": f"m{i}"} for i in range(count)]}
        thread = Bench.ok(http.post("/threads", json=body, timeout=600))["id"]
        started = time.perf_counter()
        Bench.ok(http.delete(f"/threads/{thread}", timeout=600))
        results.append((count, time.perf_counter() - started))
    return results


def import_time(statement: str, runs: int = 9) -> float:
    env = dict(
        os.environ, ASSISTANTS_API_KEYS="k", ASSISTANTS_STORAGE_CONNECTION_STRING="UseDevelopmentStorage=true"
    )
    # aiohttp is in the dev venv only (the Foundry SDK's aio client, requirements-dev.txt); the
    # storage SDKs import it when present (~120 ms), which a deployed app does not do.
    code = (
        "import sys, time; sys.modules['aiohttp'] = None; t = time.perf_counter();"
        f" {statement}; print(time.perf_counter() - t)"
    )
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(samples)


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()
    azurite = Azurite(free_port())
    azurite.start()
    proxy = FaultyProxy(azurite.port, azurite.queue_port)
    lines: list[str] = []
    try:
        with (
            running_devhost(azurite.connection_string) as host,
            running_devhost(
                proxy.connection_string,
                table_prefix=host.table_prefix,
                log=Path(tempfile.gettempdir()) / "bench.log",
            ) as counted_host,
            httpx.Client(base_url=host.api_url, headers={"api-key": API_KEYS[0]}, timeout=60) as http,
            httpx.Client(
                base_url=counted_host.api_url, headers={"api-key": API_KEYS[0]}, timeout=60
            ) as counted,
        ):
            # The floor's client is set up as the service's is (its HTTP session, its timeouts).
            tables = TableServiceClient.from_connection_string(
                azurite.connection_string, transport=transport()
            )
            bench = Bench(http, proxy, tables, host.table_prefix)

            lines.append(
                f"{'1-2. endpoint':<34}{'median ms':>10}{'p95 ms':>9}{'floor ms':>10}{'ratio':>7}"
                f"{'target':>8}{'storage requests':>18}{'target':>8}"
            )
            for endpoint, counted_endpoint in zip(
                bench.endpoints(http), bench.endpoints(counted), strict=True
            ):
                service, floor = latency(endpoint, args.iterations)
                ratio = statistics.median(service) / statistics.median(floor)
                requests = bench.round_trips(counted_endpoint)
                target = f"<={endpoint.latency_target}" if endpoint.latency_target else "-"
                rt_target = f"<={endpoint.round_trip_target}" if endpoint.round_trip_target else "-"
                lines.append(
                    f"{endpoint.name:<34}{ms(statistics.median(service)):>10}{ms(p95(service)):>9}"
                    f"{ms(statistics.median(floor)):>10}{ratio:>7.2f}{target:>8}{requests:>18}{rt_target:>8}"
                )
            for name, service_median, floor_median in in_process(
                azurite, host.table_prefix, bench, args.iterations
            ):
                lines.append(
                    f"{name:<34}{ms(service_median):>10}{'':>9}{ms(floor_median):>10}"
                    f"{service_median / floor_median:>7.2f}"
                )

            lines.append("")
            lines.append(
                f"{'3. growth (10,000 vs 10 messages)':<34}{'10,000 ms':>10}{'10 ms':>9}{'ratio':>10}"
                f"{'target':>7}{'floor ratio':>13}"
            )
            for name, big, little, floor_ratio in growth(http, bench, args.iterations):
                ratios = f"{big / little:>10.2f}{'<=1.2':>7}{floor_ratio:>13.2f}"
                lines.append(f"{name:<34}{ms(big):>10}{ms(little):>9}{ratios}")
            for count, seconds in deletion_times(http):
                lines.append(f"{f'delete a thread of {count:,} messages':<34}{seconds:>10.2f} s")
            peak = peak_rss_mb(host.pid)
    finally:
        proxy.close()
        azurite.stop()

    app = import_time("import function_app")
    libraries = import_time("import azure.functions, azure.data.tables, pydantic")
    lines.append("")
    lines.append(
        f"4. cold import: function_app {ms(app)} ms, azure.functions + azure.data.tables + pydantic "
        f"{ms(libraries)} ms: {app / libraries:.2f}x (target <=1.5x)"
    )
    lines.append(f"5. dev host peak RSS: {peak:.0f} MiB")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
