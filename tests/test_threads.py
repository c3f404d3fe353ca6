"""Threads and messages through the official SDK, with both clients."""

from __future__ import annotations

import re
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support import DevHost, error_of, run_concurrently, stored_rows, text_of

TEXT = {"type": "text", "text": {"value": "hello", "annotations": []}}


def message_fields(m: Any) -> dict[str, Any]:
    return dict(m.model_dump(exclude={"id", "created_at", "completed_at", "thread_id"}))


def test_create_thread_defaults(client: OpenAI, http: httpx.Client) -> None:
    thread = client.beta.threads.create()
    assert re.fullmatch(r"thread_[A-Za-z0-9]{24}", thread.id)
    assert http.get(f"/threads/{thread.id}").json() == {
        "id": thread.id,
        "object": "thread",
        "created_at": thread.created_at,
        "metadata": {},
        "tool_resources": {},
    }
    assert client.beta.threads.messages.list(thread.id).data == []


def test_create_thread_with_messages_metadata_and_tool_resources(client: OpenAI, http: httpx.Client) -> None:
    file_a = client.files.create(file=("a.txt", b"a"), purpose="assistants").id
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "What is 2 + 2?", "metadata": {"n": "1"}},
            {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
            {
                "role": "user",
                "content": "Thanks",
                "attachments": [
                    {"file_id": file_a, "tools": [{"type": "code_interpreter"}, {"type": "file_search"}]}
                ],
            },
        ],
        metadata={"topic": "math"},
        tool_resources={"code_interpreter": {"file_ids": [file_a]}},
    )
    assert thread.metadata == {"topic": "math"}
    assert thread.tool_resources is not None and thread.tool_resources.code_interpreter is not None
    assert thread.tool_resources.code_interpreter.file_ids == [file_a]
    assert client.beta.threads.retrieve(thread.id) == thread

    messages = http.get(f"/threads/{thread.id}/messages", params={"order": "asc"}).json()["data"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [m["content"][0]["text"]["value"] for m in messages] == ["What is 2 + 2?", "4", "Thanks"]
    first = messages[0]
    assert re.fullmatch(r"msg_[A-Za-z0-9]{24}", first["id"])
    assert first == {
        "id": first["id"],
        "object": "thread.message",
        "created_at": thread.created_at,
        "thread_id": thread.id,
        "status": "completed",
        "incomplete_details": None,
        "completed_at": thread.created_at,
        "incomplete_at": None,
        "role": "user",
        "content": [{"type": "text", "text": {"value": "What is 2 + 2?", "annotations": []}}],
        "assistant_id": None,
        "run_id": None,
        "attachments": [],
        "metadata": {"n": "1"},
    }
    assert messages[2]["attachments"] == [
        {"file_id": file_a, "tools": [{"type": "code_interpreter"}, {"type": "file_search"}]}
    ]


def test_message_crud(client: OpenAI, http: httpx.Client) -> None:
    thread = client.beta.threads.create()
    created = client.beta.threads.messages.create(
        thread.id, role="user", content="hello", metadata={"a": "1"}
    )
    assert (created.thread_id, created.status, created.role, created.metadata) == (
        thread.id,
        "completed",
        "user",
        {"a": "1"},
    )
    assert created.model_dump()["content"] == [TEXT]
    assert client.beta.threads.messages.retrieve(created.id, thread_id=thread.id) == created

    modified = client.beta.threads.messages.update(created.id, thread_id=thread.id, metadata={"b": "2"})
    assert modified.metadata == {"b": "2"}
    assert message_fields(modified) == {**message_fields(created), "metadata": {"b": "2"}}
    cleared = client.beta.threads.messages.update(created.id, thread_id=thread.id, metadata=None)
    assert cleared.metadata == {}
    assert http.post(f"/threads/{thread.id}/messages/{created.id}", json={}).json() == cleared.model_dump(
        mode="json"
    )

    deleted = client.beta.threads.messages.delete(created.id, thread_id=thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "thread.message.deleted", True)
    for call in (
        lambda: client.beta.threads.messages.retrieve(created.id, thread_id=thread.id),
        lambda: client.beta.threads.messages.update(created.id, thread_id=thread.id, metadata={}),
        lambda: client.beta.threads.messages.delete(created.id, thread_id=thread.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert error_of(caught.value)["message"] == f"No message found with id '{created.id}'."
    assert client.beta.threads.messages.list(thread.id).data == []


def test_thread_modify_and_delete(client: OpenAI) -> None:
    thread = client.beta.threads.create(
        metadata={"a": "1"},
        tool_resources={"file_search": {"vector_store_ids": [client.vector_stores.create().id]}},
    )
    changed = client.beta.threads.update(thread.id, metadata={"b": "2"})
    assert changed.metadata == {"b": "2"} and changed.tool_resources == thread.tool_resources
    cleared = client.beta.threads.update(thread.id, tool_resources=None)
    assert cleared.tool_resources is not None and cleared.tool_resources.model_dump(exclude_none=True) == {}
    assert cleared.metadata == {"b": "2"}
    assert client.beta.threads.update(thread.id) == cleared

    deleted = client.beta.threads.delete(thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (thread.id, "thread.deleted", True)
    for call in (
        lambda: client.beta.threads.retrieve(thread.id),
        lambda: client.beta.threads.update(thread.id, metadata={}),
        lambda: client.beta.threads.delete(thread.id),
        lambda: client.beta.threads.messages.list(thread.id),
        lambda: client.beta.threads.messages.create(thread.id, role="user", content="x"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert error_of(caught.value)["message"] == f"No thread found with id '{thread.id}'."


def test_content_parts_round_trip(client: OpenAI, http: httpx.Client) -> None:
    thread = client.beta.threads.create()
    first, second = (
        client.files.create(file=(n, b"\x89PNG"), purpose="vision").id for n in ("a.png", "b.png")
    )
    parts: list[Any] = [
        {"type": "text", "text": "Look at these"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        {"type": "image_file", "image_file": {"file_id": first, "detail": "high"}},
        {"type": "image_file", "image_file": {"file_id": second}},
    ]
    created = client.beta.threads.messages.create(thread.id, role="user", content=parts)
    expected = [
        {"type": "text", "text": {"value": "Look at these", "annotations": []}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "auto"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        {"type": "image_file", "image_file": {"file_id": first, "detail": "high"}},
        {"type": "image_file", "image_file": {"file_id": second, "detail": "auto"}},
    ]
    assert http.get(f"/threads/{thread.id}/messages/{created.id}").json()["content"] == expected
    assert client.beta.threads.messages.list(thread.id).data[0].model_dump()["content"] == expected


def test_256000_characters_of_content_round_trip(client: OpenAI) -> None:
    content = "🦀" * 255_992 + '\u0000\u2028 é"\\\n\t'  # outside the BMP, plus what JSON escapes
    assert len(content) == 256_000
    thread = client.beta.threads.create(messages=[{"role": "user", "content": content}])
    created = client.beta.threads.messages.create(
        thread.id, role="assistant", content=[{"type": "text", "text": content}]
    )
    listed = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [text_of(m) for m in listed] == [content, content]
    fetched = client.beta.threads.messages.retrieve(created.id, thread_id=thread.id)
    assert text_of(fetched) == content


def test_a_message_is_only_found_under_its_own_thread(client: OpenAI) -> None:
    one, other = client.beta.threads.create(), client.beta.threads.create()
    message = client.beta.threads.messages.create(one.id, role="user", content="mine")
    with pytest.raises(openai.NotFoundError) as caught:
        client.beta.threads.messages.retrieve(message.id, thread_id=other.id)
    assert error_of(caught.value)["message"] == f"No message found with id '{message.id}'."
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.update(message.id, thread_id=other.id, metadata={"x": "y"})
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.delete(message.id, thread_id=other.id)
    assert client.beta.threads.messages.retrieve(message.id, thread_id=one.id).metadata == {}


def test_run_id_filter_returns_that_runs_messages(client: OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "no run made me"}])
    listed = client.beta.threads.messages.list(thread.id, run_id="run_" + "a" * 24)
    assert listed.data == [] and listed.has_more is False
    assert len(client.beta.threads.messages.list(thread.id).data) == 1


def test_thread_with_more_than_a_transaction_of_messages_is_created_whole(client: OpenAI) -> None:
    count = 260  # each message is two rows: several transactions
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"m{i}"} for i in range(count)])
    texts = [text_of(m) for m in client.beta.threads.messages.list(thread.id, order="asc", limit=100)]
    assert texts == [f"m{i}" for i in range(count)]
    latest = client.beta.threads.messages.create(thread.id, role="user", content="after")
    assert client.beta.threads.messages.list(thread.id, limit=1).data[0].id == latest.id


def test_a_bad_message_anywhere_stores_nothing(http: httpx.Client, devhost: DevHost) -> None:
    table = devhost.table_prefix + "threads"
    before = stored_rows(devhost.storage, table)
    messages: list[Any] = [{"role": "user", "content": f"m{i}"} for i in range(180)]
    messages[170] = {"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "video"}]}
    response = http.post("/threads", json={"messages": messages, "metadata": {"a": "b"}})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[170].content[1].type"
    assert stored_rows(devhost.storage, table) == before


def test_deleting_a_thread_removes_it_and_every_message_at_once(client: OpenAI, devhost: DevHost) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"m{i}"} for i in range(150)])
    big = client.beta.threads.messages.create(thread.id, role="user", content="😀" * 256_000)  # several rows
    some = client.beta.threads.messages.list(thread.id, limit=5).data
    assert stored_rows(devhost.storage, devhost.table_prefix + "threads", thread.id) > 300
    assert client.beta.threads.delete(thread.id).deleted is True
    for message in [*some, big]:
        with pytest.raises(openai.NotFoundError) as caught:
            client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
        assert "No thread found" in error_of(caught.value)["message"]
    assert stored_rows(devhost.storage, devhost.table_prefix + "threads", thread.id) == 0


def test_concurrent_thread_modifies_and_message_creates_lose_nothing(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    actions: list[Any] = [
        lambda: client.beta.threads.update(thread.id, metadata={"k": "v"}),
        lambda: client.beta.threads.update(
            thread.id, tool_resources={"code_interpreter": {"file_ids": ["f"]}}
        ),
        *[
            lambda i=i: client.beta.threads.messages.create(thread.id, role="user", content=str(i))
            for i in range(10)
        ],
    ]
    run_concurrently(actions)
    final = client.beta.threads.retrieve(thread.id)
    assert final.metadata == {"k": "v"}
    assert final.tool_resources is not None and final.tool_resources.code_interpreter is not None
    assert len(client.beta.threads.messages.list(thread.id, limit=100).data) == 10
