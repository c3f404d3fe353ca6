"""Every way a run ends, through every helper of the official SDKs: each must finish without
raising, and what it ends with must equal what storage says afterwards. A message cut short keeps
the text written before the cut; a tool call cut short is never asked for and keeps none of its
arguments; a stream has exactly one end and then `done`.

The matrix: the cells of ENDINGS (how the run ends) x the ways of each SDK -- Python `runs.stream`
with an `AssistantEventHandler` that overrides every callback and Python `create_and_poll`
(tests/endings_driver.py, on both clients and, streamed, on `openai==1.58.1` too), JS `runs.stream`
with a listener on every event and JS `createAndPoll` (tests/js/endings/driver.mjs). The scripted
model answers each thread by the cell named in its first message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.endings_driver import WEATHER, drive
from tests.model_server import ModelServer, Reply, call, cut, error, hang, text, tool_calls
from tests.support import API_KEYS, ROOT, DevHost, sdk_clients, sse_events

SDK_1_58 = ROOT / ".venv-openai-1.58" / "bin" / "python"
LONG_ARGUMENTS = json.dumps({"city": "Paris, " + "Île-de-France, " * 20 + "France"})

# cell -> the run's status as stored at the end
ENDINGS = {
    "completed": "completed",
    "length": "incomplete",  # max_completion_tokens (256) stops the answer
    "cancel-text": "cancelled",  # cancelled while text streams
    "cancel-args": "cancelled",  # cancelled while a call's arguments stream
    "cancel-action": "cancelled",  # cancelled in requires_action
    "expire-text": "expired",  # past its deadline while text streams (a host whose runs expire in 3 s)
    "cut": "failed",  # the model's stream breaks mid-answer
    "fail-first": "failed",  # the model refuses before any text
    "submit": "completed",  # requires_action, then outputs submitted by a nested submit stream
}
CUT_TEXT = {"cancel-text": "run_cancelled", "expire-text": "run_expired", "cut": "run_failed"}
SILENCE = "Partial words then a long silence."
FULL_TEXT = {"cancel-text": SILENCE, "expire-text": SILENCE, "cut": "Partial words then a broken stream."}
STREAM_ENDS = {
    f"thread.run.{s}"
    for s in ("requires_action", "completed", "incomplete", "failed", "cancelled", "expired")
}


def reply_for(body: dict[str, Any]) -> Reply | None:
    """The scripted answer for a cell, by the thread's first message (`cell:<name>`)."""
    messages = body["messages"]
    if messages[-1]["role"] == "tool":
        return text(f"Done: {messages[-1]['content']}")
    cell = next((m["content"] for m in messages if m["role"] == "user"), "").removeprefix("cell:")
    paris = call("get_weather", LONG_ARGUMENTS)
    replies = {
        "completed": text("One two three."),
        "length": text(["w "] * 300),
        "cancel-text": hang(after=3, content=SILENCE),
        "cancel-args": tool_calls(paris, stall_after=4),
        "cancel-action": tool_calls(paris),
        "expire-text": hang(after=3, content=SILENCE),
        "cut": cut(FULL_TEXT["cut"], after=3),
        "fail-first": error(400, "This model's maximum context length is 10 tokens."),
        "submit": tool_calls(paris),
    }
    return replies.get(cell)


@pytest.fixture
def scripted(model: ModelServer) -> ModelServer:
    model.respond_with(reply_for)
    return model


def host_for(cell: str, devhost: DevHost, expiring_host: DevHost) -> DevHost:
    return expiring_host if cell == "expire-text" else devhost


def check(cell: str, way: str, seen: dict[str, Any]) -> None:
    """What every cell must show, whichever SDK and helper saw it."""
    assert seen["exceptions"] == [], seen["exceptions"]
    stored_run, stored_steps = seen["stored_run"], seen["stored_steps"]
    assert stored_run["status"] == ENDINGS[cell], (stored_run["status"], stored_run["last_error"])
    final_run = seen.get("nested", seen)["final_run"]
    if cell == "cancel-action":
        assert final_run["status"] == "requires_action"
        assert stored_steps[-1]["type"] == "tool_calls" and stored_steps[-1]["status"] == "cancelled"
    else:
        assert final_run == stored_run  # what the helper ended with is what a later GET says
    stored = {m["id"]: m for m in seen["stored_messages"]}
    finals = seen["final_messages"] + seen.get("nested", {}).get("final_messages", [])
    for message in finals:
        assert message == stored[message["id"]]
    replies = [m for m in seen["stored_messages"] if m["role"] == "assistant"]
    if way == "stream":
        assert sorted(m["id"] for m in finals) == sorted(m["id"] for m in replies)
        ends = [e for e in seen["events"] if e in STREAM_ENDS]
        assert len(ends) == (2 if cell == "submit" else 1), seen["events"]
        assert seen["callbacks"].count("on_end") == (2 if cell == "submit" else 1)
    assert all(s["status"] != "in_progress" for s in stored_steps)
    if cell in CUT_TEXT:
        (reply,) = replies
        assert reply["status"] == "incomplete"
        assert reply["incomplete_details"] == {"reason": CUT_TEXT[cell]}
        written = reply["content"][0]["text"]["value"]
        assert written and FULL_TEXT[cell].startswith(written)
        if way == "stream":
            assert seen["deltas"] == [written]  # the text the stream showed is the text kept
            assert seen["texts_done"] == [written]
    if cell == "length":
        (reply,) = replies
        assert reply["status"] == "incomplete" and reply["incomplete_details"] == {"reason": "max_tokens"}
        assert reply["content"][0]["text"]["value"] == "w " * 256
    if cell == "fail-first":
        assert replies == [] and stored_steps == []
        assert stored_run["last_error"]["code"] == "invalid_prompt"
    if cell == "cancel-args":
        assert "thread.run.requires_action" not in seen.get("events", [])
        for step in stored_steps:  # a call shown while its arguments streamed: kept, never asked for
            assert step["type"] == "tool_calls" and step["status"] == "cancelled"
            assert [c["function"]["arguments"] for c in step["step_details"]["tool_calls"]] == [""]
        if way == "stream":
            assert len(stored_steps) == 1
            # (the Python helper calls on_tool_call_done again at the run's end: the SDK's way)
            assert {c["id"] for c in seen["tool_calls_done"]} == {
                c["id"] for c in stored_steps[0]["step_details"]["tool_calls"]
            }
    if cell == "submit":
        assert [m["content"][0]["text"]["value"] for m in replies] == ["Done: 18C"]
        assert [(s["type"], s["status"]) for s in stored_steps] == [
            ("tool_calls", "completed"),
            ("message_creation", "completed"),
        ]


@pytest.mark.parametrize("way", ["stream", "poll"])
@pytest.mark.parametrize("cell", list(ENDINGS))
@pytest.mark.parametrize("kind", ["azure", "openai"])
def test_the_python_sdk_helpers_finish_on_every_ending(
    kind: str, cell: str, way: str, devhost: DevHost, expiring_host: DevHost, scripted: ModelServer
) -> None:
    client: OpenAI = sdk_clients(host_for(cell, devhost, expiring_host))[kind]
    check(cell, way, drive(client, cell, way))


@pytest.mark.parametrize("cell", list(ENDINGS))
def test_the_pinned_python_sdk_streams_every_ending(
    cell: str, devhost: DevHost, expiring_host: DevHost, scripted: ModelServer
) -> None:
    """`openai==1.58.1`, in a venv of its own (make setup builds it), streaming each cell."""
    assert SDK_1_58.exists(), f"{SDK_1_58} is missing: `make setup` builds it"
    given = {"base_url": host_for(cell, devhost, expiring_host).api_url, "api_key": API_KEYS[0]}
    result = subprocess.run(
        [
            str(SDK_1_58),
            str(ROOT / "tests" / "endings_driver.py"),
            json.dumps({**given, "cell": cell, "way": "stream"}),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout)
    assert seen["sdk"] == "1.58.1"
    check(cell, "stream", seen)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("way", ["stream", "poll"])
@pytest.mark.parametrize("cell", list(ENDINGS))
@pytest.mark.parametrize("kind", ["azure", "openai"])
def test_the_js_sdk_helpers_finish_on_every_ending(
    kind: str, cell: str, way: str, devhost: DevHost, expiring_host: DevHost, scripted: ModelServer
) -> None:
    host = host_for(cell, devhost, expiring_host)
    given = {
        "apiUrl": host.api_url,
        "azureEndpoint": host.base_url,
        "apiKey": API_KEYS[0],
        "kind": kind,
        "cell": cell,
        "way": way,
    }
    result = subprocess.run(
        ["node", str(ROOT / "tests" / "js" / "endings" / "driver.mjs"), json.dumps(given)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    check(cell, way, json.loads(result.stdout))


@pytest.mark.parametrize("cell", ["cancel-text", "cancel-args", "expire-text", "cut", "length"])
def test_every_stream_ends_once_and_its_snapshots_match_its_deltas(
    cell: str, devhost: DevHost, expiring_host: DevHost, scripted: ModelServer
) -> None:
    """The SSE bytes: one terminal run event, then `done`; each message or step object sent after
    deltas holds, at the indexes the deltas used, what they added up to (a cut call: no
    arguments)."""
    host = host_for(cell, devhost, expiring_host)
    with httpx.Client(base_url=host.api_url, headers={"api-key": API_KEYS[0]}, timeout=60) as http:
        assistant_id = http.post("/assistants", json={"model": "m", "tools": [WEATHER]}).json()["id"]
        thread = {"messages": [{"role": "user", "content": f"cell:{cell}"}]}
        thread_id = http.post("/threads", json=thread).json()["id"]
        body: dict[str, Any] = {"assistant_id": assistant_id, "stream": True}
        if cell == "length":
            body["max_completion_tokens"] = 256
        events: list[tuple[str, Any]] = []
        asked = False
        with http.stream("POST", f"/threads/{thread_id}/runs", json=body) as response:
            for name, data in sse_events(response.iter_lines()):
                events.append((name, data))
                if cell.startswith("cancel") and name.endswith(".delta") and not asked:
                    asked = True
                    http.post(f"/threads/{thread_id}/runs/{events[0][1]['id']}/cancel")
    names = [n for n, _ in events]
    assert names[-1] == "done"
    assert sum(n in STREAM_ENDS for n in names) == 1 and names[-2] in STREAM_ENDS, names
    texts: dict[str, str] = {}
    arguments: dict[tuple[str, int], str] = {}
    for name, data in events:
        if name == "thread.message.delta":
            for part in data["delta"]["content"]:
                assert part["index"] == 0
                texts[data["id"]] = texts.get(data["id"], "") + part["text"]["value"]
        elif name == "thread.run.step.delta":
            for tool_call in data["delta"]["step_details"]["tool_calls"]:
                key = (data["id"], tool_call["index"])
                arguments[key] = arguments.get(key, "") + tool_call["function"].get("arguments", "")
        elif name.startswith("thread.message.") and data["id"] in texts:
            assert data["content"][0]["text"]["value"] == texts[data["id"]], name
        elif name.startswith("thread.run.step.") and data["type"] == "tool_calls":
            calls = data["step_details"]["tool_calls"]
            for (step_id, index), sent in arguments.items():
                if step_id == data["id"] and data["status"] != "in_progress":
                    assert calls[index]["function"]["arguments"] in (sent, ""), name
    if cell in ("cancel-text", "expire-text", "cut", "length"):
        assert texts and all(texts.values())
    if cell == "cancel-args":
        assert arguments and all(arguments.values())


def test_a_stream_whose_client_hung_up_keeps_the_same_text(devhost: DevHost, scripted: ModelServer) -> None:
    """The text kept does not depend on the stream's client: one that hangs up mid-answer leaves
    a run whose cut message holds what the model wrote, as it would have been streamed."""
    with httpx.Client(base_url=devhost.api_url, headers={"api-key": API_KEYS[0]}, timeout=60) as http:
        assistant_id = http.post("/assistants", json={"model": "m"}).json()["id"]
        thread = {"messages": [{"role": "user", "content": "cell:cancel-text"}]}
        thread_id = http.post("/threads", json=thread).json()["id"]
        body = {"assistant_id": assistant_id, "stream": True}
        with http.stream("POST", f"/threads/{thread_id}/runs", json=body) as response:
            events = sse_events(response.iter_lines())
            run_id = next(events)[1]["id"]
            sent = ""
            for name, data in events:
                if name == "thread.message.delta":
                    sent += data["delta"]["content"][0]["text"]["value"]
                if sent == "Partial words then":  # all the model writes before it falls silent
                    break
        # The client is gone; the run goes on until it is cancelled.
        assert http.post(f"/threads/{thread_id}/runs/{run_id}/cancel").status_code == 200
        deadline = time.monotonic() + 30
        while http.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"] != "cancelled":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        (reply,) = http.get(f"/threads/{thread_id}/messages", params={"run_id": run_id}).json()["data"]
    assert reply["status"] == "incomplete" and reply["incomplete_details"] == {"reason": "run_cancelled"}
    assert reply["content"][0]["text"]["value"] == sent
