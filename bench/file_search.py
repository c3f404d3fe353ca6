"""`make bench` (file_search runs): what a file_search run costs beyond its floor.

    .venv/bin/python -m bench.file_search [--iterations 10] [--large 10000] [--large-runs 5]

Starts what bench.runs starts (in-memory Azurite, the scripted model answering with its
`searching` responder, a dev host, and a second one whose table traffic goes through a counting
proxy), and a vector-stores service in this process on the same storage and tables.

1. A streamed file_search run over a small store (three files, ingested by the queue trigger):
   time to the first text delta and the whole run, interleaved (A/B, then B/A) with its floor:
   the first model call made directly (streamed, offered the search function, which it calls),
   the same search done in this process (`VectorStores.search_for_run` on the same Azurite), and
   the second model call made directly with the results (streamed). Overhead = service - floor.
2. Table requests per file_search run, counted at the proxy (as bench.runs counts them), and
   those of the floor's search alone (counted in this process); the index's blob requests are
   bench.search's. The dev host's CPU per run (/proc, as bench.runs reads it).
3. Runs over a larger store: `--large` chunks written to a store's index directly (as bench.search
   builds its stores) next to one ingested file, then maintained; the run's time against its
   floor, interleaved. `--large 0` skips it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from openai import OpenAI

from assistants_core.backend import ModelBackend
from assistants_core.files import Files
from assistants_core.index import IndexedChunk, VectorSpace
from assistants_core.settings import Settings
from assistants_core.storage import Store
from assistants_core.tools.file_search import DEFAULT_RESULTS, DEFINITION, _for_model
from assistants_core.vector_stores import VectorStores
from bench.runs import SETTLE_SECONDS, Handler, process_cpu_seconds, servers
from bench.search import CHUNKS_PER_COMMIT, percentile, text_pool
from tests.model_server import ModelServer, embedding, searching
from tests.support import (
    API_KEYS,
    DevHost,
    FaultyProxy,
    StorageMeter,
    wait_until,
)

DOCUMENTS = {
    "bees.txt": "Honey bees communicate the location of flowers with a waggle dance in the hive.",
    "tides.txt": "Ocean tides are caused by the gravitational pull of the moon on the oceans of Earth.",
    "volcano.md": "# Volcanoes\nMagma rises through the crust and erupts as lava from a volcano's vent.",
}
QUESTION = "What causes ocean tides?"
MODEL = "m"


def client_of(host: DevHost) -> OpenAI:
    return OpenAI(base_url=host.api_url, api_key=API_KEYS[0], max_retries=0, timeout=120)


def settings_of(host: DevHost) -> Settings:
    prefix = host.table_prefix
    return Settings(
        api_keys=(b"unused",),
        storage_connection_string=host.storage,
        table_prefix=prefix,
        ingest_queue=f"{prefix.lower()}-ingest",
    )


def service_on(host: DevHost, model: ModelServer, meter: StorageMeter | None = None) -> VectorStores:
    """The vector-stores service in this process, on the host's storage and tables."""
    tables = Store(settings_of(host), observe=meter)
    return VectorStores(tables, Files(tables), ModelBackend(model.base_url, None))


def small_store(client: OpenAI) -> str:
    file_ids = [
        client.files.create(file=(name, body.encode()), purpose="assistants").id
        for name, body in DOCUMENTS.items()
    ]
    store_id = client.vector_stores.create(name="fsbench", file_ids=file_ids).id
    wait_until(lambda: client.vector_stores.retrieve(store_id).file_counts.in_progress == 0, 60, "ingestion")
    assert client.vector_stores.retrieve(store_id).file_counts.completed == len(file_ids)
    return store_id


def assistant_for(client: OpenAI, store_id: str) -> str:
    return client.beta.assistants.create(
        model=MODEL,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    ).id


def service_run(client: OpenAI, assistant_id: str) -> tuple[float, float]:
    """(time to first text delta, whole stream) of one streamed run on a new thread."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": QUESTION}])
    started = time.perf_counter()
    handler = Handler(started)
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id, event_handler=handler
    ) as s:
        s.until_done()
        run = s.get_final_run()
    whole = time.perf_counter() - started
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert any(step.type == "tool_calls" for step in steps), "the run did not search"
    return handler.first_delta or float("nan"), whole


def floor_run(model_client: OpenAI, service: VectorStores, store_id: str) -> tuple[float, float]:
    """The same work done directly: the asking call (streamed, it calls the search function),
    the search in this process, the answering call with the results (streamed)."""
    started = time.perf_counter()
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    tools: Any = [DEFINITION]
    call_id, name, arguments = "", "", ""
    for chunk in model_client.chat.completions.create(
        model=MODEL, messages=messages, tools=tools, stream=True
    ):
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call_id = delta.id or call_id
            if delta.function is not None:
                name = delta.function.name or name
                arguments += delta.function.arguments or ""
    queries = json.loads(arguments)["queries"]
    hits = service.search_for_run([store_id], queries, DEFAULT_RESULTS, 0.0)
    assert hits, "the search found nothing"
    messages += [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": _for_model(0, hits)},
    ]
    first: float | None = None
    for chunk in model_client.chat.completions.create(model=MODEL, messages=messages, stream=True):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return first or float("nan"), time.perf_counter() - started


def interleaved(
    client: OpenAI,
    model_client: OpenAI,
    service: VectorStores,
    store_id: str,
    assistant_id: str,
    iterations: int,
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"first": [], "whole": [], "floor first": [], "floor whole": []}
    for i in range(iterations):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            if side == 0:
                first, whole = service_run(client, assistant_id)
                times["first"].append(first)
                times["whole"].append(whole)
            else:
                first, whole = floor_run(model_client, service, store_id)
                times["floor first"].append(first)
                times["floor whole"].append(whole)
    return times


def rows(times: dict[str, list[float]]) -> list[str]:
    out = []
    for label, key in (("time to first text delta", "first"), ("whole run", "whole")):
        service, floor = times[key], times["floor " + key]
        p50, p95 = statistics.median(service) * 1000, percentile(service, 0.95) * 1000
        f50, f95 = statistics.median(floor) * 1000, percentile(floor, 0.95) * 1000
        out.append(f"{label:<26}{p50:>8.1f}{p95:>8.1f}{f50:>9.1f}{f95:>8.1f}{p50 - f50:>10.1f}")
    return out


HEADER = "                          service p50/p95   floor p50/p95   overhead (median ms)"


def storage_requests(
    counted: DevHost, proxy: FaultyProxy, model: ModelServer, host: DevHost, runs: int
) -> list[str]:
    client = client_of(counted)
    store_id = small_store(client)
    assistant_id = assistant_for(client, store_id)
    service_run(client, assistant_id)  # warm
    time.sleep(SETTLE_SECONDS)
    counts = []
    for _ in range(runs):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": QUESTION}])
        before = proxy.requests
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id) as s:
            s.until_done()
            assert s.get_final_run().status == "completed"
        time.sleep(SETTLE_SECONDS)  # the run's index row is dropped after its stream ends
        counts.append(proxy.requests - before)
    meter = StorageMeter()
    service = service_on(counted, model, meter)
    service.search_for_run([store_id], [QUESTION], DEFAULT_RESULTS, 0.0)
    meter.reset()
    service.search_for_run([store_id], [QUESTION], DEFAULT_RESULTS, 0.0)
    # CPU on the uncounted host, runs one after another on threads made beforehand.
    client = client_of(host)
    store_id = small_store(client)
    assistant_id = assistant_for(client, store_id)
    service_run(client, assistant_id)
    threads = [
        client.beta.threads.create(messages=[{"role": "user", "content": QUESTION}]).id for _ in range(runs)
    ]
    time.sleep(SETTLE_SECONDS)
    before_cpu = process_cpu_seconds(host.pid)
    for thread_id in threads:
        with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id) as s:
            s.until_done()
    time.sleep(SETTLE_SECONDS)
    cpu = (process_cpu_seconds(host.pid) - before_cpu) / runs * 1000
    return [
        f"table requests per streamed file_search run: median {statistics.median(counts):.0f}"
        f" (min {min(counts)}, max {max(counts)}, {runs} runs)",
        f"table requests of the floor's search alone (search_for_run, warm): {meter.requests}",
        f"dev host CPU per file_search run ({runs} runs): {cpu:.1f} ms",
    ]


def large_store(client: OpenAI, service: VectorStores, settings: Settings, size: int) -> tuple[str, float]:
    """A store with one ingested file, then `size` chunks (the standard library's sources, cut
    as bench.search cuts them) written to its index directly and maintained: as files of
    CHUNKS_PER_COMMIT chunks, or of 1% of the store if that is more (a 100k-chunk store as 100
    files of 1,000 chunks: maintenance leaves the same index, and a thousand commits' manifests
    would take most of the time)."""
    file_id = client.files.create(
        file=("tides.txt", DOCUMENTS["tides.txt"].encode()), purpose="assistants"
    ).id
    store_id = client.vector_stores.create(name="fsbench-large", file_ids=[file_id]).id
    wait_until(lambda: client.vector_stores.retrieve(store_id).file_counts.in_progress == 0, 60, "ingestion")
    space = VectorSpace(settings.embeddings_model, settings.embeddings_dimensions)
    pool = text_pool(min(size, 2000))
    vectors = [embedding(text, space.dimensions) for text in pool]
    per_file = max(CHUNKS_PER_COMMIT, size // 100)
    started = time.perf_counter()
    for first in range(0, size, per_file):
        chunks = [
            IndexedChunk(n - first, pool[n % len(pool)], vectors[n % len(pool)])
            for n in range(first, min(size, first + per_file))
        ]
        service.index.add_file(store_id, space, f"file-{first:07d}", "f.py", {}, chunks)
    service.index.maintain(store_id)
    return store_id, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.file_search", description=__doc__)
    parser.add_argument("--iterations", type=int, default=10, help="interleaved pairs over the small store")
    parser.add_argument("--large", type=int, default=10000, help="chunks in the larger store (0: skip)")
    parser.add_argument("--large-runs", type=int, default=5, help="interleaved pairs over the larger store")
    parser.add_argument("--storage-runs", type=int, default=5, help="runs counted for requests and CPU")
    args = parser.parse_args()
    with servers(searching) as (model, host, counted, proxy):
        client = client_of(host)
        model_client = OpenAI(base_url=model.base_url, api_key="x", max_retries=0)
        service = service_on(host, model)
        store_id = small_store(client)
        assistant_id = assistant_for(client, store_id)
        service_run(client, assistant_id)  # warm both
        floor_run(model_client, service, store_id)
        print(f"1. file_search run, small store ({len(DOCUMENTS)} files), {args.iterations} pairs")
        print(HEADER)
        for row in rows(interleaved(client, model_client, service, store_id, assistant_id, args.iterations)):
            print(row)
        print("\n2. storage and CPU")
        for row in storage_requests(counted, proxy, model, host, args.storage_runs):
            print(row)
        if args.large:
            store_id, built = large_store(client, service, settings_of(host), args.large)
            assistant_id = assistant_for(client, store_id)
            service_run(client, assistant_id)
            floor_run(model_client, service, store_id)
            print(
                f"\n3. file_search run, store of {args.large} chunks (+1 file),"
                f" written and maintained in {built:.0f} s"
            )
            print(HEADER)
            times = interleaved(client, model_client, service, store_id, assistant_id, args.large_runs)
            for row in rows(times):
                print(row)


if __name__ == "__main__":
    main()
