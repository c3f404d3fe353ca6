"""The scripted model server (tests/model_server.py), driven by the official `openai` client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionToolParam

from tests.model_server import (
    DEFAULT_TEXT,
    ModelServer,
    Reply,
    call,
    cut,
    error,
    hang,
    malformed,
    prompt_tokens,
    rate_limit,
    split_words,
    text,
    tool_calls,
)

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."},  # 14 chars -> 3 + 4
    {"role": "user", "content": "What is the weather in Paris?"},  # 29 chars -> 7 + 4
]
PROMPT_TOKENS = 18
TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]


@pytest.fixture(scope="module")
def server() -> Iterator[ModelServer]:
    with ModelServer() as model:
        yield model


@pytest.fixture
def model(server: ModelServer) -> ModelServer:
    server.reset()
    return server


@pytest.fixture
def client(model: ModelServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=model.base_url, api_key="x", max_retries=0) as sdk:
        yield sdk


def stream_chunks(client: OpenAI, **extra: Any) -> list[ChatCompletionChunk]:
    stream = client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True, **extra)
    return list(stream)


def streamed_text(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# --- text -------------------------------------------------------------------------------------


def test_plain_text_reply(model: ModelServer, client: OpenAI) -> None:
    model.script(text("Sunny and mild."))
    completion = client.chat.completions.create(model="gpt-test", messages=MESSAGES)

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-test"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Sunny and mild."
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == PROMPT_TOKENS == prompt_tokens(MESSAGES)
    assert completion.usage.completion_tokens == 3  # "Sunny", " and", " mild."
    assert completion.usage.total_tokens == PROMPT_TOKENS + 3


def test_default_reply_when_script_is_empty(model: ModelServer, client: OpenAI) -> None:
    model.script("first", text(["sec", "ond"]))
    answers = [client.chat.completions.create(model="m", messages=MESSAGES) for _ in range(3)]
    assert [a.choices[0].message.content for a in answers] == ["first", "second", DEFAULT_TEXT]
    assert model.pending == 0

    model.respond_with(text("always"))
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "always"


def test_streamed_text(model: ModelServer, client: OpenAI) -> None:
    model.script(text(["Sun", "ny", " and mild."]))
    chunks = stream_chunks(client)

    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({(c.id, c.created, c.model) for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["Sun", "ny", " and mild."]
    assert streamed_text(chunks) == "Sunny and mild."
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, None, "stop"]
    assert all(c.usage is None for c in chunks)

    request = model.last_request()
    assert request.stream
    assert request.outcome == "completed"


def test_stream_is_real_server_sent_events(model: ModelServer) -> None:
    model.script(text("a b"))
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with httpx.Client() as http:
        response = http.post(f"{model.base_url}/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: {") for e in events[:-2])
    assert [json.loads(e[6:])["choices"][0]["delta"] for e in events[:-2]] == [
        {"role": "assistant", "content": "", "refusal": None},
        {"content": "a"},
        {"content": " b"},
        {},
    ]


def test_usage_chunk_with_include_usage(model: ModelServer, client: OpenAI) -> None:
    model.script(text("one two three four"))
    chunks = stream_chunks(client, stream_options={"include_usage": True})

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (18, 4, 22)
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_split_words_and_prompt_rule() -> None:
    assert split_words("Hello  big world\n") == ("Hello", "  big", " world\n")
    assert split_words("  ") == ("  ",)
    assert split_words("") == ()
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "12345678"}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"function": {"name": "ab", "arguments": "{}"}}],
        },
        {"role": "tool", "content": "xyz"},
    ]
    assert prompt_tokens(messages) == (2 + 4) + (1 + 4) + (0 + 4)


# --- tool calls -------------------------------------------------------------------------------


def parallel_calls() -> Reply:
    return tool_calls(
        call("get_weather", {"city": "Paris"}, id="call_weather"),
        call("get_time", fragments=["{", '"tz": ', '"CET"', "}"]),
    )


def test_parallel_tool_calls_not_streamed(model: ModelServer, client: OpenAI) -> None:
    model.script(parallel_calls())
    completion = client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert (calls[0].type, calls[0].id) == ("function", "call_weather")
    assert calls[1].id.startswith("call_")
    functions = [c.function for c in calls if c.type == "function"]
    assert [(f.name, json.loads(f.arguments)) for f in functions] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"tz": "CET"}),
    ]
    assert completion.usage is not None
    # '{"city": "Paris"}' is 17 characters: 3 fragments of 8; the second call has 4 fragments.
    assert completion.usage.completion_tokens == 7


def test_parallel_tool_calls_reassembled_by_the_sdk_stream_helper(model: ModelServer, client: OpenAI) -> None:
    model.script(parallel_calls())
    with client.chat.completions.stream(model="m", messages=MESSAGES, tools=TOOLS) as stream:
        events = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        deltas = [e.arguments_delta for e in events if e.arguments_delta]
        final = stream.get_final_completion()

    assert deltas == ['{"city":', ' "Paris"', "}", "{", '"tz": ', '"CET"', "}"]
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_weather", "get_weather", '{"city": "Paris"}'),
        (calls[1].id, "get_time", '{"tz": "CET"}'),
    ]


def test_text_then_tool_call_streamed_fragments(model: ModelServer, client: OpenAI) -> None:
    model.script(
        tool_calls(call("get_weather", fragments=['{"ci', 'ty": "Pa', 'ris"}']), content="Checking.")
    )
    chunks = stream_chunks(client, tools=TOOLS)

    tool_deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    opening, *rest = tool_deltas
    assert (opening.index, opening.type) == (0, "function")
    assert opening.id is not None and opening.id.startswith("call_")
    assert opening.function is not None
    assert (opening.function.name, opening.function.arguments) == ("get_weather", "")
    assert all(d.id is None and d.type is None and d.index == 0 for d in rest)
    assert all(d.function is not None and d.function.name is None for d in rest)
    assert "".join(d.function.arguments or "" for d in rest if d.function) == '{"city": "Paris"}'
    assert streamed_text(chunks) == "Checking."
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


# --- budgets and finish reasons -----------------------------------------------------------------


def test_max_completion_tokens_truncates_with_length(model: ModelServer, client: OpenAI) -> None:
    model.script(text("one two three four five"), text("one two three four five"))
    completion = client.chat.completions.create(model="m", messages=MESSAGES, max_completion_tokens=3)
    assert completion.choices[0].message.content == "one two three"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3

    chunks = stream_chunks(client, max_tokens=2, stream_options={"include_usage": True})
    assert streamed_text(chunks) == "one two"
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2


def test_truncation_reaches_into_tool_calls(model: ModelServer, client: OpenAI) -> None:
    model.script(tool_calls(call("a", fragments=["{", "}"]), call("b", "{}"), content="x y"))
    completion = client.chat.completions.create(model="m", messages=MESSAGES, max_completion_tokens=3)
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content == "x y"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls if c.type == "function"] == [("a", "{")]


def test_budget_above_the_reply_changes_nothing(model: ModelServer, client: OpenAI) -> None:
    model.script(text("a b c"))
    completion = client.chat.completions.create(model="m", messages=MESSAGES, max_completion_tokens=3)
    assert completion.choices[0].finish_reason == "stop"


def test_content_filter_and_azure_prompt_filter_chunk(model: ModelServer, client: OpenAI) -> None:
    model.script(text("I cannot", finish_reason="content_filter", prompt_filter_results=True))
    chunks = stream_chunks(client)
    assert chunks[0].choices == []
    assert chunks[0].model_extra is not None and "prompt_filter_results" in chunks[0].model_extra
    assert chunks[1].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert streamed_text(chunks) == "I cannot"

    model.script(text("ok", prompt_filter_results=True))
    with client.chat.completions.stream(model="m", messages=MESSAGES) as stream:
        assert stream.get_final_completion().choices[0].message.content == "ok"


# --- errors -----------------------------------------------------------------------------------


def test_rate_limit_with_retry_after(model: ModelServer, client: OpenAI) -> None:
    model.script(rate_limit(retry_after=7))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.body == {
        "message": "Rate limit reached for requests.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_server_errors_streamed_or_not(model: ModelServer, client: OpenAI) -> None:
    model.script(error(500, "boom"), error(503, retry_after=0.5))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 500
    assert caught.value.message.endswith("boom")
    assert caught.value.type == "server_error"
    with pytest.raises(openai.InternalServerError) as caught:
        stream_chunks(client)
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "0.5"


def test_error_with_a_raw_body(model: ModelServer, client: OpenAI) -> None:
    model.script(error(502, body="<html>Bad gateway</html>"))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.response.text == "<html>Bad gateway</html>"


def test_cut_stream_raises_in_the_client(model: ModelServer, client: OpenAI) -> None:
    model.script(cut("one two three four", after=2))
    seen: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "one two"
    assert model.last_request().outcome == "cut"
    assert model.aborted == 0


def test_cut_tool_call_stream_and_cut_plain_body(model: ModelServer, client: OpenAI) -> None:
    model.script(tool_calls(call("f", fragments=["{", "}"]), cut_after=2), cut(after=1))
    with pytest.raises(openai.APIConnectionError):
        stream_chunks(client)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_malformed_chunk_raises(model: ModelServer, client: OpenAI) -> None:
    model.script(malformed("one two three", at=1), malformed())
    seen: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "one"
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_not_found_and_bad_requests(model: ModelServer) -> None:
    with httpx.Client() as http:
        missing = http.get(f"{model.base_url}/models")
        no_messages = http.post(f"{model.base_url}/chat/completions", json={"model": "m"})
        not_json = http.post(f"{model.base_url}/chat/completions", content=b"{nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert no_messages.status_code == 400
    assert not_json.status_code == 400
    assert [r.status for r in model.requests] == [404, 400, 400]
    assert model.bodies() == [{"model": "m"}, {}]


# --- timing -----------------------------------------------------------------------------------


def test_delay_before_and_between_chunks(model: ModelServer, client: OpenAI) -> None:
    model.script(text("a", delay_before=0.3), text("a b c", chunk_delay=0.1))
    started = time.monotonic()
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert 0.3 <= time.monotonic() - started < 2

    started = time.monotonic()
    arrivals = [
        time.monotonic() - started
        for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    ]
    # role, a, b, c, finish: four gaps of 0.1 s
    assert arrivals[-1] >= 0.4
    assert arrivals[-1] - arrivals[0] >= 0.3


def test_hang_until_the_client_gives_up(model: ModelServer, client: OpenAI) -> None:
    model.script(hang())
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(model="m", messages=MESSAGES)
    model.wait_for_aborted(1)
    assert model.last_request().outcome == "aborted"


def test_hang_after_some_chunks(model: ModelServer, client: OpenAI) -> None:
    model.script(hang(after=1, content="first second"))
    seen: list[str] = []
    with pytest.raises(openai.APITimeoutError):
        stream = client.with_options(timeout=0.3).chat.completions.create(
            model="m", messages=MESSAGES, stream=True
        )
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "first"
    model.wait_for_aborted(1)


def test_client_closing_a_stream_is_counted(model: ModelServer, client: OpenAI) -> None:
    model.script(text("a b c d e f g h", chunk_delay=0.2))
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    next(stream)
    stream.close()
    model.wait_for_aborted(1, timeout=2)
    assert model.aborted == 1
    assert model.last_request().outcome == "aborted"


def test_stop_ends_hanging_replies_and_leaves_nothing_running() -> None:
    before = {t for t in threading.enumerate() if t.name.startswith("model")}
    model = ModelServer(hang()).start()
    url = f"{model.base_url}/chat/completions"
    errors: list[BaseException] = []

    def post() -> None:
        try:
            httpx.post(url, json={"model": "m", "messages": []}, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    callers = [threading.Thread(target=post) for _ in range(3)]
    for caller in callers:
        caller.start()
    model.wait_for_requests(3)
    started = time.monotonic()
    model.stop()
    for caller in callers:
        caller.join(5)
    assert time.monotonic() - started < 3
    assert len(errors) == 3
    assert [r.outcome for r in model.requests] == ["stopped"] * 3
    assert {t for t in threading.enumerate() if t.name.startswith("model")} <= before
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, json={}, timeout=2)


# --- recording and responders -----------------------------------------------------------------


def test_recorder_sees_what_was_sent(model: ModelServer, client: OpenAI) -> None:
    before = time.monotonic()
    client.chat.completions.create(model="gpt-test", messages=MESSAGES, tools=TOOLS, temperature=0.2)

    request = model.last_request()
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer x"
    assert request.headers["content-type"] == "application/json"
    assert request.model == "gpt-test"
    assert request.messages == MESSAGES
    assert request.tools == TOOLS
    assert request.json["temperature"] == 0.2
    assert not request.stream
    assert before <= request.received_at <= time.monotonic()
    assert model.bodies() == [request.body]
    assert request.reply is not None and request.reply.content == DEFAULT_TEXT

    model.reset()
    assert model.requests == []


def test_any_path_prefix_is_served(model: ModelServer) -> None:
    with OpenAI(base_url=f"{model.url}/openai/v1", api_key="x", max_retries=0) as azure_style:
        azure_style.chat.completions.create(model="deployment", messages=MESSAGES)
    assert model.last_request().path == "/openai/v1/chat/completions"


def test_callable_responder(model: ModelServer, client: OpenAI) -> None:
    def echo(body: dict[str, Any]) -> Reply | str | None:
        last = body["messages"][-1]["content"]
        if last == "tool please":
            return tool_calls(call("get_time"))
        if last == "default":
            return None
        return f"echo: {last}"

    model.script(lambda body: text("scripted " + body["model"]))
    model.respond_with(echo)

    def ask(content: str, name: str = "m") -> Any:
        return client.chat.completions.create(model=name, messages=[{"role": "user", "content": content}])

    assert ask("x", name="first").choices[0].message.content == "scripted first"
    assert ask("hello").choices[0].message.content == "echo: hello"
    assert ask("tool please").choices[0].finish_reason == "tool_calls"
    assert ask("default").choices[0].message.content == DEFAULT_TEXT


def test_failing_responder_answers_500(model: ModelServer, client: OpenAI) -> None:
    model.respond_with(lambda body: body["no such key"])
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert [type(e) for e in model.responder_errors] == [KeyError]


def test_concurrent_streams_are_served_in_parallel(model: ModelServer, client: OpenAI) -> None:
    def by_question(body: dict[str, Any]) -> Reply:
        return text(f"answer {body['messages'][-1]['content']}", delay_before=1)

    model.respond_with(by_question)

    def ask(n: int) -> str:
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": str(n)}], stream=True
        )
        return streamed_text(list(stream))

    started = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(ask, range(50)))
    elapsed = time.monotonic() - started

    assert answers == [f"answer {n}" for n in range(50)]
    assert elapsed < 15  # one after another: 50 s
    assert model.peak_in_flight >= 45
    assert len(model.requests) == 50


def test_a_hundred_and_twenty_held_streams(model: ModelServer) -> None:
    model.respond_with(text("x y z", delay_before=0.5, chunk_delay=0.2))
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    limits = httpx.Limits(max_connections=200)

    with httpx.Client(limits=limits, timeout=20) as http:

        def fetch(_: int) -> str:
            return http.post(f"{model.base_url}/chat/completions", json=body).text

        started = time.monotonic()
        with ThreadPoolExecutor(120) as pool:
            replies = list(pool.map(fetch, range(120)))
    assert time.monotonic() - started < 20  # one after another: 180 s
    assert all(r.endswith("data: [DONE]\n\n") for r in replies)
    assert model.peak_in_flight >= 100
