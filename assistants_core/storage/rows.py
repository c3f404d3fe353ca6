"""Rows of one partition: how a JSON document is spread over entities, and the calls every
storage class shares (point reads, range queries, transactions, error translation).

A document is stored as UTF-8 bytes in binary properties of at most 64 KiB (the property limit),
11 of them to a row: base64-encoded on the wire that is about 961 KB, under the 1 MiB entity
limit however it is counted (Table Storage counts raw bytes, Azurite the JSON it receives). The
first row of a document holds `rows`, the count of its rows; the others follow it under
`<first key>.NN`. A document may span `MAX_ROWS` rows, so that all of it fits one 4 MiB
transaction. Each row of one version carries the same `rev`, so a reader that raced a writer
notices and reads again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableEntity, TableTransactionError, TransactionOperation

from . import envelope
from .envelope import Operation as Operation

PART_BYTES = 64 * 1024
PARTS_PER_ROW = 11
MAX_ROWS = 4
MAX_DOCUMENT_BYTES = PART_BYTES * PARTS_PER_ROW * MAX_ROWS

TRANSACTION_OPERATIONS = 100
# 4 MiB, less room for the multipart envelope that `transaction_bytes` does not count.
TRANSACTION_BYTES = 4 * 1024 * 1024 - 128 * 1024

MAX_PAGE_ROWS = 1000  # the most entities Table Storage returns in one response (its $top cap)
PART_SEPARATOR = "."  # sorts below every id character: a document's rows follow its first row
PAST = "~"  # sorts above every id character: a bound just past a key and the rows under it
_PARTS = [f"p{i:02}" for i in range(PARTS_PER_ROW)]
_READ_ATTEMPTS = 5

# Operations that, alone, are written as a single-entity call (a delete stays a transaction:
# the SDK's own delete ignores a missing row, which a transaction reports).
_ALONE = (TransactionOperation.CREATE, TransactionOperation.UPSERT, TransactionOperation.UPDATE)

# The SDK's HTTP logging writes every storage request's headers at INFO: noise, and costly in
# Application Insights. Warnings and errors still come through.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


class StorageUnavailable(Exception):
    """Storage could not be reached or failed on its side; the request may be retried."""


class ConcurrentUpdate(Exception):
    """Something a write was conditional on changed (or vanished) since it was read."""


class OwnerGone(Exception):
    """What the collection belongs to (a thread) no longer exists."""


class DocumentTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"document of {size} bytes exceeds {MAX_DOCUMENT_BYTES}")
        self.size = size


@dataclass(frozen=True)
class Record:
    """One stored document, and what a conditional write of it needs to know."""

    document: bytes
    etag: str
    rows: int
    first: Mapping[str, Any]  # the first row's other properties (a counter, a group)


@contextmanager
def translated_errors(table: TableClient | None = None) -> Iterator[None]:
    """Storage SDK errors as this package's: ConcurrentUpdate (read again and retry) or
    StorageUnavailable (a 503: the client retries). A table found missing, though this process
    created it (storage restarted empty, an operator removed it), is created again first, so
    that the retry succeeds."""
    try:
        yield
    except TableTransactionError as exc:
        code = getattr(exc, "error_code", None)
        if code in ("UpdateConditionNotSatisfied", "ResourceNotFound"):
            raise ConcurrentUpdate() from exc
        if code == "TableNotFound":
            _recreate(table)
            raise StorageUnavailable() from exc
        if exc.status_code is not None and exc.status_code >= 500:
            raise StorageUnavailable() from exc
        raise
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageUnavailable() from exc
    except HttpResponseError as exc:
        if getattr(exc, "error_code", None) == "TableNotFound":
            _recreate(table)
            raise StorageUnavailable() from exc
        if exc.status_code is None or exc.status_code >= 500 or exc.status_code == 429:
            raise StorageUnavailable() from exc
        raise


def _recreate(table: TableClient | None) -> None:
    if table is not None:
        with suppress(HttpResponseError, ServiceRequestError, ServiceResponseError):
            table.create_table()


def part_key(first_key: str, n: int) -> str:
    return f"{first_key}{PART_SEPARATOR}{n:02}"


def after_prefix(prefix: str) -> str:
    """The smallest key above every key that starts with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def transaction_bytes(operation: Operation) -> int:
    """About what one operation adds to a transaction's body (binary goes as base64)."""
    size = 700  # the operation's part headers and URL
    for name, value in operation[1].items():
        size += len(name) + 40
        if isinstance(value, bytes):
            size += 4 * ((len(value) + 2) // 3)
        else:
            size += 6 * len(str(value))  # a string may be sent \u-escaped
    return size


def packed(groups: Sequence[Sequence[Operation]]) -> list[list[Operation]]:
    """The groups' operations in order, in as few transactions as the limits allow, never
    splitting a group (one object's rows go in together)."""
    transactions: list[list[Operation]] = [[]]
    size = 0
    for group in groups:
        group_size = sum(transaction_bytes(op) for op in group)
        current = transactions[-1]
        if current and (
            len(current) + len(group) > TRANSACTION_OPERATIONS or size + group_size > TRANSACTION_BYTES
        ):
            transactions.append([])
            size = 0
        transactions[-1].extend(group)
        size += group_size
    return transactions


class Partition:
    """Access to one partition of one table."""

    def __init__(self, table: TableClient, partition: str) -> None:
        self.table = table
        self.partition = partition

    def row(self, row_key: str, **properties: Any) -> dict[str, Any]:
        return {"PartitionKey": self.partition, "RowKey": row_key, **properties}

    def document_rows(
        self, first_key: str, object_id: str, document: bytes, **first: Any
    ) -> list[dict[str, Any]]:
        """The rows that hold `document`; `first` adds properties to its first row."""
        if len(document) > MAX_DOCUMENT_BYTES:
            raise DocumentTooLarge(len(document))
        parts = [document[i : i + PART_BYTES] for i in range(0, len(document), PART_BYTES)] or [b""]
        groups = [parts[i : i + PARTS_PER_ROW] for i in range(0, len(parts), PARTS_PER_ROW)]
        rev = secrets.token_hex(16)
        rows = []
        for n, group in enumerate(groups):
            key = first_key if n == 0 else part_key(first_key, n)
            row = self.row(key, id=object_id, rev=rev, **dict(zip(_PARTS, group, strict=False)))
            if n == 0:
                row.update(first, rows=len(groups))
            rows.append(row)
        return rows

    def has_row(self, row_key: str) -> bool:
        """Whether the row exists (a point read of its key alone)."""
        with translated_errors(self.table):
            try:
                self.table.get_entity(self.partition, row_key, select=["RowKey"])
            except ResourceNotFoundError:
                return False
        return True

    def read_document(self, first_key: str, object_id: str) -> Record | None:
        """The document whose first row is `first_key`, if it belongs to `object_id`."""
        with translated_errors(self.table):
            for _ in range(_READ_ATTEMPTS):
                try:
                    first = self.table.get_entity(self.partition, first_key)
                except ResourceNotFoundError:
                    return None
                if first.get("id") != object_id:
                    return None
                rows: list[Mapping[str, Any]] = [first]
                if first["rows"] > 1:
                    rows += self.query(first_key, first_key + PAST, first["rows"])
                record = assembled(rows)
                if record is not None:
                    return record
        # Racing writers settle within a read or two; rows that never agree are damage, not a race.
        raise RuntimeError(f"stored rows of {object_id} do not form one version")

    def replace_document(
        self,
        first_key: str,
        object_id: str,
        current: Record,
        document: bytes,
        guards: Sequence[Operation] = (),
    ) -> None:
        """Write a new version of a document, only if it is still at `current` (else
        ConcurrentUpdate). The new first row keeps the old one's own properties."""
        self.submit([*guards, *self.document_replacement(first_key, object_id, current, document)])

    def document_replacement(
        self, first_key: str, object_id: str, current: Record, document: bytes
    ) -> list[Operation]:
        """What `replace_document` writes, for a transaction of the caller's."""
        kept = {k: v for k, v in current.first.items() if k not in ("id", "rev", "rows")}
        first, *rest = self.document_rows(first_key, object_id, document, **kept)
        return [
            (TransactionOperation.UPDATE, first, {"mode": "replace", **unchanged_since(current)}),
            *[(TransactionOperation.UPSERT, row, {"mode": "replace"}) for row in rest],
            *[
                (TransactionOperation.DELETE, self.row(part_key(first_key, n)))
                for n in range(len(rest) + 1, current.rows)
            ],
        ]

    def query(
        self,
        low: str,
        high: str,
        page_size: int,
        select: list[str] | None = None,
        inclusive: bool = False,
    ) -> Iterable[TableEntity]:
        """Rows with `low < RowKey < high` (`low <=` if inclusive), fetched `page_size` at a time
        as the caller reads on."""
        query = "PartitionKey eq @pk and RowKey {} @low and RowKey lt @high".format(
            "ge" if inclusive else "gt"
        )
        return self.table.query_entities(
            query,
            parameters={"pk": self.partition, "low": low, "high": high},
            results_per_page=min(page_size, MAX_PAGE_ROWS),
            select=select,
        )

    def submit(self, operations: Sequence[Operation]) -> list[Mapping[str, Any]]:
        """Commit the operations together; each one's response metadata (its new `etag`)."""
        if len(operations) == 1 and operations[0][0] in _ALONE:
            return [self._alone(operations[0])]
        with translated_errors(self.table):
            return list(envelope.submit(self.table, operations))

    def _alone(self, operation: Operation) -> Mapping[str, Any]:
        """One write as the entity call it is, not as a transaction of one: no envelope to
        write and read."""
        kind, entity = operation[0], operation[1]
        options = dict(operation[2]) if len(operation) == 3 else {}
        try:
            with translated_errors(self.table):
                if kind == TransactionOperation.CREATE:
                    return self.table.create_entity(entity)
                if kind == TransactionOperation.UPSERT:
                    return self.table.upsert_entity(entity, **options)
                return self.table.update_entity(entity, **options)
        except (ResourceModifiedError, ResourceNotFoundError) as exc:  # as a transaction says it
            raise ConcurrentUpdate() from exc


def unchanged_since(record: Record) -> dict[str, Any]:
    """The condition for a write that must fail if the record changed since it was read."""
    return {"etag": record.etag, "match_condition": MatchConditions.IfNotModified}


def written(rows: Sequence[Mapping[str, Any]], etag: str) -> Record:
    """The record that `rows`, just written with the first one's new `etag`, now hold."""
    document = b"".join(row[name] for row in rows for name in _PARTS if name in row)
    extra = {k: v for k, v in rows[0].items() if k not in _PARTS and k not in ("PartitionKey", "RowKey")}
    return Record(document, etag, len(rows), extra)


def assembled(rows: Sequence[Mapping[str, Any]]) -> Record | None:
    """The document spread over `rows` (its first row first), or None if they are not all of
    one version."""
    first = rows[0]
    if len(rows) != first.get("rows") or any(row["rev"] != first["rev"] for row in rows):
        return None
    document = b"".join(row[name] for row in rows for name in _PARTS if name in row)
    etag = str(getattr(first, "metadata", {}).get("etag", ""))
    extra = {k: v for k, v in first.items() if k not in _PARTS and k not in ("PartitionKey", "RowKey")}
    return Record(document, etag, len(rows), extra)
