# mypy: disable-error-code="union-attr,list-item,misc,index"
"""file_search in runs, through the official SDKs against the dev host, real vector stores
(ingested by the queue trigger, searched in LanceDB on Azurite) and the scripted model, which
searches with the function it is offered and answers citing the first result's marker: the
step and its results, the citation annotations (streamed and stored), the stores a run searches
(the assistant's, the thread's, made from attachments or a helper), and the options."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from openai import AssistantEventHandler, OpenAI

from tests.documents import pdf
from tests.model_server import ModelServer, error, hang, searching
from tests.support import API_KEYS, ROOT, DevHost, in_process_store, wait_until

DOCUMENTS = {
    "bees.txt": "Honey bees communicate the location of flowers with a waggle dance in the hive.",
    "tides.txt": "Ocean tides are caused by the gravitational pull of the moon on the oceans of Earth.",
    "volcano.md": "# Volcanoes\nMagma rises through the crust and erupts as lava from a volcano's vent.",
}
CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


@pytest.fixture
def searcher(model: ModelServer) -> ModelServer:
    model.respond_with(searching)
    return model


def chats(model: ModelServer) -> list[Any]:
    """The chat-completions requests the model was sent (its embeddings requests aside)."""
    return [r for r in model.requests if r.path.endswith("/chat/completions")]


def upload(client: OpenAI, name: str) -> str:
    return client.files.create(file=(name, DOCUMENTS[name].encode()), purpose="assistants").id


def store_of(client: OpenAI, *names: str) -> tuple[str, dict[str, str]]:
    files = {name: upload(client, name) for name in names}
    store_id = client.vector_stores.create(file_ids=list(files.values())).id
    wait_until(lambda: client.vector_stores.retrieve(store_id).file_counts.in_progress == 0, 60, "ingestion")
    assert client.vector_stores.retrieve(store_id).file_counts.completed == len(names)
    return store_id, files


def searching_assistant(client: OpenAI, store_id: str | None = None, **tool: Any) -> str:
    resources: Any = {"file_search": {"vector_store_ids": [store_id]}} if store_id else None
    return client.beta.assistants.create(
        model="gpt-test", tools=[{"type": "file_search", **tool}], tool_resources=resources
    ).id


def ask(client: OpenAI, assistant_id: str, question: str, **run: Any) -> tuple[Any, Any]:
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": question}]).id
    done = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=100, **run
    )
    assert done.status == "completed", done.last_error
    reply = client.beta.threads.messages.list(thread_id, run_id=done.id).data[0]
    return done, reply


def search_step(client: OpenAI, run: Any, **include: Any) -> Any:
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc", **include).data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    (call,) = steps[0].step_details.tool_calls
    assert call.type == "file_search"
    return steps[0], call


def test_a_run_searches_the_assistants_store_and_cites_the_file(
    client: OpenAI, searcher: ModelServer
) -> None:
    store_id, files = store_of(client, "bees.txt", "tides.txt", "volcano.md")
    run, reply = ask(client, searching_assistant(client, store_id), "What causes ocean tides and the moon?")
    step, call = search_step(client, run)
    assert step.status == "completed" and step.usage is not None and step.usage.total_tokens > 0
    results = call.file_search.results
    assert results[0].file_id == files["tides.txt"] and results[0].file_name == "tides.txt"
    assert all(r.content is None for r in results)  # content only when asked for
    ranking = call.file_search.ranking_options
    assert (ranking.ranker, ranking.score_threshold) == ("default_2024_08_21", 0.0)
    text = reply.content[0].text
    assert text.value.startswith("According to the files, Ocean tides are caused")
    (annotation,) = text.annotations
    assert annotation.type == "file_citation" and annotation.file_citation.file_id == files["tides.txt"]
    assert text.value[annotation.start_index : annotation.end_index] == annotation.text
    assert annotation.text.startswith("【") and annotation.text.endswith("†tides.txt】")
    # What the model was given: the search function, then the results with their markers.
    first, second = chats(searcher)[-2:]
    assert [t["function"]["name"] for t in first.body["tools"]] == ["file_search"]
    assert annotation.text in second.body["messages"][-1]["content"]
    assert run.usage.total_tokens == sum(
        s.usage.total_tokens for s in client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id)
    )


def test_include_shows_the_results_content(client: OpenAI, searcher: ModelServer) -> None:
    store_id, _ = store_of(client, "bees.txt")
    run, _ = ask(client, searching_assistant(client, store_id), "How do bees dance?")
    _, call = search_step(client, run, include=[CONTENT])
    assert call.file_search.results[0].content[0].text == DOCUMENTS["bees.txt"]
    step_id = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data[-1].id
    one = client.beta.threads.runs.steps.retrieve(
        step_id, thread_id=run.thread_id, run_id=run.id, include=[CONTENT]
    )
    assert one.step_details.tool_calls[0].file_search.results[0].content


def test_attachments_make_the_threads_store_and_both_stores_are_searched(
    client: OpenAI, searcher: ModelServer
) -> None:
    assistant_store, _ = store_of(client, "volcano.md")
    attached = upload(client, "bees.txt")
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "How do honey bees dance?",
                "attachments": [{"file_id": attached, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    (thread_store,) = thread.tool_resources.file_search.vector_store_ids
    store = client.vector_stores.retrieve(thread_store)
    assert store.expires_after is not None and store.expires_after.days == 7
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=searching_assistant(client, assistant_store), poll_interval_ms=100
    )
    assert run.status == "completed", run.last_error
    _, call = search_step(client, run)
    found = {r.file_name for r in call.file_search.results}
    assert found == {"bees.txt", "volcano.md"} and call.file_search.results[0].file_name == "bees.txt"
    # A later message's attachment joins the same store.
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="And tides?",
        attachments=[{"file_id": upload(client, "tides.txt"), "tools": [{"type": "file_search"}]}],
    )
    assert client.beta.threads.retrieve(thread.id).tool_resources == thread.tool_resources
    assert client.vector_stores.retrieve(thread_store).file_counts.total == 2


def test_the_vector_stores_helper_makes_a_store(client: OpenAI, searcher: ModelServer) -> None:
    file_id = upload(client, "tides.txt")
    assistant = client.beta.assistants.create(
        model="gpt-test",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [file_id], "metadata": {"k": "v"}}]}},
    )
    (store_id,) = assistant.tool_resources.file_search.vector_store_ids
    assert client.beta.assistants.retrieve(assistant.id) == assistant
    wait_until(lambda: client.vector_stores.retrieve(store_id).file_counts.completed == 1, 30, "ingestion")
    assert client.vector_stores.retrieve(store_id).metadata == {"k": "v"}
    _, reply = ask(client, assistant.id, "moon and tides")
    assert reply.content[0].text.annotations[0].file_citation.file_id == file_id
    with pytest.raises(Exception) as refused:
        client.beta.assistants.update(
            assistant.id, tool_resources={"file_search": {"vector_store_ids": ["vs_nope"]}}
        )
    assert getattr(refused.value, "status_code", None) == 400


def test_options_forcing_and_limits(client: OpenAI, searcher: ModelServer) -> None:
    store_id, _ = store_of(client, "bees.txt", "tides.txt", "volcano.md")
    assistant_id = searching_assistant(
        client, store_id, file_search={"max_num_results": 1, "ranking_options": {"score_threshold": 0.0}}
    )
    run, _ = ask(client, assistant_id, "magma and lava", tool_choice={"type": "file_search"})
    _, call = search_step(client, run)
    assert len(call.file_search.results) == 1 and call.file_search.results[0].file_name == "volcano.md"
    first = chats(searcher)[-2].body
    assert first["tool_choice"] == {"type": "function", "function": {"name": "file_search"}}
    strict = searching_assistant(client, store_id, file_search={"ranking_options": {"score_threshold": 1.0}})
    run, _ = ask(client, strict, "magma and lava")
    kept = search_step(client, run)[1].file_search.results
    assert kept and all(r.score >= 1.0 for r in kept) and len(kept) < len(DOCUMENTS)  # below: dropped


def test_no_store_no_search(client: OpenAI, searcher: ModelServer) -> None:
    run, _ = ask(client, searching_assistant(client), "anything?")
    assert "tools" not in chats(searcher)[-1].body  # nothing to search: nothing offered
    assert [s.type for s in client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id)] == [
        "message_creation"
    ]


def test_a_streamed_search_through_the_event_handler(client: OpenAI, searcher: ModelServer) -> None:
    store_id, files = store_of(client, "bees.txt", "tides.txt")
    seen: dict[str, Any] = {"created": [], "steps": [], "annotations": [], "deltas": ""}

    class Handler(AssistantEventHandler):
        def on_tool_call_created(self, tool_call: Any) -> None:
            seen["created"].append(tool_call.type)

        def on_run_step_done(self, run_step: Any) -> None:
            seen["steps"].append(run_step)

        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            seen["deltas"] += delta.value or ""
            seen["annotations"] += delta.annotations or []

    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": "bees waggle dance"}]).id
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=searching_assistant(client, store_id), event_handler=Handler()
    ) as stream:
        stream.until_done()
        final = stream.get_final_messages()
    assert seen["created"] == ["file_search"]
    results = seen["steps"][0].step_details.tool_calls[0].file_search.results
    assert results[0].file_id == files["bees.txt"]
    (annotation,) = seen["annotations"]
    assert annotation.file_citation.file_id == files["bees.txt"]
    stored = client.beta.threads.messages.list(thread_id).data[0]
    assert final[-1].content == stored.content and stored.content[0].text.value == seen["deltas"]


def test_the_citations_loop_of_openais_guide(client: OpenAI, searcher: ModelServer) -> None:
    """As OpenAI's file search guide prints a reply's citations, run as written."""
    store_id, _ = store_of(client, "tides.txt")
    _, message = ask(client, searching_assistant(client, store_id), "tides")
    message_content = message.content[0].text
    annotations = message_content.annotations
    citations = []
    for index, annotation in enumerate(annotations):
        message_content.value = message_content.value.replace(annotation.text, f"[{index}]")
        if file_citation := getattr(annotation, "file_citation", None):
            cited_file = client.files.retrieve(file_citation.file_id)
            citations.append(f"[{index}] {cited_file.filename}")
    assert message_content.value.endswith("[0].") and citations == ["[0] tides.txt"]


def test_the_readmes_file_search_example_runs_as_written(
    client: OpenAI, searcher: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## File search") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    handbook = ["Leave", "Employees take 25 days of leave each year, booked with their manager."]
    (tmp_path / "handbook.pdf").write_bytes(pdf(["\n".join(handbook)]))
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(match.group(1), "README.md", "exec"), {"__name__": "readme", "client": client})
    assert printed.getvalue().splitlines() == [
        "[0] handbook.pdf",
        "According to the files, Leave [0].",
    ]


def test_the_pinned_python_sdk_streams_a_search(
    devhost: DevHost, client: OpenAI, searcher: ModelServer
) -> None:
    store_id, files = store_of(client, "bees.txt")
    assistant_id = searching_assistant(client, store_id)
    script = (
        "import json, sys\n"
        "from openai import AssistantEventHandler, OpenAI\n"
        "client = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)\n"
        "seen = {'created': [], 'annotations': []}\n"
        "class H(AssistantEventHandler):\n"
        "    def on_tool_call_created(self, call):\n"
        "        seen['created'].append(call.type)\n"
        "    def on_text_delta(self, delta, snapshot):\n"
        "        seen['annotations'] += [a.file_citation.file_id for a in delta.annotations or []]\n"
        "t = client.beta.threads.create(messages=[{'role': 'user', 'content': 'bees'}])\n"
        "a = sys.argv[3]\n"
        "with client.beta.threads.runs.stream(thread_id=t.id, assistant_id=a, event_handler=H()) as s:\n"
        "    s.until_done()\n"
        "    seen['status'] = s.get_final_run().status\n"
        "print(json.dumps(seen))\n"
    )
    python = str(ROOT / ".venv-openai-1.58" / "bin" / "python")
    result = subprocess.run(
        [python, "-c", script, devhost.api_url, API_KEYS[0], assistant_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout)
    assert seen == {"created": ["file_search"], "annotations": [files["bees.txt"]], "status": "completed"}


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("kind", ["azure", "openai"])
def test_the_js_sdk_streams_a_search(
    kind: str, devhost: DevHost, client: OpenAI, searcher: ModelServer
) -> None:
    store_id, files = store_of(client, "tides.txt")
    given = {
        "apiUrl": devhost.api_url,
        "azureEndpoint": devhost.base_url,
        "apiKey": API_KEYS[0],
        "kind": kind,
        "assistantId": searching_assistant(client, store_id),
    }
    result = subprocess.run(
        ["node", str(ROOT / "tests" / "js" / "tools" / "file_search.mjs"), json.dumps(given)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout)
    assert seen["created"] == ["file_search"]
    assert seen["stepResults"][0]["file_id"] == files["tides.txt"]
    (annotation,) = seen["textDone"]["annotations"]
    assert annotation["file_citation"]["file_id"] == files["tides.txt"]
    stored = seen["stored"]["content"][0]["text"]
    assert stored["value"] == seen["textDone"]["value"]
    assert [a["file_citation"]["file_id"] for a in stored["annotations"]] == [files["tides.txt"]]


def test_a_run_waits_for_the_threads_files_and_a_cancel_ends_the_wait(
    client: OpenAI, searcher: ModelServer
) -> None:
    """Before its first model call a run waits (up to 60 s) for its thread store's files; a
    cancel meanwhile ends it at once, and the model is never called."""
    searcher.script_embeddings(hang())  # the attached file's ingestion stalls
    attached = upload(client, "bees.txt")
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "bees?",
                "attachments": [{"file_id": attached, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=searching_assistant(client))
    wait_until(
        lambda: client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "in_progress",
        30,
        "the run to start waiting",
    )
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    wait_until(
        lambda: client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "cancelled",
        10,
        "the cancel to end the wait",
    )
    assert chats(searcher) == []


def test_a_search_that_fails_fails_the_step_and_the_run(client: OpenAI, searcher: ModelServer) -> None:
    store_id, _ = store_of(client, "bees.txt")
    searcher.script_embeddings(*[error(500)] * 4)  # the query's embedding fails past its retries
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": "bees?"}]).id
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=searching_assistant(client, store_id), poll_interval_ms=100
    )
    assert run.status == "failed" and run.last_error.code == "server_error"
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.type == "tool_calls" and step.status == "failed" and step.last_error is not None


def test_an_expired_store_fails_the_run(devhost: DevHost, client: OpenAI, searcher: ModelServer) -> None:
    files = {"bees.txt": upload(client, "bees.txt")}
    store_id = client.vector_stores.create(
        file_ids=list(files.values()), expires_after={"anchor": "last_active_at", "days": 1}
    ).id
    wait_until(lambda: client.vector_stores.retrieve(store_id).file_counts.completed == 1, 60, "ingestion")
    # As the store would be after two idle days (as tests/test_vector_stores.py ages one).
    rows = in_process_store(devhost.storage, devhost.table_prefix).vector_stores()
    record = rows.get(store_id)
    assert record is not None
    stored = json.loads(record.document)
    now = int(time.time())
    stored["store"].update(last_active_at=now - 2 * 86400, expires_at=now - 86400)
    rows.submit(store_id, rows.store_replacement(store_id, record, json.dumps(stored).encode()))
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": "bees?"}]).id
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=searching_assistant(client, store_id), poll_interval_ms=100
    )
    assert run.status == "failed" and run.last_error.code == "server_error"
    assert f"Vector store '{store_id}' has expired" in run.last_error.message
    assert chats(searcher) == []  # the model was never asked
