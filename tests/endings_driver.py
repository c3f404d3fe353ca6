"""How the official Python SDK's helpers see a run end, one way per cell of the endings matrix
(tests/test_run_endings.py). It imports nothing but the SDK and the standard library, so that the
same cells run in-process on the current SDK and, as a script, under `openai==1.58.1` (the SDK
most Assistants code pinned), printing what it saw as JSON:

    python tests/endings_driver.py '{"base_url": ..., "api_key": ..., "cell": ..., "way": ...}'

A cell names how the run ends; the scripted model answers a thread by the cell named in its first
message (see `tests/test_run_endings.py`). Whatever happens, the helper must finish without
raising: its final run and messages are returned beside the same objects read back afterwards.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from openai import AssistantEventHandler, OpenAI

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TOOL_CELLS = {"cancel-args", "cancel-action", "submit"}


def dump(model: Any) -> Any:
    return model.model_dump(mode="json")


def final_messages(handler: AssistantEventHandler) -> list[Any]:
    """The messages the stream showed; none (the SDK raises for that) for a run that wrote none."""
    try:
        return [dump(m) for m in handler.get_final_messages()]
    except RuntimeError as exc:
        if str(exc) != "No messages found":
            raise
        return []


class Recorder(AssistantEventHandler):
    """Overrides every callback: records each, and acts where the cell says (a cancel, a nested
    submit). Several handlers (a nested submit's) record into one `seen`."""

    def __init__(self, client: OpenAI, cell: str, seen: dict[str, Any]) -> None:
        super().__init__()
        self.client, self.cell, self.seen = client, cell, seen

    def _note(self, name: str) -> None:
        self.seen["callbacks"].append(name)

    def _cancel_once(self) -> None:
        if not self.seen.get("cancelled") and self.current_run is not None:
            self.seen["cancelled"] = True
            run = self.current_run
            self.client.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)

    def on_event(self, event: Any) -> None:
        self.seen["events"].append(event.event)
        if event.event == "thread.run.requires_action" and self.cell == "submit":
            run = event.data
            outputs: Any = [
                {"tool_call_id": c.id, "output": "18C"}
                for c in run.required_action.submit_tool_outputs.tool_calls
            ]
            nested = Recorder(self.client, self.cell, self.seen)
            with self.client.beta.threads.runs.submit_tool_outputs_stream(
                thread_id=run.thread_id, run_id=run.id, tool_outputs=outputs, event_handler=nested
            ) as stream:
                stream.until_done()
            self.seen["nested"] = {
                "final_run": dump(stream.get_final_run()),
                "final_messages": final_messages(stream),
            }

    def on_run_step_created(self, run_step: Any) -> None:
        self._note("on_run_step_created")

    def on_run_step_delta(self, delta: Any, snapshot: Any) -> None:
        self._note("on_run_step_delta")

    def on_run_step_done(self, run_step: Any) -> None:
        self._note("on_run_step_done")
        self.seen["steps_done"].append(dump(run_step))

    def on_tool_call_created(self, tool_call: Any) -> None:
        self._note("on_tool_call_created")

    def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
        self._note("on_tool_call_delta")
        if self.cell == "cancel-args" and delta.function is not None and delta.function.arguments:
            self._cancel_once()

    def on_tool_call_done(self, tool_call: Any) -> None:
        self._note("on_tool_call_done")
        self.seen["tool_calls_done"].append(dump(tool_call))

    def on_message_created(self, message: Any) -> None:
        self._note("on_message_created")

    def on_message_delta(self, delta: Any, snapshot: Any) -> None:
        self._note("on_message_delta")

    def on_message_done(self, message: Any) -> None:
        self._note("on_message_done")
        self.seen["messages_done"].append(dump(message))

    def on_text_created(self, text: Any) -> None:
        self._note("on_text_created")

    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self._note("on_text_delta")
        self.seen["deltas"][-1] += delta.value or ""
        if self.cell == "cancel-text":
            self._cancel_once()

    def on_text_done(self, text: Any) -> None:
        self._note("on_text_done")
        self.seen["texts_done"].append(text.value)
        self.seen["deltas"].append("")

    def on_image_file_done(self, image_file: Any) -> None:
        self._note("on_image_file_done")

    def on_end(self) -> None:
        self._note("on_end")

    def on_timeout(self) -> None:
        self._note("on_timeout")

    def on_exception(self, exception: Exception) -> None:
        self.seen["exceptions"].append(repr(exception))


def stream(
    client: OpenAI, cell: str, assistant_id: str, thread_id: str, budget: int | None
) -> dict[str, Any]:
    seen: dict[str, Any] = {
        "events": [],
        "callbacks": [],
        "deltas": [""],
        "texts_done": [],
        "messages_done": [],
        "steps_done": [],
        "tool_calls_done": [],
        "exceptions": [],
    }
    with client.beta.threads.runs.stream(
        thread_id=thread_id,
        assistant_id=assistant_id,
        max_completion_tokens=budget,
        event_handler=Recorder(client, cell, seen),
    ) as handler:
        handler.until_done()
        seen["final_run"] = dump(handler.get_final_run())
        seen["final_messages"] = final_messages(handler)
    if cell == "cancel-action":
        client.beta.threads.runs.cancel(seen["final_run"]["id"], thread_id=thread_id)
    seen["deltas"] = [d for d in seen["deltas"] if d]
    return seen


def poll(client: OpenAI, cell: str, assistant_id: str, thread_id: str, budget: int | None) -> dict[str, Any]:
    seen: dict[str, Any] = {"exceptions": []}
    canceller = None
    if cell in ("cancel-text", "cancel-args"):
        canceller = threading.Thread(target=_cancel_mid_answer, args=(client, cell, thread_id, seen))
        canceller.start()
    try:
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread_id, assistant_id=assistant_id, max_completion_tokens=budget, poll_interval_ms=100
        )
    finally:
        if canceller is not None:
            canceller.join()
    if cell == "cancel-action":
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    if cell == "submit" and run.status == "requires_action":
        assert run.required_action is not None
        outputs: Any = [
            {"tool_call_id": c.id, "output": "18C"}
            for c in run.required_action.submit_tool_outputs.tool_calls
        ]
        run = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id, thread_id=thread_id, tool_outputs=outputs, poll_interval_ms=100
        )
    seen["final_run"] = dump(run)
    seen["final_messages"] = [dump(m) for m in client.beta.threads.messages.list(thread_id, run_id=run.id)]
    return seen


def _cancel_mid_answer(client: OpenAI, cell: str, thread_id: str, seen: dict[str, Any]) -> None:
    """Cancels the thread's run once the model is writing: its reply open (text), or the run
    in progress a moment (arguments, which nothing stores until the call is whole)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = client.beta.threads.runs.list(thread_id).data
        if runs and runs[0].status == "in_progress":
            if cell == "cancel-args":
                time.sleep(0.5)  # the scripted call stalls mid-arguments: any moment after is mid-call
                break
            if client.beta.threads.messages.list(thread_id, run_id=runs[0].id).data:
                break
        time.sleep(0.05)
    else:
        seen["exceptions"].append("the run never began to answer")
        return
    client.beta.threads.runs.cancel(runs[0].id, thread_id=thread_id)


def drive(client: OpenAI, cell: str, way: str) -> dict[str, Any]:
    """One cell, one way (`stream` or `poll`), on a new assistant and thread; what the helper
    returned and what storage says afterwards."""
    tools: Any = [WEATHER] if cell in TOOL_CELLS else []
    assistant_id = client.beta.assistants.create(model="gpt-test", tools=tools).id
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": f"cell:{cell}"}]).id
    budget = 256 if cell == "length" else None
    seen = (stream if way == "stream" else poll)(client, cell, assistant_id, thread_id, budget)
    run_id = seen["final_run"]["id"]
    seen["stored_run"] = dump(_settled(client, thread_id, run_id))
    seen["stored_messages"] = [dump(m) for m in client.beta.threads.messages.list(thread_id, order="asc")]
    seen["stored_steps"] = [
        dump(s) for s in client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc")
    ]
    seen["sdk"] = __import__("openai").__version__
    return seen


def _settled(client: OpenAI, thread_id: str, run_id: str) -> Any:
    """The run once it has stopped (a cancel asked for is done by its executor)."""
    deadline = time.monotonic() + 30
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status not in ("queued", "in_progress", "cancelling") or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


if __name__ == "__main__":
    given = json.loads(sys.argv[1])
    client = OpenAI(base_url=given["base_url"], api_key=given["api_key"], max_retries=0)
    print(json.dumps(drive(client, given["cell"], given["way"])))
