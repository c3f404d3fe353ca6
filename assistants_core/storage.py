"""Azure Table Storage: the only module that knows tables, partitions, row keys, filters and chunks.

An ordered collection (all assistants; later, the messages of one thread) lives in one partition,
so every write to one object is a single atomic entity-group transaction. With `k` the sortable
body of an object's id (see `ids`) and `~k` its inverted form:

    row key        holds
    d<~k>          the object's JSON document, newest object first (the default list order)
    d<~k>.NN       continuation rows, for documents larger than one entity may hold
    a<k>           an empty index row, oldest object first, for ascending pages

Table Storage only scans keys ascending, so a descending page reads `d` rows from its cursor on,
and an ascending page reads `a` rows from its cursor and then the one contiguous range of `d`
rows they name: at most two queries of about `limit` rows each, however large the collection.

Documents are stored as UTF-8 bytes in binary properties of at most 64 KiB (the property limit),
11 of them to a row: base64-encoded on the wire that is about 961 KB, under the 1 MiB entity
limit however it is counted (Table Storage counts raw bytes, Azurite the JSON it receives). A
document may span `MAX_ROWS` rows, so that all of it fits one 4 MiB transaction. Each row of one
version of a document carries the same `rev`, so a reader that raced a writer notices and reads
again.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineResponse
from azure.data.tables import (
    TableClient,
    TableEntity,
    TableServiceClient,
    TableTransactionError,
    TransactionOperation,
)

from . import ids
from .settings import Settings

Order = Literal["asc", "desc"]

PART_BYTES = 64 * 1024
PARTS_PER_ROW = 11
MAX_ROWS = 4
MAX_DOCUMENT_BYTES = PART_BYTES * PARTS_PER_ROW * MAX_ROWS

_DATA, _INDEX = "d", "a"
_PART_SEPARATOR = "."  # sorts below every id character: continuation rows follow their first row
_PAST_OBJECT = "~"  # sorts above every id character: a bound just past an object's rows
_RANGE = "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high"
_RANGE_FROM = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
_READ_ATTEMPTS = 5
_PARTS = [f"p{i:02}" for i in range(PARTS_PER_ROW)]

_Operation = (
    tuple[TransactionOperation, Mapping[str, Any]]
    | tuple[TransactionOperation, Mapping[str, Any], Mapping[str, Any]]
)

# Storage calls fail fast and in bounded time, so a client sees a 503 rather than a hang.
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
    "retry_backoff_max": 1,
    "connection_timeout": 5,
    "read_timeout": 30,
}


# The SDK's HTTP logging writes every storage request's headers at INFO: noise, and costly in
# Application Insights. Warnings and errors still come through.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


class StorageUnavailable(Exception):
    """Storage could not be reached or failed on its side; the request may be retried."""


class ConcurrentUpdate(Exception):
    """The object changed (or vanished) since it was read; read it again and retry."""


class DocumentTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"document of {size} bytes exceeds {MAX_DOCUMENT_BYTES}")
        self.size = size


@dataclass(frozen=True)
class Record:
    """One stored object: its document, and what a conditional write needs to know."""

    document: bytes
    etag: str
    rows: int


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except TableTransactionError as exc:
        if getattr(exc, "error_code", None) in ("UpdateConditionNotSatisfied", "ResourceNotFound"):
            raise ConcurrentUpdate() from exc
        if exc.status_code is not None and exc.status_code >= 500:
            raise StorageUnavailable() from exc
        raise
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageUnavailable() from exc
    except HttpResponseError as exc:
        if exc.status_code is None or exc.status_code >= 500 or exc.status_code == 429:
            raise StorageUnavailable() from exc
        raise


class Store:
    """The process's connection to Table Storage; tables are created on first use.

    `observe`, if given, sees every storage response (for counting round trips).
    """

    def __init__(
        self, settings: Settings, observe: Callable[[PipelineResponse[Any, Any]], None] | None = None
    ) -> None:
        self._settings = settings
        self._options = dict(_CLIENT_OPTIONS, raw_response_hook=observe) if observe else _CLIENT_OPTIONS
        self._service: TableServiceClient | None = None
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    def _table(self, name: str) -> TableClient:
        full_name = self._settings.table_prefix + name
        table = self._tables.get(full_name)
        if table is not None:
            return table
        with self._lock, _translated_errors():
            if full_name not in self._tables:
                if self._service is None:
                    self._service = TableServiceClient.from_connection_string(
                        self._settings.storage_connection_string, **self._options
                    )
                self._tables[full_name] = self._service.create_table_if_not_exists(full_name)
            return self._tables[full_name]

    def assistants(self) -> Collection:
        return Collection(self._table("assistants"), partition="assistants")


class Collection:
    """Objects of one kind in one partition, kept in id order, as JSON documents."""

    def __init__(self, table: TableClient, partition: str) -> None:
        self._table = table
        self._partition = partition

    # --- single objects ---------------------------------------------------------------------

    def insert(self, object_id: str, document: bytes) -> None:
        key = ids.sort_key(object_id)
        operations: list[_Operation] = [
            (TransactionOperation.CREATE, row) for row in self._data_rows(object_id, document)
        ]
        operations.append((TransactionOperation.CREATE, self._row(_INDEX + key)))
        with _translated_errors():
            self._table.submit_transaction(operations)

    def get(self, object_id: str) -> Record | None:
        first_key = _data_key(ids.sort_key(object_id))
        with _translated_errors():
            for _ in range(_READ_ATTEMPTS):
                try:
                    first = self._table.get_entity(self._partition, first_key)
                except ResourceNotFoundError:
                    return None
                if first.get("id") != object_id:
                    return None
                rows: list[Mapping[str, Any]] = [first]
                if first["rows"] > 1:
                    rows += self._query(first_key, first_key + _PAST_OBJECT, first["rows"])
                document = _assemble(rows)
                if document is not None:
                    return Record(document, str(first.metadata["etag"]), first["rows"])
        # Racing writers settle within a read or two; rows that never agree are damage, not a race.
        raise RuntimeError(f"stored rows of {object_id} do not form one version")

    def replace(self, object_id: str, current: Record, document: bytes) -> None:
        """Write a new version of an object, only if it is still at `current` (else ConcurrentUpdate)."""
        first, *rest = self._data_rows(object_id, document)
        operations: list[_Operation] = [
            (
                TransactionOperation.UPDATE,
                first,
                {"mode": "replace", "etag": current.etag, "match_condition": MatchConditions.IfNotModified},
            )
        ]
        operations += [(TransactionOperation.UPSERT, row, {"mode": "replace"}) for row in rest]
        first_key = first["RowKey"]
        operations += [
            (TransactionOperation.DELETE, self._row(_continuation_key(first_key, n)))
            for n in range(len(rest) + 1, current.rows)
        ]
        with _translated_errors():
            self._table.submit_transaction(operations)

    def delete(self, object_id: str, current: Record) -> None:
        """Remove an object, only if it is still at `current` (else ConcurrentUpdate)."""
        key = ids.sort_key(object_id)
        first_key = _data_key(key)
        operations: list[_Operation] = [
            (
                TransactionOperation.DELETE,
                self._row(first_key),
                {"etag": current.etag, "match_condition": MatchConditions.IfNotModified},
            )
        ]
        operations += [
            (TransactionOperation.DELETE, self._row(_continuation_key(first_key, n)))
            for n in range(1, current.rows)
        ]
        operations.append((TransactionOperation.DELETE, self._row(_INDEX + key)))
        with _translated_errors():
            self._table.submit_transaction(operations)

    # --- pages ------------------------------------------------------------------------------

    def page(
        self, order: Order, limit: int, after: str | None, before: str | None
    ) -> tuple[list[bytes], bool]:
        """Up to `limit` documents in `order`, after `after` and before `before` (ids, exclusive).

        `before` alone asks for the `limit` objects just ahead of it, in `order`. The flag says
        whether more objects lie beyond the page, in the direction it was read.
        """
        with _translated_errors():
            if before is not None and after is None:
                backwards: Order = "asc" if order == "desc" else "desc"
                documents, more = self._scan(backwards, limit, start=before, stop=None)
                documents.reverse()
                return documents, more
            return self._scan(order, limit, start=after, stop=before)

    def _scan(
        self, order: Order, limit: int, start: str | None, stop: str | None
    ) -> tuple[list[bytes], bool]:
        if order == "desc":
            low = _data_key(ids.sort_key(start)) + _PAST_OBJECT if start else _DATA
            high = _data_key(ids.sort_key(stop)) if stop else _next_prefix(_DATA)
            objects, more = self._read_objects(low, high, limit)
            return [document for _, document in objects], more
        low = _INDEX + ids.sort_key(start) if start else _INDEX
        high = _INDEX + ids.sort_key(stop) if stop else _next_prefix(_INDEX)
        index = self._query(low, high, limit + 1, select=["RowKey"])
        # islice: reading on would fetch every further page of the index, not just this one.
        keys = [row["RowKey"][len(_INDEX) :] for row in islice(index, limit + 1)]
        more = len(keys) > limit
        keys = keys[:limit]
        if not keys:
            return [], more
        # The page's objects are one contiguous range of data rows, newest first.
        objects, _ = self._read_objects(
            _data_key(keys[-1]), _data_key(keys[0]) + _PAST_OBJECT, len(keys), inclusive=True
        )
        by_key = dict(objects)
        return [by_key[key] for key in keys if key in by_key], more

    def _read_objects(
        self, low: str, high: str, limit: int, inclusive: bool = False
    ) -> tuple[list[tuple[str, bytes]], bool]:
        """Up to `limit` (key, document) pairs from the data rows in the range, newest first,
        and whether another object follows them."""
        objects: list[tuple[str, bytes]] = []
        rows: list[TableEntity] = []
        for row in self._query(low, high, limit + 1, inclusive=inclusive):
            if _PART_SEPARATOR not in row["RowKey"]:
                objects += self._whole(rows)
                rows = []
                if len(objects) == limit:
                    return objects, True
            rows.append(row)
        objects += self._whole(rows)
        return objects, False

    def _whole(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, bytes]]:
        """The object these rows hold, as zero or one (key, document) pair."""
        if not rows:
            return []
        object_id = rows[0]["id"]
        document = _assemble(rows)
        if document is None:  # raced a writer: read that object again, whole
            record = self.get(object_id)
            if record is None:
                return []
            document = record.document
        return [(ids.sort_key(object_id), document)]

    # --- rows -------------------------------------------------------------------------------

    def _row(self, row_key: str, **properties: Any) -> dict[str, Any]:
        return {"PartitionKey": self._partition, "RowKey": row_key, **properties}

    def _data_rows(self, object_id: str, document: bytes) -> list[dict[str, Any]]:
        if len(document) > MAX_DOCUMENT_BYTES:
            raise DocumentTooLarge(len(document))
        parts = [document[i : i + PART_BYTES] for i in range(0, len(document), PART_BYTES)] or [b""]
        groups = [parts[i : i + PARTS_PER_ROW] for i in range(0, len(parts), PARTS_PER_ROW)]
        first_key = _data_key(ids.sort_key(object_id))
        rev = uuid.uuid4().hex
        rows = []
        for n, group in enumerate(groups):
            row_key = first_key if n == 0 else _continuation_key(first_key, n)
            row = self._row(row_key, id=object_id, rev=rev, **dict(zip(_PARTS, group, strict=False)))
            if n == 0:
                row["rows"] = len(groups)
            rows.append(row)
        return rows

    def _query(
        self,
        low: str,
        high: str,
        page_size: int,
        select: list[str] | None = None,
        inclusive: bool = False,
    ) -> Iterable[TableEntity]:
        return self._table.query_entities(
            _RANGE_FROM if inclusive else _RANGE,
            parameters={"pk": self._partition, "low": low, "high": high},
            results_per_page=page_size,
            select=select,
        )


def _data_key(key: str) -> str:
    return _DATA + ids.inverted(key)


def _continuation_key(first_key: str, n: int) -> str:
    return f"{first_key}{_PART_SEPARATOR}{n:02}"


def _next_prefix(prefix: str) -> str:
    return chr(ord(prefix) + 1)


def _assemble(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    """The document spread over `rows`, or None if they are not all of one version."""
    if len(rows) != rows[0].get("rows") or any(row["rev"] != rows[0]["rev"] for row in rows):
        return None
    return b"".join(row[name] for row in rows for name in _PARTS if name in row)
