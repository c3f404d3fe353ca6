"""Streamed runs: the SSE bytes, and the official Python SDK's stream helpers and event handler
(both clients) reading them, against the dev host and the scripted model server."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
from openai import AssistantEventHandler, OpenAI
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import Message, Text, TextDelta
from openai.types.beta.threads.runs import RunStep, ToolCall

from tests.model_server import ModelServer, call, cut, hang, text, tool_calls
from tests.support import API_KEYS, DevHost, text_of, wait_until
from tests.test_runs import TIME, WEATHER, assistant, poll, thread_with

TEXT_EVENTS = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    *["thread.message.delta"] * 5,
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
    "done",
]


def sse(response: httpx.Response) -> list[tuple[str, Any]]:
    """The events of a whole SSE body, checking its framing: `event:`, one `data:`, a blank line;
    comments (heartbeats) allowed between events."""
    events: list[tuple[str, Any]] = []
    body = response.read().decode()
    assert body.endswith("event: done\ndata: [DONE]\n\n")
    for block in body.split("\n\n")[:-1]:
        lines = [line for line in block.split("\n") if not line.startswith(":")]
        if not lines:
            continue
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        name, data = lines[0][7:], lines[1][6:]
        events.append((name, data if data == "[DONE]" else json.loads(data)))
    return events


def assistant_and_thread(http: httpx.Client, content: str) -> tuple[str, str]:
    """An assistant on the scripted model and a thread of one user message, over raw HTTP."""
    assistant_id = http.post("/assistants", json={"model": "m"}).json()["id"]
    thread_id = http.post("/threads", json={"messages": [{"role": "user", "content": content}]}).json()["id"]
    return assistant_id, thread_id


def stream_raw(http: httpx.Client, path: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    with http.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        return sse(response)


def test_a_text_answer_streams_as_the_sdks_expect(http: httpx.Client, model: ModelServer) -> None:
    model.script(text("Hello! How can I help?", chunk_delay=0.05))
    assistant_id = http.post("/assistants", json={"model": "gpt-test"}).json()["id"]
    thread_id = http.post("/threads", json={"messages": [{"role": "user", "content": "Hi"}]}).json()["id"]
    events = stream_raw(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id})

    assert [name for name, _ in events] == TEXT_EVENTS
    data = dict(events)
    created = data["thread.message.created"]
    assert created["content"] == [] and created["status"] == "in_progress"
    assert data["thread.run.step.created"]["step_details"]["message_creation"]["message_id"] == created["id"]
    deltas = [d for name, d in events if name == "thread.message.delta"]
    assert all(d["id"] == created["id"] and d["object"] == "thread.message.delta" for d in deltas)
    parts = [d["delta"]["content"] for d in deltas]
    assert all(len(p) == 1 and p[0]["index"] == 0 and p[0]["type"] == "text" for p in parts)
    assert parts[0][0]["text"]["annotations"] == [] and all(
        "annotations" not in p[0]["text"] for p in parts[1:]
    )
    streamed = "".join(p[0]["text"]["value"] for p in parts)
    stored = http.get(f"/threads/{thread_id}/messages/{created['id']}").json()
    assert streamed == stored["content"][0]["text"]["value"] == "Hello! How can I help?"
    assert data["thread.message.completed"] == stored
    run = data["thread.run.completed"]
    assert run["usage"]["completion_tokens"] == 5 and run["expires_at"] is None
    assert http.get(f"/threads/{thread_id}/runs/{run['id']}").json() == run
    assert data["thread.run.created"]["status"] == data["thread.run.queued"]["status"] == "queued"


def test_the_event_handler_sees_the_answer_as_it_is_written(client: OpenAI, model: ModelServer) -> None:
    model.script(text("One two three.", chunk_delay=0.15))
    seen: list[str] = []
    arrivals: list[float] = []

    class Handler(AssistantEventHandler):
        def on_run_step_created(self, run_step: RunStep) -> None:
            seen.append(f"step:{run_step.type}")

        def on_message_created(self, message: Message) -> None:
            seen.append("message")

        def on_text_created(self, text: Text) -> None:
            seen.append("text")

        def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
            arrivals.append(time.monotonic())
            seen.append(f"delta:{delta.value}")

        def on_text_done(self, text: Text) -> None:
            seen.append(f"done:{text.value}")

        def on_message_done(self, message: Message) -> None:
            seen.append(f"message:{message.status}")

        def on_run_step_done(self, run_step: RunStep) -> None:
            seen.append(f"step-done:{run_step.status}")

        def on_end(self) -> None:
            seen.append("end")

    thread_id = thread_with(client, "Count")
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant(client), event_handler=Handler()
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        final = stream.get_final_messages()
    assert seen == [
        "step:message_creation",
        "message",
        "text",
        "delta:One",
        "delta: two",
        "delta: three.",
        "done:One two three.",
        "message:completed",
        "step-done:completed",
        "end",
    ]
    assert arrivals[-1] - arrivals[0] >= 0.15  # as the model wrote them (0.3 s apart), not in one blob
    assert run.status == "completed" and run.usage is not None
    assert [text_of(m) for m in final] == ["One two three."]
    stored = client.beta.threads.messages.list(thread_id=thread_id).data[0]
    assert stored.model_dump() == final[0].model_dump()


def test_parallel_calls_stream_then_a_submit_stream_completes(client: OpenAI, model: ModelServer) -> None:
    model.script(
        tool_calls(call("get_weather", {"city": "Paris"}), call("get_time", {"city": "Paris"})),
        text("18C at 14:05.", chunk_delay=0.02),
    )
    created: list[tuple[str, str]] = []
    done: list[tuple[str, str, str]] = []

    class Handler(AssistantEventHandler):
        def on_tool_call_created(self, tool_call: ToolCall) -> None:
            created.append((tool_call.id, tool_call.function.name))  # type: ignore[union-attr]

        def on_tool_call_done(self, tool_call: ToolCall) -> None:
            f = tool_call.function  # type: ignore[union-attr]
            done.append((tool_call.id, f.name, f.arguments))

    thread_id = thread_with(client, "Weather and time?")
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant(client, tools=[WEATHER, TIME]), event_handler=Handler()
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "requires_action" and run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.id, c.function.name) for c in calls] == created
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == done
    assert json.loads(done[0][2]) == {"city": "Paris"}
    stored = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    assert stored.status == "requires_action" and stored.required_action == run.required_action

    texts: list[str] = []

    class Second(AssistantEventHandler):
        def on_text_done(self, text: Text) -> None:
            texts.append(text.value)

    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread_id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": c.id, "output": f"out-{c.function.name}"} for c in calls],
        event_handler=Second(),
    ) as second:
        second.until_done()
        finished = second.get_final_run()
    assert finished.status == "completed" and texts == ["18C at 14:05."]
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    outputs = [c.function.output for c in steps[0].step_details.tool_calls]  # type: ignore[union-attr]
    assert outputs == ["out-get_weather", "out-get_time"]


def test_the_submit_stream_starts_with_the_tool_step_and_never_with_created(
    http: httpx.Client, model: ModelServer
) -> None:
    model.script(tool_calls(call("get_weather", {"city": "Oslo"})), text("Cold."))
    assistant_id = http.post("/assistants", json={"model": "m", "tools": [WEATHER]}).json()["id"]
    thread_id = http.post("/threads", json={"messages": [{"role": "user", "content": "Oslo"}]}).json()["id"]
    first = stream_raw(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id})
    names = [n for n, _ in first]
    assert names[-2:] == ["thread.run.requires_action", "done"]
    step_events = [(n, d) for n, d in first if n.startswith("thread.run.step")]
    assert step_events[0][1]["step_details"] == {"type": "tool_calls", "tool_calls": []}  # an empty snapshot
    deltas = [d["delta"]["step_details"]["tool_calls"][0] for n, d in step_events if n.endswith("delta")]
    assert deltas[0] == {
        "index": 0,
        "id": deltas[0]["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": "", "output": None},
    }
    assert all(
        set(d) == {"index", "type", "function"} and set(d["function"]) == {"arguments"} for d in deltas[1:]
    )
    assert "".join(d["function"]["arguments"] for d in deltas) == '{"city": "Oslo"}'
    run = dict(first)["thread.run.requires_action"]

    call_id = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]
    second = stream_raw(
        http,
        f"/threads/{thread_id}/runs/{run['id']}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": call_id, "output": "-3C"}]},
    )
    names = [n for n, _ in second]
    assert names[:3] == ["thread.run.step.completed", "thread.run.queued", "thread.run.in_progress"]
    assert "thread.run.created" not in names and names[-2:] == ["thread.run.completed", "done"]
    step = second[0][1]
    assert (
        step["status"] == "completed" and step["step_details"]["tool_calls"][0]["function"]["output"] == "-3C"
    )


def test_create_and_run_stream_starts_with_the_thread(client: OpenAI, model: ModelServer) -> None:
    model.script(text("Bonjour."))
    events: list[AssistantStreamEvent] = []
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant(client), thread={"messages": [{"role": "user", "content": "Salut"}]}
    ) as stream:
        for event in stream:
            events.append(event)
        run = stream.get_final_run()
    assert events[0].event == "thread.created" and events[1].event == "thread.run.created"
    assert run.status == "completed" and run.thread_id == events[0].data.id
    assert text_of(client.beta.threads.messages.list(thread_id=run.thread_id).data[0]) == "Bonjour."


def test_the_nested_submit_pattern_of_openais_docs(client: OpenAI, model: ModelServer) -> None:
    model.script(tool_calls(call("get_weather", {"city": "Rome"})), text("Sunny in Rome.", chunk_delay=0.02))
    answers: list[str] = []

    class Handler(AssistantEventHandler):
        def on_event(self, event: AssistantStreamEvent) -> None:
            if event.event == "thread.run.requires_action":
                run = event.data
                assert (
                    client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id).status
                    == "requires_action"
                )
                outputs: Any = [
                    {"tool_call_id": c.id, "output": "sunny"}
                    for c in run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
                ]
                with client.beta.threads.runs.submit_tool_outputs_stream(
                    thread_id=run.thread_id, run_id=run.id, tool_outputs=outputs, event_handler=Inner()
                ) as inner:
                    inner.until_done()

    class Inner(AssistantEventHandler):
        def on_text_done(self, text: Text) -> None:
            answers.append(text.value)

    thread_id = thread_with(client, "Rome?")
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant(client, tools=[WEATHER]), event_handler=Handler()
    ) as stream:
        stream.until_done()
    assert answers == ["Sunny in Rome."]
    assert client.beta.threads.runs.list(thread_id=thread_id).data[0].status == "completed"


def test_a_cancel_from_another_request_ends_the_stream(http: httpx.Client, model: ModelServer) -> None:
    model.script(text(" ".join(["word"] * 300), chunk_delay=0.03))
    assistant_id, thread_id = assistant_and_thread(http, "Talk")
    names: list[str] = []
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": True}
    ) as r:
        lines = r.iter_lines()
        run_id = None
        for line in lines:
            if line.startswith("event: "):
                names.append(line[7:])
            if line.startswith("data: {") and run_id is None:
                run_id = json.loads(line[6:])["id"]
            if names.count("thread.message.delta") == 3:
                break
        assert http.post(f"/threads/{thread_id}/runs/{run_id}/cancel").json()["status"] == "cancelling"
        names += [line[7:] for line in lines if line.startswith("event: ")]
    assert names[-5:] == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    terminal = {f"thread.run.{s}" for s in ("completed", "failed", "cancelled", "expired", "incomplete")}
    assert sum(name in terminal for name in names) == 1


def test_a_thread_changed_before_the_answer_begins_is_read_again(
    http: httpx.Client, model: ModelServer
) -> None:
    """The executor opens the answer's message against the thread as the run's creation left
    it, unread; a thread changed meanwhile fails that write, which is redone on a fresh read."""
    model.script(text("Still here.", delay_before=1.0))
    assistant_id, thread_id = assistant_and_thread(http, "Hi")
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": True}
    ) as r:
        names: list[str] = []
        for line in r.iter_lines():
            if line.startswith("event: "):
                names.append(line[7:])
            if names and names[-1] == "thread.run.in_progress" and len(names) == 3:
                changed = http.post(f"/threads/{thread_id}", json={"metadata": {"k": "v"}})
                assert changed.status_code == 200
    assert names[-3:] == ["thread.run.step.completed", "thread.run.completed", "done"]
    assert http.get(f"/threads/{thread_id}").json()["metadata"] == {"k": "v"}
    messages = http.get(f"/threads/{thread_id}/messages").json()["data"]
    assert [m["content"][0]["text"]["value"] for m in messages] == ["Still here.", "Hi"]


def test_a_message_changed_while_it_is_written_keeps_the_change(
    http: httpx.Client, model: ModelServer
) -> None:
    """The run's end closes its message as the executor opened it, unread; a message changed
    meanwhile (its metadata) fails that write, which is redone on a fresh read."""
    model.script(text(" ".join(["word"] * 30), chunk_delay=0.03))
    assistant_id, thread_id = assistant_and_thread(http, "Talk")
    events: list[tuple[str, Any]] = []
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": True}
    ) as r:
        name = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, line[6:]))
                if name == "thread.message.created":
                    message_id = json.loads(line[6:])["id"]
                    path = f"/threads/{thread_id}/messages/{message_id}"
                    assert http.post(path, json={"metadata": {"k": "v"}}).status_code == 200
    names = [n for n, _ in events]
    assert names[-4:] == [
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ]
    completed = json.loads(dict(events)["thread.message.completed"])
    stored = http.get(f"/threads/{thread_id}/messages/{message_id}").json()
    assert completed["metadata"] == stored["metadata"] == {"k": "v"}
    assert stored["status"] == "completed"
    assert stored["content"][0]["text"]["value"] == " ".join(["word"] * 30)


def test_a_model_failure_mid_stream_fails_the_run_in_the_stream(
    http: httpx.Client, model: ModelServer
) -> None:
    model.script(cut("a b c d e f g", after=3))
    assistant_id, thread_id = assistant_and_thread(http, "Hi")
    events = stream_raw(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id})
    names = [n for n, _ in events]
    assert names[-4:] == ["thread.message.incomplete", "thread.run.step.failed", "thread.run.failed", "done"]
    data = dict(events)
    assert data["thread.message.incomplete"]["incomplete_details"] == {"reason": "run_failed"}
    assert data["thread.run.step.failed"]["last_error"]["code"] == "server_error"
    assert data["thread.run.failed"]["last_error"]["code"] == "server_error"


def test_a_completion_budget_ends_the_stream_incomplete(http: httpx.Client, model: ModelServer) -> None:
    model.script(text(["w "] * 300))
    assistant_id, thread_id = assistant_and_thread(http, "Hi")
    events = stream_raw(
        http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id, "max_completion_tokens": 256}
    )
    names = [n for n, _ in events]
    assert names[-4:] == [
        "thread.message.incomplete",
        "thread.run.step.completed",
        "thread.run.incomplete",
        "done",
    ]
    assert dict(events)["thread.run.incomplete"]["incomplete_details"] == {"reason": "max_completion_tokens"}


def test_a_client_that_hangs_up_leaves_a_run_that_completes(
    client: OpenAI, http: httpx.Client, model: ModelServer
) -> None:
    model.script(text(" ".join(f"w{i}" for i in range(60)), chunk_delay=0.03))
    assistant_id = assistant(client)
    thread_id = thread_with(client, "Talk")
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": True}
    ) as r:
        for line in r.iter_lines():
            if line == "event: thread.message.delta":
                break  # and hang up
    run = client.beta.threads.runs.list(thread_id=thread_id).data[0]
    assert poll(client, thread_id, run.id, {"completed"}).status == "completed"
    assert text_of(client.beta.threads.messages.list(thread_id=thread_id).data[0]) == " ".join(
        f"w{i}" for i in range(60)
    )


def test_heartbeats_keep_a_quiet_stream_open(http: httpx.Client, model: ModelServer) -> None:
    model.script(text("Late.", delay_before=2.5))
    assistant_id, thread_id = assistant_and_thread(http, "Hi")
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": True}
    ) as r:
        body = r.read().decode()
    assert body.count(": keep-alive\n") >= 2  # the dev host's heartbeat is 1 s in the tests
    assert ": keep-alive\n\n" not in body  # each rides ahead of the next event (azure-ai-agents)
    assert body.endswith("event: done\ndata: [DONE]\n\n")


def test_errors_before_the_stream_are_plain_json(http: httpx.Client, model: ModelServer) -> None:
    response = http.post(f"/threads/thread_{'A' * 24}/runs", json={"assistant_id": "asst_x", "stream": True})
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
    model.script(hang())
    assistant_id = http.post("/assistants", json={"model": "m"}).json()["id"]
    thread_id = http.post("/threads", json={}).json()["id"]
    first = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id})
    locked = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": True})
    assert locked.status_code == 400 and "already has an active run" in locked.json()["error"]["message"]
    http.post(f"/threads/{thread_id}/runs/{first.json()['id']}/cancel")


def test_a_streamed_run_stores_what_a_polled_one_does(client: OpenAI, model: ModelServer) -> None:
    assistant_id = assistant(client, tools=[WEATHER])

    def stored(thread_id: str, run_id: str) -> list[Any]:
        steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc").data
        messages = client.beta.threads.messages.list(thread_id=thread_id, order="asc").data
        return [
            [(s.type, s.status, s.usage) for s in steps],
            [(m.role, m.status, m.content) for m in messages],
        ]

    results = []
    for streamed in (False, True):
        model.script(text("Plain answer.", chunk_delay=0.01))
        thread_id = thread_with(client, "Hi")
        if streamed:
            with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id) as stream:
                stream.until_done()
                run = stream.get_final_run()
        else:
            run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
        results.append((run.status, run.usage, *stored(thread_id, run.id)))
    assert results[0] == results[1]


def test_two_streams_at_once_do_not_wait_for_each_other(devhost: DevHost, model: ModelServer) -> None:
    model.respond_with(text("a b c d e", chunk_delay=0.2))
    client = OpenAI(base_url=devhost.api_url, api_key=API_KEYS[0], max_retries=0)
    assistant_id = assistant(client)
    statuses: list[str] = []
    asks = [f"Stream {n}" for n in range(2)]

    def one(ask: str) -> None:
        with client.beta.threads.runs.stream(
            thread_id=thread_with(client, ask), assistant_id=assistant_id
        ) as s:
            s.until_done()
            statuses.append(s.get_final_run().status)

    workers = [threading.Thread(target=one, args=(ask,)) for ask in asks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert statuses == ["completed", "completed"]
    first, second = (next(r for r in model.requests if r.messages[-1]["content"] == ask) for ask in asks)
    assert first.finished_at is not None and second.finished_at is not None
    # Both answers were being written at once: each began before the other ended.
    assert first.received_at < second.finished_at and second.received_at < first.finished_at


def test_stream_false_is_the_plain_run(http: httpx.Client, model: ModelServer) -> None:
    model.script(text("ok"))
    assistant_id, thread_id = assistant_and_thread(http, "Hi")
    response = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": False})
    assert response.headers["content-type"] == "application/json" and response.json()["status"] == "queued"
    # The queue trigger's executor answers it: waited for, so that its model call does not land
    # in the next test's.
    run_id = response.json()["id"]
    wait_until(
        lambda: http.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"] == "completed",
        20,
        "the queued run to complete",
    )
