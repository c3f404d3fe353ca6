"""The five assistant endpoints through the official SDK, with both clients."""

from __future__ import annotations

import re
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support import run_concurrently

FIELDS = {
    "id",
    "object",
    "created_at",
    "name",
    "description",
    "model",
    "instructions",
    "tools",
    "tool_resources",
    "metadata",
    "temperature",
    "top_p",
    "response_format",
}
TOOLS: list[Any] = [
    {"type": "code_interpreter"},
    {
        "type": "file_search",
        "file_search": {"max_num_results": 7, "ranking_options": {"ranker": "auto", "score_threshold": 0.5}},
    },
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True,
        },
    },
]


def test_create_returns_every_field_with_defaults(client: OpenAI, http: httpx.Client) -> None:
    created = client.beta.assistants.create(model="gpt-4o")
    assert re.fullmatch(r"asst_[A-Za-z0-9]{24}", created.id)
    raw = http.get(f"/assistants/{created.id}").json()
    assert set(raw) >= FIELDS
    assert raw == {
        "id": created.id,
        "object": "assistant",
        "created_at": created.created_at,
        "name": None,
        "description": None,
        "model": "gpt-4o",
        "instructions": None,
        "tools": [],
        "tool_resources": {},
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "response_format": "auto",
        "reasoning_effort": None,
    }


def test_create_with_everything_round_trips(client: OpenAI) -> None:
    created = client.beta.assistants.create(
        model="gpt-4o-mini",
        name="Weather bot",
        description="Answers weather questions",
        instructions="Be brief.",
        tools=TOOLS,
        tool_resources={
            "code_interpreter": {"file_ids": ["file-1", "file-2"]},
            "file_search": {"vector_store_ids": [client.vector_stores.create().id]},
        },
        metadata={"team": "forecasts", "tier": "gold"},
        temperature=0.2,
        top_p=0.9,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "forecast", "schema": {"type": "object"}, "strict": True},
        },
        reasoning_effort="low",
    )
    fetched = client.beta.assistants.retrieve(created.id)
    assert fetched == created
    assert fetched.model_dump(exclude_unset=True)["tools"] == TOOLS
    assert fetched.tool_resources is not None and fetched.tool_resources.code_interpreter is not None
    assert fetched.tool_resources.code_interpreter.file_ids == ["file-1", "file-2"]
    assert fetched.model_dump(exclude_unset=True, by_alias=True)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "forecast", "schema": {"type": "object"}, "strict": True},
    }
    assert (fetched.temperature, fetched.top_p, fetched.metadata) == (
        0.2,
        0.9,
        {"team": "forecasts", "tier": "gold"},
    )


@pytest.mark.parametrize("response_format", ["auto", {"type": "text"}, {"type": "json_object"}])
def test_response_formats(client: OpenAI, response_format: Any) -> None:
    created = client.beta.assistants.create(model="m", response_format=response_format)
    fetched = client.beta.assistants.retrieve(created.id)
    assert fetched.model_dump(exclude_unset=True)["response_format"] == response_format


def test_modify_changes_only_given_fields_and_null_clears(client: OpenAI) -> None:
    created = client.beta.assistants.create(
        model="gpt-4o",
        name="n",
        description="d",
        instructions="i",
        metadata={"k": "v"},
        temperature=0.5,
        top_p=0.5,
        tools=TOOLS[:1],
        response_format={"type": "json_object"},
    )
    renamed = client.beta.assistants.update(created.id, name="renamed")
    assert renamed.name == "renamed"
    assert renamed.model_dump(exclude={"name"}) == created.model_dump(exclude={"name"})

    cleared = client.beta.assistants.update(
        created.id,
        description=None,
        instructions=None,
        metadata=None,
        temperature=None,
        top_p=None,
        response_format=None,
        tool_resources=None,
    )
    assert (cleared.description, cleared.instructions, cleared.metadata) == (None, None, {})
    assert (cleared.temperature, cleared.top_p, cleared.response_format) == (1.0, 1.0, "auto")
    assert cleared.name == "renamed" and cleared.model == "gpt-4o"
    assert [t.type for t in cleared.tools] == ["code_interpreter"]

    switched = client.beta.assistants.update(created.id, model="gpt-4.1", tools=[])
    assert (switched.model, switched.tools) == ("gpt-4.1", [])
    assert client.beta.assistants.retrieve(created.id) == switched


def test_modify_with_nothing_returns_the_object_unchanged(client: OpenAI) -> None:
    created = client.beta.assistants.create(model="gpt-4o", name="same")
    assert client.beta.assistants.update(created.id) == created


def test_delete_then_every_call_is_404(client: OpenAI) -> None:
    created = client.beta.assistants.create(model="gpt-4o")
    deleted = client.beta.assistants.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "assistant.deleted", True)
    for call in (
        lambda: client.beta.assistants.retrieve(created.id),
        lambda: client.beta.assistants.update(created.id, name="x"),
        lambda: client.beta.assistants.delete(created.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body == {
            "message": f"No assistant found with id '{created.id}'.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    assert created.id not in [a.id for a in client.beta.assistants.list(limit=100)]


def test_256000_emoji_instructions_round_trip(client: OpenAI) -> None:
    instructions = "😀" * 255_998 + "\u0000é"  # outside the BMP, plus characters JSON escapes
    created = client.beta.assistants.create(model="gpt-4o", instructions=instructions)
    assert created.instructions == instructions
    assert client.beta.assistants.retrieve(created.id).instructions == instructions
    listed = [a for a in client.beta.assistants.list(limit=5) if a.id == created.id]
    assert listed and listed[0].instructions == instructions

    # Shrinking to one storage row and growing again leaves no stale parts behind.
    small = client.beta.assistants.update(created.id, instructions="short")
    assert client.beta.assistants.retrieve(created.id) == small
    grown = client.beta.assistants.update(created.id, instructions=instructions[::-1])
    assert (
        client.beta.assistants.retrieve(created.id).instructions == instructions[::-1] == grown.instructions
    )
    client.beta.assistants.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(created.id)


def test_concurrent_modifies_keep_every_field(client: OpenAI) -> None:
    created = client.beta.assistants.create(model="gpt-4o")
    changes: list[dict[str, Any]] = [
        {"name": "n"},
        {"description": "d"},
        {"instructions": "i"},
        {"temperature": 0.3},
        {"top_p": 0.4},
        {"metadata": {"k": "v"}},
        {"tools": TOOLS[:1]},
        {"model": "gpt-4.1"},
    ]
    run_concurrently([lambda c=c: client.beta.assistants.update(created.id, **c) for c in changes])
    final = client.beta.assistants.retrieve(created.id)
    assert (final.name, final.description, final.instructions) == ("n", "d", "i")
    assert (final.temperature, final.top_p, final.metadata, final.model) == (0.3, 0.4, {"k": "v"}, "gpt-4.1")
    assert [t.type for t in final.tools] == ["code_interpreter"]
