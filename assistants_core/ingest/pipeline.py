"""The stages strung together for one file: bytes to chunks ready for the index."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..backend import ModelBackend
from ..index import IndexedChunk, VectorSpace
from ..models.vector_store import StaticChunkingStrategy
from .chunk import chunk
from .embed import embed_chunks
from .parse import parse

# Parsing holds a whole document (and pdfium's copy of it) in memory: however many ingestion
# messages an instance takes at once (host.json's batchSize), this many parse at a time, so that
# several large files cannot exhaust a 2 GB instance together.
MAX_CONCURRENT_PARSES = 2
_parsing = threading.BoundedSemaphore(MAX_CONCURRENT_PARSES)


@dataclass(frozen=True)
class Prepared:
    text: str
    chunks: list[IndexedChunk]

    @property
    def usage_bytes(self) -> int:
        """What the store holds for the file: its chunks' text and their float32 vectors."""
        return sum(len(c.text.encode()) + 4 * len(c.vector) for c in self.chunks)


def prepare(
    data: bytes,
    filename: str,
    strategy: StaticChunkingStrategy,
    backend: ModelBackend,
    space: VectorSpace,
) -> Prepared:
    """Parse, chunk and embed one file. `ParseError` (invalid_file / unsupported_file) or
    `EmbeddingError` (server_error) when it cannot be done."""
    with _parsing:
        text = parse(data, filename)
    return Prepared(text, embed_chunks(backend, chunk(text, strategy), space))
