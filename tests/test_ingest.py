"""Vector-store ingestion's stages on real inputs: every supported file type parsed (documents
built by the libraries themselves), token chunking to the token, the chunking strategy's 400s,
embeddings from the scripted model server (batching, retries, failure), and the whole pipeline
with the network unreachable."""

from __future__ import annotations

import base64
import itertools
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from assistants_core.backend import (
    EMBEDDING_RETRIES,
    MAX_RETRY_AFTER_SECONDS,
    EmbeddingError,
    ModelBackend,
    _vectors,
)
from assistants_core.errors import InvalidRequest
from assistants_core.index import VectorSpace
from assistants_core.ingest.chunk import chunk, count_tokens, encoding
from assistants_core.ingest.embed import embed_chunks, embed_query
from assistants_core.ingest.parse import SUPPORTED, ParseError, check_supported, parse
from assistants_core.ingest.pipeline import prepare
from assistants_core.models.vector_store import StaticChunkingStrategy, chunking_strategy
from tests import documents
from tests.model_server import ModelServer, embedding, error, hang, rate_limit
from tests.support import ROOT

SPACE = VectorSpace("text-embedding-3-large", 256)


def close(vectors: list[list[float]], expected: list[list[float]]) -> bool:
    return len(vectors) == len(expected) and all(
        v == pytest.approx(e, abs=1e-6) for v, e in zip(vectors, expected, strict=True)
    )


def static(size: int, overlap: int) -> StaticChunkingStrategy:
    return chunking_strategy(
        {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}
    )


# --- parse ------------------------------------------------------------------------------------


def test_pdf_pages_in_order() -> None:
    data = documents.pdf(["Quarterly report (draft)\nRevenue grew", "Second page here"])
    assert parse(data, "report.PDF") == "Quarterly report (draft)\nRevenue grew\n\nSecond page here"


def test_docx_paragraphs_then_table_cells() -> None:
    data = documents.docx(["First paragraph.", "Second paragraph."], table=[["k", "v"], ["a", "1"]])
    assert parse(data, "memo.docx") == "First paragraph.\nSecond paragraph.\nk\tv\na\t1"


def test_pptx_slides_with_titles_bodies_and_notes() -> None:
    data = documents.pptx([("Roadmap", "Ship vector stores"), ("Risks", "Blob latency")], notes="say hi")
    assert parse(data, "deck.pptx") == "Roadmap\nShip vector stores\nsay hi\n\nRisks\nBlob latency"


def test_html_text_without_scripts_or_styles() -> None:
    page = (
        b"<html><head><title>T</title><style>p{color:red}</style><script>var x = 1</script></head>"
        b"<body><h1>Heading</h1><p>Some <b>bold</b> text</p><ul><li>one</li><li>two</li></ul>"
        b"<table><tr><td>c1</td><td>c2</td></tr></table></body></html>"
    )
    assert parse(page, "page.html") == "Heading\nSome bold text\none\ntwo\nc1\tc2"


@pytest.mark.parametrize(
    "name", [n for n in SUPPORTED if n not in (".pdf", ".docx", ".pptx", ".html", ".doc")]
)
def test_text_and_code_types_decode_as_text(name: str) -> None:
    source = "def answer():\r\n    return 42  # café\r\n"
    assert parse(source.encode(), f"file{name}") == "def answer():\n    return 42  # café"


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
def test_unicode_encodings_with_a_byte_order_mark(codec: str) -> None:
    assert parse("naïve façade, ünïcödé".encode(codec), "notes.txt") == "naïve façade, ünïcödé"


def test_a_legacy_encoding_is_detected() -> None:
    source = "Le cœur a ses raisons que la raison ne connaît point. " * 20
    assert "raisons que la raison" in parse(source.encode("cp1252"), "pascal.txt")


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("broken.pdf", b"%PDF-1.4\nnot really", "invalid_file"),
        ("broken.docx", b"PK\x03\x04 not a zip", "invalid_file"),
        ("broken.pptx", b"plain text", "invalid_file"),
        ("legacy.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "unsupported_file"),
        ("binary.txt", bytes(range(256)) * 8, "unsupported_file"),
        ("empty.md", b"", "invalid_file"),
        ("blank.txt", b" \n\t\n ", "invalid_file"),
        ("image.png", b"\x89PNG\r\n", "unsupported_file"),
        ("no-extension", b"hello", "unsupported_file"),
    ],
)
def test_what_cannot_be_read_fails_with_its_code(name: str, data: bytes, code: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse(data, name)
    assert raised.value.code == code
    assert raised.value.message


def test_a_pdf_of_only_images_has_no_text() -> None:
    with pytest.raises(ParseError) as raised:
        parse(documents.pdf([""]), "scan.pdf")
    assert raised.value.code == "invalid_file"


def test_unsupported_extensions_are_refused_at_attach_time_as_openai_does() -> None:
    check_supported(["a.PDF", "b.py", "c.docx"])
    with pytest.raises(InvalidRequest) as raised:
        check_supported(["ok.txt", "photo.png", "data.csv", "other.png"])
    error = raised.value
    assert (error.status, error.param, error.code) == (400, "file_ids", "unsupported_file")
    assert error.message == (
        "Files with extensions [.csv, .png] are not supported for retrieval. "
        "See https://platform.openai.com/docs/assistants/tools/file-search/supported-files"
    )


# --- chunk ------------------------------------------------------------------------------------


def test_auto_is_800_tokens_with_400_overlap_in_its_resolved_form() -> None:
    expected = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
    for given in (None, {"type": "auto"}):
        assert chunking_strategy(given).model_dump() == expected


@pytest.mark.parametrize(("size", "overlap"), [(800, 400), (100, 0), (100, 50), (4096, 2048), (333, 17)])
def test_chunks_are_exact_token_windows(size: int, overlap: int) -> None:
    words = " ".join(f"w{i % 97}x{i}" for i in range(3000))  # several tokens a word, ASCII only
    enc = encoding()
    tokens = enc.encode(words)
    chunks = chunk(words, static(size, overlap))
    step = size - overlap
    expected_count = 1 if len(tokens) <= size else -(-(len(tokens) - size) // step) + 1
    assert len(chunks) == expected_count
    for number, piece in enumerate(chunks):
        window = tokens[number * step : number * step + size]
        assert piece.index == number
        assert piece.text == enc.decode(window)
        assert piece.tokens == len(window)
        assert piece.tokens == size or number == len(chunks) - 1
    assert chunks[-1].text.endswith(words[-20:])  # the last window reaches the end
    windows = [enc.encode(c.text) for c in chunks]  # ASCII words: each window re-encodes alike
    for before, after in itertools.pairwise(windows):
        # consecutive windows share exactly `overlap` tokens
        assert before[step:] == after[:overlap]


def test_a_short_text_is_one_chunk() -> None:
    [only] = chunk("Just a few words.", static(100, 50))
    assert (only.text, only.tokens) == ("Just a few words.", count_tokens("Just a few words."))


def test_special_token_text_is_plain_text() -> None:
    [only] = chunk("before <|endoftext|> after", static(100, 0))
    assert only.text == "before <|endoftext|> after"


def test_tokens_are_cl100k_base() -> None:
    assert encoding().encode("hello world") == [15339, 1917]
    assert encoding().name == "cl100k_base"


@pytest.mark.parametrize(
    ("value", "param", "code"),
    [
        ({"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
         "chunking_strategy.static.max_chunk_size_tokens", "decimal_below_min_value"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}},
         "chunking_strategy.static.max_chunk_size_tokens", "decimal_above_max_value"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 401}},
         "chunking_strategy.static.chunk_overlap_tokens", "invalid_value"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": -1}},
         "chunking_strategy.static.chunk_overlap_tokens", "decimal_below_min_value"),
        ({"type": "static", "static": {"max_chunk_size_tokens": "800", "chunk_overlap_tokens": 0}},
         "chunking_strategy.static.max_chunk_size_tokens", "invalid_type"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 800}},
         "chunking_strategy.static.chunk_overlap_tokens", "missing_required_parameter"),
        ({"type": "static"}, "chunking_strategy.static", "missing_required_parameter"),
        ({"type": "auto", "static": {}}, "chunking_strategy.static", "unknown_parameter"),
        ({"type": "fixed"}, "chunking_strategy.type", "invalid_value"),
        ("auto", "chunking_strategy", "invalid_value"),
    ],
)  # fmt: skip
def test_bad_chunking_strategies_are_400s_naming_the_field(value: Any, param: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        chunking_strategy(value)
    assert (raised.value.status, raised.value.param, raised.value.code) == (400, param, code)


# --- embeddings -------------------------------------------------------------------------------


@pytest.fixture
def backend(model: ModelServer) -> ModelBackend:
    return ModelBackend(model.base_url, "test-key", embeddings_timeout=1.0, retry_pause=0.01)


def test_embeddings_are_the_scripted_servers_vectors_in_order(
    model: ModelServer, backend: ModelBackend
) -> None:
    inputs = ["alpha beta", "gamma", "alpha"]
    vectors = backend.embed(inputs, model="text-embedding-3-large", dimensions=64)
    assert close(vectors, [embedding(t, 64) for t in inputs])
    [body] = model.embedding_bodies()
    assert body["input"] == inputs
    assert (body["model"], body["dimensions"]) == ("text-embedding-3-large", 64)


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_the_scripted_server_answers_plain_and_base64(model: ModelServer, encoding_format: str) -> None:
    response = httpx.post(
        model.base_url + "/embeddings",
        json={"model": "m", "input": "some words", "dimensions": 8, "encoding_format": encoding_format},
    )
    assert response.status_code == 200, response.text
    [item] = response.json()["data"]
    value = item["embedding"]
    if encoding_format == "base64":
        value = list(struct.unpack("<8f", base64.b64decode(value)))
    assert value == pytest.approx(embedding("some words", 8), abs=1e-6)
    assert sum(v * v for v in value) == pytest.approx(1.0)


def test_batches_stay_within_the_input_and_token_limits(model: ModelServer, backend: ModelBackend) -> None:
    inputs = [f"text {i}" for i in range(7)]
    vectors = backend.embed(inputs, model="m", dimensions=16, max_inputs=3)
    assert [len(b["input"]) for b in model.embedding_bodies()] == [3, 3, 1]
    assert close(vectors, [embedding(t, 16) for t in inputs])
    model.reset()
    backend.embed(inputs, model="m", dimensions=16, tokens=[4, 4, 4, 9, 1, 1, 10], max_tokens=10)
    assert [b["input"] for b in model.embedding_bodies()] == [
        inputs[0:2],
        inputs[2:3],
        inputs[3:5],
        inputs[5:6],
        inputs[6:7],
    ]


def test_a_file_of_many_chunks_is_embedded_in_few_requests(model: ModelServer, backend: ModelBackend) -> None:
    words = " ".join(f"word{i}" for i in range(20_000))
    chunks = chunk(words, static(100, 50))
    embedded = embed_chunks(backend, chunks, VectorSpace("m", 32))
    assert [c.index for c in embedded] == list(range(len(chunks)))
    assert len(model.embedding_bodies()) == -(-len(chunks) // 2048)
    assert embed_query(backend, "word7", VectorSpace("m", 32)) == pytest.approx(
        embedding("word7", 32), abs=1e-6
    )


def test_429_is_retried_after_what_retry_after_asks_and_500_after_a_pause(
    model: ModelServer, backend: ModelBackend
) -> None:
    model.script_embeddings(rate_limit(retry_after=1), error(500), error(503))
    assert close(backend.embed(["x"], model="m", dimensions=4), [embedding("x", 4)])
    requests = model.embedding_requests
    assert [r.status for r in requests] == [429, 500, 503, 200]
    assert requests[1].received_at - requests[0].received_at >= 1.0


def test_a_timeout_is_retried(model: ModelServer, backend: ModelBackend) -> None:
    model.script_embeddings(hang())
    assert close(backend.embed(["x"], model="m", dimensions=4), [embedding("x", 4)])
    assert len(model.embedding_bodies()) == 2


@pytest.mark.parametrize(
    "failure",
    [lambda: error(500), lambda: hang(), lambda: rate_limit(retry_after=0)],
    ids=["500", "timeout", "429"],
)
def test_failing_past_the_retries_is_an_embedding_error(
    model: ModelServer, backend: ModelBackend, failure: Any
) -> None:
    model.script_embeddings(*(failure() for _ in range(EMBEDDING_RETRIES + 1)), error(500))
    with pytest.raises(EmbeddingError) as raised:
        backend.embed(["x"], model="m", dimensions=4)
    assert raised.value.code == "server_error"
    assert len(model.embedding_bodies()) == EMBEDDING_RETRIES + 1


@pytest.mark.parametrize(
    "reply",
    [rate_limit(retry_after=MAX_RETRY_AFTER_SECONDS + 50), error(400, "no such model"), error(401)],
    ids=["429-too-long", "400", "401"],
)
def test_what_retrying_cannot_fix_fails_at_once(
    model: ModelServer, backend: ModelBackend, reply: Any
) -> None:
    model.script_embeddings(reply)
    with pytest.raises(EmbeddingError):
        backend.embed(["x"], model="m", dimensions=4)
    assert len(model.embedding_bodies()) == 1


def test_answers_that_do_not_fit_the_request_are_refused() -> None:
    answer = SimpleNamespace(data=[SimpleNamespace(index=0, embedding=[0.1] * 3)])
    with pytest.raises(EmbeddingError):
        _vectors(answer, 1, 4)  # another length than the dimensions asked (a backend ignoring them)
    with pytest.raises(EmbeddingError):
        _vectors(answer, 2, 3)  # one vector for two inputs
    assert close(_vectors(answer, 1, 3), [[0.1] * 3])


# --- the pipeline, offline ------------------------------------------------------------------


def test_prepare_parses_chunks_and_embeds(model: ModelServer, backend: ModelBackend) -> None:
    data = documents.docx([f"Paragraph {i} about topic {i % 7}." for i in range(400)])
    prepared = prepare(data, "topics.docx", static(200, 100), backend, SPACE)
    assert prepared.text.startswith("Paragraph 0 about topic 0.")
    assert len(prepared.chunks) > 5
    assert all(len(c.vector) == 256 for c in prepared.chunks)
    assert prepared.usage_bytes == sum(len(c.text.encode()) + 1024 for c in prepared.chunks)
    assert {len(b["input"]) for b in model.embedding_bodies()} == {len(prepared.chunks)}


OFFLINE = textwrap.dedent(
    """
    import socket, sys, json
    real_connect = socket.socket.connect

    def loopback_only(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError("network unreachable (test)")
        return real_connect(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def no_dns(host, *args, **kwargs):
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise socket.gaierror("no DNS (test)")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = loopback_only
    socket.getaddrinfo = no_dns
    try:
        import tiktoken
        tiktoken.get_encoding("cl100k_base")
        sys.exit("tiktoken reached the network")
    except Exception as exc:
        print("tiktoken alone cannot load its encoding offline:", type(exc).__name__)
    sys.path.insert(0, sys.argv[1])
    from assistants_core.backend import ModelBackend
    from assistants_core.index import VectorSpace
    from assistants_core.ingest.pipeline import prepare
    from assistants_core.models.vector_store import chunking_strategy
    from tests import documents

    backend = ModelBackend(sys.argv[2], "k")
    data = documents.pdf(["offline words " * 200, "more offline words " * 200])
    prepared = prepare(data, "offline.pdf", chunking_strategy(None), backend, VectorSpace("m", 8))
    print(json.dumps({"chunks": len(prepared.chunks), "tokens": prepared.text.count("offline")}))
    """
)


def test_ingestion_works_with_the_network_unreachable_and_no_tiktoken_cache(
    model: ModelServer, tmp_path: Path
) -> None:
    empty_cache = tmp_path / "tiktoken-cache"
    empty_cache.mkdir()
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(empty_cache),
        "DATA_GYM_CACHE_DIR": str(empty_cache),
        "NO_PROXY": "",
        "no_proxy": "",
    }
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(proxy, None)
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE, str(ROOT), model.base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"chunks": 2, "tokens": 400}
    assert list(empty_cache.iterdir()) == []  # nothing was downloaded into the cache either
    assert len(model.embedding_bodies()) == 1


def test_the_encoding_is_loaded_once_per_process() -> None:
    assert encoding() is encoding()


def test_embeddings_settings_default_to_openais_file_search() -> None:
    from assistants_core.settings import ConfigurationError, Settings

    base = {"ASSISTANTS_API_KEYS": "k", "ASSISTANTS_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}
    settings = Settings.from_environ(base)
    assert (settings.embeddings_model, settings.embeddings_dimensions) == ("text-embedding-3-large", 256)
    chosen = Settings.from_environ(
        {**base, "ASSISTANTS_EMBEDDINGS_MODEL": "nomic-embed-text", "ASSISTANTS_EMBEDDINGS_DIMENSIONS": "768"}
    )
    assert (chosen.embeddings_model, chosen.embeddings_dimensions) == ("nomic-embed-text", 768)
    for bad in ("0", "-3", "many", "9000"):
        with pytest.raises(ConfigurationError, match="ASSISTANTS_EMBEDDINGS_DIMENSIONS"):
            Settings.from_environ({**base, "ASSISTANTS_EMBEDDINGS_DIMENSIONS": bad})
