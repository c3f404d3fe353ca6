"""The embedded index: one LanceDB table per vector store, on Blob Storage (`az://`), the same
code on Azurite and in Azure. The only module that imports lancedb (a second's import: it is
imported when a store is first written or searched, never at app start).

- A file's chunks go in with one `merge_insert` keyed by chunk id that also deletes the file's
  chunks not in it: one commit, so a file is searchable whole or not at all and a redelivered
  ingestion replaces rather than duplicates. Lance commits with a conditional put, so concurrent
  writers rebase and lose nothing. A merge reads the table's ids (its cost grows with the rows
  and fragments: docs/benchmarks.md), so a caller that knows the file has no chunks yet (its
  first delivery, under the file's lease) asks for a plain append (`replace=False`).
- Search runs a cosine vector query and a BM25 full-text query (Lance's native FTS index) and
  fuses them by reciprocal rank (k = 60); scores are divided by the best a chunk could get
  (first in every list), so they fall in 0..1 for `score_threshold`. Attribute filters pick the
  files first and prefilter both queries to them.
- Table handles check for other writers' commits before each read (`read_consistency`,
  default 0: what one instance completes, every other one searches at once).
- Every append is a fragment and every commit a version: `maintain` compacts, updates the
  indexes and removes versions older than two minutes, one at a time per store in this process (the
  caller serialises across instances, with a lease).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from ..storage.indexes import IndexLocation
from . import (
    Attributes,
    IndexedChunk,
    IndexFailure,
    SearchHit,
    SearchMode,
    VectorSpace,
    VectorSpaceMismatch,
)
from .filters import matches

log = logging.getLogger("assistants.index")

RRF_K = 60
MIN_CANDIDATES = 50  # each query's depth before fusion
ANN_THRESHOLD = 100_000  # rows past which a vector index (approximate) keeps queries fast
# Every commit is a version, and each commit and consistency check costs more with every version
# kept (an append: 33 ms at first, 220 ms after 300 commits kept an hour, 67 ms kept seconds).
# Readers reload the latest version before each query, so an old version serves only a query
# already in flight: minutes are a wide margin.
KEEP_VERSIONS_FOR = timedelta(minutes=2)
MAINTENANCE_ATTEMPTS = 3
# The object store's own retries, bounded (its defaults: 10 retries within 3 minutes), so that an
# unreachable storage fails an ingestion or a search in seconds, as the table client's do.
STORAGE_RETRIES = {"client_max_retries": "3", "client_retry_timeout": "20"}
_COLUMNS = ["id", "file_id", "chunk_index", "filename", "attributes", "text"]
_WORD = re.compile(r"\w")

T = TypeVar("T")


def _missing(exc: Exception) -> bool:
    """Whether lancedb's error says the table does not exist (and not that storage failed)."""
    return isinstance(exc, FileNotFoundError) or (isinstance(exc, ValueError) and "was not found" in str(exc))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class LanceIndex:
    def __init__(self, location: IndexLocation, *, read_consistency: timedelta = timedelta(0)) -> None:
        self._location = location
        self._read_consistency = read_consistency
        self._db: Any = None
        self._tables: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._maintenance: dict[str, threading.Lock] = {}

    # -- handles

    def _connect(self) -> Any:
        with self._lock:
            if self._db is None:
                import lancedb

                self._db = lancedb.connect(
                    self._location.uri,
                    storage_options={**STORAGE_RETRIES, **self._location.storage_options},
                    read_consistency_interval=self._read_consistency,
                )
            return self._db

    def _open(self, store_id: str) -> Any | None:
        """The store's table, None if it has none."""
        table = self._tables.get(store_id)
        if table is not None:
            return table
        try:
            table = self._connect().open_table(store_id)
        except Exception as exc:
            if _missing(exc):
                return None
            # Unreachable or refusing storage (lancedb says so with a ValueError too): never
            # taken for a store without an index, which would search as empty.
            log.warning("index: could not open %s: %r", store_id, exc)
            raise IndexFailure(f"could not open {store_id}: {exc}") from exc
        with self._lock:
            return self._tables.setdefault(store_id, table)

    def create(self, store_id: str, space: VectorSpace) -> None:
        """The store's empty table and its full-text index. Two creations of one table at once
        could both commit (the second as an overwrite, losing rows written in between), so a
        store's table is made once, by whoever creates the store, before any file is added."""

        def make() -> None:
            import pyarrow as pa

            schema = pa.schema(
                [
                    pa.field("id", pa.string()),
                    pa.field("file_id", pa.string()),
                    pa.field("chunk_index", pa.int32()),
                    pa.field("filename", pa.string()),
                    pa.field("attributes", pa.string()),
                    pa.field("text", pa.string()),
                    pa.field("vector", pa.list_(pa.float32(), space.dimensions)),
                ],
                metadata={"embeddings_model": space.model, "dimensions": str(space.dimensions)},
            )
            table = self._open(store_id)
            if table is None:
                try:
                    table = self._connect().create_table(store_id, schema=schema)
                except ValueError:  # made meanwhile (a retried creation)
                    table = self._open(store_id)
                    if table is None:
                        raise
                with self._lock:
                    table = self._tables.setdefault(store_id, table)
            self._check_space(table, space)
            self._ensure_fts(table)

        self._guarded(f"create {store_id}", make)

    def _writable(self, store_id: str, space: VectorSpace) -> Any:
        table = self._open(store_id)
        if table is None:
            raise IndexFailure(f"the vector store {store_id} has no index (it was never created, or dropped)")
        self._check_space(table, space)
        return table

    @staticmethod
    def _check_space(table: Any, space: VectorSpace) -> None:
        metadata = table.schema.metadata or {}
        model = metadata.get(b"embeddings_model", b"").decode()
        dimensions = int(metadata.get(b"dimensions", b"0"))
        if (model, dimensions) != (space.model, space.dimensions):
            raise VectorSpaceMismatch(
                f"the store holds vectors of {model} at {dimensions} dimensions, not of "
                f"{space.model} at {space.dimensions}"
            )

    @staticmethod
    def _ensure_fts(table: Any) -> None:
        if not any(getattr(i, "index_type", "") == "FTS" for i in table.list_indices()):
            table.create_fts_index("text", use_tantivy=False)

    def _forget(self, store_id: str) -> None:
        with self._lock:
            self._tables.pop(store_id, None)

    # -- writes

    def add_file(
        self,
        store_id: str,
        space: VectorSpace,
        file_id: str,
        filename: str,
        attributes: Attributes,
        chunks: Sequence[IndexedChunk],
        *,
        replace: bool = True,
    ) -> None:
        import pyarrow as pa

        def write() -> None:
            table = self._writable(store_id, space)
            rows = pa.Table.from_pylist(
                [
                    {
                        "id": f"{file_id}:{c.index}",
                        "file_id": file_id,
                        "chunk_index": c.index,
                        "filename": filename,
                        "attributes": json.dumps(dict(attributes)),
                        "text": c.text,
                        "vector": list(c.vector),
                    }
                    for c in chunks
                ],
                schema=table.schema,
            )
            if not replace:
                table.add(rows)
                return
            (
                table.merge_insert("id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(f"file_id = {_quote(file_id)}")
                .execute(rows)
            )

        if any(len(c.vector) != space.dimensions for c in chunks):
            raise VectorSpaceMismatch(f"a chunk's vector is not of {space.dimensions} dimensions")
        self._guarded(f"add {file_id} to {store_id}", write)

    def set_attributes(self, store_id: str, file_id: str, attributes: Attributes) -> None:
        self._on_table(
            store_id,
            f"set attributes of {file_id} in {store_id}",
            lambda table: table.update(
                where=f"file_id = {_quote(file_id)}", values={"attributes": json.dumps(dict(attributes))}
            ),
        )

    def remove_file(self, store_id: str, file_id: str) -> None:
        self._on_table(
            store_id,
            f"remove {file_id} from {store_id}",
            lambda table: table.delete(f"file_id = {_quote(file_id)}"),
        )

    def drop(self, store_id: str) -> None:
        def write() -> None:
            self._forget(store_id)
            try:
                self._connect().drop_table(store_id)
            except Exception as exc:
                if not _missing(exc):  # else: never had one, or already dropped
                    raise

        self._guarded(f"drop {store_id}", write)

    def _on_table(self, store_id: str, what: str, action: Callable[[Any], object]) -> None:
        """`action` on the store's table, if it has one. A handle kept from before may name a
        table another instance has since dropped: on failure the handle is opened afresh once."""
        for attempt in (1, 2):
            table = self._open(store_id)
            if table is None:
                return
            try:
                self._guarded(what, functools.partial(action, table))
                return
            except IndexFailure:
                self._forget(store_id)
                if attempt == 2:
                    raise

    def _guarded(self, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except (IndexFailure, ValueError, TypeError):
            raise
        except Exception as exc:  # the engine's storage and commit errors, as one type
            log.warning("index: could not %s: %r", what, exc)
            raise IndexFailure(f"could not {what}: {exc}") from exc

    # -- reads

    def search(
        self,
        store_id: str,
        query: str,
        vector: Sequence[float],
        *,
        max_results: int = 10,
        filters: Mapping[str, Any] | None = None,
        score_threshold: float = 0.0,
        mode: SearchMode = "hybrid",
    ) -> list[SearchHit]:
        found: list[SearchHit] = []
        self._on_table(
            store_id,
            f"search {store_id}",
            lambda table: found.extend(
                self._search(table, query, vector, max_results, filters, score_threshold, mode)
            ),
        )
        return found

    def _search(
        self,
        table: Any,
        query: str,
        vector: Sequence[float],
        max_results: int,
        filters: Mapping[str, Any] | None,
        score_threshold: float,
        mode: SearchMode,
    ) -> list[SearchHit]:
        where = None
        if filters:
            chosen = self._files_matching(table, filters)
            if not chosen:
                return []
            where = f"file_id IN ({', '.join(map(_quote, sorted(chosen)))})"
        depth = max(MIN_CANDIDATES, 2 * max_results)
        lists: list[list[dict[str, Any]]] = []
        if mode in ("hybrid", "vector"):
            search = table.search(list(vector), query_type="vector", vector_column_name="vector")
            search = search.distance_type("cosine")
            if where:
                search = search.where(where, prefilter=True)
            lists.append(search.select([*_COLUMNS, "_distance"]).limit(depth).to_list())
        if mode in ("hybrid", "keyword"):
            lists.append(self._keyword(table, query, where, depth) if _WORD.search(query) else [])
        scores: dict[str, float] = {}
        rows: dict[str, dict[str, Any]] = {}
        for ranked in lists:
            for rank, row in enumerate(ranked, start=1):
                scores[row["id"]] = scores.get(row["id"], 0.0) + 1.0 / (RRF_K + rank)
                rows.setdefault(row["id"], row)
        best = len(lists) / (RRF_K + 1)
        ordered = sorted(scores, key=lambda key: (-scores[key], key))
        hits = []
        for key in ordered:
            score = min(1.0, scores[key] / best)
            if score < score_threshold:
                break
            row = rows[key]
            hits.append(
                SearchHit(
                    file_id=row["file_id"],
                    filename=row["filename"],
                    chunk_index=int(row["chunk_index"]),
                    text=row["text"],
                    score=score,
                    attributes=json.loads(row["attributes"] or "{}"),
                )
            )
            if len(hits) == max_results:
                break
        return hits

    def _keyword(self, table: Any, query: str, where: str | None, depth: int) -> list[dict[str, Any]]:
        from lancedb.query import MatchQuery

        # A match query, not a parsed one: what users type is never query syntax.
        match: Any = MatchQuery
        search = table.search(match(query, "text"), query_type="fts")
        if where:
            search = search.where(where, prefilter=True)
        try:
            return list(search.select([*_COLUMNS, "_score"]).limit(depth).to_list())
        except (ValueError, RuntimeError, OSError) as exc:
            # No full-text index yet (its writer died before building it): maintenance builds it.
            log.warning("index: keyword search unavailable, vectors only: %r", exc)
            return []

    @staticmethod
    def _files_matching(table: Any, filters: Mapping[str, Any]) -> set[str]:
        """The files whose attributes pass the filters (a file's chunks share its attributes)."""
        scanned = table.search().select(["file_id", "attributes"]).limit(None).to_arrow()
        seen: dict[str, str] = dict(
            zip(scanned.column("file_id").to_pylist(), scanned.column("attributes").to_pylist(), strict=True)
        )
        return {file_id for file_id, raw in seen.items() if matches(filters, json.loads(raw or "{}"))}

    # -- maintenance

    def maintain(self, store_id: str) -> None:
        with self._lock:
            lock = self._maintenance.setdefault(store_id, threading.Lock())
        with lock:
            table = self._open(store_id)
            if table is None:
                return
            for attempt in range(1, MAINTENANCE_ATTEMPTS + 1):
                try:
                    self._ensure_fts(table)
                    table.optimize(cleanup_older_than=KEEP_VERSIONS_FOR)
                    if table.count_rows() >= ANN_THRESHOLD and not any(
                        getattr(i, "index_type", "").startswith("IVF") for i in table.list_indices()
                    ):
                        table.create_index(
                            metric="cosine", vector_column_name="vector", index_type="IVF_HNSW_SQ"
                        )
                    return
                except Exception as exc:  # a commit conflict with a concurrent delete: try again
                    if attempt == MAINTENANCE_ATTEMPTS:
                        raise IndexFailure(f"could not maintain {store_id}: {exc}") from exc
                    log.info("index: maintenance of %s conflicted (attempt %d): %r", store_id, attempt, exc)
                    time.sleep(0.2 * attempt)
