"""Runs with the official Python SDK (both clients) against the dev host on Azurite, executed by
the queue trigger against the scripted model server, which records what the model was sent."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.model_server import (
    ModelServer,
    call,
    cut,
    error,
    hang,
    malformed,
    prompt_tokens,
    rate_limit,
    text,
    tool_calls,
)
from tests.support import API_KEYS, DevHost, run_concurrently, stored_rows, text_of

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def assistant(client: OpenAI, **fields: Any) -> str:
    return client.beta.assistants.create(model="gpt-test", instructions="You are terse.", **fields).id


def thread_with(client: OpenAI, *texts: str) -> str:
    messages: Any = [{"role": "user", "content": t} for t in texts]
    return client.beta.threads.create(messages=messages).id


def poll(client: OpenAI, thread_id: str, run_id: str, until: set[str], seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in until or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


# --- answers -----------------------------------------------------------------------------------


def test_create_and_poll_answers_and_stores_the_reply(client: OpenAI, model: ModelServer) -> None:
    model.script(text("Hello there, friend."))
    assistant_id = assistant(client)
    thread_id = thread_with(client, "Hi!")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)

    assert run.status == "completed", run.last_error
    assert run.assistant_id == assistant_id and run.thread_id == thread_id
    assert run.started_at and run.completed_at and run.expires_at is None
    assert run.instructions == "You are terse." and run.model == "gpt-test"
    sent = model.last_request()
    assert sent.model == "gpt-test" and sent.stream
    assert run.usage is not None  # the model's own count: 3 words, and its prompt
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (prompt_tokens(sent.messages), 3)
    assert run.usage.total_tokens == run.usage.prompt_tokens + 3
    assert sent.messages == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi!"},
    ]
    messages = client.beta.threads.messages.list(thread_id=thread_id).data
    reply = messages[0]
    assert [m.role for m in messages] == ["assistant", "user"]
    assert text_of(reply) == "Hello there, friend."
    assert reply.run_id == run.id and reply.assistant_id == assistant_id and reply.status == "completed"
    assert [m.id for m in client.beta.threads.messages.list(thread_id=thread_id, run_id=run.id).data] == [
        reply.id
    ]

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert len(steps) == 1
    step = steps[0]
    assert step.type == "message_creation" and step.status == "completed"
    assert step.step_details.message_creation.message_id == reply.id  # type: ignore[union-attr]
    assert step.usage is not None and step.usage.model_dump() == run.usage.model_dump()
    assert client.beta.threads.runs.steps.retrieve(step.id, thread_id=thread_id, run_id=run.id) == step


def test_create_thread_and_run_poll(client: OpenAI, model: ModelServer) -> None:
    model.script(text("Paris."))
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant(client),
        thread={"messages": [{"role": "user", "content": "Capital of France?"}], "metadata": {"k": "v"}},
        instructions="Answer in one word.",
    )
    assert run.status == "completed"
    assert client.beta.threads.retrieve(run.thread_id).metadata == {"k": "v"}
    assert text_of(client.beta.threads.messages.list(thread_id=run.thread_id).data[0]) == "Paris."
    assert model.last_request().messages[0] == {"role": "system", "content": "Answer in one word."}


def test_run_settings_reach_the_model(client: OpenAI, model: ModelServer) -> None:
    model.script(text("{}"))
    # code_interpreter is offered as the `python` function; file_search, with no store, is not
    built_in: Any = [{"type": "code_interpreter"}, {"type": "file_search"}]
    assistant_id = assistant(client, temperature=0.3, tools=[WEATHER, *built_in])
    thread_id = thread_with(client, "one", "two", "three")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant_id,
        model="other-model",
        additional_instructions="Be kind.",
        additional_messages=[{"role": "user", "content": "four"}],
        top_p=0.5,
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
        truncation_strategy={"type": "last_messages", "last_messages": 2},
        metadata={"purpose": "test"},
    )
    assert run.status == "completed"
    assert run.instructions == "You are terse.\n\nBe kind."
    assert run.temperature == 0.3 and run.top_p == 0.5 and run.metadata == {"purpose": "test"}
    assert [t.type for t in run.tools] == ["function", "code_interpreter", "file_search"]
    sent = model.last_request().json
    assert sent["model"] == "other-model"
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse.\n\nBe kind."},
        {"role": "user", "content": "three"},
        {"role": "user", "content": "four"},
    ]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "python"]
    assert sent["tools"][0] == WEATHER and sent["parallel_tool_calls"] is False
    assert sent["tool_choice"] == "auto" and sent["response_format"] == {"type": "json_object"}
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.5
    texts = [text_of(m) for m in client.beta.threads.messages.list(thread_id=thread_id, order="asc").data]
    assert texts == ["one", "two", "three", "four", "{}"]


def test_image_url_and_image_file_parts_are_sent(client: OpenAI, model: ModelServer) -> None:
    model.script(text("A cat."), text("A dot."))
    assistant_id = assistant(client)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
    thread_id = client.beta.threads.create(
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}]  # type: ignore[list-item]
    ).id
    assert client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id
    ).status == ("completed")
    assert model.last_request().messages[1]["content"] == [{"type": "text", "text": "What is it?"}, image]

    # The model cannot reach the service's blobs: the image goes inline, as a data: URL.
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    file_id = client.files.create(file=("dot.png", png, "application/octet-stream"), purpose="vision").id
    client.beta.threads.messages.create(
        thread_id,
        role="user",
        content=[{"type": "image_file", "image_file": {"file_id": file_id, "detail": "high"}}],
    )
    assert (
        client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id).status
        == "completed"
    )
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert model.last_request().messages[-1]["content"] == [
        {"type": "image_url", "image_url": {"url": url, "detail": "high"}}
    ]

    # A file that is not an image the model takes fails the run, saying why, before any model call.
    text_file = client.files.create(file=("notes.txt", b"hello"), purpose="vision").id
    client.beta.threads.messages.create(
        thread_id, role="user", content=[{"type": "image_file", "image_file": {"file_id": text_file}}]
    )
    before = len(model.requests)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
    assert run.status == "failed" and run.last_error is not None
    assert run.last_error.code == "invalid_prompt" and "not an image" in run.last_error.message
    # Nothing was dropped silently and sent without it (other tests' late calls aside).
    assert not [r for r in model.requests[before:] if "What is it?" in json.dumps(r.body)]
    assert run.usage is not None and run.usage.total_tokens == 0

    attached = thread_with(client)
    client.beta.threads.messages.create(
        attached,
        role="user",
        content="See the file.",
        attachments=[{"file_id": text_file, "tools": [{"type": "file_search"}]}],
    )
    # The file went to the thread's store (file_search searches it when the run has the tool).
    stores = client.beta.threads.retrieve(attached).tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    assert stores is not None and len(stores) == 1


# --- function calling ------------------------------------------------------------------------


def test_parallel_function_calls_then_outputs(client: OpenAI, model: ModelServer) -> None:
    model.script(
        tool_calls(call("get_weather", {"city": "Paris"}), call("get_time", {"city": "Paris"})),
        text("It is 18C and 14:05 in Paris."),
    )
    assistant_id = assistant(client, tools=[WEATHER, TIME])
    thread_id = thread_with(client, "Weather and time in Paris?")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)

    assert run.status == "requires_action" and run.usage is None and run.expires_at is not None
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"city": "Paris"}),
    ]
    assert len({c.id for c in calls}) == 2
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data[0]
    assert step.type == "tool_calls" and step.status == "in_progress" and step.usage is None
    assert [c.id for c in step.step_details.tool_calls] == [c.id for c in calls]  # type: ignore[union-attr]
    assert client.beta.threads.messages.list(thread_id=thread_id).data[0].role == "user"  # no placeholder

    with pytest.raises(openai.BadRequestError) as missing:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": calls[0].id, "output": "x"}]
        )
    assert missing.value.body["message"] == (  # type: ignore[index]
        f"Expected tool outputs for call_ids {[c.id for c in calls]}, got {[calls[0].id]}"
    )
    outputs: Any = [
        {"tool_call_id": calls[1].id, "output": '{"time": "14:05"}'},
        {"tool_call_id": calls[0].id, "output": '{"temp_c": 18}'},
    ]
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread_id, tool_outputs=outputs
    )
    assert done.status == "completed"
    assert done.usage is not None and done.usage.total_tokens > 0

    sent = model.last_request().messages
    assert sent[-3] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": calls[0].id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": calls[1].id,
                "type": "function",
                "function": {"name": "get_time", "arguments": '{"city": "Paris"}'},
            },
        ],
    }
    assert sent[-2:] == [
        {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 18}'},
        {"role": "tool", "tool_call_id": calls[1].id, "content": '{"time": "14:05"}'},
    ]
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    assert [(s.type, s.status) for s in steps] == [
        ("tool_calls", "completed"),
        ("message_creation", "completed"),
    ]
    tool_step = steps[0].step_details
    assert [c.function.output for c in tool_step.tool_calls] == ['{"temp_c": 18}', '{"time": "14:05"}']  # type: ignore[union-attr]
    assert steps[0].usage is not None and steps[0].usage.total_tokens > 0
    assert done.usage.model_dump() == sum_usage(steps)
    with pytest.raises(openai.BadRequestError) as late:
        client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread_id, tool_outputs=outputs)
    assert late.value.body["message"] == 'Runs in status "completed" do not accept tool outputs.'  # type: ignore[index]


def sum_usage(steps: list[Any]) -> dict[str, int]:
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for step in steps:
        for key in total:
            total[key] += getattr(step.usage, key)
    return total


def test_a_forced_tool_choice_applies_to_the_first_call_only(client: OpenAI, model: ModelServer) -> None:
    model.script(tool_calls(call("get_weather", {"city": "Oslo"})), text("Cold."))
    thread_id = thread_with(client, "Oslo?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant(client, tools=[WEATHER, TIME]),
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert run.status == "requires_action"
    assert model.last_request().json["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }
    call_id = run.required_action.submit_tool_outputs.tool_calls[0].id  # type: ignore[union-attr]
    client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": call_id, "output": "-5C"}]
    )
    assert model.last_request().json["tool_choice"] == "auto"


# --- the lock, cancel, expiry ----------------------------------------------------------------


def test_an_active_run_locks_its_thread_until_it_ends(client: OpenAI, model: ModelServer) -> None:
    model.script(text("slow", delay_before=30))
    thread_id = thread_with(client, "Hi")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant(client))
    assert run.status == "queued"
    with pytest.raises(openai.BadRequestError) as message:
        client.beta.threads.messages.create(thread_id, role="user", content="more")
    assert message.value.body == {
        "message": f"Can't add messages to {thread_id} while a run {run.id} is active.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.BadRequestError) as second:
        client.beta.threads.runs.create(thread_id=thread_id, assistant_id=run.assistant_id)
    assert second.value.body["message"] == f"Thread {thread_id} already has an active run {run.id}."  # type: ignore[index]

    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert cancelling.status in ("cancelling", "cancelled")
    assert poll(client, thread_id, run.id, {"cancelled"}).status == "cancelled"
    client.beta.threads.messages.create(thread_id, role="user", content="more")  # unlocked


def test_of_twenty_concurrent_creates_on_one_thread_exactly_one_is_accepted(
    client: OpenAI, model: ModelServer
) -> None:
    model.respond_with(text("done", delay_before=2))
    assistant_id = assistant(client)
    thread_id = thread_with(client, "Hi")
    outcomes: list[str] = []

    def create() -> None:
        try:
            outcomes.append(
                client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id).id
            )
        except openai.BadRequestError as exc:
            assert "already has an active run" in exc.body["message"]  # type: ignore[index]
            outcomes.append("refused")

    run_concurrently([create] * 20)
    accepted = [o for o in outcomes if o != "refused"]
    assert len(accepted) == 1 and len(outcomes) == 20
    assert [r.id for r in client.beta.threads.runs.list(thread_id=thread_id).data] == accepted
    assert poll(client, thread_id, accepted[0], {"completed"}).status == "completed"


def test_cancel_stops_a_run_while_the_model_answers(client: OpenAI, model: ModelServer) -> None:
    model.script(text(" ".join(["word"] * 200), chunk_delay=0.05))
    thread_id = thread_with(client, "Talk")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant(client))
    deadline = time.monotonic() + 20
    while not client.beta.threads.messages.list(thread_id=thread_id, run_id=run.id).data:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    asked = time.monotonic()
    assert client.beta.threads.runs.cancel(run.id, thread_id=thread_id).status == "cancelling"
    ended = poll(client, thread_id, run.id, {"cancelled"})
    assert ended.status == "cancelled" and ended.cancelled_at is not None
    assert time.monotonic() - asked < 3
    model.wait_for_aborted(1)  # the model's answer was not read to its end
    message = client.beta.threads.messages.list(thread_id=thread_id, run_id=run.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_cancelled"  # type: ignore[union-attr]
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data[0]
    assert step.status == "cancelled" and step.cancelled_at is not None
    with pytest.raises(openai.BadRequestError) as again:
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert again.value.body["message"] == "Cannot cancel run with status 'cancelled'."  # type: ignore[index]


def test_a_waiting_run_is_cancelled_at_once(client: OpenAI, model: ModelServer) -> None:
    model.script(tool_calls(call("get_weather", {"city": "Rome"})))
    thread_id = thread_with(client, "Rome?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant(client, tools=[WEATHER])
    )
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert cancelled.status == "cancelled" and cancelled.required_action is None
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data[0]
    assert step.status == "cancelled"


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replies", "code", "calls"),
    [
        (
            [rate_limit(retry_after=0.1), rate_limit(retry_after=0.1), rate_limit(retry_after=0.1)],
            "rate_limit_exceeded",
            3,
        ),
        ([rate_limit(retry_after=600)], "rate_limit_exceeded", 1),
        ([error(500), error(502), error(503)], "server_error", 3),
        ([cut("a b c d e f", after=2)], "server_error", 1),
        ([malformed("a b c", at=1)], "server_error", 1),
        ([error(404, "The model `gpt-test` does not exist.")], "invalid_prompt", 1),
        ([error(400, "This model's maximum context length is 10 tokens.")], "invalid_prompt", 1),
    ],
    ids=["429s", "429-long-wait", "5xx", "cut", "malformed", "404", "context"],
)
def test_model_failures_fail_the_run(
    client: OpenAI, model: ModelServer, replies: list[Any], code: str, calls: int
) -> None:
    model.script(*replies)
    thread_id = thread_with(client, "Hi")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant(client))
    assert run.status == "failed" and run.last_error is not None and run.last_error.code == code
    assert run.failed_at is not None and run.expires_at is None and run.usage is not None
    assert len(model.requests) == calls
    messages = client.beta.threads.messages.list(thread_id=thread_id, run_id=run.id).data
    assert all(m.status == "incomplete" for m in messages)  # never a partial reply marked complete
    if messages:
        assert messages[0].incomplete_details.reason == "run_failed"  # type: ignore[union-attr]
    client.beta.threads.messages.create(thread_id, role="user", content="again")  # unlocked


def test_a_rate_limit_that_clears_is_retried(client: OpenAI, model: ModelServer) -> None:
    model.script(rate_limit(retry_after=0.2), text("Fine."))
    thread_id = thread_with(client, "Hi")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant(client))
    assert run.status == "completed" and len(model.requests) == 2
    assert model.requests[1].received_at - model.requests[0].received_at >= 0.2


# --- budgets ---------------------------------------------------------------------------------


def test_the_completion_budget_ends_the_run_incomplete(client: OpenAI, model: ModelServer) -> None:
    model.script(text(["w "] * 300))
    thread_id = thread_with(client, "Long answer please")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant(client), max_completion_tokens=256
    )
    assert run.status == "incomplete"
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_completion_tokens"
    assert model.last_request().json["max_completion_tokens"] == 256
    assert run.usage is not None and run.usage.completion_tokens == 256
    message = client.beta.threads.messages.list(thread_id=thread_id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "max_tokens"  # type: ignore[union-attr]
    assert text_of(message) == "w " * 256


def test_the_prompt_budget_ends_the_run_incomplete(client: OpenAI, model: ModelServer) -> None:
    thread_id = thread_with(client, "x" * 4000)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant(client), max_prompt_tokens=256
    )
    assert run.status == "incomplete"
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_prompt_tokens"
    assert model.requests == []


def test_auto_truncation_keeps_the_newest_messages_that_fit(client: OpenAI, model: ModelServer) -> None:
    model.script(text("ok"))
    thread_id = thread_with(client, "old " * 300, "middle " * 100, "newest")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant(client), max_prompt_tokens=300
    )
    assert run.status == "completed"
    assert [m["content"] for m in model.last_request().messages[1:]] == ["middle " * 100, "newest"]


# --- reading and changing runs ---------------------------------------------------------------


def test_list_retrieve_modify_and_steps(client: OpenAI, model: ModelServer, http: httpx.Client) -> None:
    model.respond_with(text("ok"))
    assistant_id = assistant(client)
    thread_id = thread_with(client, "Hi")
    runs = []
    for _ in range(3):
        runs.append(client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id))
    listed = client.beta.threads.runs.list(thread_id=thread_id)
    assert [r.id for r in listed.data] == [r.id for r in reversed(runs)]
    page = client.beta.threads.runs.list(thread_id=thread_id, order="asc", limit=2)
    assert [r.id for r in page.data] == [runs[0].id, runs[1].id] and page.has_more
    after = client.beta.threads.runs.list(thread_id=thread_id, order="asc", after=runs[1].id)
    assert [r.id for r in after.data] == [runs[2].id]

    modified = client.beta.threads.runs.update(runs[0].id, thread_id=thread_id, metadata={"a": "b"})
    assert modified.metadata == {"a": "b"} and modified.status == "completed"
    assert client.beta.threads.runs.retrieve(runs[0].id, thread_id=thread_id).metadata == {"a": "b"}

    steps = http.get(
        f"/threads/{thread_id}/runs/{runs[0].id}/steps",
        params={"include[]": "step_details.tool_calls[*].file_search.results[*].content"},
    )
    assert steps.status_code == 200 and len(steps.json()["data"]) == 1
    bad = http.get(f"/threads/{thread_id}/runs/{runs[0].id}/steps", params={"include[]": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "include[]"

    for path in (
        f"/threads/{thread_id}/runs/run_{'A' * 24}",
        f"/threads/thread_{'A' * 24}/runs/{runs[0].id}",
    ):
        missing = http.get(path)
        assert missing.status_code == 404, path
    assert http.get(f"/threads/{thread_id}/runs/{runs[0].id}/steps/step_{'A' * 24}").status_code == 404
    finished = http.get(f"/threads/{thread_id}/runs/{runs[0].id}")
    assert "openai-poll-after-ms" not in finished.headers


def test_polling_is_steered_by_the_poll_after_header(
    client: OpenAI, model: ModelServer, http: httpx.Client
) -> None:
    model.script(text("slow", delay_before=1))
    thread_id = thread_with(client, "Hi")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant(client))
    response = http.get(f"/threads/{thread_id}/runs/{run.id}")
    assert response.json()["status"] in ("queued", "in_progress")
    assert int(response.headers["openai-poll-after-ms"]) > 0
    assert poll(client, thread_id, run.id, {"completed"}).status == "completed"


def test_a_run_id_filter_with_no_such_run_lists_nothing(client: OpenAI) -> None:
    thread_id = thread_with(client, "Hi")
    assert client.beta.threads.messages.list(thread_id=thread_id, run_id="run_abc123").data == []


def test_run_request_errors(http: httpx.Client, model: ModelServer) -> None:
    assistant_id = http.post("/assistants", json={"model": "m"}).json()["id"]
    thread_id = http.post("/threads", json={}).json()["id"]
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({}, 400, "assistant_id"),
        ({"assistant_id": f"asst_{'A' * 24}"}, 404, None),
        ({"assistant_id": assistant_id, "stream": "yes"}, 400, "stream"),
        ({"assistant_id": assistant_id, "max_completion_tokens": 10}, 400, "max_completion_tokens"),
        ({"assistant_id": assistant_id, "temperature": 3}, 400, "temperature"),
        ({"assistant_id": assistant_id, "bogus": 1}, 400, "bogus"),
        (
            {"assistant_id": assistant_id, "tool_choice": {"type": "function", "function": {"name": "x"}}},
            400,
            "tool_choice.function.name",
        ),
        ({"assistant_id": assistant_id, "tool_choice": "sometimes"}, 400, "tool_choice"),
        (
            {
                "assistant_id": assistant_id,
                "truncation_strategy": {"type": "last_messages", "last_messages": 0},
            },
            400,
            "truncation_strategy.last_messages",
        ),
        (
            {
                "assistant_id": assistant_id,
                "tools": [{"type": "file_search"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            },
            400,
            "response_format",
        ),
    ]
    for body, status, param in cases:
        response = http.post(f"/threads/{thread_id}/runs", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["param"] == param, (body, response.text)
    assert http.get(f"/threads/{thread_id}/runs").json()["data"] == []
    assert model.requests == []


def test_without_a_model_backend_runs_are_refused_and_nothing_is_stored(no_model_host: DevHost) -> None:
    with httpx.Client(base_url=no_model_host.api_url, headers={"api-key": API_KEYS[0]}) as http:
        assistant_id = http.post("/assistants", json={"model": "m"}).json()["id"]
        thread_id = http.post("/threads", json={}).json()["id"]
        for path, body in (
            (f"/threads/{thread_id}/runs", {"assistant_id": assistant_id}),
            (
                "/threads/runs",
                {"assistant_id": assistant_id, "thread": {"messages": [{"role": "user", "content": "x"}]}},
            ),
        ):
            response = http.post(path, json=body)
            assert response.status_code == 400
            assert "ASSISTANTS_MODEL_BASE_URL" in response.json()["error"]["message"]
        assert http.get(f"/threads/{thread_id}/runs").json()["data"] == []
        http.post(
            f"/threads/{thread_id}/messages", json={"role": "user", "content": "not locked"}
        ).raise_for_status()


def test_a_run_outlives_its_deadline_as_expired(expiring_host: DevHost, model: ModelServer) -> None:
    client = OpenAI(base_url=expiring_host.api_url, api_key=API_KEYS[0], max_retries=0)
    model.script(tool_calls(call("get_weather", {"city": "Lima"})))
    thread_id = thread_with(client, "Lima?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant(client, tools=[WEATHER])
    )
    assert run.status == "requires_action"
    time.sleep(max(0.0, run.expires_at - time.time()) + 1.1)  # type: ignore[operator]
    expired = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    assert expired.status == "expired" and expired.expires_at == run.expires_at
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data[0]
    assert step.status == "expired" and step.expired_at is not None
    client.beta.threads.messages.create(thread_id, role="user", content="unlocked")
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": "call_x", "output": "x"}]
        )


def test_a_hung_model_does_not_hold_the_thread_past_the_deadline(
    expiring_host: DevHost, model: ModelServer
) -> None:
    client = OpenAI(base_url=expiring_host.api_url, api_key=API_KEYS[0], max_retries=0)
    model.script(hang())
    thread_id = thread_with(client, "Hi")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant(client))
    ended = poll(client, thread_id, run.id, {"expired"}, seconds=30)
    assert ended.status == "expired"
    client.beta.threads.messages.create(thread_id, role="user", content="unlocked")


def test_deleting_a_thread_removes_its_runs_and_steps(
    client: OpenAI, model: ModelServer, devhost: DevHost
) -> None:
    model.script(tool_calls(call("get_weather", {"city": "Bern"})), text("Mild."))
    thread_id = thread_with(client, "Bern?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant(client, tools=[WEATHER])
    )
    call_id = run.required_action.submit_tool_outputs.tool_calls[0].id  # type: ignore[union-attr]
    client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": call_id, "output": "12C"}]
    )
    assert stored_rows(devhost.storage, devhost.table_prefix + "threads", thread_id) > 0
    client.beta.threads.delete(thread_id)
    assert stored_rows(devhost.storage, devhost.table_prefix + "threads", thread_id) == 0
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
