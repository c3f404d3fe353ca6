"""`make bench`, vector stores end to end: what the API adds around the index (bench.search
measures the index itself).

    .venv/bin/python -m bench.vector_stores [--files 100] [--searches 50]

Starts its own in-memory Azurite, the scripted model server (feature-hashing embeddings) and a
dev host. Measures, through the official Python SDK:
1. ingestion throughput: `--files` small text files attached as one batch, from the batch's
   creation to its `completed` (the queue trigger parses, chunks, embeds and commits each file,
   and moves the counts), in files per second; and 20 files attached one by one at once by 20
   clients;
2. search latency p50/p95 over HTTP (`POST /vector_stores/{id}/search`, hybrid, one query);
3. Table Storage requests per attach and per search, counted in this process on the same
   storage (the index's own blob requests are bench.search's).
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from openai import OpenAI

from assistants_core.backend import ModelBackend
from assistants_core.files import Files
from assistants_core.models.vector_store import AttachFileRequest, SearchRequest
from assistants_core.settings import Settings
from assistants_core.storage import Store
from assistants_core.vector_stores import VectorStores
from tests.model_server import ModelServer
from tests.support import API_KEYS, Azurite, StorageMeter, free_port, running_devhost

WORDS = [
    "tide",
    "moon",
    "orbit",
    "lava",
    "magma",
    "bee",
    "hive",
    "flower",
    "ocean",
    "crust",
    "vent",
    "dance",
    "gravity",
    "planet",
]


def text(number: int) -> str:
    return " ".join(f"{WORDS[(number * 7 + i) % len(WORDS)]} n{number}" for i in range(200))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--searches", type=int, default=50)
    args = parser.parse_args()
    azurite = Azurite(free_port())
    azurite.start()
    try:
        with (
            ModelServer() as model,
            running_devhost(azurite.connection_string, ASSISTANTS_MODEL_BASE_URL=model.base_url) as host,
        ):
            client = OpenAI(base_url=host.api_url, api_key=API_KEYS[1], max_retries=0)
            run(client, host.storage, host.table_prefix, model, args.files, args.searches)
    finally:
        azurite.stop()


def run(client: OpenAI, storage: str, prefix: str, model: ModelServer, files: int, searches: int) -> None:
    store = client.vector_stores.create(name="bench")
    with ThreadPoolExecutor(8) as pool:
        file_ids = list(
            pool.map(
                lambda n: client.files.create(file=(f"f{n}.txt", text(n).encode()), purpose="assistants").id,
                range(files),
            )
        )
    started = time.perf_counter()
    batch = client.vector_stores.file_batches.create_and_poll(
        store.id, file_ids=file_ids, poll_interval_ms=100
    )
    seconds = time.perf_counter() - started
    assert batch.file_counts.completed == files, batch.file_counts
    print(f"ingestion, one batch of {files} small files: {seconds:.1f} s, {files / seconds:.1f} files/s")

    other = client.vector_stores.create(name="bench-concurrent")
    singles = [
        client.files.create(file=(f"s{n}.txt", text(n).encode()), purpose="assistants").id for n in range(20)
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        list(
            pool.map(
                lambda f: client.vector_stores.files.create(vector_store_id=other.id, file_id=f), singles
            )
        )
    while client.vector_stores.retrieve(other.id).file_counts.in_progress:
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    counts = client.vector_stores.retrieve(other.id).file_counts
    print(
        f"20 attaches at once from 20 threads: {seconds:.1f} s to all done ({counts.completed}/20 completed)"
    )

    latencies = []
    for n in range(searches):
        started = time.perf_counter()
        client.vector_stores.search(store.id, query=f"{WORDS[n % len(WORDS)]} n{n}")
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"search over HTTP, {files} files: p50 {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms")

    meter = StorageMeter()
    settings = Settings(
        api_keys=(b"unused",),
        storage_connection_string=storage,
        table_prefix=prefix,
        ingest_queue=f"{prefix.lower()}-ingest",
    )
    tables = Store(settings, observe=meter)
    service = VectorStores(tables, Files(tables), ModelBackend(model.base_url, None))
    extra = client.files.create(file=("extra.txt", text(9999).encode()), purpose="assistants").id
    service.retrieve(store.id)
    meter.reset()
    service.attach_file(store.id, AttachFileRequest(file_id=extra))
    print(f"storage requests (tables and the file's row) per attach: {meter.requests}")
    service.search(store.id, SearchRequest(query="tide moon"))
    meter.reset()
    service.search(store.id, SearchRequest(query="tide moon"))
    print(f"storage requests (tables) per search: {meter.requests}")


if __name__ == "__main__":
    main()
