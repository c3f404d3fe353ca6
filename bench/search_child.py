"""The children `bench.search` starts, each in a process of its own so that its import time and
peak RSS are its own: a search from a fresh process (`probe`), and ingestion through the pipeline
or its floor (`ingest`). They import only what the app's search and ingestion import.

    .venv/bin/python -m bench.search_child probe --uri ... --options ... --store ... --query ...
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import time
from pathlib import Path

from assistants_core.backend import ModelBackend
from assistants_core.index import VectorSpace
from assistants_core.index.lance import LanceIndex
from assistants_core.models.vector_store import chunking_strategy
from assistants_core.storage.indexes import IndexLocation
from tests.model_server import embedding

DIMENSIONS = 256
MAINTAIN_EVERY = 50  # files between two maintenance runs of the store


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: getrusage's ru_maxrss would carry the parent's peak
    across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(args: argparse.Namespace) -> None:
    """In a fresh process: import, open, one hybrid query; what each cost, and peak RSS."""
    started = time.perf_counter()
    import lancedb  # noqa: F401 - its import is what is measured

    imported = time.perf_counter()
    location = IndexLocation(args.uri, json.loads(args.options))
    index = LanceIndex(location)
    index.search(args.store, args.query, embedding(args.query, DIMENSIONS), max_results=10)
    done = time.perf_counter()
    second = time.perf_counter()
    index.search(args.store, args.query, embedding(args.query, DIMENSIONS), max_results=10)
    print(
        json.dumps(
            {
                "import_ms": (imported - started) * 1000,
                "first_ms": (done - imported) * 1000,
                "second_ms": (time.perf_counter() - second) * 1000,
                "rss_mib": peak_rss_mib(),
            }
        )
    )


def ingest_child(args: argparse.Namespace) -> None:
    """In a process of its own: the pipeline (or its floor) over the files in `args.folder`."""
    from azure.storage.blob import BlobServiceClient

    from assistants_core.ingest.chunk import chunk
    from assistants_core.ingest.embed import embed_chunks
    from assistants_core.ingest.parse import parse

    backend = ModelBackend(args.model_url, "bench")
    space = VectorSpace("scripted", DIMENSIONS)
    strategy = chunking_strategy(None)
    files = sorted(Path(args.folder).iterdir())
    location = IndexLocation(args.uri, json.loads(args.options))
    index = LanceIndex(location)
    store = "vs_ingest" + secrets.token_hex(4)
    container = BlobServiceClient.from_connection_string(args.storage).get_container_client(
        location.uri[5:].split("/")[0]
    )
    stages = {"parse": 0.0, "chunk": 0.0, "embed": 0.0, "write": 0.0}
    chunk("warm the tokenizer", strategy)
    rss_start = peak_rss_mib()
    chunk_count = 0
    if args.mode == "pipeline":
        index.create(store, space)
    maintenance = 0.0
    started = time.perf_counter()
    for done, path in enumerate(files, start=1):
        data = path.read_bytes()
        t0 = time.perf_counter()
        text = parse(data, path.name)
        t1 = time.perf_counter()
        pieces = chunk(text, strategy)
        t2 = time.perf_counter()
        embedded = embed_chunks(backend, pieces, space)
        t3 = time.perf_counter()
        if args.mode == "pipeline":
            # A first ingestion, as the worker's first delivery makes it: an append.
            index.add_file(store, space, path.stem, path.name, {}, embedded, replace=False)
        else:  # the floor: one blob holding the file's chunks and vectors
            payload = json.dumps([{"text": c.text, "vector": list(c.vector)} for c in embedded]).encode()
            container.upload_blob(f"floor/{store}/{path.stem}.json", payload, overwrite=True)
        t4 = time.perf_counter()
        chunk_count += len(pieces)
        for name, spent in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[name] += spent
        if args.mode == "pipeline" and done % MAINTAIN_EVERY == 0:
            # As the debounced maintenance message will: compaction keeps appends and reads
            # from slowing down with every fragment and version.
            before = time.perf_counter()
            index.maintain(store)
            maintenance += time.perf_counter() - before
    if args.mode == "pipeline":
        before = time.perf_counter()
        index.maintain(store)
        maintenance += time.perf_counter() - before
    total = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": total,
                "chunks": chunk_count,
                "stages": stages,
                "maintenance": maintenance,
                "rss_start_mib": rss_start,
                "rss_mib": peak_rss_mib(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search_child")
    sub = parser.add_subparsers(dest="command", required=True)
    probe_args = sub.add_parser("probe")
    ingest_args = sub.add_parser("ingest")
    for child in (probe_args, ingest_args):
        child.add_argument("--uri", required=True)
        child.add_argument("--options", required=True)
    probe_args.add_argument("--store", required=True)
    probe_args.add_argument("--query", required=True)
    ingest_args.add_argument("--mode", choices=["pipeline", "floor"], required=True)
    ingest_args.add_argument("--folder", required=True)
    ingest_args.add_argument("--storage", required=True)
    ingest_args.add_argument("--model-url", required=True)
    args = parser.parse_args()
    if args.command == "probe":
        probe(args)
    else:
        ingest_child(args)


if __name__ == "__main__":
    main()
