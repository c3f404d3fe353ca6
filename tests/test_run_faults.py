"""Runs under faults: the host killed while its runs are at the model, a model that breaks a
function-calling turn or its second call, a model that stalls, and storage lost in the middle of
an answer. After each, every run is terminal and consistent (its steps, messages and usage agree
with how it ended), no reply is lost or doubled, and its thread takes messages and runs again.

Model failures of a run's first, text-only call (429s, 5xx, a cut or malformed stream, a hung
model) are in tests/test_runs.py; these are the cases it does not cover."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI
from openai.types.beta.threads import Message, Run

from assistants_core.executor import LOST
from tests.model_server import (
    ModelServer,
    call,
    cut,
    error,
    hang,
    malformed,
    rate_limit,
    text,
    tool_calls,
)
from tests.support import (
    API_KEYS,
    Azurite,
    DevHost,
    FaultyProxy,
    devhost_env,
    running_devhost,
    sse_events,
    text_of,
    wait_until,
)

TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PARIS = call("get_weather", {"city": "Paris"})  # arguments in 3 fragments: '{"city":', ' "Paris"', '}'


def api(host: DevHost) -> OpenAI:
    return OpenAI(base_url=host.api_url, api_key=API_KEYS[0], max_retries=0, timeout=30)


def wait_for(
    client: OpenAI, thread_id: str, run_id: str, until: frozenset[str] | set[str], seconds: float
) -> Run:
    """The run once its status is in `until` (read through the API, which settles it); fails the
    test if that takes longer than `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in until:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run.status} after {seconds} s"
        time.sleep(0.2)


def wait_aborted(model: ModelServer, count: int, seconds: float) -> None:
    """Until `count` of this test's model calls were left by their client before their end (not
    `model.aborted`, which a call from an earlier test, still open, may raise meanwhile)."""
    wait_until(
        lambda: sum(r.outcome == "aborted" for r in model.requests) >= count,
        seconds,
        f"{count} model call(s) abandoned by the service",
    )


def new_thread(client: OpenAI, *texts: str) -> str:
    messages: Any = [{"role": "user", "content": t} for t in texts]
    return client.beta.threads.create(messages=messages).id


def replies(client: OpenAI, thread_id: str, run_id: str) -> list[Message]:
    return client.beta.threads.messages.list(thread_id=thread_id, run_id=run_id, order="asc").data


def assert_consistent(client: OpenAI, thread_id: str, run: Run) -> list[Message]:
    """The run has ended and its record agrees with itself: no step left open; every reply has
    its message_creation step and every such step its reply; a reply is `completed` only if its
    step completed, and the reply a failure interrupted is `incomplete` with the run's reason; a
    completed tool_calls step carries every output, and one the run's end cut short no arguments;
    the run's usage is the sum of its steps'. Returns its replies, oldest first."""
    assert run.status in TERMINAL, run.status
    assert run.required_action is None
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc", limit=100).data
    messages = replies(client, thread_id, run.id)
    assert all(m.role == "assistant" and m.run_id == run.id for m in messages)
    by_id = {m.id: m for m in messages}
    created = [
        s.step_details.message_creation.message_id  # type: ignore[union-attr]
        for s in steps
        if s.type == "message_creation"
    ]
    assert sorted(created) == sorted(by_id), "a reply without its step, or a step without its reply"
    reason = {"failed": "run_failed", "cancelled": "run_cancelled", "expired": "run_expired"}.get(run.status)
    for step in steps:
        assert step.status != "in_progress", f"{step.type} step left open by a {run.status} run"
        if step.type == "message_creation":
            message = by_id[step.step_details.message_creation.message_id]  # type: ignore[union-attr]
            if message.status == "completed":
                assert step.status == "completed"
            if step.status != "completed":
                assert message.status == "incomplete"
                assert message.incomplete_details is not None
                assert message.incomplete_details.reason == reason
        elif step.status == "completed":
            calls = step.step_details.tool_calls  # type: ignore[union-attr]
            assert calls and all(c.function.output is not None for c in calls)  # type: ignore[union-attr]
        else:
            assert step.status == run.status or (step.status, run.status) == ("cancelled", "incomplete")
            calls = step.step_details.tool_calls  # type: ignore[union-attr]
            assert calls and all(c.function.arguments == "" for c in calls)  # type: ignore[union-attr]
    ended = [s.status == "completed" for s in steps]
    # Only the last model call's steps (its reply, its calls) may have been cut short.
    assert ended == sorted(ended, reverse=True), "a step before the last call's did not complete"
    assert run.usage is not None
    summed = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for step in steps:
        if step.usage is not None:
            for key in summed:
                summed[key] += getattr(step.usage, key)
    assert run.usage.model_dump() == summed
    return messages


def assert_unlocked(client: OpenAI, thread_id: str, assistant_id: str, model: ModelServer) -> None:
    """The thread takes a message, and a new run on it answers once."""
    model.respond_with(text("Back again."))
    client.beta.threads.messages.create(thread_id, role="user", content="still there?")
    again = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=100
    )
    assert again.status == "completed", again.last_error
    assert [(m.status, text_of(m)) for m in assert_consistent(client, thread_id, again)] == [
        ("completed", "Back again.")
    ]


# --- the host killed --------------------------------------------------------------------------


def test_a_host_killed_while_its_runs_are_at_the_model(azurite: Azurite, model: ModelServer) -> None:
    """A dev host is SIGKILLed while two polled runs are at the model: one waiting for its first
    byte, one in the middle of its answer (its reply and step open, in progress). A second host
    on the same storage, table prefix and runs queue takes over.

    What happens: the queue message of each run was received by the dead host and stays
    invisible (10 minutes, the host's receive visibility), so nothing executes the runs again.
    The executor's lease, renewed every 10 s while the model answers, lapses 30 s after its last
    renewal; then the first read of the run (a GET, a lock check) or the sweeper (every 15 s)
    fails it with `server_error` and LOST, closing its open step (`failed`) and reply
    (`incomplete`, `run_failed`, no text: the text is stored when the answer is complete), and
    unlocks the thread. Here the test's GETs are the reads that end them, about 30 s after the
    runs were claimed."""
    storage = azurite.connection_string

    def respond(body: dict[str, Any]) -> Any:
        last = body["messages"][-1]["content"]
        if last == "slow":
            return text("Too late.", delay_before=60)
        if last == "talk":
            return text(" ".join(["word"] * 400), chunk_delay=0.25)
        return None

    model.respond_with(respond)
    with running_devhost(storage, ASSISTANTS_MODEL_BASE_URL=model.base_url) as first:
        prefix = first.table_prefix
        client = api(first)
        assistant_id = client.beta.assistants.create(model="gpt-test").id
        waiting = client.beta.threads.runs.create(
            thread_id=new_thread(client, "slow"), assistant_id=assistant_id
        )
        talking = client.beta.threads.runs.create(
            thread_id=new_thread(client, "talk"), assistant_id=assistant_id
        )
        wait_until(lambda: replies(client, talking.thread_id, talking.id), 20, "the reply to open")
        wait_for(client, waiting.thread_id, waiting.id, {"in_progress"}, 20)
        model.wait_for_requests(2, timeout=20)
        os.kill(first.pid, signal.SIGKILL)
        wait_aborted(model, 2, 20)  # the dead host's model calls went with it

    with running_devhost(storage, table_prefix=prefix, ASSISTANTS_MODEL_BASE_URL=model.base_url) as second:
        # The same tables, and the same runs queue: devhost_env names it after the prefix.
        assert second.table_prefix == prefix
        assert devhost_env(storage, prefix)["ASSISTANTS_RUNS_QUEUE"] == f"{prefix.lower()}-runs"
        client = api(second)
        for run in (waiting, talking):
            ended = wait_for(client, run.thread_id, run.id, TERMINAL, seconds=90)
            assert ended.status == "failed", ended.status
            assert ended.last_error is not None
            assert (ended.last_error.code, ended.last_error.message) == ("server_error", LOST)
            assert ended.failed_at is not None and ended.expires_at is None
            messages = assert_consistent(client, run.thread_id, ended)
            assert not any(m.status == "completed" for m in messages)
            assert client.beta.threads.runs.list(thread_id=run.thread_id).data == [ended]
        assert replies(client, waiting.thread_id, waiting.id) == []
        (reply,) = replies(client, talking.thread_id, talking.id)
        assert reply.status == "incomplete" and reply.content == []
        steps = client.beta.threads.runs.steps.list(talking.id, thread_id=talking.thread_id).data
        assert [(s.type, s.status) for s in steps] == [("message_creation", "failed")]
        for run in (waiting, talking):
            assert_unlocked(client, run.thread_id, assistant_id, model)


# --- the model breaking a function-calling turn ------------------------------------------------


@pytest.fixture
def client(devhost: DevHost) -> OpenAI:
    return api(devhost)


@pytest.mark.parametrize(
    ("reply", "opens_a_reply"),
    [
        (tool_calls(PARIS, cut_after=2), False),
        (tool_calls(PARIS, call("get_weather", {"city": "Rome"}), cut_after=6), False),
        (tool_calls(PARIS, malformed_at=2), False),
        (tool_calls(PARIS, content="Let me check.", cut_after=5), True),
    ],
    ids=["cut-mid-arguments", "cut-in-the-second-call", "malformed-mid-arguments", "cut-after-text"],
)
def test_a_tool_call_answer_cut_short_never_asks_for_outputs(
    client: OpenAI, model: ModelServer, reply: Any, opens_a_reply: bool
) -> None:
    """Tool calls stream as they come, but are asked for only once the model's answer is whole: a
    stream cut (or corrupted) part-way through the arguments fails the run, never reaching
    `requires_action`; the tool_calls step it showed is stored `failed`, with the calls' ids and
    names but none of their cut arguments, and a reply written before keeps its text."""
    model.script(reply)
    assistant_id = client.beta.assistants.create(model="gpt-test", tools=[WEATHER]).id  # type: ignore[list-item]
    thread_id = new_thread(client, "Weather in Paris?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=100
    )
    assert run.status == "failed" and run.last_error is not None
    assert run.last_error.code == "server_error"
    assert len(model.requests) == 1  # a broken stream is not retried: its answer is not whole
    messages = assert_consistent(client, thread_id, run)
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    assert steps[-1].type == "tool_calls" and steps[-1].status == "failed"
    names = [c.function.name for c in steps[-1].step_details.tool_calls]  # type: ignore[union-attr]
    assert names and set(names) == {"get_weather"}
    if opens_a_reply:
        assert [(m.status, text_of(m)) for m in messages] == [("incomplete", "Let me check.")]
        assert [(s.type, s.status) for s in steps] == [
            ("message_creation", "failed"),
            ("tool_calls", "failed"),
        ]
    else:
        assert messages == [] and len(steps) == 1
    assert_unlocked(client, thread_id, assistant_id, model)


@pytest.mark.parametrize(
    ("second_call", "status", "code", "model_calls"),
    [
        ([rate_limit(retry_after=1), text("It is 18C.")], "completed", None, 3),
        ([error(500), error(503), text("It is 18C.")], "completed", None, 4),
        ([rate_limit(retry_after=0.1)] * 3, "failed", "rate_limit_exceeded", 4),
        ([cut("It is 18C in Paris today.", after=3)], "failed", "server_error", 2),
        ([malformed("It is 18C.", at=1)], "failed", "server_error", 2),
        ([tool_calls(PARIS, cut_after=2)], "failed", "server_error", 2),
    ],
    ids=["429-then-ok", "5xx-then-ok", "429s", "cut", "malformed", "cut-mid-arguments"],
)
def test_the_second_model_call_of_a_run_fails_or_recovers(
    client: OpenAI,
    model: ModelServer,
    second_call: list[Any],
    status: str,
    code: str | None,
    model_calls: int,
) -> None:
    """After submit_tool_outputs the run calls the model again, with the same retries as its
    first call: a 429 with `Retry-After` (honoured) or a 5xx that clears completes the run with
    one reply; one that does not, or a broken stream, fails it. Either way the tool_calls step
    keeps its outputs and its usage, the run's usage is the sum of its steps', and no reply of
    the failed call is `completed`."""
    model.script(tool_calls(PARIS), *second_call)
    assistant_id = client.beta.assistants.create(model="gpt-test", tools=[WEATHER]).id  # type: ignore[list-item]
    thread_id = new_thread(client, "Weather in Paris?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=100
    )
    assert run.status == "requires_action" and run.required_action is not None
    (asked,) = run.required_action.submit_tool_outputs.tool_calls
    assert json.loads(asked.function.arguments) == {"city": "Paris"}
    ended = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": asked.id, "output": '{"temp_c": 18}'}],
        poll_interval_ms=100,
    )
    assert ended.status == status, ended.last_error
    assert (ended.last_error.code if ended.last_error else None) == code
    assert len(model.requests) == model_calls
    if second_call[0].status == 429 and status == "completed":
        retry = model.requests[2].received_at - model.requests[1].received_at
        assert retry >= 1.0, f"Retry-After: 1 not honoured ({retry:.2f} s)"
    messages = assert_consistent(client, thread_id, ended)
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    assert steps[0].type == "tool_calls" and steps[0].status == "completed"
    assert steps[0].step_details.tool_calls[0].function.output == '{"temp_c": 18}'  # type: ignore[union-attr]
    assert steps[0].usage is not None and steps[0].usage.total_tokens > 0
    if status == "completed":
        assert [(m.status, text_of(m)) for m in messages] == [("completed", "It is 18C.")]
    else:
        assert all(m.status == "incomplete" for m in messages)
        assert [s.status for s in steps[1:]] == ["failed"] * (len(steps) - 1)
        cut_calls = [s for s in steps[1:] if s.type == "tool_calls"]
        assert len(messages) + len(cut_calls) == len(steps) - 1
    assert_unlocked(client, thread_id, assistant_id, model)


def test_a_reply_finished_before_a_failure_stays_completed(client: OpenAI, model: ModelServer) -> None:
    """A first answer with text and a tool call completes its reply; when the call after the
    outputs breaks, the run fails and only the reply that call opened is `incomplete`."""
    model.script(tool_calls(PARIS, content="Let me check."), cut("It is 18C in Paris.", after=2))
    assistant_id = client.beta.assistants.create(model="gpt-test", tools=[WEATHER]).id  # type: ignore[list-item]
    thread_id = new_thread(client, "Weather in Paris?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=100
    )
    assert run.status == "requires_action" and run.required_action is not None
    (asked,) = run.required_action.submit_tool_outputs.tool_calls
    ended = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": asked.id, "output": "18C"}],
        poll_interval_ms=100,
    )
    assert ended.status == "failed"
    messages = assert_consistent(client, thread_id, ended)
    assert [(m.status, text_of(m)) for m in messages] == [
        ("completed", "Let me check."),
        ("incomplete", "It is"),  # what the broken call wrote before the break
    ]
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    assert [(s.type, s.status) for s in steps] == [
        ("message_creation", "completed"),
        ("tool_calls", "completed"),
        ("message_creation", "failed"),
    ]


@pytest.mark.parametrize("finish", ["length", "content_filter"])
def test_tool_calls_cut_by_the_model_do_not_end_the_run_completed_with_nothing(
    client: OpenAI, model: ModelServer, finish: Any
) -> None:
    """A model that stops in its tool calls on its own output limit (or its content filter), with
    no budget of the run's spent, must not have the run claim `completed` with nothing to show:
    the calls are rightly not asked for (their arguments may be cut), so the run cannot have
    completed; `incomplete` (or `failed`) says so."""
    model.script(tool_calls(PARIS, finish_reason=finish))
    assistant_id = client.beta.assistants.create(model="gpt-test", tools=[WEATHER]).id  # type: ignore[list-item]
    thread_id = new_thread(client, "Weather in Paris?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=100
    )
    assert run.status != "requires_action"  # holds today: half arguments are never asked for
    assert replies(client, thread_id, run.id) == []
    assert run.status in ("incomplete", "failed"), f"{run.status} with no reply and no step"


# --- a model that stalls ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "opens_a_reply"),
    [
        (hang(after=2, content="It is 18C in Paris."), True),
        (tool_calls(PARIS, stall_after=2), False),
    ],
    ids=["mid-text", "mid-arguments"],
)
def test_a_model_that_stalls_mid_answer_ends_the_run_expired(
    expiring_host: DevHost, model: ModelServer, reply: Any, opens_a_reply: bool
) -> None:
    """The backend's read timeout is 120 s, longer than a run may wait on a host whose runs
    expire after 3 s: a model that stops sending mid-answer leaves the run to its deadline, which
    ends it `expired`, its open reply `incomplete` (`run_expired`) with the text written so far,
    never `requires_action`; a tool_calls step it showed is stored `expired`, without arguments."""
    client = api(expiring_host)
    model.script(reply)
    assistant_id = client.beta.assistants.create(model="gpt-test", tools=[WEATHER]).id  # type: ignore[list-item]
    thread_id = new_thread(client, "Weather in Paris?")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    ended = wait_for(client, thread_id, run.id, TERMINAL | {"requires_action"}, seconds=30)
    assert ended.status == "expired"
    messages = assert_consistent(client, thread_id, ended)
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    if opens_a_reply:
        assert [(m.status, text_of(m)) for m in messages] == [("incomplete", "It is")]
        assert [(s.type, s.status) for s in steps] == [("message_creation", "expired")]
    else:
        assert messages == [] and [(s.type, s.status) for s in steps] == [("tool_calls", "expired")]
    client.beta.threads.messages.create(thread_id, role="user", content="unlocked")


@pytest.mark.parametrize(
    "reply",
    [
        # Before the answer begins too: the call is a task on the model loop, and cancelling it
        # closes its connection wherever it is.
        pytest.param(hang(), id="before-the-answer"),
        pytest.param(hang(after=2), id="mid-answer"),
    ],
)
def test_a_cancelled_run_lets_go_of_a_stalled_model_call(
    client: OpenAI, model: ModelServer, reply: Any
) -> None:
    """Cancelling a run whose model has gone quiet ends the run within a second (that holds), and
    should end its model call too: the connection closed, the model no longer generating (and
    billed) for an answer nobody will read, the executor's thread free."""
    model.script(reply)
    assistant_id = client.beta.assistants.create(model="gpt-test").id
    thread_id = new_thread(client, "Hi")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    wait_for(client, thread_id, run.id, {"in_progress"}, 20)
    model.wait_for_requests(1, timeout=20)
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert wait_for(client, thread_id, run.id, TERMINAL, 20).status == "cancelled"
    wait_aborted(model, 1, 5)


# --- storage lost in the middle of a run --------------------------------------------------------


@pytest.fixture
def proxied(azurite: Azurite, model: ModelServer) -> Iterator[tuple[FaultyProxy, DevHost]]:
    """A dev host whose tables are reached through a FaultyProxy; its runs queue directly."""
    proxy = FaultyProxy(azurite.port, azurite.queue_port)
    try:
        with running_devhost(proxy.connection_string, ASSISTANTS_MODEL_BASE_URL=model.base_url) as host:
            yield proxy, host
    finally:
        proxy.close()


class EventReader(threading.Thread):
    """A streamed request's Server-Sent Events, read on a thread of their own."""

    def __init__(self, http: httpx.Client, path: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.http, self.path, self.body = http, path, body
        self.events: list[tuple[str, Any]] = []
        self.answering = threading.Event()  # the first text delta arrived
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with self.http.stream("POST", self.path, json={**self.body, "stream": True}) as response:
                assert response.status_code == 200, response.read()
                for name, data in sse_events(response.iter_lines()):
                    self.events.append((name, data))
                    if name == "thread.message.delta":
                        self.answering.set()
        except BaseException as exc:  # looked at by the test
            self.failure = exc


def test_storage_lost_mid_answer_ends_the_runs_and_loses_nothing(
    proxied: tuple[FaultyProxy, DevHost], model: ModelServer
) -> None:
    """Two runs are in the middle of their answers, one polled, one streamed, when storage stops
    answering (every table request dropped); it comes back once both executors have given up.

    What happens: the looks for a cancel fail (the process's query of the active-runs index,
    each executor's own read of its run), and the executors ride them out while their lease
    holds; a write of a run's own fails, and its executor stops: the streamed request ends its
    stream at once with an `error` event (`service_unavailable`) and `done`; the polled run's
    queue message is delivered again, finds the run still leased and does nothing. A run whose
    executor stopped stays `in_progress` until its lease lapses (30 s after its last renewal),
    then the first read fails it (`server_error`, LOST) with its open reply `incomplete`; a run
    whose executor wrote its answer once storage was back is `completed`: one reply each at
    most, never a `completed` one in a failed run, the users' messages intact, the threads
    unlocked, and a new run on each answers."""
    proxy, host = proxied
    client = api(host)
    model.respond_with(text(" ".join(["word"] * 400), chunk_delay=0.25))
    assistant_id = client.beta.assistants.create(model="gpt-test").id
    asked = ["First question.", "Second question."]
    polled_thread, streamed_thread = new_thread(client, *asked), new_thread(client, *asked)
    polled = client.beta.threads.runs.create(thread_id=polled_thread, assistant_id=assistant_id)
    with httpx.Client(base_url=host.api_url, headers={"api-key": API_KEYS[0]}, timeout=60) as http:
        reader = EventReader(http, f"/threads/{streamed_thread}/runs", {"assistant_id": assistant_id})
        reader.start()
        assert reader.answering.wait(20), reader.events
        wait_until(lambda: replies(client, polled_thread, polled.id), 20, "the polled run's reply to open")

        proxy.fail_after(0)
        reader.join(30)  # the stream ends, it does not hang
        assert not reader.is_alive() and reader.failure is None, reader.failure
        assert [name for name, _ in reader.events[-2:]] == ["error", "done"]
        assert reader.events[-2][1]["code"] == "service_unavailable"
        wait_aborted(model, 2, 20)  # both executors stopped reading the model
        proxy.heal()

    streamed = reader.events[0][1]
    assert reader.events[0][0] == "thread.run.created"
    for thread_id, run_id in ((polled_thread, polled.id), (streamed_thread, streamed["id"])):
        ended = wait_for(client, thread_id, run_id, TERMINAL, seconds=50)
        assert ended.status in ("failed", "completed"), ended.status
        messages = assert_consistent(client, thread_id, ended)
        assert len(messages) <= 1
        if ended.status == "failed":
            assert ended.last_error is not None
            assert (ended.last_error.code, ended.last_error.message) == ("server_error", LOST)
            assert [m.status for m in messages] == ["incomplete"]
        listed = client.beta.threads.messages.list(thread_id=thread_id, order="asc").data
        assert [(m.role, text_of(m)) for m in listed if m.role == "user"] == [("user", t) for t in asked]
        assert [m.id for m in listed if m.role == "assistant"] == [m.id for m in messages]
        assert [r.id for r in client.beta.threads.runs.list(thread_id=thread_id).data] == [run_id]
        assert_unlocked(client, thread_id, assistant_id, model)


def test_calls_one_after_another_keep_their_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """An answer's response is read to its end after `[DONE]`, so that the next call reuses the
    connection (in Azure: no TLS handshake per call); a stream closed mid-answer drops it."""
    from assistants_core.backend import ModelBackend
    from tests import model_server

    accepted = 0
    accept = model_server._HTTPServer.process_request

    def counted(server: Any, request: Any, address: Any) -> None:
        nonlocal accepted
        accepted += 1
        accept(server, request, address)

    monkeypatch.setattr(model_server._HTTPServer, "process_request", counted)
    with model_server.ModelServer(text("one two three", chunk_delay=0.01)) as server:
        backend = ModelBackend(server.base_url, "k")
        body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
        for _ in range(3):
            stream = backend.stream(body)
            fragments = []
            while True:
                try:
                    fragments.append(stream.next(timeout=5))
                except StopIteration:
                    break
            stream.close()
            assert len(fragments) == 4  # three words and the finish
        assert accepted == 1
        stream = backend.stream(body)
        assert stream.next(timeout=5) is not None
        stream.close()  # mid-answer: the connection goes with it
        wait_until(lambda: server._server is None or not server._server.connections, 5, "it dropped")
        for _ in range(2):
            stream = backend.stream(body)
            while True:
                try:
                    stream.next(timeout=5)
                except StopIteration:
                    break
            stream.close()
        assert accepted == 2
