"""Thread and message errors over raw HTTP: status, envelope, `param`; nothing half-written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import assert_error

OK = {"role": "user", "content": "hi"}
INVALID_MESSAGES: list[tuple[Any, str, str]] = [
    ({"content": "hi"}, "role", "missing_required_parameter"),
    ({"role": "system", "content": "hi"}, "role", "invalid_value"),
    ({"role": "user"}, "content", "missing_required_parameter"),
    ({"role": "user", "content": ""}, "content", "string_below_min_length"),
    ({"role": "user", "content": "x" * 256_001}, "content", "string_above_max_length"),
    ({"role": "user", "content": []}, "content", "array_below_min_length"),
    ({"role": "user", "content": 5}, "content", "invalid_type"),
    ({"role": "user", "content": None}, "content", "invalid_type"),
    ({"role": "user", "content": {"type": "text", "text": "hi"}}, "content", "invalid_type"),
    ({"role": "user", "content": [{"type": "text"}]}, "content[0].text", "missing_required_parameter"),
    (
        {"role": "user", "content": [{"type": "text", "text": ""}]},
        "content[0].text",
        "string_below_min_length",
    ),
    (
        {"role": "user", "content": [{"type": "text", "text": "😀" * 256_001}]},
        "content[0].text",
        "string_above_max_length",
    ),
    (
        {"role": "user", "content": [{"type": "text", "text": {"value": "hi"}}]},
        "content[0].text",
        "invalid_type",
    ),
    (
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "audio"}]},
        "content[1].type",
        "invalid_value",
    ),
    ({"role": "user", "content": ["hi"]}, "content[0]", "invalid_value"),
    (
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]},
        "content[0].image_url.url",
        "invalid_value",
    ),
    (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x", "detail": "max"}}],
        },
        "content[0].image_url.detail",
        "invalid_value",
    ),
    (
        {"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
        "content[0].image_url.url",
        "missing_required_parameter",
    ),
    (
        {"role": "user", "content": [{"type": "image_file", "image_file": {"detail": "low"}}]},
        "content[0].image_file.file_id",
        "missing_required_parameter",
    ),
    (
        {"role": "user", "content": [{"type": "image_file", "image_file": {"file_id": "f", "x": 1}}]},
        "content[0].image_file.x",
        "unknown_parameter",
    ),
    ({**OK, "attachments": [{"file_id": "f"}]}, "attachments[0].tools", "missing_required_parameter"),
    ({**OK, "attachments": [{"tools": []}]}, "attachments[0].file_id", "missing_required_parameter"),
    (
        {**OK, "attachments": [{"file_id": "f", "tools": [{"type": "function"}]}]},
        "attachments[0].tools[0].type",
        "invalid_value",
    ),
    (
        {**OK, "attachments": [{"file_id": "f", "tools": [{"type": "file_search", "file_search": {}}]}]},
        "attachments[0].tools[0].file_search",
        "unknown_parameter",
    ),
    ({**OK, "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
    ({**OK, "metadata": {"k": None}}, "metadata.k", "invalid_type"),
    ({**OK, "file_ids": ["f"]}, "file_ids", "unknown_parameter"),
    ({**OK, "run_id": "run_x"}, "run_id", "unknown_parameter"),
]
IDS = [f"{param}:{code}" for _, param, code in INVALID_MESSAGES]


@pytest.fixture(scope="module")
def thread_id(devhost: Any) -> str:
    from tests.support import API_KEYS

    response = httpx.post(devhost.api_url + "/threads", headers={"api-key": API_KEYS[0]}, json={})
    return str(response.json()["id"])


def messages_of(http: httpx.Client, thread_id: str) -> list[str]:
    return [m["id"] for m in http.get(f"/threads/{thread_id}/messages", params={"limit": 100}).json()["data"]]


@pytest.mark.parametrize(("body", "param", "code"), INVALID_MESSAGES, ids=IDS)
def test_invalid_message_create(http: httpx.Client, thread_id: str, body: Any, param: str, code: str) -> None:
    before = messages_of(http, thread_id)
    assert_error(http.post(f"/threads/{thread_id}/messages", json=body), 400, param, code)
    assert messages_of(http, thread_id) == before


@pytest.mark.parametrize(("body", "param", "code"), INVALID_MESSAGES, ids=IDS)
def test_invalid_initial_message_names_its_place(
    http: httpx.Client, body: Any, param: str, code: str
) -> None:
    response = http.post("/threads", json={"messages": [OK, OK, OK, body]})
    assert_error(response, 400, f"messages[3].{param}", code)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": None}, "messages", "invalid_type"),
        ({"messages": OK}, "messages", "invalid_type"),
        ({"messages": ["hi"]}, "messages[0]", "invalid_type"),
        ({"metadata": {"k": "v" * 513}}, "metadata", "string_above_max_length"),
        (
            {"tool_resources": {"code_interpreter": {"file_ids": ["f"] * 21}}},
            "tool_resources.code_interpreter.file_ids",
            "array_above_max_length",
        ),
        (
            {"tool_resources": {"file_search": {"vector_store_ids": ["a", "b"]}}},
            "tool_resources.file_search.vector_store_ids",
            "array_above_max_length",
        ),
        (
            {"tool_resources": {"file_search": {"vector_stores": [{"file_ids": []}] * 2}}},
            "tool_resources.file_search.vector_stores",
            "array_above_max_length",
        ),
        ({"assistant_id": "asst_x"}, "assistant_id", "unknown_parameter"),
    ],
)
def test_invalid_thread_create(http: httpx.Client, body: Any, param: str, code: str) -> None:
    assert_error(http.post("/threads", json=body), 400, param, code)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": [OK]}, "messages", "unknown_parameter"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length"),
        (
            {"tool_resources": {"code_interpreter": {"file_ids": "f"}}},
            "tool_resources.code_interpreter.file_ids",
            "invalid_type",
        ),
    ],
)
def test_invalid_thread_modify_changes_nothing(http: httpx.Client, body: Any, param: str, code: str) -> None:
    thread = http.post("/threads", json={"metadata": {"keep": "me"}}).json()
    assert_error(http.post(f"/threads/{thread['id']}", json=body), 400, param, code)
    assert http.get(f"/threads/{thread['id']}").json() == thread


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"content": "new"}, "content", "unknown_parameter"),
        ({"role": "assistant"}, "role", "unknown_parameter"),
        ({"metadata": ["k"]}, "metadata", "invalid_type"),
        ({"metadata": {"k": "v" * 513}}, "metadata", "string_above_max_length"),
    ],
)
def test_invalid_message_modify_changes_nothing(
    http: httpx.Client, thread_id: str, body: Any, param: str, code: str
) -> None:
    message = http.post(f"/threads/{thread_id}/messages", json={**OK, "metadata": {"keep": "me"}}).json()
    assert_error(http.post(f"/threads/{thread_id}/messages/{message['id']}", json=body), 400, param, code)
    assert http.get(f"/threads/{thread_id}/messages/{message['id']}").json() == message


BAD_THREAD_IDS = [
    "thread_000000000000000000000000",
    "nope",
    "thread_" + "a" * 23,
    "asst_" + "a" * 24,
    "thread_aaaaaaaaaaaaaaaaaaaaaaa'",
    "x' or PartitionKey ne 'z",
    "é" * 31,
]


@pytest.mark.parametrize("bad", BAD_THREAD_IDS)
@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("POST", ""),
        ("DELETE", ""),
        ("GET", "/messages"),
        ("POST", "/messages"),
        ("GET", "/messages/msg_000000000000000000000000"),
        ("POST", "/messages/msg_000000000000000000000000"),
        ("DELETE", "/messages/msg_000000000000000000000000"),
    ],
)
def test_unknown_threads_are_404(http: httpx.Client, bad: str, method: str, suffix: str) -> None:
    response = http.request(method, f"/threads/{bad}{suffix}", json=OK if suffix == "/messages" else {})
    assert assert_error(response, 404, None)["message"] == f"No thread found with id '{bad}'."


@pytest.mark.parametrize(
    "bad",
    [
        "msg_000000000000000000000000",
        "nope",
        "msg_" + "a" * 25,
        "thread_" + "a" * 24,
        "msg_aaaaaaaaaaaaaaaaaaaaaaa'",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_messages_are_404(http: httpx.Client, thread_id: str, bad: str, method: str) -> None:
    response = http.request(method, f"/threads/{thread_id}/messages/{bad}", json={})
    assert assert_error(response, 404, None)["message"] == f"No message found with id '{bad}'."


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"order": "new"}, "order"),
        ({"after": "asst_" + "a" * 24}, "after"),
        ({"before": "msg_short"}, "before"),
        ({"run_id": "nope"}, "run_id"),
        ({"run_id": "msg_" + "a" * 24}, "run_id"),
        ({"run_id": ""}, "run_id"),
    ],
)
def test_bad_message_list_parameters_are_400(
    http: httpx.Client, thread_id: str, params: dict[str, str], param: str
) -> None:
    assert_error(http.get(f"/threads/{thread_id}/messages", params=params), 400, param)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/threads", "GET, POST"),  # GET: Foundry's listing, refused with a 400 of its own
        ("PATCH", "/threads/thread_000000000000000000000000", "DELETE, GET, POST"),
        ("DELETE", "/threads/thread_000000000000000000000000/messages", "GET, POST"),
        (
            "PUT",
            "/threads/thread_000000000000000000000000/messages/msg_000000000000000000000000",
            "DELETE, GET, POST",
        ),
    ],
)
def test_wrong_method_is_405(http: httpx.Client, method: str, path: str, allowed: str) -> None:
    response = http.request(method, path)
    assert_error(response, 405, None, "method_not_allowed")
    assert response.headers["allow"] == allowed


def test_message_too_large_to_store_is_400(http: httpx.Client, thread_id: str) -> None:
    url = "data:image/png;base64," + "A" * 300_000
    parts = [{"type": "image_url", "image_url": {"url": url}} for _ in range(10)]
    assert_error(
        http.post(f"/threads/{thread_id}/messages", json={**OK, "content": parts}),
        400,
        "content",
        "object_too_large",
    )
    response = http.post("/threads", json={"messages": [OK, {**OK, "content": parts}]})
    assert_error(response, 400, "messages[1].content", "object_too_large")
