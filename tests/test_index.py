"""The vector index on the tests' Azurite blob service: LanceDB tables on `az://`, written and
searched as the ingestion worker and the search endpoint will, with the scripted server's
feature-hashing vectors."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from assistants_core.index import IndexedChunk, IndexFailure, SearchHit, VectorSpace, VectorSpaceMismatch
from assistants_core.index.filters import matches
from assistants_core.index.lance import LanceIndex
from assistants_core.ingest.chunk import chunk
from assistants_core.models.vector_store import chunking_strategy
from assistants_core.settings import Settings
from assistants_core.storage.indexes import IndexLocation, container_name, index_location
from tests.model_server import embedding
from tests.support import Azurite, free_port, run_concurrently

DIMENSIONS = 256
SPACE = VectorSpace("scripted", DIMENSIONS)


def chunks(*texts: str) -> list[IndexedChunk]:
    return [IndexedChunk(i, t, embedding(t, DIMENSIONS)) for i, t in enumerate(texts)]


@pytest.fixture(scope="module")
def location(azurite: Azurite) -> IndexLocation:
    settings = Settings(
        api_keys=(b"unused",),
        storage_connection_string=azurite.connection_string,
        table_prefix="t" + secrets.token_hex(4),
    )
    return index_location(settings)


@pytest.fixture
def index(location: IndexLocation) -> LanceIndex:
    return LanceIndex(location)


@pytest.fixture
def store(index: LanceIndex) -> Any:
    store_id = "vs_" + secrets.token_hex(16)
    index.create(store_id, SPACE)
    yield store_id
    index.drop(store_id)


def search(index: LanceIndex, store: str, query: str, **options: Any) -> list[SearchHit]:
    return index.search(store, query, embedding(query, DIMENSIONS), **options)


def rows(index: LanceIndex, store: str) -> list[tuple[str, int]]:
    """Every (file, chunk) the store's table holds, read by a handle of its own."""
    table = LanceIndex(index._location)._open(store)
    if table is None:
        return []
    data = table.search().select(["file_id", "chunk_index"]).limit(None).to_arrow()
    return sorted(
        zip(data.column("file_id").to_pylist(), data.column("chunk_index").to_pylist(), strict=True)
    )


def test_the_location_is_a_container_of_the_deployments_own(location: IndexLocation) -> None:
    assert location.uri.startswith("az://t") and location.uri.endswith("-indexes/vector_stores")
    options = location.storage_options
    assert options["account_name"] == "devstoreaccount1"
    assert options["azure_storage_endpoint"].endswith("/devstoreaccount1")
    assert options["allow_http"] == "true"
    assert container_name(Settings(api_keys=(b"k",), storage_connection_string="x")) == "indexes"


def test_a_store_without_files_finds_nothing(index: LanceIndex, store: str) -> None:
    assert search(index, store, "anything") == []
    index.remove_file(store, "file-none")  # nothing to remove: no error
    index.create(store, SPACE)  # a retried creation changes nothing
    index.maintain(store)
    index.drop(store)
    index.drop(store)


def test_a_store_without_an_index_is_an_index_failure(index: LanceIndex) -> None:
    never = "vs_" + secrets.token_hex(16)
    assert search(index, never, "anything") == []
    index.remove_file(never, "file-x")
    with pytest.raises(IndexFailure):
        index.add_file(never, SPACE, "file-x", "x.txt", {}, chunks("words"))
    index.create(never, SPACE)
    with pytest.raises(VectorSpaceMismatch):
        index.create(never, VectorSpace("scripted", 32))
    index.drop(never)


def test_add_search_replace_remove_drop(index: LanceIndex, store: str) -> None:
    index.add_file(
        store, SPACE, "file-cats", "cats.txt", {"kind": "pets"}, chunks("the cat sat on the mat", "cats purr")
    )
    index.add_file(store, SPACE, "file-dogs", "dogs.md", {}, chunks("dogs bark at the mailman"))
    hits = search(index, store, "cat mat")
    assert (hits[0].file_id, hits[0].chunk_index, hits[0].filename) == ("file-cats", 0, "cats.txt")
    assert hits[0].text == "the cat sat on the mat"
    assert hits[0].attributes == {"kind": "pets"}
    assert hits[0].score == pytest.approx(1.0)  # first in both lists
    assert all(0 < h.score <= 1 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    # Redelivered, and then re-ingested shorter: the file's chunks are replaced, never duplicated.
    index.add_file(
        store, SPACE, "file-cats", "cats.txt", {"kind": "pets"}, chunks("the cat sat on the mat", "cats purr")
    )
    assert rows(index, store) == [("file-cats", 0), ("file-cats", 1), ("file-dogs", 0)]
    index.add_file(store, SPACE, "file-cats", "cats.txt", {}, chunks("a kitten"))
    assert rows(index, store) == [("file-cats", 0), ("file-dogs", 0)]
    assert next(h.text for h in search(index, store, "kitten")) == "a kitten"

    index.remove_file(store, "file-cats")
    assert rows(index, store) == [("file-dogs", 0)]
    assert {h.file_id for h in search(index, store, "kitten cat")} == {"file-dogs"}

    index.drop(store)
    assert rows(index, store) == []
    assert search(index, store, "dogs") == []


def test_another_instance_sees_each_commit_at_once(index: LanceIndex, store: str) -> None:
    other = LanceIndex(index._location)
    index.add_file(store, SPACE, "file-1", "one.txt", {}, chunks("first words"))
    assert [h.file_id for h in search(other, store, "first")] == ["file-1"]
    index.add_file(store, SPACE, "file-2", "two.txt", {}, chunks("second words"))
    assert search(other, store, "second")[0].file_id == "file-2"
    index.remove_file(store, "file-2")
    assert {h.file_id for h in search(other, store, "second words")} == {"file-1"}
    index.drop(store)
    assert search(other, store, "first") == []  # its handle named a dropped table: opened afresh


def test_max_results_and_score_threshold(index: LanceIndex, store: str) -> None:
    index.add_file(store, SPACE, "file-a", "a.txt", {}, chunks(*(f"apple number {i}" for i in range(30))))
    assert len(search(index, store, "apple", max_results=7)) == 7
    assert len(search(index, store, "apple", max_results=50)) == 30
    everything = search(index, store, "apple number 3", max_results=50)
    threshold = everything[5].score
    kept = search(index, store, "apple number 3", max_results=50, score_threshold=threshold)
    assert kept and all(h.score >= threshold for h in kept)
    assert len(kept) < len(everything)
    assert search(index, store, "apple", score_threshold=1.0) == [] or all(
        h.score == 1.0 for h in search(index, store, "apple", score_threshold=1.0)
    )


def test_vector_and_keyword_modes(index: LanceIndex, store: str) -> None:
    index.add_file(
        store, SPACE, "file-a", "a.txt", {}, chunks("zebra stripes", "lion mane", "zebra crossing road")
    )
    keyword = search(index, store, "zebra", mode="keyword")
    assert {h.text for h in keyword} == {"zebra stripes", "zebra crossing road"}  # BM25 needs the word
    assert keyword[0].score == pytest.approx(1.0)
    vector = search(index, store, "zebra", mode="vector")
    assert len(vector) == 3  # every chunk has a distance
    assert search(index, store, "!!!", mode="keyword") == []  # no word, no keyword query


def test_filters_on_attributes(index: LanceIndex, store: str) -> None:
    files: dict[str, dict[str, str | int | float | bool]] = {
        "file-en-2023": {"lang": "en", "year": 2023, "draft": False},
        "file-en-2024": {"lang": "en", "year": 2024, "draft": True},
        "file-fr-2024": {"lang": "fr", "year": 2024, "draft": False},
        "file-none": {},
    }
    for file_id, attributes in files.items():
        index.add_file(store, SPACE, file_id, f"{file_id}.txt", attributes, chunks(f"report {file_id}"))

    def found(filters: dict[str, Any]) -> set[str]:
        return {h.file_id for h in search(index, store, "report", filters=filters, max_results=50)}

    assert found({"type": "eq", "key": "lang", "value": "en"}) == {"file-en-2023", "file-en-2024"}
    assert found({"type": "ne", "key": "lang", "value": "en"}) == {"file-fr-2024", "file-none"}
    assert found({"type": "gte", "key": "year", "value": 2024}) == {"file-en-2024", "file-fr-2024"}
    assert found({"type": "lt", "key": "year", "value": 2024}) == {"file-en-2023"}
    assert found({"type": "in", "key": "lang", "value": ["fr", "de"]}) == {"file-fr-2024"}
    assert found({"type": "eq", "key": "draft", "value": True}) == {"file-en-2024"}
    assert found({"type": "eq", "key": "year", "value": "2024"}) == set()  # a string is not a number
    both = {
        "type": "and",
        "filters": [
            {"type": "eq", "key": "lang", "value": "en"},
            {
                "type": "or",
                "filters": [
                    {"type": "gt", "key": "year", "value": 2023},
                    {"type": "eq", "key": "draft", "value": True},
                ],
            },
        ],
    }
    assert found(both) == {"file-en-2024"}
    assert found({"type": "eq", "key": "lang", "value": "de"}) == set()

    index.set_attributes(store, "file-none", {"lang": "de"})
    assert found({"type": "eq", "key": "lang", "value": "de"}) == {"file-none"}
    assert search(index, store, "report file-none", filters={"type": "eq", "key": "lang", "value": "de"})[
        0
    ].attributes == {"lang": "de"}


def test_the_filter_evaluator_treats_missing_keys_and_booleans_strictly() -> None:
    assert matches({"type": "nin", "key": "k", "value": ["a"]}, {})
    assert not matches({"type": "eq", "key": "k", "value": 1}, {"k": True})
    assert not matches({"type": "gt", "key": "k", "value": 1}, {"k": "2"})
    assert matches({"type": "lte", "key": "k", "value": "b"}, {"k": "a"})
    assert matches({"type": "or", "filters": []}, {}) is False
    assert matches({"type": "and", "filters": []}, {}) is True


def test_a_store_keeps_its_vector_space(index: LanceIndex, store: str) -> None:
    index.add_file(store, SPACE, "file-a", "a.txt", {}, chunks("words"))
    with pytest.raises(VectorSpaceMismatch):
        index.add_file(store, VectorSpace("other-model", DIMENSIONS), "file-b", "b.txt", {}, chunks("more"))
    with pytest.raises(VectorSpaceMismatch):
        index.add_file(
            store, VectorSpace("scripted", 32), "file-b", "b.txt", {}, [IndexedChunk(0, "x", [0.5] * 32)]
        )
    with pytest.raises(VectorSpaceMismatch):
        index.add_file(store, SPACE, "file-b", "b.txt", {}, [IndexedChunk(0, "x", [0.5] * 32)])
    assert rows(index, store) == [("file-a", 0)]


def test_twenty_files_added_at_once_lose_nothing(location: IndexLocation, store: str) -> None:
    # Twenty writers of their own (as twenty instances would be), one new store, all at once.
    def add(number: int) -> None:
        writer = LanceIndex(location)
        texts = [f"file {number} part {part} unique{number}x{part}" for part in range(number % 4 + 1)]
        writer.add_file(store, SPACE, f"file-{number:02d}", f"{number}.txt", {"n": number}, chunks(*texts))

    run_concurrently([lambda n=n: add(n) for n in range(20)])
    index = LanceIndex(location)
    expected = sorted((f"file-{n:02d}", part) for n in range(20) for part in range(n % 4 + 1))
    assert rows(index, store) == expected
    for n in (0, 7, 19):
        assert search(index, store, f"unique{n}x0")[0].file_id == f"file-{n:02d}"


def test_maintenance_compacts_and_keeps_results(index: LanceIndex, store: str) -> None:
    for n in range(12):
        pair = chunks(f"topic{n} alpha", f"subject{n} beta")
        index.add_file(store, SPACE, f"file-{n}", f"{n}.txt", {}, pair)
    index.remove_file(store, "file-3")
    before = [(h.file_id, h.chunk_index) for h in search(index, store, "subject5 beta")]
    run_concurrently([lambda: index.maintain(store), lambda: LanceIndex(index._location).maintain(store)])
    table = LanceIndex(index._location)._open(store)
    assert table is not None
    assert table.stats()["fragment_stats"]["num_fragments"] == 1
    after = [(h.file_id, h.chunk_index) for h in search(index, store, "subject5 beta")]
    # The best stay; ties below them may reorder (BM25's statistics change once all is indexed).
    assert after[0] == before[0] == ("file-5", 1)
    assert sorted(after) == sorted(before)
    assert ("file-3", 0) not in rows(index, store)


def test_the_right_file_comes_first_among_many(index: LanceIndex, store: str) -> None:
    topics = [
        ("volcano", "magma erupts from the crater as lava flows down the slopes"),
        ("glacier", "ice sheets move slowly carving valleys over centuries"),
        ("bakery", "sourdough bread needs a starter flour water and salt"),
        ("orbit", "satellites circle the earth held by gravity at high speed"),
        ("tides", "the moon pulls the oceans causing high and low tides twice a day"),
    ]
    filler = "meeting notes budget agenda minutes schedule review quarterly plan " * 40
    strategy = chunking_strategy(
        {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}}
    )
    files: dict[str, str] = {}
    for number in range(40):
        body = filler + f" item {number}. "
        if number % 8 == 0:
            body += " " + topics[number // 8][1] + " " + filler
        files[f"file-{number:02d}"] = body
    for file_id, body in files.items():
        pieces = chunk(body, strategy)
        index.add_file(store, SPACE, file_id, f"{file_id}.txt", {}, chunks(*(p.text for p in pieces)))
    questions = {
        "what makes lava flow from a crater": "file-00",
        "how do glaciers carve valleys": "file-08",
        "what does sourdough bread need": "file-16",
        "what keeps satellites in orbit around the earth": "file-24",
        "why are there two tides a day": "file-32",
    }
    for question, answer in questions.items():
        assert search(index, store, question)[0].file_id == answer, question


def test_in_azure_the_index_signs_in_as_the_managed_identity() -> None:
    from assistants_core.storage.indexes import _service

    settings = Settings(api_keys=(b"k",), storage_account_url="https://acct123.table.core.windows.net/")
    service, options = _service(
        settings, {"IDENTITY_ENDPOINT": "http://localhost:8081/msi/token", "AZURE_CLIENT_ID": "client-1"}
    )
    assert service.url.rstrip("/") == "https://acct123.blob.core.windows.net"
    assert options == {
        "account_name": "acct123",
        "azure_msi_endpoint": "http://localhost:8081/msi/token",
        "azure_client_id": "client-1",
    }
    assert "account_key" not in options


def test_a_connection_string_gives_the_account_key_and_endpoint() -> None:
    from assistants_core.storage.indexes import _service

    cloud = "DefaultEndpointsProtocol=https;AccountName=acct9;AccountKey=a2V5;EndpointSuffix=core.windows.net"
    _, options = _service(Settings(api_keys=(b"k",), storage_connection_string=cloud))
    assert options == {
        "account_name": "acct9",
        "account_key": "a2V5",
        "azure_storage_endpoint": "https://acct9.blob.core.windows.net",
    }


def test_a_first_ingestion_appends_and_a_redelivery_still_replaces(index: LanceIndex, store: str) -> None:
    index.add_file(store, SPACE, "file-a", "a.txt", {}, chunks("one", "two", "three"), replace=False)
    index.add_file(store, SPACE, "file-b", "b.txt", {}, chunks("four"), replace=False)
    assert rows(index, store) == [("file-a", 0), ("file-a", 1), ("file-a", 2), ("file-b", 0)]
    index.add_file(store, SPACE, "file-a", "a.txt", {}, chunks("one", "two"))  # the redelivery
    assert rows(index, store) == [("file-a", 0), ("file-a", 1), ("file-b", 0)]
    assert search(index, store, "four")[0].file_id == "file-b"


def test_unreachable_storage_is_an_index_failure_in_bounded_time(location: IndexLocation) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/devstoreaccount1"  # nothing listens there
    index = LanceIndex(
        IndexLocation(location.uri, {**location.storage_options, "azure_storage_endpoint": nowhere})
    )
    with pytest.raises(IndexFailure):
        index.search("vs_" + secrets.token_hex(16), "q", embedding("q", DIMENSIONS))
    with pytest.raises(IndexFailure):
        index.create("vs_" + secrets.token_hex(16), SPACE)
