"""Chunks and queries as vectors, from the model backend's `/embeddings`, in the store's vector
space (model and dimensions)."""

from __future__ import annotations

from collections.abc import Sequence

from ..backend import ModelBackend
from ..index import IndexedChunk, VectorSpace
from .chunk import Chunk


def embed_chunks(backend: ModelBackend, chunks: Sequence[Chunk], space: VectorSpace) -> list[IndexedChunk]:
    """Every chunk with its vector; `EmbeddingError` if the endpoint fails past its retries."""
    vectors = backend.embed(
        [c.text for c in chunks],
        model=space.model,
        dimensions=space.dimensions,
        tokens=[c.tokens for c in chunks],
    )
    return [IndexedChunk(c.index, c.text, v) for c, v in zip(chunks, vectors, strict=True)]


def embed_query(backend: ModelBackend, query: str, space: VectorSpace) -> list[float]:
    return backend.embed([query], model=space.model, dimensions=space.dimensions)[0]
