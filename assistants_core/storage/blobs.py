"""Blob Storage: a file's bytes, one block blob per file, written block by block as they arrive.

Nothing outside this module knows container names, blob names or block ids. A blob is named
after the file it holds. Bytes are staged as blocks of at most `BLOCK_BYTES` (Put Block) and
made the blob's content in one Put Block List, so a blob appears whole or not at all: a body
that fails half-way leaves only uncommitted blocks, which `discard` removes at once (committing
an empty list replaces them, and the empty blob is then deleted). An Upload's parts are blocks
of its file's blob, so completing it commits the parts' blocks in order and copies nothing.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from .. import ids
from .rows import StorageUnavailable

if TYPE_CHECKING:
    from azure.storage.blob import BlobBlock, BlobClient, ContainerClient

# Bytes staged per Put Block: what a transfer holds in memory at most, whatever the file's size.
BLOCK_BYTES = 4 * 1024 * 1024
# How much a download reads per request to storage (and hands on per chunk).
READ_BYTES = 4 * 1024 * 1024
_WHOLE = "0" * ids.BODY_LENGTH  # the part key of the blocks of a file written in one request


class BlobTooLarge(Exception):
    """More bytes arrived than the caller allows."""


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageUnavailable() from exc
    except HttpResponseError as exc:
        if exc.status_code is None or exc.status_code >= 500 or exc.status_code == 429:
            raise StorageUnavailable() from exc
        raise


def _block_id(part: str, n: int) -> str:
    """Block ids of one blob must all be as long: a part's key (24 characters) and a number."""
    return base64.b64encode(f"{part}{n:06d}".encode()).decode()


def _blocks(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """`chunks` regrouped as blocks of `BLOCK_BYTES` (the last one shorter); BlobTooLarge past `limit`."""
    buffer = bytearray()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BlobTooLarge()
        buffer += chunk
        while len(buffer) >= BLOCK_BYTES:
            yield bytes(buffer[:BLOCK_BYTES])
            del buffer[:BLOCK_BYTES]
    if buffer:
        yield bytes(buffer)


def _listed(block_ids: list[str]) -> list[BlobBlock]:
    from azure.storage.blob import BlobBlock

    return [BlobBlock(block_id) for block_id in block_ids]


def _translated(chunks: Iterator[bytes]) -> Iterator[bytes]:
    with translated_errors():
        yield from chunks


class Blobs:
    """The files' container. `ensure` creates it on first use, once per process."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container
        self._ready = False

    def _blob(self, file_id: str) -> BlobClient:
        if not self._ready:
            with translated_errors(), contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            self._ready = True
        return self._container.get_blob_client(file_id)

    def write(self, file_id: str, chunks: Iterable[bytes], limit: int) -> int:
        """The file's blob from `chunks`, as they arrive; its size. A body of one block is one
        Put Blob. On any failure (BlobTooLarge, the client gone, storage) nothing is left."""
        blob = self._blob(file_id)
        staged: list[str] = []
        size = 0
        try:
            with translated_errors():
                blocks = _blocks(chunks, limit)
                first = next(blocks, b"")
                second = next(blocks, None)
                if second is None:
                    blob.upload_blob(first, overwrite=True)
                    return len(first)
                for block in itertools.chain((first, second), blocks):  # one block held at a time
                    staged.append(_block_id(_WHOLE, len(staged)))
                    blob.stage_block(staged[-1], block, length=len(block))
                    size += len(block)
                blob.commit_block_list(_listed(staged))
                return size
        except BaseException:
            if staged:
                self.discard(file_id)
            raise

    def stage(self, file_id: str, part_id: str, chunks: Iterable[bytes], limit: int) -> tuple[int, int]:
        """An Upload's part as uncommitted blocks of its file's blob: (bytes, blocks)."""
        blob = self._blob(file_id)
        part = ids.sort_key(part_id)
        count = size = 0
        with translated_errors():
            for block in _blocks(chunks, limit):
                blob.stage_block(_block_id(part, count), block, length=len(block))
                count += 1
                size += len(block)
        return size, count

    def commit(self, file_id: str, parts: Iterable[tuple[str, int]]) -> None:
        """The blob made of the parts' blocks, parts in the order given as (part id, blocks)."""
        blocks = [_block_id(ids.sort_key(part_id), n) for part_id, count in parts for n in range(count)]
        with translated_errors():
            self._blob(file_id).commit_block_list(_listed(blocks))

    def discard(self, file_id: str) -> None:
        """The blob and its uncommitted blocks gone (a blob with none is not an error)."""
        blob = self._blob(file_id)
        with translated_errors(), contextlib.suppress(ResourceNotFoundError):
            blob.commit_block_list([])
            blob.delete_blob()

    def delete(self, file_id: str) -> None:
        with translated_errors(), contextlib.suppress(ResourceNotFoundError):
            self._blob(file_id).delete_blob()

    def read(self, file_id: str, start: int = 0, length: int | None = None) -> Iterator[bytes] | None:
        """The blob's bytes from `start`, `length` of them (all that follow if None), a read of
        `READ_BYTES` at a time; None for a missing blob. The first read is made before this
        returns, so that a caller can still answer 404 rather than a body cut short."""
        blob = self._blob(file_id)
        with translated_errors():
            try:
                stream = blob.download_blob(offset=start, length=length, max_concurrency=1)
            except ResourceNotFoundError:
                return None
        return _translated(stream.chunks())

    def read_all(self, file_id: str, limit: int) -> bytes | None:
        """The whole blob if it holds at most `limit` bytes; None if missing; BlobTooLarge if larger."""
        blob = self._blob(file_id)
        with translated_errors():
            try:
                stream = blob.download_blob(max_concurrency=1)
            except ResourceNotFoundError:
                return None
            if stream.size > limit:
                raise BlobTooLarge()
            return stream.readall()
