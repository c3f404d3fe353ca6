"""code_interpreter in runs, through the official SDK against the dev host, the scripted model
and the local sandbox (an IPython kernel under bubblewrap): the model's code runs, its outputs
are the step's and the model's, its images and files become Files, and the session is the
thread's (state kept between runs, ended with the thread)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from openai import AssistantEventHandler, BadRequestError, OpenAI

from tests.model_server import CODE_PREFIX, ModelServer, coder
from tests.support import (
    API_KEYS,
    ROOT,
    Azurite,
    DevHost,
    error_of,
    free_port,
    running_devhost,
    sdk_clients,
    text_of,
)

SDK_1_58 = str(ROOT / ".venv-openai-1.58" / "bin" / "python")


@pytest.fixture
def coding(model: ModelServer) -> ModelServer:
    model.respond_with(coder)
    return model


def ask(client: OpenAI, code: str, thread_id: str | None = None, **assistant: Any) -> tuple[Any, str]:
    assistant_id = client.beta.assistants.create(
        model="gpt-test", tools=[{"type": "code_interpreter"}], **assistant
    ).id
    if thread_id is None:
        thread_id = client.beta.threads.create().id
    client.beta.threads.messages.create(thread_id, role="user", content=CODE_PREFIX + code)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=100
    )
    return run, thread_id


def code_step(client: OpenAI, run: Any) -> Any:
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc").data
    (step,) = [s for s in steps if s.type == "tool_calls"]
    (tool_call,) = step.step_details.tool_calls  # type: ignore[union-attr]
    assert tool_call.type == "code_interpreter"
    return step, tool_call


def test_a_cell_runs_and_its_output_reaches_the_step_and_the_reply(
    client: OpenAI, coding: ModelServer
) -> None:
    run, thread_id = ask(client, "print(6 * 7)")
    assert run.status == "completed", run.last_error
    step, tool_call = code_step(client, run)
    assert step.status == "completed" and run.required_action is None
    assert tool_call.code_interpreter.input == "print(6 * 7)"
    assert [(o.type, o.logs) for o in tool_call.code_interpreter.outputs] == [("logs", "42\n")]
    reply = client.beta.threads.messages.list(thread_id, run_id=run.id).data[0]
    assert text_of(reply).startswith("The output was: 42")
    sent = coding.requests[0].body
    assert [t["function"]["name"] for t in sent["tools"]] == ["python"]


def test_state_is_kept_between_runs_and_a_failing_cell_is_output(client: OpenAI, coding: ModelServer) -> None:
    first, thread_id = ask(client, "x = 20")
    assert first.status == "completed"
    second, _ = ask(client, "print(x + 1)", thread_id)
    assert code_step(client, second)[1].code_interpreter.outputs[0].logs == "21\n"
    third, _ = ask(client, "1 / 0", thread_id)
    assert third.status == "completed"  # the model sees the traceback and may fix its code
    logs = code_step(client, third)[1].code_interpreter.outputs[0].logs
    assert "ZeroDivisionError" in logs


def test_input_files_plots_and_written_files(client: OpenAI, coding: ModelServer) -> None:
    data = client.files.create(file=("numbers.csv", b"n\n1\n2\n3\n"), purpose="assistants")
    code = (
        "import pandas as pd, matplotlib.pyplot as plt\n"
        "frame = pd.read_csv('/mnt/data/numbers.csv')\n"
        "print(frame.n.sum())\n"
        "frame.plot(); plt.show()\n"
        "frame.to_csv('/mnt/data/doubled.csv')"
    )
    run, thread_id = ask(client, code, tool_resources={"code_interpreter": {"file_ids": [data.id]}})
    assert run.status == "completed", run.last_error
    outputs = code_step(client, run)[1].code_interpreter.outputs
    assert [o.type for o in outputs] == ["logs", "image"]
    assert outputs[0].logs == "6\n"
    image = client.files.retrieve(outputs[1].image.file_id)
    assert image.purpose == "assistants_output"
    assert client.files.content(image.id).content.startswith(b"\x89PNG")
    made = [
        f for f in client.files.list(purpose="assistants_output") if f.filename == "/mnt/data/doubled.csv"
    ]
    assert made and b"n" in client.files.content(made[0].id).content
    # The reply shows the image first, and its link to the written file is a file_path annotation.
    reply = client.beta.threads.messages.list(thread_id).data[0]
    image_part, text_part = reply.content
    assert image_part.type == "image_file" and image_part.image_file.file_id == image.id
    assert text_part.type == "text" and "sandbox:/mnt/data/doubled.csv" in text_part.text.value
    (annotation,) = text_part.text.annotations
    assert annotation.type == "file_path" and annotation.file_path.file_id == made[0].id
    value = text_part.text.value
    assert value[annotation.start_index : annotation.end_index] == "sandbox:/mnt/data/doubled.csv"


def test_code_and_outputs_stream_as_deltas(client: OpenAI, coding: ModelServer) -> None:
    seen: dict[str, Any] = {"input": "", "logs": [], "done": []}

    class Handler(AssistantEventHandler):
        def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
            if delta.type == "code_interpreter" and delta.code_interpreter:
                seen["input"] += delta.code_interpreter.input or ""
                for output in delta.code_interpreter.outputs or []:
                    seen["logs"].append((output.index, output.type, getattr(output, "logs", None)))

        def on_tool_call_done(self, tool_call: Any) -> None:
            seen["done"].append(tool_call.code_interpreter.input)

    code = 'print("héllo \\"quoted\\"")\nprint(len("\\u00e9"))'
    assistant_id = client.beta.assistants.create(model="gpt-test", tools=[{"type": "code_interpreter"}]).id
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": CODE_PREFIX + code}]).id
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=Handler()
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "completed"
    assert seen["input"] == code and code in seen["done"]
    assert seen["logs"] == [(0, "logs", 'héllo "quoted"\n1\n')]
    stored = code_step(client, run)[1]
    assert stored.code_interpreter.input == code


def test_a_long_cell_times_out_or_is_cancelled(client: OpenAI, coding: ModelServer) -> None:
    assistant_id = client.beta.assistants.create(model="gpt-test", tools=[{"type": "code_interpreter"}]).id
    thread_id = client.beta.threads.create(
        messages=[{"role": "user", "content": CODE_PREFIX + "import time\ntime.sleep(600)"}]
    ).id
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    deadline = time.monotonic() + 30
    while not any(
        s.type == "tool_calls" for s in client.beta.threads.runs.steps.list(run.id, thread_id=thread_id)
    ):
        assert time.monotonic() < deadline, "the cell never started"
        time.sleep(0.1)
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    started = time.monotonic()
    while client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).status != "cancelled":
        assert time.monotonic() - started < 20, "the cancel did not interrupt the cell"
        time.sleep(0.1)
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data[0]
    assert step.status == "cancelled"
    # The session still answers after the interrupted cell.
    again, _ = ask(client, "print('still here')", thread_id)
    assert code_step(client, again)[1].code_interpreter.outputs[0].logs == "still here\n"


def test_deleting_the_thread_ends_its_session(client: OpenAI, coding: ModelServer) -> None:
    run, thread_id = ask(client, "secret = 1")
    assert run.status == "completed"
    client.beta.threads.delete(thread_id)
    # A new thread has a session of its own: nothing of the old one's state.
    other, _ = ask(client, "print('secret' in globals())")
    assert code_step(client, other)[1].code_interpreter.outputs[0].logs == "False\n"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("kind", ["azure", "openai"])
def test_the_js_sdk_streams_code_and_images(kind: str, devhost: DevHost, coding: ModelServer) -> None:
    code = 'import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()\nprint("drawn")'
    given = {
        "apiUrl": devhost.api_url,
        "azureEndpoint": devhost.base_url,
        "apiKey": API_KEYS[0],
        "kind": kind,
        "code": code,
    }
    result = subprocess.run(
        ["node", str(ROOT / "tests" / "js" / "tools" / "code_interpreter.mjs"), json.dumps(given)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout)
    assert seen["run"]["status"] == "completed" and seen["polled"] == "completed"
    assert seen["created"] == ["code_interpreter"] and seen["input"] == code and seen["done"] == [code]
    assert sorted(seen["outputs"]) == [[0, "logs"], [1, "image"]]
    (message,) = seen["messages"]
    assert [p["type"] for p in message["content"]] == ["image_file", "text"]
    assert seen["texts"] == [message["content"][1]["text"]["value"]]
    assert seen["stored"][0]["content"] == message["content"]


@pytest.fixture(scope="module")
def quick_host(azurite: Azurite, model_server: ModelServer) -> Iterator[DevHost]:
    """A dev host whose cells may run 2 seconds."""
    with running_devhost(
        azurite.connection_string,
        ASSISTANTS_MODEL_BASE_URL=model_server.base_url,
        ASSISTANTS_SANDBOX_TIMEOUT_SECONDS="2",
    ) as host:
        yield host


@pytest.fixture(scope="module")
def unreachable_host(azurite: Azurite, model_server: ModelServer) -> Iterator[DevHost]:
    """A dev host whose sandbox is a session pool nobody serves."""
    with running_devhost(
        azurite.connection_string,
        ASSISTANTS_MODEL_BASE_URL=model_server.base_url,
        ASSISTANTS_SANDBOX="dynamic_sessions",
        ASSISTANTS_SANDBOX_ENDPOINT=f"http://127.0.0.1:{free_port()}/pool",
    ) as host:
        yield host


def test_a_cell_past_the_time_limit_is_interrupted_and_says_so(
    quick_host: DevHost, coding: ModelServer
) -> None:
    client = sdk_clients(quick_host)["openai"]
    run, _ = ask(client, "import time\nprint('before', flush=True)\ntime.sleep(30)")
    assert run.status == "completed", run.last_error
    logs = code_step(client, run)[1].code_interpreter.outputs[0].logs
    assert logs.startswith("before") and "timed out after 2 seconds" in logs
    assert "interrupted" in coding.requests[-1].body["messages"][-1]["content"]


def test_a_sandbox_that_cannot_be_reached_fails_the_run(
    unreachable_host: DevHost, coding: ModelServer
) -> None:
    client = sdk_clients(unreachable_host)["openai"]
    run, _ = ask(client, "print(1)")
    assert run.status == "failed" and run.last_error is not None
    assert run.last_error.code == "server_error" and "code interpreter" in run.last_error.message
    step = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data[0]
    assert step.status == "failed" and step.last_error is not None


def test_tool_choice_forces_the_code_interpreter(client: OpenAI, coding: ModelServer) -> None:
    assistant_id = client.beta.assistants.create(model="gpt-test", tools=[{"type": "code_interpreter"}]).id
    thread_id = client.beta.threads.create(
        messages=[{"role": "user", "content": CODE_PREFIX + "print(1)"}]
    ).id
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, tool_choice={"type": "code_interpreter"}
    )
    assert run.status == "completed"
    first, second = coding.requests[-2:]
    assert first.body["tool_choice"] == {"type": "function", "function": {"name": "python"}}
    assert second.body.get("tool_choice") == "auto"  # forced on the first call only
    with pytest.raises(BadRequestError) as refused:
        client.beta.threads.runs.create(
            thread_id=thread_id,
            assistant_id=assistant_id,
            tools=[
                {"type": "code_interpreter"},
                {"type": "function", "function": {"name": "python", "parameters": {"type": "object"}}},
            ],
        )
    assert error_of(refused.value)["param"] == "tools[1].function.name"


def test_the_pinned_python_sdk_streams_code_and_outputs(devhost: DevHost, coding: ModelServer) -> None:
    """`openai==1.58.1` (its own venv) streams a code_interpreter run through its event handler."""
    script = (
        "import json, sys\n"
        "from openai import AssistantEventHandler, BadRequestError, OpenAI\n"
        "client = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)\n"
        "seen = {'input': '', 'logs': '', 'done': []}\n"
        "class H(AssistantEventHandler):\n"
        "    def on_tool_call_delta(self, delta, snapshot):\n"
        "        ci = delta.code_interpreter\n"
        "        seen['input'] += (ci.input or '') if ci else ''\n"
        "        for o in (ci.outputs or []) if ci else []:\n"
        "            seen['logs'] += o.logs or ''\n"
        "    def on_tool_call_done(self, tool_call):\n"
        "        seen['done'].append(tool_call.type)\n"
        "a = client.beta.assistants.create(model='gpt-test', tools=[{'type': 'code_interpreter'}])\n"
        "t = client.beta.threads.create(messages=[{'role': 'user', 'content': sys.argv[3]}])\n"
        "with client.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id, event_handler=H()) as s:\n"
        "    s.until_done()\n"
        "    seen['status'] = s.get_final_run().status\n"
        "    seen['text'] = s.get_final_messages()[-1].content[0].text.value\n"
        "print(json.dumps(seen))\n"
    )
    result = subprocess.run(
        [
            str(ROOT / ".venv-openai-1.58" / "bin" / "python"),
            "-c",
            script,
            devhost.api_url,
            API_KEYS[0],
            CODE_PREFIX + "print(7 * 6)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout)
    assert seen["status"] == "completed" and seen["input"] == "print(7 * 6)" and seen["logs"] == "42\n"
    assert "code_interpreter" in seen["done"] and seen["text"].startswith("The output was: 42")


def test_a_file_attached_for_the_code_interpreter_is_in_mnt_data(client: OpenAI, coding: ModelServer) -> None:
    attached = client.files.create(file=("words.txt", b"alpha beta"), purpose="assistants")
    assistant_id = client.beta.assistants.create(model="gpt-test", tools=[{"type": "code_interpreter"}]).id
    code = "print(open('/mnt/data/words.txt').read().split())"
    message: Any = {
        "role": "user",
        "content": CODE_PREFIX + code,
        "attachments": [{"file_id": attached.id, "tools": [{"type": "code_interpreter"}]}],
    }
    thread_id = client.beta.threads.create(messages=[message]).id
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
    assert run.status == "completed", run.last_error
    assert code_step(client, run)[1].code_interpreter.outputs[0].logs == "['alpha', 'beta']\n"
    offered = coding.requests[-2].body["tools"][0]["function"]["description"]
    assert f"/mnt/data/words.txt ({attached.id})" in offered
