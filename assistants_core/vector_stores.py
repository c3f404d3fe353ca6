"""Vector stores: their files and batches, the ingestion that the queue trigger runs, search, and
the sweeper's share (lost ingestions, expired stores, index maintenance).

A store's document, its files and its batches share a partition: every change of a file's status
writes the file, the store's counts and the batch's counts in one conditional transaction, so that
counts never disagree with the files (`_move`). Attaching answers at once with the file
`in_progress` and sends an ingestion message; the message parses, chunks and embeds the file and
writes its chunks to the index in one commit, then marks it `completed` or `failed`. A file whose
ingestion was lost (its worker died) is found by the sweeper once its lease has passed: sent
again, or failed after the last delivery. So every file ends `completed`, `failed` or `cancelled`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import ids
from .backend import EmbeddingError, ModelBackend
from .documents import optimistically
from .errors import ApiError, InvalidRequest, NotFound
from .files import Files, not_found
from .index import IndexFailure, SearchHit, VectorIndex, VectorSpace
from .index.filters import COMPARISONS, COMPOUNDS
from .ingest.parse import ParseError, check_supported
from .models.base import WireModel
from .models.vector_store import (
    DAY_SECONDS,
    AttachFileRequest,
    AttributeValue,
    CreateBatchRequest,
    CreateVectorStoreRequest,
    FileContentPage,
    FileStatus,
    LastError,
    ModifyVectorStoreRequest,
    SearchRequest,
    SearchResult,
    SearchResultsPage,
    StaticChunkingStrategy,
    StoreExpiresAfter,
    TextContent,
    UpdateFileRequest,
    VectorStore,
    VectorStoreDeleted,
    VectorStoreFile,
    VectorStoreFileBatch,
    VectorStoreFileDeleted,
    chunking_strategy,
)
from .pagination import ListPage, ListQuery
from .storage import Collection, ConcurrentUpdate, Record, StorageUnavailable, Store
from .storage.queue import IngestQueue, read_ingest_message
from .storage.vector_stores import VectorStoreRows, text_blob

log = logging.getLogger("assistants.vector_stores")

POLL_AFTER_MS = 500  # steers both SDKs' polling helpers (JS would wait 5 s a poll)
LAST_DELIVERY = 3  # host.json's maxDequeueCount: the ingestion attempts a file gets
FILES_PER_TRANSACTION = 20  # 4 rows each, with the store's and the batch's: within 100 operations
ACTIVE_REFRESH_SECONDS = 60  # last_active_at moves at most this often (a search is not a write)
MAX_FILE_BYTES = 512 * 1024 * 1024  # OpenAI's per-file limit for file_search
MAX_CONCURRENT_INGESTIONS = 4  # per instance, whatever the queue's batch size
FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")
THREAD_STORE_DAYS = 7

_ingestions = threading.BoundedSemaphore(MAX_CONCURRENT_INGESTIONS)


class StoreExpired(ApiError):
    """A store past its `expires_at`: nothing can be searched or added in it."""

    def __init__(self, store_id: str) -> None:
        super().__init__(f"Vector store '{store_id}' has expired.", param="vector_store_id", code="expired")
        self.store_id = store_id


class StoredStore(WireModel):
    store: VectorStore
    model: str
    dimensions: int
    purged: bool = False  # an expired store whose files and index the sweeper removed

    @property
    def space(self) -> VectorSpace:
        return VectorSpace(self.model, self.dimensions)


class StoredFile(WireModel):
    file: VectorStoreFile
    filename: str
    batch_id: str | None = None
    lease_until: int = 0  # the worker that holds it holds it until then
    deliveries: int = 0
    resent_at: int = 0  # when the sweeper last sent its message again


class StoredBatch(WireModel):
    batch: VectorStoreFileBatch
    cancelled: bool = False


@dataclass(frozen=True)
class RunHit:
    """A chunk file_search found for a run."""

    file_id: str
    filename: str
    score: float
    text: str


@dataclass(frozen=True)
class _NewFile:
    file_id: str
    filename: str
    strategy: StaticChunkingStrategy
    attributes: dict[str, AttributeValue] | None


def store_not_found(store_id: str) -> NotFound:
    return NotFound.object("vector store", store_id)


def file_not_found(store_id: str, file_id: str) -> NotFound:
    return NotFound(f"No file found with id '{file_id}' in vector store '{store_id}'.")


def _checked_id(value: str, prefix: str, param: str) -> str:
    """A path id of the right kind (else 400 naming it), not necessarily one this service made."""
    if not ids.is_well_formed(prefix, value):
        expected = prefix + "_"
        raise InvalidRequest(
            f"Invalid '{param}': '{value[:64]}'. Expected an ID that begins with '{expected}'.",
            param=param,
            code="invalid_value",
        )
    return value


def check_filters(filters: Any, param: str = "filters") -> None:
    """OpenAI's comparison and compound filters, or a 400 naming where one breaks."""
    if not isinstance(filters, Mapping):
        raise InvalidRequest(f"Invalid '{param}': expected an object.", param=param, code="invalid_type")
    kind = filters.get("type")
    if kind in COMPOUNDS:
        inner = filters.get("filters")
        if not isinstance(inner, list) or not inner:
            raise InvalidRequest(
                f"Invalid '{param}.filters': expected a non-empty array.",
                param=f"{param}.filters",
                code="invalid_value",
            )
        for n, item in enumerate(inner):
            check_filters(item, f"{param}.filters[{n}]")
        return
    if kind not in COMPARISONS:
        allowed = ", ".join(f"'{k}'" for k in (*COMPARISONS, *COMPOUNDS))
        raise InvalidRequest(
            f"Invalid '{param}.type': supported values are: {allowed}.",
            param=f"{param}.type",
            code="invalid_value",
        )
    if not isinstance(filters.get("key"), str):
        raise InvalidRequest(f"Missing '{param}.key'.", param=f"{param}.key", code="invalid_value")
    value = filters.get("value")
    scalar = (str, int, float, bool)
    if not (
        isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))
    ):
        raise InvalidRequest(
            f"Invalid '{param}.value': expected a string, number, boolean or an array of them.",
            param=f"{param}.value",
            code="invalid_value",
        )


class VectorStores:
    """The vector-store operations; `search_for_run`, `searchable`, `wait_for_files`,
    `create_for_thread` and `attach` are what runs (file_search, attachments) call."""

    def __init__(
        self,
        store: Store,
        files: Files,
        backend: ModelBackend | None,
        index: VectorIndex | None = None,
        now: Callable[[], int] = ids.unix_seconds,
    ) -> None:
        self._store = store
        self._files = files
        self._backend = backend
        self._index_given = index
        self._index_lock = threading.Lock()
        self._queue = IngestQueue(store.settings)
        self._now = now
        self._lease = store.settings.ingest_lease_seconds
        files.on_delete.append(self.remove_file_everywhere)

    @property
    def _rows(self) -> VectorStoreRows:
        return self._store.vector_stores()

    @property
    def index(self) -> VectorIndex:
        """The embedded engine, made when a store is first written or searched (lancedb is slow
        to import)."""
        with self._index_lock:
            if self._index_given is None:
                from .index.lance import LanceIndex
                from .storage.indexes import index_location

                self._index_given = LanceIndex(index_location(self._store.settings))
            return self._index_given

    def _space(self) -> VectorSpace:
        settings = self._store.settings
        return VectorSpace(settings.embeddings_model, settings.embeddings_dimensions)

    # --- stores ------------------------------------------------------------------------------

    def create(self, request: CreateVectorStoreRequest) -> VectorStore:
        strategy = chunking_strategy(
            request.chunking_strategy.model_dump() if request.chunking_strategy else None
        )
        new = self._new_files(request.file_ids or [], strategy, None, "file_ids")
        store_id = self._create_store(request.name, request.metadata or {}, request.expires_after)
        self._add_files(store_id, new, None)
        return self.retrieve(store_id)

    def _create_store(
        self, name: str | None, metadata: dict[str, str], expires_after: StoreExpiresAfter | None
    ) -> str:
        store_id, created_at = ids.new_id(ids.VECTOR_STORE)
        store = VectorStore(
            id=store_id,
            created_at=created_at,
            name=name,
            metadata=metadata,
            last_active_at=created_at,
            expires_after=expires_after,
            expires_at=created_at + expires_after.days * DAY_SECONDS if expires_after else None,
        )
        space = self._space()
        self.index.create(store_id, space)
        stored = StoredStore(store=store, model=space.model, dimensions=space.dimensions)
        if store.expires_at is not None:
            self._rows.expiries.add(store.expires_at, store_id)
        self._rows.create(store_id, stored.model_dump_json().encode())
        return store_id

    def list_stores(self, query: ListQuery) -> ListPage[VectorStore]:
        documents, has_more = self._rows.listing.page(query.order, query.limit, query.after, query.before)
        stores = []
        for document in documents:
            store_id = str(json.loads(document)["id"])
            found = self._stored(store_id)
            if found is not None:
                stores.append(found[1].store.as_of(self._now()))
        return ListPage[VectorStore].of(stores, has_more)

    def retrieve(self, store_id: str) -> VectorStore:
        return self._require(store_id)[1].store.as_of(self._now())

    def modify(self, store_id: str, request: ModifyVectorStoreRequest) -> VectorStore:
        given = request.given()

        def attempt() -> VectorStore:
            record, stored = self._require(store_id)
            store = stored.store
            changes: dict[str, Any] = {}
            if "name" in given:
                changes["name"] = request.name
            if "metadata" in given:
                changes["metadata"] = request.metadata or {}
            if "expires_after" in given:
                changes["expires_after"] = request.expires_after
                anchor = store.last_active_at or store.created_at
                changes["expires_at"] = (
                    anchor + request.expires_after.days * DAY_SECONDS if request.expires_after else None
                )
            # A new expiry revives an expired store: its next expiry empties it again.
            purged = stored.purged and "expires_after" not in given
            updated = stored.model_copy(update={"store": store.model_copy(update=changes), "purged": purged})
            if updated.store.expires_at is not None and updated.store.expires_at != store.expires_at:
                self._rows.expiries.add(updated.store.expires_at, store_id)
            self._rows.submit(store_id, self._rows.store_replacement(store_id, record, _dump(updated)))
            return updated.store.as_of(self._now())

        return optimistically(attempt)

    def delete(self, store_id: str) -> VectorStoreDeleted:
        self._require(store_id)
        file_ids = self._file_ids(store_id)
        self._rows.purge(store_id)  # its document first: from here on the store 404s
        self.index.drop(store_id)
        for file_id in file_ids:
            self._store.blobs().delete(text_blob(store_id, file_id))
            self._rows.release(file_id, store_id)
        return VectorStoreDeleted(id=store_id)

    # --- files -------------------------------------------------------------------------------

    def attach_file(self, store_id: str, request: AttachFileRequest) -> VectorStoreFile:
        strategy = chunking_strategy(
            request.chunking_strategy.model_dump() if request.chunking_strategy else None
        )
        self._require_live(store_id)
        existing = self._file(store_id, request.file_id)
        if existing is not None:
            return existing[1].file
        new = self._new_files([request.file_id], strategy, request.attributes, "file_id")
        self._add_files(store_id, new, None)
        return self.retrieve_file(store_id, request.file_id)

    def attach(self, store_id: str, file_id: str) -> VectorStoreFile:
        """For runs: a file attached with the `auto` strategy (answers at once, `in_progress`)."""
        return self.attach_file(store_id, AttachFileRequest(file_id=file_id))

    def list_files(self, store_id: str, query: ListQuery, status: str | None) -> ListPage[VectorStoreFile]:
        self._require(store_id)
        return self._file_page(self._rows.files(store_id), query, status, None)

    def retrieve_file(self, store_id: str, file_id: str) -> VectorStoreFile:
        found = self._file(store_id, file_id)
        if found is None:
            self._require(store_id)
            raise file_not_found(store_id, file_id)
        return found[1].file

    def update_file(self, store_id: str, file_id: str, request: UpdateFileRequest) -> VectorStoreFile:
        def attempt() -> VectorStoreFile:
            record, stored = self._require_file(store_id, file_id)
            updated = stored.model_copy(
                update={"file": stored.file.model_copy(update={"attributes": request.attributes})}
            )
            self._rows.files(store_id).replace(file_id, record, _dump(updated))
            return updated.file

        file = optimistically(attempt)
        if file.status == "completed":  # one in progress takes them when it completes
            self.index.set_attributes(store_id, file_id, file.attributes or {})
        return file

    def detach(self, store_id: str, file_id: str) -> VectorStoreFileDeleted:
        def attempt() -> None:
            record, stored = self._require_file(store_id, file_id)
            self._move(store_id, file_id, record, stored, None)

        optimistically(attempt)
        self._forget(store_id, file_id)
        return VectorStoreFileDeleted(id=file_id)

    def file_content(self, store_id: str, file_id: str) -> FileContentPage:
        self._require_file(store_id, file_id)
        text = self._store.blobs().read_all(text_blob(store_id, file_id), MAX_FILE_BYTES)
        data = [TextContent(text=text.decode())] if text else []
        return FileContentPage(data=data)

    def remove_file_everywhere(self, file_id: str) -> None:
        """A File being deleted leaves every store that holds it (counts and usage follow)."""
        for store_id in self._rows.holders(file_id):
            with contextlib.suppress(NotFound):
                self.detach(store_id, file_id)
            self._rows.release(file_id, store_id)

    # --- batches -----------------------------------------------------------------------------

    def create_batch(self, store_id: str, request: CreateBatchRequest) -> VectorStoreFileBatch:
        if request.file_ids is not None and request.files is not None:
            raise InvalidRequest(
                "Provide either 'file_ids' or 'files', not both.", param="files", code="invalid_value"
            )
        if not request.file_ids and not request.files:
            raise InvalidRequest(
                "Missing required parameter: 'file_ids'.", param="file_ids", code="missing_required_parameter"
            )
        default = chunking_strategy(
            request.chunking_strategy.model_dump() if request.chunking_strategy else None
        )
        self._require_live(store_id)
        present = set(self._file_ids(store_id))
        new: list[_NewFile] = []
        if request.files is not None:
            for n, item in enumerate(request.files):
                strategy = (
                    chunking_strategy(item.chunking_strategy.model_dump())
                    if item.chunking_strategy
                    else default
                )
                new += self._new_files([item.file_id], strategy, item.attributes, f"files[{n}].file_id")
        else:
            new = self._new_files(request.file_ids or [], default, request.attributes, "file_ids")
        new = [f for f in new if f.file_id not in present]
        batch_id, created_at = ids.new_id(ids.FILE_BATCH)
        batch = VectorStoreFileBatch(id=batch_id, created_at=created_at, vector_store_id=store_id)
        self._add_files(store_id, new, StoredBatch(batch=batch.settled(False)))
        return self.retrieve_batch(store_id, batch_id)

    def retrieve_batch(self, store_id: str, batch_id: str) -> VectorStoreFileBatch:
        return self._require_batch(store_id, batch_id)[1].batch

    def cancel_batch(self, store_id: str, batch_id: str) -> VectorStoreFileBatch:
        def mark() -> None:
            record, stored = self._require_batch(store_id, batch_id)
            if not stored.cancelled:
                updated = stored.model_copy(update={"cancelled": True})
                self._rows.batches(store_id).replace(batch_id, record, _dump(updated))

        optimistically(mark)
        query = ListQuery(limit=100, order="asc")
        while True:
            page = self._file_page(self._rows.files(store_id), query, "in_progress", batch_id)
            for file in page.data:
                self._cancel_file(store_id, file.id)
            if not page.has_more or not page.data:
                break
            query = ListQuery(limit=100, order="asc", after=page.data[-1].id)
        return self.retrieve_batch(store_id, batch_id)

    def list_batch_files(
        self, store_id: str, batch_id: str, query: ListQuery, status: str | None
    ) -> ListPage[VectorStoreFile]:
        self._require_batch(store_id, batch_id)
        return self._file_page(self._rows.files(store_id), query, status, batch_id)

    def _cancel_file(self, store_id: str, file_id: str) -> None:
        def attempt() -> None:
            found = self._file(store_id, file_id, for_write=True)
            if found is None or found[1].file.status != "in_progress":
                return
            self._move(store_id, file_id, found[0], found[1], "cancelled")

        optimistically(attempt)
        self._rows.ingested(store_id, file_id)
        self.index.remove_file(store_id, file_id)  # in case its ingestion committed meanwhile

    # --- search ------------------------------------------------------------------------------

    def search(self, store_id: str, request: SearchRequest) -> SearchResultsPage:
        if request.filters is not None:
            check_filters(request.filters)
        _record, stored = self._require_live(store_id)
        threshold = request.ranking_options.score_threshold if request.ranking_options else None
        queries = request.queries()
        hits = self._search(
            [(store_id, stored)], queries, request.max_num_results, threshold or 0.0, request.filters
        )
        self._refresh(store_id)
        return SearchResultsPage(
            search_query=queries,
            data=[
                SearchResult(
                    file_id=hit.file_id,
                    filename=hit.filename,
                    score=hit.score,
                    attributes=hit.attributes or None,
                    content=[TextContent(text=hit.text)],
                )
                for hit in hits
            ],
        )

    def search_for_run(
        self, store_ids: list[str], queries: list[str], max_results: int, score_threshold: float
    ) -> list[RunHit]:
        """For file_search: each query over every store (hybrid), merged best first, one result
        per chunk, at most `max_results`; refreshes each store's `last_active_at`. Raises
        `StoreExpired` naming the first expired store, NotFound for a missing one."""
        stores = [(store_id, self._require_live(store_id)[1]) for store_id in store_ids]
        hits = self._search(stores, queries, max_results, score_threshold, None)
        for store_id in store_ids:
            self._refresh(store_id)
        return [RunHit(h.file_id, h.filename, h.score, h.text) for h in hits]

    def exists(self, store_id: str) -> bool:
        return self._stored(store_id) is not None

    def as_of_now(self, store_ids: Iterable[str]) -> dict[str, VectorStore]:
        """The stores among these that exist, as they are now (one past its expiry `expired`),
        from one read of each."""
        now = self._now()
        found = ((store_id, self._stored(store_id)) for store_id in store_ids)
        return {store_id: stored[1].store.as_of(now) for store_id, stored in found if stored is not None}

    def wait_for_files(self, store_id: str, seconds: float) -> bool:
        """Wait until no file of the store is in progress (True), or `seconds` pass (False)."""
        deadline = time.monotonic() + seconds
        while True:
            stored = self._stored(store_id)
            if stored is None or stored[1].store.file_counts.in_progress == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def create_for_thread(
        self,
        file_ids: list[str],
        chunking_strategy: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        expires_after_days: int | None = THREAD_STORE_DAYS,
    ) -> str:
        """The store a `vector_stores` helper of tool_resources or a message attachment makes:
        its id, the files attached (`in_progress`). 400s name `file_ids` / `chunking_strategy`."""
        request = CreateVectorStoreRequest.parse(
            {
                "file_ids": file_ids,
                "chunking_strategy": chunking_strategy,
                "metadata": metadata,
                "expires_after": (
                    {"anchor": "last_active_at", "days": expires_after_days} if expires_after_days else None
                ),
            }
        )
        return self.create(request).id

    def _search(
        self,
        stores: list[tuple[str, StoredStore]],
        queries: list[str],
        max_results: int,
        threshold: float,
        filters: Mapping[str, Any] | None,
    ) -> list[SearchHit]:
        best: dict[tuple[str, str, int], SearchHit] = {}
        vectors: dict[tuple[VectorSpace, str], list[float]] = {}
        for store_id, stored in stores:
            if stored.store.file_counts.completed == 0:
                continue
            for query in queries:
                key = (stored.space, query)
                if key not in vectors:
                    vectors[key] = self._embed_query(query, stored.space)
                for hit in self.index.search(
                    store_id,
                    query,
                    vectors[key],
                    max_results=max_results,
                    filters=filters,
                    score_threshold=threshold,
                ):
                    chunk = (store_id, hit.file_id, hit.chunk_index)
                    if chunk not in best or best[chunk].score < hit.score:
                        best[chunk] = hit
        return sorted(best.values(), key=lambda h: h.score, reverse=True)[:max_results]

    def _embed_query(self, query: str, space: VectorSpace) -> list[float]:
        from .ingest.embed import embed_query

        if self._backend is None:
            raise InvalidRequest("No embeddings backend is configured for search.", param="query")
        try:
            return embed_query(self._backend, query, space)
        except EmbeddingError:
            raise StorageUnavailable() from None  # a 503: the client may retry

    def _refresh(self, store_id: str) -> None:
        """`last_active_at` (and `expires_at` after it) moved to now, at most once a minute."""

        def attempt() -> None:
            found = self._stored(store_id)
            if found is None:
                return
            record, stored = found
            now = self._now()
            store = stored.store
            if now - (store.last_active_at or 0) < ACTIVE_REFRESH_SECONDS:
                return
            changes: dict[str, Any] = {"last_active_at": now}
            if store.expires_after is not None:
                changes["expires_at"] = now + store.expires_after.days * DAY_SECONDS
            updated = stored.model_copy(update={"store": store.model_copy(update=changes)})
            self._rows.submit(store_id, self._rows.store_replacement(store_id, record, _dump(updated)))

        try:
            optimistically(attempt)
        except StorageUnavailable:
            log.warning("could not refresh last_active_at of %s", store_id)

    # --- ingestion (the queue trigger) ---------------------------------------------------------

    def ingest(self, body: bytes, dequeue_count: int | None) -> None:
        """Ingest the file a queue message names. Storage or index failures are raised (the host
        delivers the message again) until the last delivery, which fails the file."""
        named = read_ingest_message(body)
        if named is None:
            log.warning("dropped an ingestion message that names no vector-store file")
            return
        store_id, file_id = named
        with _ingestions:
            try:
                self._ingest(store_id, file_id)
            except (StorageUnavailable, IndexFailure, ConcurrentUpdate):
                log.exception(
                    "ingestion of %s into %s failed (delivery %s)", file_id, store_id, dequeue_count
                )
                if (dequeue_count or 1) >= LAST_DELIVERY:
                    self._finish(store_id, file_id, "failed", 0, _server_error())
                raise

    def _ingest(self, store_id: str, file_id: str) -> None:
        claimed = self._claim(store_id, file_id)
        if claimed is None:
            return
        stored, space = claimed
        if stored.deliveries > LAST_DELIVERY:
            self._finish(store_id, file_id, "failed", 0, _server_error())
            return
        if self._backend is None:
            self._finish(store_id, file_id, "failed", 0, _server_error())
            return
        from .ingest.pipeline import prepare

        data = self._store.blobs().read_all(file_id, MAX_FILE_BYTES)
        if data is None:
            self._finish(
                store_id,
                file_id,
                "failed",
                0,
                LastError(code="invalid_file", message="The file was deleted."),
            )
            return
        try:
            prepared = prepare(data, stored.filename, stored.file.chunking_strategy, self._backend, space)
        except ParseError as exc:
            self._finish(store_id, file_id, "failed", 0, LastError(code=exc.code, message=exc.message))
            return
        except EmbeddingError as exc:
            log.warning("embeddings failed for %s: %s", file_id, exc)
            self._finish(store_id, file_id, "failed", 0, _server_error())
            return
        self._store.blobs().write(text_blob(store_id, file_id), [prepared.text.encode()], MAX_FILE_BYTES)
        # A first delivery appends (no chunks can be there yet), unless its lease ran out and
        # another delivery claimed the file meanwhile: then both merge, and neither duplicates.
        current = self._file(store_id, file_id)
        superseded = current is not None and current[1].deliveries != stored.deliveries
        self.index.add_file(
            store_id,
            space,
            file_id,
            stored.filename,
            stored.file.attributes or {},
            prepared.chunks,
            replace=stored.deliveries > 1 or superseded,
        )
        self._finish(store_id, file_id, "completed", prepared.usage_bytes, None)
        now = self._file(store_id, file_id)
        if now is not None and now[1].file.attributes != stored.file.attributes:
            # updated while it was being ingested: the chunks take the new attributes
            self.index.set_attributes(store_id, file_id, now[1].file.attributes or {})

    def _claim(self, store_id: str, file_id: str) -> tuple[StoredFile, VectorSpace] | None:
        """The file with a new lease and one more delivery counted; None if it is not in
        progress (a redelivered message, a cancelled or detached file) or another worker's lease
        holds it. One worker at a time, so that a first delivery may append its chunks."""

        def attempt() -> tuple[StoredFile, VectorSpace] | None:
            store = self._stored(store_id)
            found = self._file(store_id, file_id, for_write=True)
            if store is None or found is None or found[1].file.status != "in_progress":
                self._rows.ingested(store_id, file_id)
                return None
            record, stored = found
            if stored.deliveries and stored.lease_until > self._now():
                return None  # another worker holds it (a duplicate message): its lease says so
            updated = stored.model_copy(
                update={"lease_until": self._now() + self._lease, "deliveries": stored.deliveries + 1}
            )
            self._rows.files(store_id).replace(file_id, record, _dump(updated))
            return updated, store[1].space

        return optimistically(attempt)

    def _finish(
        self, store_id: str, file_id: str, status: FileStatus, usage_bytes: int, error: LastError | None
    ) -> None:
        """The file `status`, with the store's and batch's counts, in one write; chunks written
        for a file that was detached or cancelled meanwhile are removed."""

        def attempt() -> bool:
            found = self._file(store_id, file_id, for_write=True)
            if found is None or found[1].file.status != "in_progress":
                return False
            record, stored = found
            file = stored.file.model_copy(
                update={"status": status, "usage_bytes": usage_bytes, "last_error": error}
            )
            self._move(store_id, file_id, record, stored.model_copy(update={"file": file}), status)
            return True

        if not optimistically(attempt) and status == "completed":
            self.index.remove_file(store_id, file_id)
        self._rows.ingested(store_id, file_id)
        if status == "completed":
            self._rows.maintenance_due(store_id)

    # --- the sweeper -----------------------------------------------------------------------

    def sweep(self) -> None:
        """Lost ingestions sent again (or failed after the last delivery), expired stores
        emptied, index maintenance done (the timer runs one sweeper at a time)."""
        now = self._now()
        for store_id, file_id, since in list(self._rows.all_ingesting()):
            self._sweep_file(store_id, file_id, since, now)
        for store_id, expires_at in list(self._rows.expiries.due(now)):
            self._sweep_store(store_id, expires_at, now)
        for store_id, record in list(self._rows.maintenance()):
            try:
                if self._stored(store_id) is not None:
                    self.index.maintain(store_id)
            except IndexFailure:
                log.warning("maintenance of %s failed; it is tried again", store_id)
                continue
            self._rows.maintained(store_id, record)

    def _sweep_file(self, store_id: str, file_id: str, since: int, now: int) -> None:
        found = self._file(store_id, file_id) if self._stored(store_id) is not None else None
        if found is None or found[1].file.status != "in_progress":
            # An attach writes this row a moment before its files: leave young rows alone.
            if since < now - ACTIVE_REFRESH_SECONDS:
                self._rows.ingested(store_id, file_id)
            return
        record, stored = found
        # A file never claimed waits a lease from its attach (its message may be on its way).
        if max(stored.lease_until or since + self._lease, stored.resent_at + self._lease) > now:
            return
        if stored.deliveries >= LAST_DELIVERY:
            self._finish(store_id, file_id, "failed", 0, _server_error())
            return
        try:  # a fresh lease first, so that the next round does not send it again
            updated = stored.model_copy(update={"resent_at": now})
            self._rows.files(store_id).replace(file_id, record, _dump(updated))
        except ConcurrentUpdate:
            return
        self._queue.send(store_id, file_id)

    def _sweep_store(self, store_id: str, expires_at: int, now: int) -> None:
        found = self._stored(store_id)
        if found is None:
            self._rows.expiries.remove(expires_at, store_id)
            return
        record, stored = found
        store = stored.store
        if store.expires_at is None or store.expires_at > now:  # no longer expiring, or refreshed
            if store.expires_at is not None:
                self._rows.expiries.add(store.expires_at, store_id)
        elif not stored.purged:
            file_ids = self._file_ids(store_id)
            self.index.drop(store_id)
            self._rows.purge(store_id, keep_store=True)
            for file_id in file_ids:
                self._store.blobs().delete(text_blob(store_id, file_id))
                self._rows.ingested(store_id, file_id)
            emptied = store.model_copy(update={"file_counts": type(store.file_counts)(), "usage_bytes": 0})
            updated = stored.model_copy(update={"store": emptied, "purged": True})
            try:
                self._rows.submit(store_id, self._rows.store_replacement(store_id, record, _dump(updated)))
            except ConcurrentUpdate:
                return  # the next round sees it again
        self._rows.expiries.remove(expires_at, store_id)  # due, so never the row just added

    # --- shared steps ------------------------------------------------------------------------

    def _new_files(
        self,
        file_ids: list[str],
        strategy: StaticChunkingStrategy,
        attributes: dict[str, AttributeValue] | None,
        param: str,
    ) -> list[_NewFile]:
        """The Files, found (404 naming the first missing) and of a supported type (400)."""
        new: list[_NewFile] = []
        seen: set[str] = set()
        for file_id in file_ids:
            if file_id in seen:
                continue
            seen.add(file_id)
            if not ids.is_valid(ids.FILE, file_id):
                raise not_found(file_id)
            file = self._files.retrieve(file_id)
            new.append(_NewFile(file_id, file.filename, strategy, attributes))
        check_supported([f.filename for f in new], param="file_ids" if param.startswith("file") else param)
        return new

    def _add_files(self, store_id: str, new: list[_NewFile], batch: StoredBatch | None) -> None:
        """The files in progress, `FILES_PER_TRANSACTION` at a time, each group in one write with
        the store's (and batch's) counts; then their ingestion messages."""
        batch_id = batch.batch.id if batch else None
        groups = [new[i : i + FILES_PER_TRANSACTION] for i in range(0, len(new), FILES_PER_TRANSACTION)]
        if batch is not None and not groups:
            groups = [[]]
        for number, group in enumerate(groups):
            for f in group:
                self._rows.hold(f.file_id, store_id)
            self._rows.ingesting(store_id, [f.file_id for f in group])

            def attempt(group: list[_NewFile] = group, first: bool = number == 0) -> None:
                record, stored = self._require_live(store_id)
                now = self._now()
                files = self._rows.files(store_id)
                operations = []
                counts = stored.store.file_counts
                for f in group:
                    file = VectorStoreFile(
                        id=f.file_id,
                        created_at=now,
                        vector_store_id=store_id,
                        chunking_strategy=f.strategy,
                        attributes=f.attributes,
                    )
                    document = _dump(StoredFile(file=file, filename=f.filename, batch_id=batch_id))
                    operations += files.insert_operations(f.file_id, document, group=batch_id)
                    counts = counts.moved(None, "in_progress")
                updated = stored.model_copy(
                    update={"store": stored.store.model_copy(update={"file_counts": counts})}
                )
                operations += self._rows.store_replacement(store_id, record, _dump(updated))
                if batch is not None and batch_id is not None:
                    batches = self._rows.batches(store_id)
                    if first:
                        grown = _grown(batch, len(group))
                        operations += batches.insert_operations(batch_id, _dump(grown))
                    else:
                        current = batches.get(batch_id)
                        if current is None:
                            raise ConcurrentUpdate()
                        grown = _grown(StoredBatch.model_validate_json(current.document), len(group))
                        operations += batches.replace_operations(batch_id, current, _dump(grown))
                self._rows.submit(store_id, operations)

            optimistically(attempt)
            for f in group:
                self._queue.send(store_id, f.file_id)

    def _move(
        self, store_id: str, file_id: str, record: Record, stored: StoredFile, status: FileStatus | None
    ) -> None:
        """One transaction: the file at `status` (None: detached), the store's counts and
        usage_bytes and its batch's counts with it (ConcurrentUpdate if any changed)."""
        found = self._stored(store_id)
        if found is None:
            raise store_not_found(store_id)
        store_record, store_doc = found
        before = self._status_of(record)
        files = self._rows.files(store_id)
        if status is None:
            operations = files.delete_operations(file_id, record)
            usage = store_doc.store.usage_bytes - self._stored_file(record).file.usage_bytes
        else:
            stored = stored.model_copy(update={"file": stored.file.model_copy(update={"status": status})})
            operations = files.replace_operations(file_id, record, _dump(stored))
            usage = store_doc.store.usage_bytes + stored.file.usage_bytes
        counts = store_doc.store.file_counts.moved(before, status)
        store = store_doc.store.model_copy(update={"file_counts": counts, "usage_bytes": max(0, usage)})
        operations += self._rows.store_replacement(
            store_id, store_record, _dump(store_doc.model_copy(update={"store": store}))
        )
        if stored.batch_id and status is not None:
            batches = self._rows.batches(store_id)
            batch_record = batches.get(stored.batch_id)
            if batch_record is not None:
                batch = StoredBatch.model_validate_json(batch_record.document)
                moved = batch.batch.model_copy(
                    update={"file_counts": batch.batch.file_counts.moved(before, status)}
                )
                settled = batch.model_copy(update={"batch": moved.settled(batch.cancelled)})
                operations += batches.replace_operations(stored.batch_id, batch_record, _dump(settled))
        self._rows.submit(store_id, operations)

    def _status_of(self, record: Record) -> FileStatus:
        return self._stored_file(record).file.status

    @staticmethod
    def _stored_file(record: Record) -> StoredFile:
        return StoredFile.model_validate_json(record.document)

    def _forget(self, store_id: str, file_id: str) -> None:
        """What a detached file leaves outside the partition: chunks, text, bookkeeping rows."""
        self.index.remove_file(store_id, file_id)
        self._store.blobs().delete(text_blob(store_id, file_id))
        self._rows.ingested(store_id, file_id)
        self._rows.release(file_id, store_id)

    def _file_page(
        self, files: Collection, query: ListQuery, status: str | None, group: str | None
    ) -> ListPage[VectorStoreFile]:
        """A page of files, of one status if `status` is given: pages read on until the page is
        full or the files run out, in the direction asked."""
        if status is not None and status not in FILE_STATUSES:
            allowed = ", ".join(f"'{s}'" for s in FILE_STATUSES)
            raise InvalidRequest(
                f"Invalid value for 'filter': {status[:64]!r}. Supported values are: {allowed}.",
                param="filter",
                code="invalid_value",
            )
        backwards = query.before is not None and query.after is None
        after, before = query.after, query.before
        found: list[VectorStoreFile] = []
        while True:
            documents, more = files.page(query.order, query.limit, after, before, group)
            page = [StoredFile.model_validate_json(d).file for d in documents]
            chosen = [f for f in page if status is None or f.status == status]
            found = chosen + found if backwards else found + chosen
            if len(found) >= query.limit or not more or not page:
                break
            if backwards:
                before = page[0].id
            else:
                after = page[-1].id
        has_more = more or len(found) > query.limit
        found = found[-query.limit :] if backwards else found[: query.limit]
        return ListPage[VectorStoreFile].of(found, has_more)

    def _file_ids(self, store_id: str) -> list[str]:
        return self._rows.file_ids(store_id)

    def _stored(self, store_id: str) -> tuple[Record, StoredStore] | None:
        if not ids.is_valid(ids.VECTOR_STORE, store_id):
            return None
        record = self._rows.get(store_id)
        return (record, StoredStore.model_validate_json(record.document)) if record else None

    def _require(self, store_id: str) -> tuple[Record, StoredStore]:
        _checked_id(store_id, ids.VECTOR_STORE, "vector_store_id")
        found = self._stored(store_id)
        if found is None:
            raise store_not_found(store_id)
        return found

    def _require_live(self, store_id: str) -> tuple[Record, StoredStore]:
        found = self._require(store_id)
        if found[1].store.as_of(self._now()).status == "expired":
            raise StoreExpired(store_id)
        return found

    def _file(self, store_id: str, file_id: str, for_write: bool = False) -> tuple[Record, StoredFile] | None:
        if not (ids.is_valid(ids.VECTOR_STORE, store_id) and ids.is_valid(ids.FILE, file_id)):
            return None
        record = self._rows.files(store_id).get(file_id, for_write=for_write)
        return (record, self._stored_file(record)) if record else None

    def _require_file(self, store_id: str, file_id: str) -> tuple[Record, StoredFile]:
        found = self._file(store_id, file_id)
        if found is None:
            self._require(store_id)
            raise file_not_found(store_id, file_id)
        return found

    def _require_batch(self, store_id: str, batch_id: str) -> tuple[Record, StoredBatch]:
        _checked_id(batch_id, ids.FILE_BATCH, "batch_id")
        self._require(store_id)
        record = (
            self._rows.batches(store_id).get(batch_id) if ids.is_valid(ids.FILE_BATCH, batch_id) else None
        )
        if record is None:
            raise NotFound.object("file batch", batch_id)
        return record, StoredBatch.model_validate_json(record.document)


def _grown(batch: StoredBatch, files: int) -> StoredBatch:
    counts = batch.batch.file_counts
    for _ in range(files):
        counts = counts.moved(None, "in_progress")
    grown = batch.batch.model_copy(update={"file_counts": counts})
    return batch.model_copy(update={"batch": grown.settled(batch.cancelled)})


def _dump(model: WireModel) -> bytes:
    return model.model_dump_json().encode()


def _server_error() -> LastError:
    return LastError(code="server_error", message="The file could not be processed. Please try again.")
