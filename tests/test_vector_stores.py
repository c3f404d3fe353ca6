"""Vector stores through the official Python SDK (both clients) and raw HTTP: files attached and
ingested in the background by the ingestion queue trigger, batches, search, expiry, errors."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support import DevHost, assert_error, error_of, sdk_clients, wait_until

DOCUMENTS = {
    "bees.txt": "Honey bees communicate the location of flowers with a waggle dance in the hive.",
    "volcano.md": "# Volcanoes\nMagma rises through the crust and erupts as lava from a volcano's vent.",
    "tides.txt": "Ocean tides are caused by the gravitational pull of the moon on the oceans of Earth.",
    "orbit.py": "# The orbital period of a satellite depends on the radius of its orbit.\nPERIOD = 90\n",
}


def upload(client: OpenAI, name: str, text: str) -> str:
    return client.files.create(file=(name, text.encode()), purpose="assistants").id


def test_create_and_poll_then_search_finds_the_right_file_first(client: OpenAI) -> None:
    file_ids = {name: upload(client, name, text) for name, text in DOCUMENTS.items()}
    store = client.vector_stores.create(name="science", file_ids=list(file_ids.values()))
    assert store.object == "vector_store"
    assert store.file_counts.total == 4
    batch = client.vector_stores.file_batches.create_and_poll(
        store.id, file_ids=[upload(client, "extra.txt", "Penguins live in the southern hemisphere.")]
    )
    assert batch.status == "completed"
    assert batch.file_counts.completed == 1 and batch.file_counts.in_progress == 0
    wait_until(lambda: client.vector_stores.retrieve(store.id).status == "completed", 60, "the store's files")
    store = client.vector_stores.retrieve(store.id)
    assert store.file_counts.completed == 5 and store.file_counts.total == 5
    assert store.usage_bytes > 0
    results = client.vector_stores.search(store.id, query="What causes the tides of the ocean?")
    assert results.data[0].file_id == file_ids["tides.txt"]
    assert results.data[0].filename == "tides.txt"
    assert 0 < results.data[0].score <= 1
    assert "moon" in results.data[0].content[0].text
    assert results.search_query == ["What causes the tides of the ocean?"]


def completed_store(client: OpenAI, names: list[str]) -> tuple[str, dict[str, str]]:
    file_ids = {name: upload(client, name, DOCUMENTS[name]) for name in names}
    store = client.vector_stores.create(file_ids=list(file_ids.values()))
    wait_until(lambda: client.vector_stores.retrieve(store.id).status == "completed", 60, "ingestion")
    return store.id, file_ids


def test_the_wire_objects_have_every_field(http: httpx.Client, client: OpenAI) -> None:
    file_id = upload(client, "bees.txt", DOCUMENTS["bees.txt"])
    store = http.post("/vector_stores", json={"name": "n", "metadata": {"k": "v"}}).json()
    assert set(store) == {
        "id", "object", "created_at", "name", "usage_bytes", "file_counts", "status",
        "expires_after", "expires_at", "last_active_at", "metadata",
    }  # fmt: skip
    assert store["file_counts"] == {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}
    assert (store["status"], store["expires_after"], store["expires_at"]) == ("completed", None, None)
    response = http.post(f"/vector_stores/{store['id']}/files", json={"file_id": file_id})
    file = response.json()
    assert set(file) == {
        "id", "object", "usage_bytes", "created_at", "vector_store_id", "status", "last_error",
        "chunking_strategy", "attributes",
    }  # fmt: skip
    assert file["object"] == "vector_store.file" and file["status"] == "in_progress"
    assert file["last_error"] is None
    assert file["chunking_strategy"] == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }
    polled = http.get(f"/vector_stores/{store['id']}/files/{file_id}")
    if polled.json()["status"] == "in_progress":
        assert polled.headers["openai-poll-after-ms"] == "500"


def test_upload_and_poll_create_and_poll_content_update_and_detach(client: OpenAI) -> None:
    store = client.vector_stores.create(name="one")
    file = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("volcano.md", DOCUMENTS["volcano.md"].encode()),
        attributes={"topic": "geo"},
    )
    assert file.status == "completed" and file.usage_bytes > 0
    assert file.attributes == {"topic": "geo"}
    other = client.vector_stores.files.create_and_poll(
        upload(client, "bees.txt", DOCUMENTS["bees.txt"]),
        vector_store_id=store.id,
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50},
        },
    )
    assert other.status == "completed"
    assert other.chunking_strategy.static.max_chunk_size_tokens == 100  # type: ignore[union-attr]
    content = list(client.vector_stores.files.content(file.id, vector_store_id=store.id))
    assert content[0].type == "text" and "Magma rises" in (content[0].text or "")
    updated = client.vector_stores.files.update(
        file.id, vector_store_id=store.id, attributes={"topic": "earth"}
    )
    assert updated.attributes == {"topic": "earth"}
    assert client.vector_stores.files.retrieve(file.id, vector_store_id=store.id).attributes == {
        "topic": "earth"
    }
    found = client.vector_stores.search(
        store.id, query="lava", filters={"type": "eq", "key": "topic", "value": "earth"}
    )
    assert [r.file_id for r in found.data] == [file.id]
    assert found.data[0].attributes == {"topic": "earth"}
    before = client.vector_stores.retrieve(store.id)
    deleted = client.vector_stores.files.delete(file.id, vector_store_id=store.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (file.id, True, "vector_store.file.deleted")
    after = client.vector_stores.retrieve(store.id)
    assert after.file_counts.total == 1 and after.file_counts.completed == 1
    assert after.usage_bytes == before.usage_bytes - file.usage_bytes
    assert all(r.file_id != file.id for r in client.vector_stores.search(store.id, query="lava magma").data)
    with pytest.raises(openai.NotFoundError) as raised:
        client.vector_stores.files.retrieve(file.id, vector_store_id=store.id)
    assert (
        error_of(raised.value)["message"]
        == f"No file found with id '{file.id}' in vector store '{store.id}'."
    )


def test_file_batches_upload_and_poll_and_batch_listing(client: OpenAI) -> None:
    store = client.vector_stores.create()
    old = upload(client, "tides.txt", DOCUMENTS["tides.txt"])
    batch = client.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[("bees.txt", DOCUMENTS["bees.txt"].encode()), ("orbit.py", DOCUMENTS["orbit.py"].encode())],
        file_ids=[old],
    )
    assert batch.object == "vector_store.files_batch" and batch.status == "completed"
    assert batch.file_counts.model_dump() == {
        "in_progress": 0, "completed": 3, "failed": 0, "cancelled": 0, "total": 3,
    }  # fmt: skip
    files = list(client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id))
    assert len(files) == 3 and old in {f.id for f in files}
    assert (
        client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id).status == "completed"
    )


def test_list_with_filters_and_pagination(client: OpenAI) -> None:
    store = client.vector_stores.create()
    good = [upload(client, f"n{i}.txt", f"note number {i} about gardens") for i in range(5)]
    bad = upload(client, "broken.pdf", "not a pdf at all")
    batch = client.vector_stores.file_batches.create_and_poll(store.id, file_ids=[*good, bad])
    assert batch.file_counts.completed == 5 and batch.file_counts.failed == 1
    failed = client.vector_stores.files.list(store.id, filter="failed")
    assert [f.id for f in failed] == [bad]
    assert failed.data[0].last_error is not None and failed.data[0].last_error.code == "invalid_file"
    page = client.vector_stores.files.list(store.id, filter="completed", limit=2, order="asc")
    assert [f.id for f in page.data] == good[:2] and page.has_more
    every = [
        f.id for f in client.vector_stores.files.list(store.id, filter="completed", limit=2, order="asc")
    ]
    assert every == good
    desc = [f.id for f in client.vector_stores.files.list(store.id, limit=4)]
    assert desc == [bad, *good[::-1]][:4] or desc == [bad, *good[::-1]]
    before = client.vector_stores.files.list(store.id, order="asc", before=good[3], limit=2)
    assert [f.id for f in before.data] == good[1:3]
    stores = [client.vector_stores.create(name=f"s{i}").id for i in range(3)]
    listed = client.vector_stores.list(limit=2)
    assert [s.id for s in listed.data] == stores[::-1][:2] and listed.has_more
    after = client.vector_stores.list(limit=2, after=stores[1])
    assert after.data[0].id == stores[0]


def test_modify_expiry_and_delete(client: OpenAI) -> None:
    store = client.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 2})
    assert store.expires_at == (store.last_active_at or 0) + 2 * 86400
    modified = client.vector_stores.update(store.id, name="renamed", metadata={"a": "b"}, expires_after=None)
    assert (modified.name, modified.metadata, modified.expires_at) == ("renamed", {"a": "b"}, None)
    deleted = client.vector_stores.delete(store.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (store.id, True, "vector_store.deleted")
    with pytest.raises(openai.NotFoundError) as raised:
        client.vector_stores.retrieve(store.id)
    assert error_of(raised.value)["message"] == f"No vector store found with id '{store.id}'."


def test_deleting_a_file_removes_it_from_every_store(client: OpenAI) -> None:
    file_id = upload(client, "bees.txt", DOCUMENTS["bees.txt"])
    stores = [client.vector_stores.create(file_ids=[file_id]).id for _ in range(2)]
    for store_id in stores:
        wait_until(lambda s=store_id: client.vector_stores.retrieve(s).status == "completed", 60, "ingestion")
    client.files.delete(file_id)
    for store_id in stores:
        store = client.vector_stores.retrieve(store_id)
        assert store.file_counts.total == 0 and store.usage_bytes == 0
        assert list(client.vector_stores.files.list(store_id)) == []


def test_errors_name_their_param(http: httpx.Client, client: OpenAI) -> None:
    png = upload(client, "picture.png", "not really a png")
    response = http.post("/vector_stores", json={"file_ids": [png]})
    assert_error(response, 400, param="file_ids", code="unsupported_file")
    assert response.json()["error"]["message"].startswith("Files with extensions [.png] are not supported")
    store = http.post("/vector_stores", json={}).json()
    response = http.post(f"/vector_stores/{store['id']}/files", json={"file_id": png})
    assert_error(response, 400, param="file_ids", code="unsupported_file")
    response = http.post(
        "/vector_stores",
        json={
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 60},
            }
        },
    )
    assert_error(response, 400, param="chunking_strategy.static.chunk_overlap_tokens")
    response = http.post(f"/vector_stores/{store['id']}/files", json={"file_id": "file-" + "a" * 24})
    assert_error(response, 404, param="id")
    response = http.get("/vector_stores/vs_" + "a" * 24)
    assert_error(response, 404, None)
    assert response.json()["error"]["message"] == f"No vector store found with id 'vs_{'a' * 24}'."
    response = http.get("/vector_stores/asst_abc")
    assert_error(response, 400, param="vector_store_id")
    response = http.get(f"/vector_stores/{store['id']}/files", params={"filter": "done"})
    assert_error(response, 400, param="filter")
    response = http.post(f"/vector_stores/{store['id']}/search", json={"query": "x", "max_num_results": 51})
    assert_error(response, 400, param="max_num_results")
    response = http.post(
        f"/vector_stores/{store['id']}/search", json={"query": "x", "filters": {"type": "like"}}
    )
    assert_error(response, 400, param="filters.type")
    response = http.post("/vector_stores", json={"expires_after": {"anchor": "created_at", "days": 1}})
    assert_error(response, 400, param="expires_after.anchor")
    response = http.post(f"/vector_stores/{store['id']}/file_batches", json={})
    assert_error(response, 400, param="file_ids")
    response = http.get(f"/vector_stores/{store['id']}/file_batches/vs_abc")
    assert_error(response, 400, param="batch_id")
