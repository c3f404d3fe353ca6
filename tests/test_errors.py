"""Error responses over raw HTTP: status, envelope, `param`, headers. Never a 5xx for bad input."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from assistants_core.http import MAX_BODY_BYTES
from tests.support import API_KEYS, DevHost, assert_error

AZURE_401 = {
    "error": {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API endpoint "
        "for your resource.",
    }
}
MISSING = "asst_000000000000000000000000"
THREAD = "thread_000000000000000000000000"
MESSAGE = "msg_000000000000000000000000"
ROUTES = [
    ("POST", "/assistants"),
    ("GET", "/assistants"),
    ("GET", f"/assistants/{MISSING}"),
    ("POST", f"/assistants/{MISSING}"),
    ("DELETE", f"/assistants/{MISSING}"),
    ("POST", "/threads"),
    ("GET", f"/threads/{THREAD}"),
    ("POST", f"/threads/{THREAD}"),
    ("DELETE", f"/threads/{THREAD}"),
    ("POST", f"/threads/{THREAD}/messages"),
    ("GET", f"/threads/{THREAD}/messages"),
    ("GET", f"/threads/{THREAD}/messages/{MESSAGE}"),
    ("POST", f"/threads/{THREAD}/messages/{MESSAGE}"),
    ("DELETE", f"/threads/{THREAD}/messages/{MESSAGE}"),
    ("GET", "/no/such/route"),
    ("PUT", "/assistants"),
]


# --- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"api-key": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": API_KEYS[0]},
        {"api-key": ""},
    ],
    ids=["none", "bad-api-key", "bad-bearer", "no-scheme", "empty"],
)
def test_every_route_needs_a_key(devhost: DevHost, method: str, path: str, headers: dict[str, str]) -> None:
    response = httpx.request(method, devhost.api_url + path, headers=headers, json={"model": "m"})
    assert response.status_code == 401
    assert response.json() == AZURE_401
    assert response.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(
    "headers",
    [
        {"api-key": API_KEYS[0]},
        {"api-key": API_KEYS[1]},
        {"Authorization": f"Bearer {API_KEYS[1]}"},
        {"api-key": API_KEYS[0], "Authorization": "Bearer not-a-key"},  # older SDKs send both
        {"api-key": "not-a-key", "Authorization": f"bearer {API_KEYS[0]}"},
    ],
)
def test_either_header_with_any_configured_key_is_accepted(devhost: DevHost, headers: dict[str, str]) -> None:
    assert httpx.get(devhost.api_url + "/assistants", headers=headers).status_code == 200


# --- api-version -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version",
    [
        "2024-05-01-preview",
        "2024-07-01-preview",
        "2024-08-01-preview",
        "2024-09-01-preview",
        "2024-10-01-preview",
        "2025-01-01-preview",
        "2025-03-01-preview",
        "2025-04-01-preview",
    ],
)
def test_supported_api_versions(http: httpx.Client, version: str) -> None:
    assert http.get("/assistants", params={"api-version": version, "limit": 1}).status_code == 200


@pytest.mark.parametrize("version", ["2024-02-15-preview", "2023-05-15", "", "latest", "2025-04-01-PREVIEW"])
def test_unsupported_api_versions(http: httpx.Client, version: str) -> None:
    for method, path in ROUTES:
        response = http.request(method, path, params={"api-version": version})
        assert response.status_code == 400
        assert response.json() == {"error": {"code": "BadRequest", "message": "API version not supported"}}


# --- validation --------------------------------------------------------------------------------

FN = {"type": "function", "function": {"name": "f"}}
INVALID_CREATES: list[tuple[dict[str, Any], str, str]] = [
    ({}, "model", "missing_required_parameter"),
    ({"model": 5}, "model", "invalid_type"),
    ({"model": None}, "model", "invalid_type"),
    ({"model": "m", "name": "x" * 257}, "name", "string_above_max_length"),
    ({"model": "m", "name": 3}, "name", "invalid_type"),
    ({"model": "m", "description": "é" * 513}, "description", "string_above_max_length"),
    ({"model": "m", "instructions": "😀" * 256_001}, "instructions", "string_above_max_length"),
    ({"model": "m", "temperature": 2.01}, "temperature", "decimal_above_max_value"),
    ({"model": "m", "temperature": -0.1}, "temperature", "decimal_below_min_value"),
    ({"model": "m", "temperature": "1"}, "temperature", "invalid_type"),
    ({"model": "m", "temperature": True}, "temperature", "invalid_type"),
    ({"model": "m", "temperature": 10**30}, "temperature", "decimal_above_max_value"),
    ({"model": "m", "top_p": 1.5}, "top_p", "decimal_above_max_value"),
    ({"model": "m", "tools": [FN] * 129}, "tools", "array_above_max_length"),
    ({"model": "m", "tools": None}, "tools", "invalid_type"),
    ({"model": "m", "tools": {"type": "function"}}, "tools", "invalid_type"),
    (
        {"model": "m", "tools": [FN, FN, FN, {"type": "function", "function": {"name": "has space"}}]},
        "tools[3].function.name",
        "invalid_value",
    ),
    (
        {"model": "m", "tools": [{"type": "function", "function": {"name": "x" * 65}}]},
        "tools[0].function.name",
        "invalid_value",
    ),
    (
        {"model": "m", "tools": [{"type": "function", "function": {}}]},
        "tools[0].function.name",
        "missing_required_parameter",
    ),
    ({"model": "m", "tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
    (
        {"model": "m", "tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
        "tools[0].function.parameters",
        "invalid_type",
    ),
    (
        {"model": "m", "tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]},
        "tools[0].function.strict",
        "invalid_type",
    ),
    (
        {"model": "m", "tools": [{"type": "function", "function": {"name": "f", "extra": 1}}]},
        "tools[0].function.extra",
        "unknown_parameter",
    ),
    ({"model": "m", "tools": [FN, {"type": "browser"}]}, "tools[1].type", "invalid_value"),
    ({"model": "m", "tools": [{"name": "f"}]}, "tools[0].type", "invalid_value"),
    ({"model": "m", "tools": ["code_interpreter"]}, "tools[0]", "invalid_value"),
    (
        {"model": "m", "tools": [{"type": "file_search", "file_search": {"max_num_results": 51}}]},
        "tools[0].file_search.max_num_results",
        "decimal_above_max_value",
    ),
    (
        {"model": "m", "tools": [{"type": "file_search", "file_search": {"max_num_results": 0}}]},
        "tools[0].file_search.max_num_results",
        "decimal_below_min_value",
    ),
    (
        {
            "model": "m",
            "tools": [
                {
                    "type": "file_search",
                    "file_search": {"ranking_options": {"ranker": "best", "score_threshold": 0}},
                }
            ],
        },
        "tools[0].file_search.ranking_options.ranker",
        "invalid_value",
    ),
    (
        {"model": "m", "tools": [{"type": "file_search", "file_search": {"ranking_options": {}}}]},
        "tools[0].file_search.ranking_options.score_threshold",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "tool_resources": {"code_interpreter": {"file_ids": ["f"] * 21}}},
        "tool_resources.code_interpreter.file_ids",
        "array_above_max_length",
    ),
    (
        {"model": "m", "tool_resources": {"file_search": {"vector_store_ids": ["a", "b"]}}},
        "tool_resources.file_search.vector_store_ids",
        "array_above_max_length",
    ),
    (
        {"model": "m", "tool_resources": {"file_search": {"vector_stores": [{"file_ids": []}] * 2}}},
        "tool_resources.file_search.vector_stores",
        "array_above_max_length",
    ),
    ({"model": "m", "tool_resources": {"retrieval": {}}}, "tool_resources.retrieval", "unknown_parameter"),
    (
        {"model": "m", "metadata": {f"k{i}": "v" for i in range(17)}},
        "metadata",
        "object_above_max_properties",
    ),
    ({"model": "m", "metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length"),
    ({"model": "m", "metadata": {"k": "v" * 513}}, "metadata", "string_above_max_length"),
    ({"model": "m", "metadata": {"k": 1}}, "metadata.k", "invalid_type"),
    ({"model": "m", "metadata": ["k"]}, "metadata", "invalid_type"),
    ({"model": "m", "response_format": "none"}, "response_format", "invalid_value"),
    ({"model": "m", "response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
    (
        {"model": "m", "response_format": {"type": "json_schema"}},
        "response_format.json_schema",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "response_format.json_schema.name",
        "missing_required_parameter",
    ),
    ({"model": "m", "reasoning_effort": "extreme"}, "reasoning_effort", "invalid_value"),
    ({"model": "m", "file_ids": []}, "file_ids", "unknown_parameter"),
    ({"model": "m", "name": "ok", "colour": "blue"}, "colour", "unknown_parameter"),
]


@pytest.mark.parametrize(
    ("body", "param", "code"), INVALID_CREATES, ids=[c[1] + ":" + c[2] for c in INVALID_CREATES]
)
def test_invalid_create_names_the_param(
    http: httpx.Client, body: dict[str, Any], param: str, code: str
) -> None:
    before = http.get("/assistants", params={"limit": 1}).json()["first_id"]
    assert_error(http.post("/assistants", json=body), 400, param, code)
    assert http.get("/assistants", params={"limit": 1}).json()["first_id"] == before  # nothing stored


def test_limits_are_inclusive(http: httpx.Client) -> None:
    body = {
        "model": "m",
        "name": "😀" * 256,
        "description": "😀" * 512,
        "temperature": 2,
        "top_p": 0,
        "tools": [FN] * 128,
        "metadata": {f"{i:064d}": "😀" * 512 for i in range(16)},
        "tool_resources": {
            "code_interpreter": {"file_ids": ["f"] * 20},
            "file_search": {"vector_store_ids": [http.post("/vector_stores", json={}).json()["id"]]},
        },
    }
    created = http.post("/assistants", json=body)
    assert created.status_code == 200, created.text
    for field in ("name", "description", "temperature", "top_p", "tools", "metadata", "tool_resources"):
        assert created.json()[field] == body[field]


INVALID_MODIFIES: list[tuple[dict[str, Any], str, str]] = [
    ({"model": None}, "model", "invalid_type"),
    ({"tools": None}, "tools", "invalid_type"),
    ({"instructions": "x" * 256_001}, "instructions", "string_above_max_length"),
    ({"metadata": {"k": "v" * 513}}, "metadata", "string_above_max_length"),
    ({"id": "asst_other"}, "id", "unknown_parameter"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type", "invalid_value"),
]


@pytest.mark.parametrize(("body", "param", "code"), INVALID_MODIFIES, ids=[c[1] for c in INVALID_MODIFIES])
def test_invalid_modify_changes_nothing(
    http: httpx.Client, body: dict[str, Any], param: str, code: str
) -> None:
    created = http.post("/assistants", json={"model": "m", "name": "kept", "metadata": {"a": "b"}}).json()
    assert_error(http.post(f"/assistants/{created['id']}", json=body), 400, param, code)
    assert http.get(f"/assistants/{created['id']}").json() == created


# --- bodies ------------------------------------------------------------------------------------

BAD_BODIES: list[tuple[bytes, str | None, str]] = [
    (b"{", None, "invalid_json"),
    (b'{"model": "m",}', None, "invalid_json"),
    (b"[]", None, "invalid_type"),
    (b'"model"', None, "invalid_type"),
    (b"null", None, "invalid_type"),
    (b"42", None, "invalid_type"),
    (b'{"model": "m\xff"}', None, "invalid_encoding"),
    (b"\xfe\xff\x00{", None, "invalid_encoding"),
    (b'{"model": "m", "model": "n"}', "model", "duplicate_parameter"),
    (b'{"model": "m", "temperature": NaN}', None, "invalid_json"),
    (b'{"model": "m", "temperature": Infinity}', None, "invalid_json"),
    (b'{"model": "m", "temperature": 1e400}', None, "invalid_json"),
    (
        b'{"model": "m", "temperature": 123456789012345678901234567890}',
        "temperature",
        "decimal_above_max_value",
    ),
    (b'{"model": "m", "name": "\\ud800"}', "name", "invalid_value"),
    (b'{"model": "m", "metadata": {"\\udfff": "v"}}', "metadata", "invalid_value"),
    (b'{"model": "m", "tools": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None, "invalid_json"),
]


@pytest.mark.parametrize(
    ("body", "param", "code"), BAD_BODIES, ids=[c[2] + str(i) for i, c in enumerate(BAD_BODIES)]
)
def test_bad_bodies_are_clean_400s(http: httpx.Client, body: bytes, param: str | None, code: str) -> None:
    response = http.post("/assistants", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, param, code)


def test_deep_but_parseable_nesting_is_refused(http: httpx.Client) -> None:
    parameters: dict[str, Any] = {}
    for _ in range(70):
        parameters = {"type": "object", "properties": {"x": parameters}}
    body = {
        "model": "m",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}],
    }
    response = http.post("/assistants", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith("tools[0].function.parameters.properties.x")


def test_body_over_the_limit_is_413(http: httpx.Client) -> None:
    body = json.dumps({"model": "m", "instructions": "x" * MAX_BODY_BYTES}).encode()
    response = http.post("/assistants", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_the_largest_storable_object_fits_and_one_byte_more_is_a_400(http: httpx.Client) -> None:
    from assistants_core.storage import MAX_DOCUMENT_BYTES

    def tools(description_length: int) -> list[dict[str, Any]]:
        per_tool, extra = divmod(description_length, 128)
        return [
            {"type": "function", "function": {"name": f"f{i}", "description": "d" * (per_tool + (i < extra))}}
            for i in range(128)
        ]

    created = http.post("/assistants", json={"model": "m", "tools": tools(128)})
    document_size = len(created.content)  # the stored document is exactly the response body
    room = MAX_DOCUMENT_BYTES - document_size
    largest = http.post(f"/assistants/{created.json()['id']}", json={"tools": tools(128 + room)})
    assert largest.status_code == 200, largest.text
    assert len(largest.content) == MAX_DOCUMENT_BYTES
    assert http.get(f"/assistants/{created.json()['id']}").json() == largest.json()

    error = assert_error(
        http.post(f"/assistants/{created.json()['id']}", json={"tools": tools(128 + room + 1)}),
        400,
        "tools",
        "object_too_large",
    )
    assert f"{MAX_DOCUMENT_BYTES:,}" in error["message"]
    assert_error(http.post("/assistants", json={"model": "m", "tools": tools(128 + room + 1)}), 400, "tools")
    assert http.get(f"/assistants/{created.json()['id']}").json() == largest.json()


# --- not found, methods, routes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "assistant_id",
    [
        MISSING,
        "nope",
        "asst_" + "a" * 23,
        "asst_" + "a" * 25,
        "thread_" + "a" * 24,
        "x' or PartitionKey ne 'z",
        "é" * 30,
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_or_malformed_ids_are_404(http: httpx.Client, method: str, assistant_id: str) -> None:
    response = http.request(method, f"/assistants/{assistant_id}", json={})
    error = assert_error(response, 404, None)
    assert error["message"] == f"No assistant found with id '{assistant_id}'."


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/assistants", "GET, POST"),
        ("PATCH", f"/assistants/{MISSING}", "DELETE, GET, POST"),
        ("DELETE", "/assistants", "GET, POST"),
    ],
)
def test_wrong_method_is_405(http: httpx.Client, method: str, path: str, allowed: str) -> None:
    response = http.request(method, path)
    assert_error(response, 405, None, "method_not_allowed")
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize("path", ["/assistant", "/assistants/a/b", "/", "/threads/x/files"])
def test_unknown_route_is_404_json(http: httpx.Client, path: str) -> None:
    error = assert_error(http.get(path), 404, None)
    assert error["message"].startswith("Invalid URL (GET /openai")


# --- list parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "9" * 40}, "limit"),
        ({"order": "up"}, "order"),
        ({"order": "ASC"}, "order"),
        ({"after": "nope"}, "after"),
        ({"before": "asst_short"}, "before"),
        ({"after": "x' or RowKey gt '"}, "after"),
        ({"before": "thread_" + "a" * 24}, "before"),
    ],
)
def test_bad_list_parameters_are_400(http: httpx.Client, params: dict[str, str], param: str) -> None:
    assert_error(http.get("/assistants", params=params), 400, param)


@pytest.mark.parametrize("limit", ["1", "100"])
def test_limit_bounds_are_inclusive(http: httpx.Client, limit: str) -> None:
    assert http.get("/assistants", params={"limit": limit}).status_code == 200
