"""Ordered collections: objects of one kind in one partition, listed in id order in O(page).

With `k` the sortable body of an object's id (see `ids`), `~k` its inverted form, and every key
below led by the collection's own `kind` (none for a thread's messages, `r` for its runs, `s<run>`
for a run's steps), so that collections share a partition without sharing a key range:

    row key           holds
    d<~k>[.NN]        the object's document, newest object first (the default list order)
    a<k>              an empty index row, oldest object first, for ascending pages
    g<group>:a<k>     for an object in a group (a message of a run): the group's index, both
    g<group>:d<~k>      orders, so a group lists without reading the rest of the collection
    d! and a!         for a collection with sentinels (a thread's messages): rows that exist
                        exactly while the owner does, at the head of each range

Table Storage only scans keys ascending, so a descending page reads `d` rows from its cursor on,
and an ascending page reads `a` rows from its cursor and then the one contiguous range of `d`
rows they name: at most two queries of about `limit` rows each, however large the collection.

A collection with an owner answers nothing once the owner is gone (OwnerGone), even while its
rows are still being removed. With sentinels, a page without a cursor starts its query at the
sentinel row, so the query itself proves the owner is there; any other read checks the owner
beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from itertools import islice
from typing import Any, Literal, TypeVar

from azure.data.tables import TableClient, TableEntity, TransactionOperation

from .. import ids
from ..beside import beside
from .rows import (
    PART_SEPARATOR,
    PAST,
    Operation,
    OwnerGone,
    Partition,
    Record,
    after_prefix,
    assembled,
    part_key,
    translated_errors,
    unchanged_since,
    written,
)

Order = Literal["asc", "desc"]

DATA, INDEX, GROUP = "d", "a", "g"
SENTINEL = "!"  # sorts below every id character: at the head of the data and index ranges

T = TypeVar("T")


def data_key(object_id: str, data: str = DATA) -> str:
    """The first row key of an object's document among data rows keyed `data`."""
    return data + ids.inverted(ids.sort_key(object_id))


class Collection(Partition):
    """`guard`, if given, goes into every write, so that writes fail once what the collection
    belongs to is gone (the messages of a deleted thread); `owner_exists`, if given, tells
    whether it is still there, for the reads no sentinel row can vouch for."""

    def __init__(
        self,
        table: TableClient,
        partition: str,
        guard: Operation | None = None,
        owner_exists: Callable[[], bool] | None = None,
        kind: str = "",
        sentinels: bool = False,
    ) -> None:
        super().__init__(table, partition)
        self._guards: list[Operation] = [guard] if guard else []
        self._owner_exists = owner_exists
        self._data, self._index, self._group = kind + DATA, kind + INDEX, kind + GROUP
        self._sentinels = sentinels and owner_exists is not None

    def data_key(self, object_id: str) -> str:
        return data_key(object_id, self._data)

    def sentinel_operations(self) -> list[Operation]:
        """Creating the rows that stand for the owner (written with the owner itself)."""
        return [(TransactionOperation.CREATE, self.row(key)) for key in self.sentinel_keys()]

    def sentinel_keys(self) -> list[str]:
        return [self._data + SENTINEL, self._index + SENTINEL]

    def _owned(self, read: Callable[[], T]) -> T:
        """`read`, with the owner checked beside it: the request waits for the slower, not both."""
        if self._owner_exists is None:
            return read()
        check = beside(self._owner_exists)
        result = read()
        if not check.result():
            raise OwnerGone()
        return result

    # --- single objects ---------------------------------------------------------------------

    def insert(self, object_id: str, document: bytes, group: str | None = None) -> None:
        self.submit([*self._guards, *self.insert_operations(object_id, document, group)])

    def insert_operations(self, object_id: str, document: bytes, group: str | None = None) -> list[Operation]:
        key = ids.sort_key(object_id)
        first = {"group": group} if group else {}
        rows = [
            *self.document_rows(self.data_key(object_id), object_id, document, **first),
            self.row(self._index + key),
        ]
        if group:
            rows.append(self.row(f"{self._group}{group}:a{key}", id=object_id))
            rows.append(self.row(f"{self._group}{group}:d{ids.inverted(key)}", id=object_id))
        return [(TransactionOperation.CREATE, row) for row in rows]

    def get(self, object_id: str, for_write: bool = False) -> Record | None:
        """The object, or None; OwnerGone if the collection's owner is gone. A read `for_write`
        leaves the owner to the write's guard, which fails if it is gone: one request, not two."""
        if for_write:
            return self.read_document(self.data_key(object_id), object_id)
        return self._owned(lambda: self.read_document(self.data_key(object_id), object_id))

    def replace(self, object_id: str, current: Record, document: bytes) -> None:
        """Write a new version, only if the object is still at `current` (else ConcurrentUpdate)."""
        self.replace_document(self.data_key(object_id), object_id, current, document, self._guards)

    def replace_operations(self, object_id: str, current: Record, document: bytes) -> list[Operation]:
        """What `replace` writes (without the guard), for a transaction of the caller's."""
        return self.document_replacement(self.data_key(object_id), object_id, current, document)

    def delete(self, object_id: str, current: Record) -> None:
        """Remove an object, only if it is still at `current` (else ConcurrentUpdate)."""
        self.submit([*self._guards, *self.delete_operations(object_id, current)])

    def delete_operations(self, object_id: str, current: Record) -> list[Operation]:
        """What `delete` writes (without the guard), for a transaction of the caller's."""
        first_key = self.data_key(object_id)
        key = ids.sort_key(object_id)
        keys = [part_key(first_key, n) for n in range(1, current.rows)] + [self._index + key]
        group = current.first.get("group")
        if group:
            keys += [f"{self._group}{group}:a{key}", f"{self._group}{group}:d{ids.inverted(key)}"]
        return [
            (TransactionOperation.DELETE, self.row(first_key), unchanged_since(current)),
            *[(TransactionOperation.DELETE, self.row(k)) for k in keys],
        ]

    # --- pages ------------------------------------------------------------------------------

    def page(
        self, order: Order, limit: int, after: str | None, before: str | None, group: str | None = None
    ) -> tuple[list[bytes], bool]:
        """Up to `limit` documents in `order`, after `after` and before `before` (ids, exclusive),
        of the whole collection or of one group.

        `before` alone asks for the `limit` objects just ahead of it, in `order`. The flag says
        whether more objects lie beyond the page, in the direction it was read.
        """
        backwards = before is not None and after is None
        scan_order: Order = ("asc" if order == "desc" else "desc") if backwards else order
        start, stop = (before, None) if backwards else (after, before)
        with translated_errors(self.table):
            if self._sentinels and start is None and group is None:
                documents, more = self._scan(scan_order, limit, None, stop, None, from_sentinel=True)
            else:
                documents, more = self._owned(lambda: self._scan(scan_order, limit, start, stop, group))
        if backwards:
            documents.reverse()
        return documents, more

    def _scan(
        self,
        order: Order,
        limit: int,
        start: str | None,
        stop: str | None,
        group: str | None,
        from_sentinel: bool = False,
    ) -> tuple[list[bytes], bool]:
        """A page read in key order; `from_sentinel` starts it at the owner's sentinel row, which
        must be there (else OwnerGone)."""
        if group is None and order == "desc":  # the data rows themselves are in this order
            low, high = _bounds(self._data, order, start, stop)
            sentinel = self._data + SENTINEL if from_sentinel else None
            objects, more = self._read_objects(low, high, limit, sentinel=sentinel)
            return [document for _, document in objects], more
        prefix = f"{self._group}{group}:{order[0]}" if group else self._index
        low, high = _bounds(prefix, order, start, stop)
        if from_sentinel:
            sentinel_key = self._index + SENTINEL
            query = self.query(sentinel_key, high, limit + 2, select=["RowKey", "id"], inclusive=True)
            index = _past_sentinel(query, sentinel_key)
        else:
            index = iter(self.query(low, high, limit + 1, select=["RowKey", "id"]))
        # islice: reading on would fetch every further page of the index, not just this one.
        found = list(islice(index, limit + 1))
        more = len(found) > limit
        found = found[:limit]
        if not found:
            return [], more
        if group:  # a group's objects lie anywhere in the collection: read them one by one
            records = [self.read_document(self.data_key(row["id"]), row["id"]) for row in found]
            return [r.document for r in records if r is not None], more
        keys = [row["RowKey"][len(self._index) :] for row in found]
        # The page's objects are one contiguous range of data rows, newest first.
        objects, _ = self._read_objects(
            self._data + ids.inverted(keys[-1]),
            self._data + ids.inverted(keys[0]) + PAST,
            len(keys),
            inclusive=True,
        )
        by_key = dict(objects)
        return [by_key[key] for key in keys if key in by_key], more

    def _read_objects(
        self, low: str, high: str, limit: int, inclusive: bool = False, sentinel: str | None = None
    ) -> tuple[list[tuple[str, bytes]], bool]:
        """Up to `limit` (key, document) pairs from the data rows in the range, newest first,
        and whether another object follows them. With `sentinel`, the range starts at that row
        instead of `low`, and the row must be there (else OwnerGone)."""
        objects: list[tuple[str, bytes]] = []
        rows: list[Mapping[str, Any]] = []
        if sentinel:
            query = _past_sentinel(self.query(sentinel, high, limit + 2, inclusive=True), sentinel)
        else:
            query = iter(self.query(low, high, limit + 1, inclusive=inclusive))
        for row in query:
            if PART_SEPARATOR not in row["RowKey"]:
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
        record = assembled(rows) or self.read_document(self.data_key(object_id), object_id)  # raced a writer
        return [(ids.sort_key(object_id), record.document)] if record else []


class Batch:
    """Writes to the objects of one partition's collections, committed in one transaction: what
    a run writes at each step of its life (its own new state, a step, a message, the lock)."""

    def __init__(self, partition: Partition) -> None:
        self._partition = partition
        self._operations: list[Operation] = []
        self._objects: dict[str, tuple[int, list[Mapping[str, Any]]]] = {}
        self._merged: dict[str, tuple[int, Record]] = {}

    def insert(
        self, collection: Collection, object_id: str, document: bytes, group: str | None = None
    ) -> None:
        self._track(object_id, collection.insert_operations(object_id, document, group))

    def replace(self, collection: Collection, object_id: str, current: Record, document: bytes) -> None:
        """Replace the object only if it is still at `current` (else the commit raises
        ConcurrentUpdate and writes nothing)."""
        self._track(object_id, collection.replace_operations(object_id, current, document))

    def add(self, *operations: Operation) -> None:
        self._operations.extend(operations)

    def merge(self, object_id: str, current: Record, operation: Operation) -> None:
        """`operation`, a merge of properties into the first row of the object at `current` (a
        thread's lock), whose new record the commit then knows without reading it again."""
        self._merged[object_id] = (len(self._operations), current)
        self._operations.append(operation)

    def commit(self) -> dict[str, Record]:
        """Write it all, or nothing; the new records of the objects inserted, replaced or
        merged into."""
        results = self._partition.submit(self._operations)
        records = {
            object_id: written(rows, str(results[at].get("etag", "")))
            for object_id, (at, rows) in self._objects.items()
        }
        for object_id, (at, current) in self._merged.items():
            merged = {k: v for k, v in self._operations[at][1].items() if k not in ("PartitionKey", "RowKey")}
            etag = str(results[at].get("etag", ""))
            records[object_id] = replace(current, etag=etag, first={**current.first, **merged})
        return records

    def _track(self, object_id: str, operations: list[Operation]) -> None:
        rows = [op[1] for op in operations if op[0] != TransactionOperation.DELETE and "rev" in op[1]]
        self._objects[object_id] = (len(self._operations), rows)
        self._operations.extend(operations)


def _past_sentinel(rows: Iterable[TableEntity], sentinel: str) -> Iterator[TableEntity]:
    """The rows after the first, which must be the owner's sentinel (else OwnerGone)."""
    remaining = iter(rows)
    first = next(remaining, None)
    if first is None or first["RowKey"] != sentinel:
        raise OwnerGone()
    return remaining


def _bounds(prefix: str, order: Order, start: str | None, stop: str | None) -> tuple[str, str]:
    """The exclusive key range of `prefix` rows strictly between the ids `start` and `stop`."""

    def key(object_id: str) -> str:
        k = ids.sort_key(object_id)
        return k if order == "asc" else ids.inverted(k)

    low = prefix + key(start) + PAST if start else prefix
    high = prefix + key(stop) if stop else after_prefix(prefix)
    return low, high
