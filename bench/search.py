"""`make bench` (vector stores): search latency as a store grows, ingestion against its floor,
storage requests, peak memory, and retrieval quality of hybrid vs vector-only vs keyword-only.

    .venv/bin/python -m bench.search [--sizes 1000,10000,100000] [--queries 45] [--fresh 5]
        [--pdf-pages 300] [--small-files 1000]
        [--embeddings-url URL --embeddings-key KEY --embeddings-model M --dimensions D]

Starts its own in-memory Azurite blob service and the scripted model server (feature-hashing
embeddings, see tests/model_server.py); the index is the app's (LanceIndex on `az://`).

1. Search latency: stores of N chunks (chunks of ~1,600 characters cut from the interpreter's own
   standard library; past the pool's size the texts repeat under other file ids), written 100
   chunks a commit and then maintained (compacted, FTS index updated) as the maintenance message
   will; p50/p95 of `search` (hybrid, the query vector given) warm, and from a fresh process
   (`import lancedb`, open, first query), with that process's peak RSS.
2. Storage requests, counted at a proxy in front of the blob service: one attach (a file's
   chunks in one commit), one warm search, one search from a fresh handle.
3. Ingestion against its floor, each in a process of its own for its peak RSS: a 300-page PDF
   and 1,000 small text files through the pipeline (parse, chunk, embed through the scripted
   server, one commit per file: an append, as a first ingestion is); the floor is the same parse
   and embedding calls plus one blob write of the file's chunks and vectors, done directly with
   azure-storage-blob.
4. Retrieval quality on the labelled set shipped in bench/data (45 module docstrings of the
   standard library, 45 questions each naming the document that answers it): recall@5 and MRR
   over files, hybrid vs vector-only vs keyword-only. With the scripted embeddings, vectors are
   lexical (hashed words); to measure a real model, pass `--embeddings-url` (e.g.
   `https://api.openai.com/v1`), `--embeddings-key`, `--embeddings-model text-embedding-3-large`
   and `--dimensions 256`: the corpus and questions are embedded there, nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from assistants_core.backend import ModelBackend
from assistants_core.index import IndexedChunk, SearchMode, VectorSpace
from assistants_core.index.lance import LanceIndex
from assistants_core.models.vector_store import chunking_strategy
from assistants_core.settings import Settings
from assistants_core.storage.indexes import IndexLocation, index_location
from tests.model_server import ModelServer, embedding
from tests.support import AZURITE, FaultyProxy, connection_string, free_port, stop, wait_for_port

DATA = Path(__file__).resolve().parent / "data"
DIMENSIONS = 256
CHUNK_CHARS = 1600
CHUNKS_PER_COMMIT = 100
UNFILTERED = {"type": "ne", "key": "a", "value": 1}  # every file passes: the filter's cost alone


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@contextmanager
def blob_service() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [
            str(AZURITE / "azurite-blob"),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, "Azurite")
        yield port
    finally:
        stop(process)


def location_at(port: int, prefix: str) -> IndexLocation:
    settings = Settings(
        api_keys=(b"unused",), storage_connection_string=connection_string(1, 2, port), table_prefix=prefix
    )
    return index_location(settings)


def text_pool(limit: int) -> list[str]:
    """Up to `limit` distinct texts of CHUNK_CHARS characters from the standard library's sources."""
    root = Path(sysconfig.get_paths()["stdlib"])
    pool: list[str] = []
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        source = path.read_text(errors="replace")
        for start in range(0, len(source) - CHUNK_CHARS, CHUNK_CHARS):
            pool.append(source[start : start + CHUNK_CHARS])
            if len(pool) == limit:
                return pool
    return pool


def questions() -> list[dict[str, str]]:
    loaded: list[dict[str, str]] = json.loads((DATA / "search_questions.json").read_text())
    return loaded


# --- 1. latency ---------------------------------------------------------------------------------


def build_store(
    index: LanceIndex, store: str, size: int, pool: list[str], vectors: list[list[float]]
) -> float:
    index.create(store, VectorSpace("scripted", DIMENSIONS))
    started = time.perf_counter()
    for first in range(0, size, CHUNKS_PER_COMMIT):
        chunks = [
            IndexedChunk(n - first, pool[n % len(pool)], vectors[n % len(pool)])
            for n in range(first, min(size, first + CHUNKS_PER_COMMIT))
        ]
        index.add_file(store, VectorSpace("scripted", DIMENSIONS), f"file-{first:07d}", "f.py", {}, chunks)
    index.maintain(store)
    return time.perf_counter() - started


def timed_searches(index: LanceIndex, store: str, queries: list[str], mode: SearchMode) -> list[float]:
    times = []
    for query in queries:
        vector = embedding(query, DIMENSIONS)
        started = time.perf_counter()
        index.search(store, query, vector, max_results=10, mode=mode)
        times.append((time.perf_counter() - started) * 1000)
    return times


def fresh_searches(
    location: IndexLocation, store: str, queries: list[str], count: int
) -> list[dict[str, float]]:
    results = []
    for number in range(count):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.search_child",
                "probe",
                "--uri",
                location.uri,
                "--options",
                json.dumps(location.storage_options),
                "--store",
                store,
                "--query",
                queries[number % len(queries)],
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def latency(location: IndexLocation, sizes: list[int], query_count: int, fresh: int) -> dict[int, str]:
    pool = text_pool(max(sizes))
    started = time.perf_counter()
    vectors = [embedding(text, DIMENSIONS) for text in pool]
    print(f"   ({len(pool)} distinct texts embedded locally in {time.perf_counter() - started:.1f} s)")
    queries = [q["query"] for q in questions()][:query_count]
    index = LanceIndex(location)
    stores = {}
    print(
        "   chunks  build+maint s  hybrid p50/p95 ms  vector p50  keyword p50"
        "  fresh: import  first p50/p95 ms  RSS MiB"
    )
    for size in sizes:
        store = f"vs_bench{size}"
        built = build_store(index, store, size, pool, vectors)
        timed_searches(index, store, queries[:3], "hybrid")  # warm the handle and caches
        hybrid = timed_searches(index, store, queries, "hybrid")
        vector = timed_searches(index, store, queries, "vector")
        keyword = timed_searches(index, store, queries, "keyword")
        cold = fresh_searches(location, store, queries, fresh)
        first = [c["first_ms"] for c in cold]
        print(
            f"   {size:>6}  {built:>13.1f}"
            f"  {statistics.median(hybrid):>7.1f} / {percentile(hybrid, 0.95):<7.1f}"
            f"  {statistics.median(vector):>10.1f}  {statistics.median(keyword):>11.1f}"
            f"  {statistics.median(c['import_ms'] for c in cold):>13.0f}"
            f"  {statistics.median(first):>7.0f} / {percentile(first, 0.95):<7.0f}"
            f"  {max(c['rss_mib'] for c in cold):>7.0f}"
        )
        stores[size] = store
    return stores


# --- 2. storage requests ------------------------------------------------------------------------


def storage_requests(port: int, prefix: str, store: str) -> None:
    proxy = FaultyProxy(port)
    try:
        counted = location_at(proxy.port, prefix)
        index = LanceIndex(counted)
        space = VectorSpace("scripted", DIMENSIONS)
        texts = [f"attached file chunk {n} " * 40 for n in range(10)]
        chunks = [IndexedChunk(n, t, embedding(t, DIMENSIONS)) for n, t in enumerate(texts)]
        rows = []

        def attach() -> None:
            index.add_file(store, space, "f", "f.txt", {}, chunks)

        def append() -> None:
            index.add_file(store, space, "g", "g.txt", {}, chunks, replace=False)

        def query(text: str, **options: Any) -> None:
            index.search(store, text, embedding(text, DIMENSIONS), **options)

        steps: list[tuple[str, Callable[[], object]]] = [
            ("open the table (first use in a process)", lambda: query("x")),
            ("attach, first delivery: 10 chunks appended", append),
            ("attach, redelivery: 10 chunks merged", attach),
            ("search, warm handle (hybrid)", lambda: query("attached file")),
            ("search, vector only", lambda: query("attached file", mode="vector")),
            ("search, keyword only", lambda: query("attached file", mode="keyword")),
            ("search, attribute filter (scan + both)", lambda: query("attached", filters=UNFILTERED)),
            ("detach: remove a file's chunks", lambda: index.remove_file(store, "f")),
            ("maintenance (compact, index, clean up)", lambda: index.maintain(store)),
        ]  # fmt: skip
        for what, action in steps:
            before = proxy.requests
            action()
            rows.append((what, proxy.requests - before))
        for what, count in rows:
            print(f"   {what:<45} {count:>5}")
    finally:
        proxy.close()


# --- 3. ingestion -------------------------------------------------------------------------------


def run_ingest(
    folder: Path, mode: str, location: IndexLocation, storage: str, model: ModelServer
) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.search_child",
            "ingest",
            "--mode",
            mode,
            "--folder",
            str(folder),
            "--uri",
            location.uri,
            "--options",
            json.dumps(location.storage_options),
            "--storage",
            storage,
            "--model-url",
            model.base_url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ingestion(
    location: IndexLocation, storage: str, model: ModelServer, pdf_pages: int, small_files: int
) -> None:
    from tests import documents

    pool = text_pool(pdf_pages * 3 + small_files)
    with tempfile.TemporaryDirectory() as scratch:
        pdf_folder = Path(scratch) / "pdf"
        pdf_folder.mkdir()
        # ~480 words a page: three pool texts, each line under a page's width.
        pages = [
            "\n".join(line[:90] for line in "\n".join(pool[3 * p : 3 * p + 3]).splitlines()[:64])
            for p in range(pdf_pages)
        ]
        pdf_bytes = documents.pdf(pages)
        (pdf_folder / "book.pdf").write_bytes(pdf_bytes)
        small_folder = Path(scratch) / "small"
        small_folder.mkdir()
        for number in range(small_files):
            (small_folder / f"file{number:04d}.txt").write_text(pool[pdf_pages * 3 + number])
        print(
            "   input                       pipeline s  floor s   ratio  chunks"
            "  parse / chunk / embed / write s (pipeline)  maint s"
            "  RSS MiB: after imports, peak (pipeline / floor)"
        )
        for label, folder in (
            (f"a {pdf_pages}-page PDF ({len(pdf_bytes) // 1024} KiB)", pdf_folder),
            (f"{small_files} small .txt files", small_folder),
        ):
            pipeline = run_ingest(folder, "pipeline", location, storage, model)
            floor = run_ingest(folder, "floor", location, storage, model)
            stages = " / ".join(f"{pipeline['stages'][s]:.2f}" for s in ("parse", "chunk", "embed", "write"))
            ratio = pipeline["seconds"] / floor["seconds"]
            print(
                f"   {label:<27} {pipeline['seconds']:>10.2f}  {floor['seconds']:>7.2f}  {ratio:>6.2f}"
                f"  {pipeline['chunks']:>6}  {stages:<42}  {pipeline['maintenance']:>7.2f}"
                f"  {pipeline['rss_start_mib']:.0f}, {pipeline['rss_mib']:.0f} / "
                f"{floor['rss_start_mib']:.0f}, {floor['rss_mib']:.0f}"
            )


# --- 4. quality ---------------------------------------------------------------------------------


def quality(location: IndexLocation, backend: ModelBackend, space: VectorSpace) -> None:
    from assistants_core.ingest.chunk import chunk
    from assistants_core.ingest.embed import embed_chunks, embed_query

    corpus: dict[str, str] = json.loads((DATA / "search_corpus.json").read_text())
    labelled = questions()
    index = LanceIndex(location)
    store = "vs_quality" + secrets.token_hex(4)
    index.create(store, space)
    strategy = chunking_strategy(
        {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 100}}
    )
    chunks = 0
    for name, text in corpus.items():
        pieces = chunk(text, strategy)
        chunks += len(pieces)
        index.add_file(store, space, name, f"{name}.txt", {}, embed_chunks(backend, pieces, space))
    index.maintain(store)
    vectors = {q["query"]: embed_query(backend, q["query"], space) for q in labelled}
    print(
        f"   {len(corpus)} documents in {chunks} chunks (200/100 tokens), {len(labelled)} questions, "
        f"{space.model} at {space.dimensions} dimensions"
    )
    print("   mode      recall@1  recall@5   MRR")
    modes: tuple[SearchMode, ...] = ("hybrid", "vector", "keyword")
    for mode in modes:
        ranks = []
        for item in labelled:
            hits = index.search(store, item["query"], vectors[item["query"]], max_results=50, mode=mode)
            files = list(dict.fromkeys(h.file_id for h in hits))
            ranks.append(files.index(item["file"]) + 1 if item["file"] in files else None)
        recall1 = sum(1 for r in ranks if r == 1) / len(ranks)
        recall5 = sum(1 for r in ranks if r is not None and r <= 5) / len(ranks)
        mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
        print(f"   {mode:<8}  {recall1:>8.2f}  {recall5:>8.2f}  {mrr:>5.2f}")


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=45)
    parser.add_argument("--fresh", type=int, default=5)
    parser.add_argument("--pdf-pages", type=int, default=300)
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--only", choices=["latency", "requests", "ingest", "quality"])
    parser.add_argument("--embeddings-url")
    parser.add_argument("--embeddings-key")
    parser.add_argument("--embeddings-model", default="text-embedding-3-large")
    parser.add_argument("--dimensions", type=int, default=DIMENSIONS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    wanted: Callable[[str], bool] = lambda part: args.only in (None, part)  # noqa: E731
    with ExitStack() as stack:
        port = stack.enter_context(blob_service())
        model = stack.enter_context(ModelServer())
        prefix = "b" + secrets.token_hex(4)
        location = location_at(port, prefix)
        storage = connection_string(1, 2, port)
        stores: dict[int, str] = {}
        if wanted("latency") or wanted("requests"):
            print(f"1. search latency (index.search, top 10, {DIMENSIONS}-d vectors; fresh = a new process)")
            stores = latency(location, sizes if wanted("latency") else sizes[:1], args.queries, args.fresh)
        if wanted("requests"):
            print("\n2. storage requests (blob, at a proxy), store of", min(stores), "chunks")
            storage_requests(port, prefix, stores[min(stores)])
        if wanted("ingest"):
            print("\n3. ingestion against its floor (parse + embedding calls + one blob write)")
            ingestion(location, storage, model, args.pdf_pages, args.small_files)
        if wanted("quality"):
            print("\n4. retrieval quality (bench/data: labelled questions over standard-library docstrings)")
            if args.embeddings_url:
                backend = ModelBackend(
                    args.embeddings_url, args.embeddings_key or os.environ.get("OPENAI_API_KEY")
                )
                space = VectorSpace(args.embeddings_model, args.dimensions)
            else:
                backend = ModelBackend(model.base_url, "bench")
                space = VectorSpace("scripted-feature-hashing", DIMENSIONS)
            quality(location, backend, space)


if __name__ == "__main__":
    main()
