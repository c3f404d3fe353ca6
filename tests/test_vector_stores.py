"""Vector stores through the official Python SDK (both clients) and raw HTTP: files attached and
ingested in the background by the ingestion queue trigger, batches, search, expiry, errors."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from assistants_core.backend import ModelBackend
from assistants_core.files import Files
from assistants_core.ingest.chunk import chunk
from assistants_core.models.vector_store import StaticChunkingStrategy
from assistants_core.settings import Settings
from assistants_core.storage import Store
from assistants_core.vector_stores import StoreExpired, VectorStores
from tests.model_server import ModelServer, error, hang, rate_limit, text
from tests.support import (
    API_KEYS,
    Azurite,
    DevHost,
    assert_error,
    error_of,
    in_process_store,
    run_concurrently,
    running_devhost,
    sdk_clients,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
SDK_1_58 = ROOT / ".venv-openai-1.58" / "bin" / "python"
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


def completed_store(client: OpenAI, names: list[str], **create: Any) -> tuple[str, dict[str, str]]:
    """A store of those documents, once ingested; `create` adds to the create request."""
    file_ids = {name: upload(client, name, DOCUMENTS[name]) for name in names}
    store = client.vector_stores.create(file_ids=list(file_ids.values()), **create)
    wait_until(lambda: client.vector_stores.retrieve(store.id).status == "completed", 60, "ingestion")
    return store.id, file_ids


DAY = {"anchor": "last_active_at", "days": 1}


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
    wait_until(
        lambda: all(client.vector_stores.retrieve(s).status == "completed" for s in stores), 60, "ingestion"
    )
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
    bees = upload(client, "bees.txt", DOCUMENTS["bees.txt"])
    many = {f"k{i}": i for i in range(17)}
    response = http.post(f"/vector_stores/{store['id']}/files", json={"file_id": bees, "attributes": many})
    assert_error(response, 400, param="attributes")
    response = http.get(f"/vector_stores/{store['id']}/file_batches/vs_abc")
    assert_error(response, 400, param="batch_id")


# --- faults --------------------------------------------------------------------------------------


def test_cancel_a_batch(client: OpenAI, model: ModelServer) -> None:
    store = client.vector_stores.create()
    model.script_embeddings(*[text().replace(delay_before=4) for _ in range(3)])
    file_ids = [upload(client, f"slow{i}.txt", f"slow file {i}") for i in range(3)]
    batch = client.vector_stores.file_batches.create(store.id, file_ids=file_ids)
    assert batch.status == "in_progress" and batch.file_counts.in_progress == 3
    # Polls are steered while in progress (JS would otherwise wait 5 s a poll).
    raw = client.vector_stores.file_batches.with_raw_response.retrieve(batch.id, vector_store_id=store.id)
    assert raw.headers["openai-poll-after-ms"] == "500"
    raw_file = client.vector_stores.files.with_raw_response.retrieve(file_ids[0], vector_store_id=store.id)
    assert raw_file.headers["openai-poll-after-ms"] == "500"
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled"
    assert cancelled.file_counts.in_progress == 0 and cancelled.file_counts.cancelled == 3
    statuses = {
        f.status for f in client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    }
    assert statuses == {"cancelled"}
    time.sleep(6)  # the ingestions that were under way end, and leave nothing behind
    after = client.vector_stores.retrieve(store.id)
    assert after.file_counts.cancelled == 3 and after.status == "completed"
    assert (
        client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id).status == "cancelled"
    )


def test_embeddings_failing_are_retried_then_the_file_fails(client: OpenAI, model: ModelServer) -> None:
    store = client.vector_stores.create()
    model.script_embeddings(rate_limit(0.2), error(500))
    recovered = client.vector_stores.files.create_and_poll(
        upload(client, "bees.txt", DOCUMENTS["bees.txt"]), vector_store_id=store.id
    )
    assert recovered.status == "completed"
    assert len(model.embedding_bodies()) == 3
    model.script_embeddings(*[error(500) for _ in range(4)])
    failed = client.vector_stores.files.create_and_poll(
        upload(client, "tides.txt", DOCUMENTS["tides.txt"]), vector_store_id=store.id
    )
    assert failed.status == "failed"
    assert failed.last_error is not None and failed.last_error.code == "server_error"
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.completed, counts.failed, counts.in_progress, counts.total) == (1, 1, 0, 2)


def test_twenty_files_attached_at_once_from_twenty_clients(devhost: DevHost) -> None:
    client = sdk_clients(devhost)["openai"]
    store = client.vector_stores.create()
    file_ids = [upload(client, f"f{i}.txt", f"document {i} is about subject {i * 7}") for i in range(20)]

    def attach(file_id: str) -> Any:
        return lambda: sdk_clients(devhost)["openai"].vector_stores.files.create(
            vector_store_id=store.id, file_id=file_id
        )

    run_concurrently([attach(f) for f in file_ids])
    wait_until(
        lambda: client.vector_stores.retrieve(store.id).status == "completed", 120, "twenty ingestions"
    )
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.completed, counts.total, counts.in_progress, counts.failed) == (20, 20, 0, 0)
    assert sorted(f.id for f in client.vector_stores.files.list(store.id, limit=100)) == sorted(file_ids)


def ingest_queue(host: DevHost) -> Any:
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    return QueueClient.from_connection_string(
        host.storage, f"{host.table_prefix.lower()}-ingest", message_encode_policy=TextBase64EncodePolicy()
    )


def test_the_same_message_twice_gives_one_copy_of_each_chunk(devhost: DevHost, model: ModelServer) -> None:
    client = sdk_clients(devhost)["openai"]
    words = " ".join(f"word{i}" for i in range(400))
    strategy = StaticChunkingStrategy.model_validate(
        {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}
    )
    expected = len(chunk(words, strategy))
    store = client.vector_stores.create()
    file_id = upload(client, "words.txt", words)
    model.script_embeddings(text().replace(delay_before=3))
    client.vector_stores.files.create(
        file_id=file_id,
        vector_store_id=store.id,
        chunking_strategy=strategy.model_dump(),  # type: ignore[arg-type]
    )
    message = json.dumps({"vector_store_id": store.id, "file_id": file_id})
    ingest_queue(devhost).send_message(message)  # while the first delivery is under way
    file = client.vector_stores.files.poll(file_id, vector_store_id=store.id)
    assert file.status == "completed"
    ingest_queue(devhost).send_message(message)  # and once it is done
    time.sleep(3)
    hits = client.vector_stores.search(store.id, query=words[:200], max_num_results=50).data
    texts = [h.content[0].text for h in hits]
    assert len(texts) == expected and len(set(texts)) == expected
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 1


def test_expiry(devhost: DevHost) -> None:
    client = sdk_clients(devhost)["openai"]
    store_id, _ = completed_store(client, ["bees.txt"], expires_after=DAY)
    searched = client.vector_stores.search(store_id, query="bees")
    assert searched.data
    # As the store would be after two idle days: its times moved back, its expiry row with them.
    rows = in_process_store(devhost.storage, devhost.table_prefix).vector_stores()
    record = rows.get(store_id)
    assert record is not None
    stored = json.loads(record.document)
    now = int(time.time())
    stored["store"].update(last_active_at=now - 2 * 86400, expires_at=now - 86400)
    rows.submit(store_id, rows.store_replacement(store_id, record, json.dumps(stored).encode()))
    rows.expiries.add(now - 86400, store_id)
    expired = client.vector_stores.retrieve(store_id)
    assert expired.status == "expired"
    with pytest.raises(openai.BadRequestError) as raised:
        client.vector_stores.search(store_id, query="bees")
    assert error_of(raised.value)["message"] == f"Vector store '{store_id}' has expired."

    def emptied() -> bool:
        return client.vector_stores.retrieve(store_id).file_counts.total == 0

    wait_until(emptied, 60, "the sweeper to empty the expired store")
    assert client.vector_stores.retrieve(store_id).usage_bytes == 0
    assert list(client.vector_stores.files.list(store_id)) == []


def test_a_worker_killed_mid_file_ends_the_file(azurite: Azurite, model: ModelServer) -> None:
    prefix = "t" + secrets.token_hex(4)
    model.script_embeddings(hang())
    with running_devhost(
        azurite.connection_string,
        prefix,
        ASSISTANTS_MODEL_BASE_URL=model.base_url,
        ASSISTANTS_INGEST_LEASE_SECONDS="3",
    ) as host:
        client = sdk_clients(host)["openai"]
        store = client.vector_stores.create()
        file_id = upload(client, "bees.txt", DOCUMENTS["bees.txt"])
        client.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
        wait_until(lambda: model.embedding_bodies(), 30, "the ingestion to call for embeddings")
        os.kill(host.pid, signal.SIGKILL)
    model.reset()
    with running_devhost(
        azurite.connection_string,
        prefix,
        ASSISTANTS_MODEL_BASE_URL=model.base_url,
        ASSISTANTS_INGEST_LEASE_SECONDS="3",
    ) as host:
        client = sdk_clients(host)["openai"]

        def ended() -> bool:
            return (
                client.vector_stores.files.retrieve(file_id, vector_store_id=store.id).status != "in_progress"
            )

        wait_until(ended, 90, "the sweeper to end the file")
        file = client.vector_stores.files.retrieve(file_id, vector_store_id=store.id)
        assert file.status in ("completed", "failed")
        counts = client.vector_stores.retrieve(store.id).file_counts
        assert counts.in_progress == 0 and counts.total == 1


def test_openai_1_58_beta_vector_stores(devhost: DevHost) -> None:
    """`openai==1.58.1`, in a venv of its own (make setup builds it), on `client.beta.vector_stores`."""
    assert SDK_1_58.exists(), f"{SDK_1_58} is missing: `make setup` builds it"
    options = json.dumps({"base_url": devhost.api_url, "api_key": API_KEYS[1]})
    output = subprocess.run(
        [str(SDK_1_58), str(ROOT / "tests" / "vector_stores_driver.py"), options],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert output.returncode == 0, output.stderr[-3000:]
    seen = json.loads(output.stdout)
    assert seen == {
        "sdk": "1.58.1",
        "attached": "completed",
        "batch": ["completed", 1, 1],
        "polled": "completed",
        "listed": 3,
        "counts": [3, 3, "completed"],
        "name": "renamed",
        "detached": True,
        "deleted": True,
    }


def test_what_file_search_calls(devhost: DevHost, model: ModelServer) -> None:
    """The service's calls for runs, in this process beside the dev host (whose queue trigger
    ingests): create_for_thread, attach, wait_for_files, searchable, search_for_run."""
    settings = Settings(
        api_keys=(b"unused",),
        storage_connection_string=devhost.storage,
        table_prefix=devhost.table_prefix,
        ingest_queue=f"{devhost.table_prefix.lower()}-ingest",
    )
    store = Store(settings)
    stores = VectorStores(store, Files(store), ModelBackend(model.base_url, None))
    client = sdk_clients(devhost)["openai"]
    file_ids = {name: upload(client, name, text) for name, text in DOCUMENTS.items()}
    first = stores.create_for_thread([file_ids["bees.txt"], file_ids["tides.txt"]])
    second = stores.create_for_thread([file_ids["volcano.md"]], expires_after_days=None)
    missing = "vs_" + "a" * 24
    assert client.vector_stores.retrieve(first).expires_after.days == 7  # type: ignore[union-attr]
    assert client.vector_stores.retrieve(second).expires_after is None
    assert stores.wait_for_files(first, 60) and stores.wait_for_files(second, 60)
    assert list(stores.as_of_now([first, second, missing])) == [first, second]
    assert stores.attach(second, file_ids["orbit.py"]).status == "in_progress"
    assert stores.wait_for_files(second, 60)
    hits = stores.search_for_run([first, second], ["what pulls the ocean tides", "lava from a vent"], 3, 0.0)
    assert len(hits) == 3
    assert {hits[0].file_id, hits[1].file_id} == {file_ids["tides.txt"], file_ids["volcano.md"]}
    assert all(0 < h.score <= 1 and h.text and h.filename in DOCUMENTS for h in hits)
    assert hits == sorted(hits, key=lambda h: h.score, reverse=True)
    # The sweeper maintains the stores that had new chunks (compaction, indexes), then forgets them.
    rows = store.vector_stores()
    wait_until(lambda: not {first, second} & {s for s, _ in rows.maintenance()}, 60, "maintenance")
    assert stores.search_for_run([first], ["tides"], 1, 0.0)[0].file_id == file_ids["tides.txt"]
    # Expired: search_for_run names the store.
    record = rows.get(second)
    assert record is not None
    stored = json.loads(record.document)
    stored["store"].update(
        expires_after={"anchor": "last_active_at", "days": 1}, expires_at=int(time.time()) - 1
    )
    rows.submit(second, rows.store_replacement(second, record, json.dumps(stored).encode()))
    with pytest.raises(StoreExpired) as raised:
        stores.search_for_run([first, second], ["tides"], 3, 0.0)
    assert raised.value.store_id == second
    assert {s: store.status for s, store in stores.as_of_now([first, second]).items()} == {
        first: "completed",
        second: "expired",
    }


def test_search_answers_its_queries(http: httpx.Client, client: OpenAI) -> None:
    store_id, _ = completed_store(client, ["bees.txt", "tides.txt"])
    response = http.post(
        f"/vector_stores/{store_id}/search",
        json={"query": ["bees dance", "moon"], "max_num_results": 1, "rewrite_query": True},
    )
    page = response.json()
    assert page["object"] == "vector_store.search_results.page"
    assert page["search_query"] == ["bees dance", "moon"]
    assert (page["has_more"], page["next_page"]) == (False, None)
    assert len(page["data"]) == 1 and set(page["data"][0]) == {
        "file_id",
        "filename",
        "score",
        "attributes",
        "content",
    }
    high = http.post(
        f"/vector_stores/{store_id}/search",
        json={"query": "bees", "ranking_options": {"score_threshold": 1.0}},
    )
    assert all(hit["score"] >= 1.0 for hit in high.json()["data"])


def test_embeddings_timing_out_are_retried_then_the_file_fails(azurite: Azurite, model: ModelServer) -> None:
    """In this process, on tables and a queue of its own (no dev host takes the message): the
    ingestion run as the queue trigger runs it, each embeddings call given a second."""
    prefix = "t" + secrets.token_hex(4)
    settings = Settings(
        api_keys=(b"unused",),
        storage_connection_string=azurite.connection_string,
        table_prefix=prefix,
        ingest_queue=f"{prefix}-ingest",
    )
    store = Store(settings)
    files = Files(store)
    backend = ModelBackend(model.base_url, None, embeddings_timeout=1, retry_pause=0.05)
    stores = VectorStores(store, files, backend)
    body = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="bees.txt"\r\n\r\n'
        + DOCUMENTS["bees.txt"].encode()
        + b"\r\n--b--\r\n"
    )
    file = files.create("multipart/form-data; boundary=b", iter([body]))
    store_id = stores.create_for_thread([file.id])
    model.script_embeddings(*[hang() for _ in range(4)])
    message = json.dumps({"vector_store_id": store_id, "file_id": file.id}).encode()
    stores.ingest(message, 1)
    failed = stores.retrieve_file(store_id, file.id)
    assert failed.status == "failed"
    assert failed.last_error is not None and failed.last_error.code == "server_error"
    assert len(model.embedding_bodies()) == 4  # the first call and its three retries
    counts = stores.retrieve(store_id).file_counts
    assert (counts.failed, counts.in_progress, counts.total) == (1, 0, 1)
    stores.ingest(message, 2)  # delivered again: the file has ended, nothing changes
    assert stores.retrieve(store_id).file_counts == counts


def test_a_store_whose_expiry_was_removed_is_kept(devhost: DevHost) -> None:
    client = sdk_clients(devhost)["openai"]
    store_id, _ = completed_store(client, ["bees.txt"], expires_after=DAY)
    assert client.vector_stores.update(store_id, expires_after=None).expires_at is None
    rows = in_process_store(devhost.storage, devhost.table_prefix).vector_stores()
    rows.expiries.add(int(time.time()) - 10, store_id)  # as if its old expiry had come
    wait_until(
        lambda: store_id not in {s for s, _ in rows.expiries.due(int(time.time()))}, 60, "the sweeper's round"
    )
    kept = client.vector_stores.retrieve(store_id)
    assert (kept.status, kept.file_counts.completed) == ("completed", 1)
    assert client.vector_stores.search(store_id, query="bees").data


def test_a_batch_of_files_each_with_its_own_attributes_and_chunking(
    http: httpx.Client, client: OpenAI
) -> None:
    store = client.vector_stores.create()
    bees, tides = (upload(client, name, DOCUMENTS[name]) for name in ("bees.txt", "tides.txt"))
    small = {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 100}}
    response = http.post(
        f"/vector_stores/{store.id}/file_batches",
        json={
            "files": [
                {"file_id": bees, "attributes": {"kind": "insect", "legs": 6}, "chunking_strategy": small},
                {"file_id": tides},
            ],
            "attributes": {"ignored": True},
        },
    )
    assert response.status_code == 200, response.text
    batch = client.vector_stores.file_batches.poll(response.json()["id"], vector_store_id=store.id)
    assert batch.file_counts.completed == 2
    first = client.vector_stores.files.retrieve(bees, vector_store_id=store.id)
    second = client.vector_stores.files.retrieve(tides, vector_store_id=store.id)
    assert first.attributes == {"kind": "insect", "legs": 6}
    assert first.chunking_strategy.static.max_chunk_size_tokens == 200  # type: ignore[union-attr]
    assert second.attributes is None
    assert second.chunking_strategy.static.max_chunk_size_tokens == 800  # type: ignore[union-attr]
    found = client.vector_stores.search(
        store.id, query="animals", filters={"type": "gte", "key": "legs", "value": 4}
    )
    assert [r.file_id for r in found.data] == [bees]
    both = http.post(
        f"/vector_stores/{store.id}/file_batches", json={"file_ids": [bees], "files": [{"file_id": bees}]}
    )
    assert_error(both, 400, param="files")
