"""Azure AI Foundry's classic agents SDK (`azure-ai-agents`, sync and `.aio`) against the dev host
and the scripted model, plus raw HTTP for its api-versions and for the Foundry-only tools and data
sources this service refuses."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.ai.agents import AgentsClient
from azure.ai.agents.aio import AgentsClient as AsyncAgentsClient
from azure.ai.agents.models import (
    AgentEventHandler,
    AgentsNamedToolChoice,
    AgentsNamedToolChoiceType,
    AgentsResponseFormat,
    AgentsToolChoiceOptionMode,
    AgentThreadCreationOptions,
    AsyncAgentEventHandler,
    AsyncFunctionTool,
    AsyncToolSet,
    AzureAISearchTool,
    AzureFunctionStorageQueue,
    AzureFunctionTool,
    BingGroundingTool,
    CodeInterpreterTool,
    ConnectedAgentTool,
    FilePurpose,
    FileSearchTool,
    FileState,
    FunctionName,
    FunctionTool,
    ImageDetailLevel,
    ListSortOrder,
    MessageAttachment,
    MessageDeltaChunk,
    MessageImageFileContent,
    MessageImageFileParam,
    MessageImageUrlParam,
    MessageInputImageFileBlock,
    MessageInputImageUrlBlock,
    MessageInputTextBlock,
    MessageRole,
    OpenApiAnonymousAuthDetails,
    OpenApiTool,
    ResponseFormatJsonSchema,
    ResponseFormatJsonSchemaType,
    RunAdditionalFieldList,
    RunStatus,
    RunStep,
    RunStepCodeInterpreterImageOutput,
    RunStepCodeInterpreterLogOutput,
    RunStepCodeInterpreterToolCall,
    RunStepFileSearchToolCall,
    RunStepToolCallDetails,
    SubmitToolOutputsAction,
    ThreadMessageOptions,
    ThreadRun,
    ToolSet,
    TruncationObject,
    VectorStoreConfiguration,
    VectorStoreConfigurations,
    VectorStoreDataSource,
    VectorStoreDataSourceAssetType,
    VectorStoreStatus,
)
from azure.core.credentials import AccessToken, AzureKeyCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import AzureKeyCredentialPolicy

from assistants_core.files import LIST_LIMIT
from assistants_core.pagination import ListQuery, Order
from tests.model_server import CODE_PREFIX, ModelServer, call, coder, searching, text, tool_calls
from tests.support import API_KEYS, Azurite, DevHost, StorageMeter, assert_error, in_process_service

ROOT = Path(__file__).resolve().parent.parent
SDK_API_VERSIONS = ("v1", "2025-05-01", "2025-05-15-preview", "2024-07-01-preview")


def get_weather(city: str) -> str:
    """Current weather for a city.

    :param city: The city.
    :return: The weather, as JSON.
    """
    return json.dumps({"city": city, "temp_c": 18})


async def get_weather_async(city: str) -> str:
    """Current weather for a city.

    :param city: The city.
    :return: The weather, as JSON.
    """
    return get_weather(city)


class Requests:
    """What the SDK sent, as (method, path, query), from a raw-response hook."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, list[str]]]] = []

    def __call__(self, response: PipelineResponse[Any, Any]) -> None:
        url = urlsplit(response.http_request.url)
        self.sent.append((response.http_request.method, url.path, parse_qs(url.query)))

    def to(self, method: str, path_end: str) -> list[dict[str, list[str]]]:
        return [query for m, path, query in self.sent if m == method and path.endswith(path_end)]


def key_policy(key: str) -> tuple[AzureKeyCredential, AzureKeyCredentialPolicy[Any, Any]]:
    credential = AzureKeyCredential(key)
    return credential, AzureKeyCredentialPolicy(credential, "Authorization", prefix="Bearer")


@pytest.fixture
def requests_sent() -> Requests:
    return Requests()


@pytest.fixture
def agents(devhost: DevHost, requests_sent: Requests) -> Iterator[AgentsClient]:
    credential, policy = key_policy(API_KEYS[0])
    with AgentsClient(
        endpoint=devhost.api_url,
        credential=credential,  # type: ignore[arg-type]  # the policy below is what authenticates
        authentication_policy=policy,
        raw_response_hook=requests_sent,
        retry_total=0,
    ) as client:
        yield client


def async_agents(devhost: DevHost) -> AsyncAgentsClient:
    credential, policy = key_policy(API_KEYS[1])
    return AsyncAgentsClient(
        endpoint=devhost.api_url,
        credential=credential,  # type: ignore[arg-type]
        authentication_policy=policy,
        retry_total=0,
    )


def texts(client: AgentsClient, thread_id: str) -> list[tuple[str, list[str]]]:
    return [
        (str(m.role), [part.text.value for part in m.text_messages])
        for m in client.messages.list(thread_id=thread_id, order=ListSortOrder.ASCENDING)
    ]


# --- the README, run as written ------------------------------------------------------------------


def readme_foundry_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## From Azure AI Foundry agents (classic)") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_readme_example_runs_as_written(devhost: DevHost, model: ModelServer) -> None:
    code = readme_foundry_example()
    assert 'endpoint="http://127.0.0.1:7071/openai"' in code and '"local-dev-key"' in code
    code = code.replace("http://127.0.0.1:7071/openai", devhost.api_url)
    code = code.replace('"local-dev-key"', repr(API_KEYS[0]))
    model.script(tool_calls(call("get_weather", {"city": "Paris"})), text("It is 18 C in Paris."))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert printed.getvalue().splitlines() == [
        "RunStatus.COMPLETED",
        "MessageRole.USER ['Weather in Paris?']",
        "MessageRole.AGENT ['It is 18 C in Paris.']",
    ]
    tool_message = model.last_request().messages[-1]
    assert tool_message["role"] == "tool"
    assert json.loads(tool_message["content"]) == {"city": "Paris", "temp_c": 18}


# --- agents, threads, messages -------------------------------------------------------------------


def test_agents_are_created_listed_updated_and_deleted(agents: AgentsClient, requests_sent: Requests) -> None:
    created = [
        agents.create_agent(
            model="gpt-test", name=f"agent {i}", instructions="Be terse.", metadata={"i": str(i)}
        )
        for i in range(3)
    ]
    assert created[0].name == "agent 0" and created[0].metadata == {"i": "0"}
    assert agents.get_agent(created[1].id).instructions == "Be terse."

    listed = [a.id for a in agents.list_agents(limit=2, order=ListSortOrder.ASCENDING)]
    assert len(listed) == len(set(listed))  # no page repeats another
    assert [i for i in listed if i in {a.id for a in created}] == [a.id for a in created]
    # The SDK asks again while last_id is set: full pages, then the last one (partial or empty).
    pages = requests_sent.to("GET", "/assistants")
    assert len(pages) == len(listed) // 2 + 1 + (1 if len(listed) % 2 else 0)
    n = len(listed)
    assert [q.get("after") for q in pages[1:]] == [[listed[min(i, n - 1)]] for i in range(1, n + n % 2, 2)]
    assert all(q["api-version"] == ["v1"] for _, _, q in requests_sent.sent)

    updated = agents.update_agent(created[0].id, name="renamed", temperature=0.5)
    assert (updated.name, updated.temperature, updated.instructions) == ("renamed", 0.5, "Be terse.")
    for agent in created:
        agents.delete_agent(agent.id)
    with pytest.raises(HttpResponseError) as missing:
        agents.get_agent(created[0].id)
    assert missing.value.status_code == 404


def test_threads_and_messages_with_roles(agents: AgentsClient) -> None:
    thread = agents.threads.create(
        messages=[ThreadMessageOptions(role=MessageRole.USER, content="Hello")], metadata={"k": "v"}
    )
    assert agents.threads.get(thread.id).metadata == {"k": "v"}
    assert agents.threads.update(thread.id, metadata={"k": "w"}).metadata == {"k": "w"}
    agents.messages.create(thread_id=thread.id, role=MessageRole.AGENT, content="Hi, how can I help?")
    question = agents.messages.create(thread_id=thread.id, role="user", content="What is 2 + 2?")
    assert question.role == MessageRole.USER and question.text_messages[0].text.value == "What is 2 + 2?"
    assert texts(agents, thread.id) == [
        ("MessageRole.USER", ["Hello"]),
        ("MessageRole.AGENT", ["Hi, how can I help?"]),
        ("MessageRole.USER", ["What is 2 + 2?"]),
    ]
    last = agents.messages.get_last_message_text_by_role(thread_id=thread.id, role=MessageRole.AGENT)
    assert last is not None and last.text.value == "Hi, how can I help?"
    blocks = agents.messages.create(
        thread_id=thread.id,
        role="user",
        content=[
            MessageInputTextBlock(text="And this picture?"),
            MessageInputImageUrlBlock(
                image_url=MessageImageUrlParam(url="https://example.com/a.png", detail=ImageDetailLevel.HIGH)
            ),
        ],
    )
    assert blocks.text_messages[0].text.value == "And this picture?"
    assert [part.type for part in blocks.content] == ["text", "image_url"]
    updated = agents.messages.update(thread_id=thread.id, message_id=question.id, metadata={"seen": "1"})
    assert updated.metadata == {"seen": "1"}
    agents.threads.delete(thread.id)
    with pytest.raises(HttpResponseError) as missing:
        agents.threads.get(thread.id)
    assert missing.value.status_code == 404


def test_a_list_ends_on_an_empty_page_and_honours_after(
    agents: AgentsClient, requests_sent: Requests
) -> None:
    thread = agents.threads.create(
        messages=[ThreadMessageOptions(role=MessageRole.USER, content=f"m{i}") for i in range(5)]
    )
    listed = list(agents.messages.list(thread_id=thread.id, limit=2, order=ListSortOrder.ASCENDING))
    assert [m.text_messages[0].text.value for m in listed] == ["m0", "m1", "m2", "m3", "m4"]
    pages = requests_sent.to("GET", "/messages")
    assert len(pages) == 4  # 2, 2, 1, then an empty page whose null last_id ends the list
    assert [q.get("after") for q in pages] == [None, [listed[1].id], [listed[3].id], [listed[4].id]]

    # `after` is the SDK's continuation token: a listing resumed from one starts past it.
    resumed = agents.messages.list(thread_id=thread.id, order=ListSortOrder.ASCENDING)
    after = [m.id for page in resumed.by_page(continuation_token=listed[2].id) for m in page]
    assert after == [listed[3].id, listed[4].id]
    before = agents.messages.list(
        thread_id=thread.id, order=ListSortOrder.ASCENDING, before=listed[3].id, limit=2
    )
    # `before` is the page just ahead of it (the pager's contract); the SDK then asks after that
    # page's last id and before the same id, gets an empty page, and ends.
    assert [m.id for m in before] == [m.id for m in listed[1:3]]
    newest_first = list(agents.messages.list(thread_id=thread.id, limit=4))
    assert [m.id for m in newest_first] == [m.id for m in reversed(listed)]
    agents.threads.delete(thread.id)


def test_an_empty_page_has_null_cursors(http: httpx.Client) -> None:
    thread = http.post("/threads", params={"api-version": "v1"}, json={}).json()
    page = http.get(f"/threads/{thread['id']}/messages", params={"api-version": "v1"}).json()
    assert page == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


# --- runs ------------------------------------------------------------------------------------------


def test_create_and_process_runs_to_completion(agents: AgentsClient, model: ModelServer) -> None:
    agent = agents.create_agent(model="gpt-test", instructions="Be terse.")
    thread = agents.threads.create()
    agents.messages.create(thread_id=thread.id, role="user", content="Say hello.")
    model.script(text("Hello there"))
    run = agents.runs.create_and_process(thread_id=thread.id, agent_id=agent.id)
    assert run.status == RunStatus.COMPLETED and run.last_error is None
    assert (run.agent_id, run.thread_id) == (agent.id, thread.id)
    assert run.usage is not None and run.usage.completion_tokens == 2
    assert texts(agents, thread.id)[-1] == ("MessageRole.AGENT", ["Hello there"])
    assert [r.id for r in agents.runs.list(thread_id=thread.id)] == [run.id]
    steps = list(agents.run_steps.list(thread_id=thread.id, run_id=run.id))
    assert [s.type for s in steps] == ["message_creation"]
    assert agents.run_steps.get(thread_id=thread.id, run_id=run.id, step_id=steps[0].id).id == steps[0].id
    assert model.last_request().messages[0] == {"role": "system", "content": "Be terse."}


def test_thread_and_run_in_one_call_run_options_update_and_cancel(
    agents: AgentsClient, model: ModelServer
) -> None:
    agent = agents.create_agent(
        model="gpt-test",
        instructions="Answer in JSON.",
        response_format=AgentsResponseFormat(type="json_object"),
        temperature=0.3,
    )
    assert agent.response_format == {"type": "json_object"}
    model.script(text('{"ok": true}'))
    run = agents.create_thread_and_process_run(
        agent_id=agent.id,
        thread=AgentThreadCreationOptions(messages=[ThreadMessageOptions(role="user", content="Hi")]),
    )
    assert run.status == RunStatus.COMPLETED
    assert texts(agents, run.thread_id)[-1] == ("MessageRole.AGENT", ['{"ok": true}'])
    assert model.last_request().json["response_format"] == {"type": "json_object"}

    model.script(text("Done."))
    run = agents.runs.create(
        thread_id=run.thread_id,
        agent_id=agent.id,
        additional_instructions="Be brief.",
        additional_messages=[ThreadMessageOptions(role="user", content="And again?")],
        truncation_strategy=TruncationObject(type="last_messages", last_messages=2),
        tool_choice=AgentsToolChoiceOptionMode.NONE,
        max_completion_tokens=300,
        metadata={"attempt": "2"},
    )
    assert settled(agents, run).status == RunStatus.COMPLETED
    sent = model.last_request().messages
    assert [m["role"] for m in sent] == ["system", "assistant", "user"]
    assert sent[-1]["content"] == "And again?" and sent[0]["content"].endswith("Be brief.")
    updated = agents.runs.update(thread_id=run.thread_id, run_id=run.id, metadata={"attempt": "3"})
    assert updated.metadata == {"attempt": "3"}

    model.script(text("Too late.", delay_before=30))
    slow = agents.runs.create(thread_id=run.thread_id, agent_id=agent.id)
    cancelled = agents.runs.cancel(thread_id=run.thread_id, run_id=slow.id)
    assert cancelled.status in (RunStatus.CANCELLING, RunStatus.CANCELLED)
    assert settled(agents, cancelled).status == RunStatus.CANCELLED


def settled(client: AgentsClient, run: ThreadRun) -> ThreadRun:
    """The run once it is neither queued, in progress nor cancelling."""
    deadline = time.monotonic() + 20
    busy = (RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.CANCELLING)
    while run.status in busy and time.monotonic() < deadline:
        time.sleep(0.1)
        run = client.runs.get(thread_id=run.thread_id, run_id=run.id)
    return run


def test_function_tools_through_submit_tool_outputs(agents: AgentsClient, model: ModelServer) -> None:
    toolset = ToolSet()
    toolset.add(FunctionTool({get_weather}))
    agent = agents.create_agent(model="gpt-test", instructions="Use get_weather.", toolset=toolset)
    assert [t.as_dict() for t in agent.tools] == [t.as_dict() for t in toolset.definitions]
    thread = agents.threads.create()
    agents.messages.create(thread_id=thread.id, role="user", content="Weather in Oslo?")
    model.script(tool_calls(call("get_weather", {"city": "Oslo"})), text("18 C in Oslo."))

    run = settled(agents, agents.runs.create(thread_id=thread.id, agent_id=agent.id))
    assert run.status == RunStatus.REQUIRES_ACTION
    assert isinstance(run.required_action, SubmitToolOutputsAction)
    calls = run.required_action.submit_tool_outputs.tool_calls
    outputs = toolset.execute_tool_calls(calls)
    assert outputs == [{"tool_call_id": calls[0].id, "output": get_weather("Oslo")}]
    run = settled(
        agents, agents.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id, tool_outputs=outputs)
    )
    assert run.status == RunStatus.COMPLETED
    assert texts(agents, thread.id)[-1] == ("MessageRole.AGENT", ["18 C in Oslo."])
    assert model.last_request().messages[-1]["content"] == get_weather("Oslo")
    assert [s.type for s in agents.run_steps.list(thread_id=thread.id, run_id=run.id)] == [
        "message_creation",
        "tool_calls",
    ]


def test_function_tools_called_automatically_by_create_and_process(
    agents: AgentsClient, model: ModelServer
) -> None:
    toolset = ToolSet()
    toolset.add(FunctionTool({get_weather}))
    agents.enable_auto_function_calls(toolset)
    agent = agents.create_agent(model="gpt-test", instructions="Use get_weather.", toolset=toolset)
    thread = agents.threads.create(messages=[ThreadMessageOptions(role="user", content="Lima?")])
    model.script(tool_calls(call("get_weather", {"city": "Lima"})), text("18 C in Lima."))
    run = agents.runs.create_and_process(thread_id=thread.id, agent_id=agent.id)
    assert run.status == RunStatus.COMPLETED
    assert model.last_request().messages[-1]["content"] == get_weather("Lima")
    assert texts(agents, thread.id)[-1] == ("MessageRole.AGENT", ["18 C in Lima."])


class Recorder(AgentEventHandler[None]):
    def __init__(self) -> None:
        super().__init__()
        self.deltas: list[str] = []
        self.statuses: list[str] = []
        self.events: list[str] = []
        self.agent_ids: set[str] = set()
        self.done = False

    def on_message_delta(self, delta: MessageDeltaChunk) -> None:
        self.deltas.append(delta.text)

    def on_thread_run(self, run: ThreadRun) -> None:
        self.statuses.append(str(run.status))
        self.agent_ids.add(run.agent_id)

    def on_done(self) -> None:
        self.done = True

    def on_unhandled_event(self, event_type: str, event_data: Any) -> None:
        self.events.append(event_type)


def test_streaming_through_an_agent_event_handler(agents: AgentsClient, model: ModelServer) -> None:
    agent = agents.create_agent(model="gpt-test", instructions="Be terse.")
    thread = agents.threads.create(messages=[ThreadMessageOptions(role="user", content="Hi")])
    model.script(text(["Hel", "lo ", "there"]))
    handler = Recorder()
    with agents.runs.stream(thread_id=thread.id, agent_id=agent.id, event_handler=handler) as stream:
        stream.until_done()
    assert handler.deltas == ["Hel", "lo ", "there"]
    assert handler.statuses[0] == "RunStatus.QUEUED" and handler.statuses[-1] == "RunStatus.COMPLETED"
    assert handler.done and not handler.events
    assert handler.agent_ids == {agent.id}  # the SDK renames assistant_id in streamed objects
    assert texts(agents, thread.id)[-1] == ("MessageRole.AGENT", ["Hello there"])


def test_a_stream_quiet_long_enough_for_heartbeats(agents: AgentsClient, model: ModelServer) -> None:
    """The SDK reads an event as everything up to a blank line and needs an `event:` line in
    it, so a heartbeat must not stand alone (the dev host's heartbeat is 1 s in the tests)."""
    agent = agents.create_agent(model="gpt-test", instructions="Be terse.")
    thread = agents.threads.create(messages=[ThreadMessageOptions(role="user", content="Hi")])
    model.script(text(["Slow ", "reply"], delay_before=2.5))
    handler = Recorder()
    with agents.runs.stream(thread_id=thread.id, agent_id=agent.id, event_handler=handler) as stream:
        stream.until_done()
    assert handler.deltas == ["Slow ", "reply"] and handler.done
    assert handler.statuses[-1] == "RunStatus.COMPLETED"


def test_streaming_calls_functions_automatically(agents: AgentsClient, model: ModelServer) -> None:
    agents.enable_auto_function_calls({get_weather})
    toolset = ToolSet()
    toolset.add(FunctionTool({get_weather}))
    agent = agents.create_agent(model="gpt-test", instructions="Use get_weather.", toolset=toolset)
    thread = agents.threads.create(messages=[ThreadMessageOptions(role="user", content="Rome?")])
    model.script(tool_calls(call("get_weather", {"city": "Rome"})), text("18 C in Rome."))
    handler = Recorder()
    with agents.runs.stream(thread_id=thread.id, agent_id=agent.id, event_handler=handler) as stream:
        stream.until_done()
    assert "RunStatus.REQUIRES_ACTION" in handler.statuses
    assert handler.statuses[-1] == "RunStatus.COMPLETED"
    assert "".join(handler.deltas) == "18 C in Rome."
    assert model.last_request().messages[-1]["content"] == get_weather("Rome")


# --- the .aio client -----------------------------------------------------------------------------


class AsyncRecorder(AsyncAgentEventHandler[None]):
    def __init__(self) -> None:
        super().__init__()
        self.deltas: list[str] = []
        self.statuses: list[str] = []

    async def on_message_delta(self, delta: MessageDeltaChunk) -> None:
        self.deltas.append(delta.text)

    async def on_thread_run(self, run: ThreadRun) -> None:
        self.statuses.append(str(run.status))


async def stream_run(client: AsyncAgentsClient, thread_id: str, agent_id: str) -> AsyncRecorder:
    recorder = AsyncRecorder()
    async with await client.runs.stream(
        thread_id=thread_id, agent_id=agent_id, event_handler=recorder
    ) as stream:
        await stream.until_done()
    return recorder


def test_the_async_client(devhost: DevHost, model: ModelServer) -> None:
    async def scenario() -> None:
        async with async_agents(devhost) as client:
            agent = await client.create_agent(model="gpt-test", name="async", instructions="Be terse.")
            assert agent.id in [a.id async for a in client.list_agents(limit=100)]
            updated = await client.update_agent(agent.id, metadata={"v": "2"})
            assert updated.metadata == {"v": "2"}

            thread = await client.threads.create()
            await client.messages.create(thread_id=thread.id, role="user", content="Say hello.")
            model.script(text("Hello there"))
            run = await client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id)
            assert run.status == RunStatus.COMPLETED

            toolset = AsyncToolSet()
            toolset.add(AsyncFunctionTool({get_weather_async}))
            client.enable_auto_function_calls(toolset)
            forecaster = await client.create_agent(model="gpt-test", instructions="x", toolset=toolset)
            await client.messages.create(thread_id=thread.id, role="user", content="Weather in Bern?")
            model.script(tool_calls(call("get_weather_async", {"city": "Bern"})), text("18 C in Bern."))
            run = await client.runs.create_and_process(thread_id=thread.id, agent_id=forecaster.id)
            assert run.status == RunStatus.COMPLETED
            assert model.last_request().messages[-1]["content"] == get_weather("Bern")

            await client.messages.create(thread_id=thread.id, role="user", content="Again, streamed.")
            model.script(text(["Streamed ", "reply"], delay_before=2.5))  # heartbeats first
            handler = await stream_run(client, thread.id, agent.id)
            assert handler.deltas == ["Streamed ", "reply"]
            assert handler.statuses[-1] == "RunStatus.COMPLETED"

            listed = [
                (str(m.role), m.text_messages[0].text.value)
                async for m in client.messages.list(
                    thread_id=thread.id, order=ListSortOrder.ASCENDING, limit=2
                )
            ]
            assert listed == [
                ("MessageRole.USER", "Say hello."),
                ("MessageRole.AGENT", "Hello there"),
                ("MessageRole.USER", "Weather in Bern?"),
                ("MessageRole.AGENT", "18 C in Bern."),
                ("MessageRole.USER", "Again, streamed."),
                ("MessageRole.AGENT", "Streamed reply"),
            ]
            await client.threads.delete(thread.id)
            await client.delete_agent(agent.id)
            await client.delete_agent(forecaster.id)

    asyncio.run(scenario())


# --- raw HTTP: api-versions and keys ----------------------------------------------------------------


@pytest.mark.parametrize("version", SDK_API_VERSIONS)
def test_the_sdks_api_versions_are_accepted_without_openai_beta(devhost: DevHost, version: str) -> None:
    headers = {"Authorization": f"Bearer {API_KEYS[0]}"}
    with httpx.Client(base_url=devhost.api_url, headers=headers, timeout=60) as client:
        created = client.post("/assistants", params={"api-version": version}, json={"model": "gpt-test"})
        assert created.status_code == 200, created.text
        assert "openai-beta" not in {k.lower() for k in created.request.headers}
        listed = client.get("/assistants", params={"api-version": version, "limit": "1"})
        assert listed.status_code == 200, listed.text
        assert client.delete(f"/assistants/{created.json()['id']}", params={"api-version": version}).json()[
            "deleted"
        ]


def test_other_api_versions_and_bad_keys_are_still_refused(devhost: DevHost) -> None:
    with httpx.Client(base_url=devhost.api_url, timeout=60) as client:
        bearer = {"Authorization": f"Bearer {API_KEYS[0]}"}
        unknown = client.get("/assistants", params={"api-version": "v2"}, headers=bearer)
        assert unknown.status_code == 400
        assert unknown.json()["error"]["message"] == "API version not supported"
        wrong = client.get(
            "/assistants", params={"api-version": "v1"}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401


class StaticToken:
    """A TokenCredential handing out the API key, as a user might first try."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.key, int(time.time()) + 3600)


def test_why_the_readme_uses_a_key_policy(devhost: DevHost) -> None:
    """azure-core's bearer-token policy will not send a token over http://, so locally the key
    goes through AzureKeyCredentialPolicy (the README's way; over https both would do)."""
    with (
        AgentsClient(endpoint=devhost.api_url, credential=StaticToken(API_KEYS[0]), retry_total=0) as client,
        pytest.raises(ServiceRequestError, match="non-TLS"),
    ):
        client.create_agent(model="gpt-test")


def test_the_sdk_with_a_wrong_key_gets_a_401(devhost: DevHost) -> None:
    credential, policy = key_policy("not-a-key")
    with (
        AgentsClient(
            endpoint=devhost.api_url,
            credential=credential,  # type: ignore[arg-type]
            authentication_policy=policy,
            retry_total=0,
        ) as client,
        pytest.raises(HttpResponseError) as refused,
    ):
        client.create_agent(model="gpt-test")
    assert refused.value.status_code == 401


# --- Foundry-only tools and data sources ---------------------------------------------------------

# The SDK's own serialisation of the tools azure-ai-agents 1.1.0 defines, and the wire shapes of
# those only its previews (1.2.0b*) define.
SDK_TOOLS: list[tuple[str, dict[str, Any]]] = [
    (
        "azure_ai_search",
        AzureAISearchTool(index_connection_id="conn", index_name="idx").definitions[0].as_dict(),
    ),
    ("bing_grounding", BingGroundingTool(connection_id="conn").definitions[0].as_dict()),
    (
        "openapi",
        OpenApiTool(
            name="weather", spec={"openapi": "3.0.0"}, description="d", auth=OpenApiAnonymousAuthDetails()
        )
        .definitions[0]
        .as_dict(),
    ),
    (
        "azure_function",
        AzureFunctionTool(
            name="f",
            description="d",
            parameters={"type": "object"},
            input_queue=AzureFunctionStorageQueue(queue_name="in", storage_service_endpoint="https://q"),
            output_queue=AzureFunctionStorageQueue(queue_name="out", storage_service_endpoint="https://q"),
        )
        .definitions[0]
        .as_dict(),
    ),
    (
        "connected_agent",
        ConnectedAgentTool(id="asst_x", name="helper", description="d").definitions[0].as_dict(),
    ),
    ("mcp", {"type": "mcp", "server_label": "github", "server_url": "https://example.com/mcp"}),
    (
        "deep_research",
        {"type": "deep_research", "deep_research": {"deep_research_model": "o3-deep-research"}},
    ),
    (
        "bing_custom_search",
        {"type": "bing_custom_search", "bing_custom_search": {"search_configurations": []}},
    ),
    (
        "sharepoint_grounding",
        {"type": "sharepoint_grounding", "sharepoint_grounding": {"connection_list": []}},
    ),
    ("fabric_dataagent", {"type": "fabric_dataagent", "fabric_dataagent": {"connection_list": []}}),
    ("browser_automation", {"type": "browser_automation", "browser_automation": {"connection": {"id": "c"}}}),
    (
        "computer_use_preview",
        {"type": "computer_use_preview", "computer_use_preview": {"environment": "browser"}},
    ),
]
FUNCTION = FunctionTool({get_weather}).definitions[0].as_dict()


def assert_not_served(response: httpx.Response, param: str, name: str) -> None:
    error = assert_error(response, 400, param)
    assert f"'{name}'" in error["message"] and "does not serve" in error["message"], error


@pytest.mark.parametrize(("name", "tool"), SDK_TOOLS, ids=[name for name, _ in SDK_TOOLS])
def test_foundry_tools_are_refused_naming_the_tool(
    http: httpx.Client, name: str, tool: dict[str, Any]
) -> None:
    v1 = {"api-version": "v1"}
    body = {"model": "gpt-test", "tools": [FUNCTION, tool]}
    assert_not_served(http.post("/assistants", params=v1, json=body), "tools[1].type", name)
    assistant = http.post("/assistants", params=v1, json={"model": "gpt-test"}).json()
    modified = http.post(f"/assistants/{assistant['id']}", params=v1, json={"tools": [tool]})
    assert_not_served(modified, "tools[0].type", name)
    assert http.get(f"/assistants/{assistant['id']}", params=v1).json()["tools"] == []

    thread = http.post("/threads", params=v1, json={}).json()
    runs = f"/threads/{thread['id']}/runs"
    run_with_tool = {"assistant_id": assistant["id"], "tools": [tool]}
    assert_not_served(http.post(runs, params=v1, json=run_with_tool), "tools[0].type", name)
    choice = {"assistant_id": assistant["id"], "tool_choice": {"type": name}}
    assert_not_served(http.post(runs, params=v1, json=choice), "tool_choice.type", name)
    assert http.get(runs, params=v1).json()["data"] == []  # no run was started


@pytest.mark.parametrize(
    ("resources", "param", "name"),
    [
        (
            AzureAISearchTool(index_connection_id="c", index_name="i").resources.as_dict(),
            "azure_ai_search",
            "azure_ai_search",
        ),
        ({"mcp": [{"server_label": "github", "headers": {}}]}, "mcp", "mcp"),
        (
            {"code_interpreter": {"data_sources": [{"uri": "azureml://x", "type": "uri_asset"}]}},
            "code_interpreter.data_sources",
            "data_sources",
        ),
    ],
    ids=["azure_ai_search", "mcp", "code_interpreter.data_sources"],
)
def test_foundry_tool_resources_are_refused(
    http: httpx.Client, resources: dict[str, Any], param: str, name: str
) -> None:
    v1 = {"api-version": "v1"}
    created = http.post("/assistants", params=v1, json={"model": "gpt-test", "tool_resources": resources})
    assert_not_served(created, f"tool_resources.{param}", name)
    assert_not_served(
        http.post("/threads", params=v1, json={"tool_resources": resources}), f"tool_resources.{param}", name
    )


def test_foundry_vector_store_configurations_are_refused(http: httpx.Client) -> None:
    """Foundry's file_search resources may build vector stores from data sources: refused (how,
    depends on how far this service serves `vector_stores`), never stored."""
    store = VectorStoreConfigurations(
        store_name="docs",
        store_configuration=VectorStoreConfiguration(
            data_sources=[VectorStoreDataSource(asset_identifier="azureml://x", asset_type="uri_asset")]
        ),
    )
    resources = {"file_search": {"vector_stores": [store.as_dict()]}}
    body = {"model": "gpt-test", "tools": [{"type": "file_search"}], "tool_resources": resources}
    refused = http.post("/assistants", params={"api-version": "v1"}, json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"].startswith("tool_resources.file_search.vector_stores")


def test_message_attachments_from_data_sources_are_refused(http: httpx.Client) -> None:
    v1 = {"api-version": "v1"}
    attachment = {
        "data_source": {"uri": "azureml://x", "type": "uri_asset"},
        "tools": [{"type": "file_search"}],
    }
    message = {"role": "user", "content": "Read this.", "attachments": [attachment]}
    thread = http.post("/threads", params=v1, json={}).json()
    refused = http.post(f"/threads/{thread['id']}/messages", params=v1, json=message)
    assert_not_served(refused, "attachments[0].data_source", "data_source")
    assert http.get(f"/threads/{thread['id']}/messages", params=v1).json()["data"] == []
    with_messages = http.post("/threads", params=v1, json={"messages": [message]})
    assert_not_served(with_messages, "messages[0].attachments[0].data_source", "data_source")


def test_the_sdk_reports_a_foundry_tool_refusal(agents: AgentsClient) -> None:
    with pytest.raises(HttpResponseError) as refused:
        agents.create_agent(model="gpt-test", tools=BingGroundingTool(connection_id="conn").definitions)
    assert refused.value.status_code == 400
    assert refused.value.error is not None and refused.value.error.code == "unsupported_value"
    assert "'bing_grounding' tool" in str(refused.value.message)


# --- files ---------------------------------------------------------------------------------------


def test_files_upload_poll_list_read_save_and_delete(
    agents: AgentsClient, requests_sent: Requests, tmp_path: Path
) -> None:
    source = tmp_path / "notes.txt"
    source.write_bytes(b"Paris is the capital of France.\n")
    by_path = agents.files.upload_and_poll(file_path=str(source), purpose=FilePurpose.AGENTS)
    assert (by_path.filename, by_path.bytes, by_path.status) == ("notes.txt", 32, FileState.PROCESSED)
    # A file-like object travels as a part named after the field; the `filename` field names it.
    by_object = agents.files.upload_and_poll(
        file=io.BytesIO(b"\x89PNG fake"), purpose="vision", filename="chart.png", timeout=30
    )
    assert (by_object.filename, by_object.purpose) == ("chart.png", "vision")
    uploaded = agents.files.upload(file=("raw.bin", b"\x00\x01"), purpose="assistants")
    assert uploaded.status == "processed"
    assert len(requests_sent.to("GET", f"/files/{by_path.id}")) == 0  # processed at once: no polling

    assert by_object.id in {f.id for f in agents.files.list(purpose=FilePurpose.VISION).data}
    assert {by_path.id, uploaded.id} <= {f.id for f in agents.files.list(purpose="assistants").data}
    assert {by_path.id, by_object.id, uploaded.id} <= {f.id for f in agents.files.list().data}
    assert agents.files.get(by_path.id).filename == "notes.txt"
    assert b"".join(agents.files.get_content(by_path.id)) == source.read_bytes()
    agents.files.save(file_id=by_object.id, file_name="copy.png", target_dir=tmp_path / "out")
    assert (tmp_path / "out" / "copy.png").read_bytes() == b"\x89PNG fake"

    for file in (by_path, by_object, uploaded):
        agents.files.delete(file.id)
    with pytest.raises(HttpResponseError) as missing:
        agents.files.get(by_path.id)
    assert missing.value.status_code == 404
    assert by_path.id not in {f.id for f in agents.files.list().data}


def test_files_through_the_async_client(devhost: DevHost, tmp_path: Path) -> None:
    source = tmp_path / "a.md"
    source.write_text("# Title\n")

    async def scenario() -> None:
        async with async_agents(devhost) as client:
            file = await client.files.upload_and_poll(file_path=str(source), purpose="assistants")
            assert (file.filename, file.status) == ("a.md", "processed")
            named = await client.files.upload_and_poll(
                file=io.BytesIO(b"bytes"), purpose="assistants", filename="b.txt"
            )
            assert named.filename == "b.txt"
            assert {file.id, named.id} <= {f.id for f in (await client.files.list(purpose="assistants")).data}
            assert (await client.files.get(named.id)).bytes == 5
            assert b"".join([c async for c in await client.files.get_content(file.id)]) == b"# Title\n"
            await client.files.save(file_id=named.id, file_name="b.txt", target_dir=str(tmp_path))
            assert (tmp_path / "b.txt").read_bytes() == b"bytes"
            await client.files.delete(file.id)
            await client.files.delete(named.id)
            with pytest.raises(HttpResponseError) as missing:
                await client.files.get(file.id)
            assert missing.value.status_code == 404

    asyncio.run(scenario())


def test_the_filename_field_names_the_file_and_is_checked(http: httpx.Client) -> None:
    def body(*parts: tuple[str, str | None, bytes]) -> bytes:
        out = b""
        for name, filename, data in parts:
            named = f'; filename="{filename}"' if filename is not None else ""
            out += f'--b0undary\r\nContent-Disposition: form-data; name="{name}"{named}\r\n\r\n'.encode()
            out += data + b"\r\n"
        return out + b"--b0undary--\r\n"

    def post(content: bytes) -> httpx.Response:
        headers = {"content-type": "multipart/form-data; boundary=b0undary"}
        return http.post("/files", params={"api-version": "v1"}, content=content, headers=headers)

    # after a nameless part, as well as before it
    named = post(body(("purpose", None, b"assistants"), ("file", None, b"abc"), ("filename", None, b"x.txt")))
    assert named.status_code == 200, named.text
    assert named.json()["filename"] == "x.txt"
    http.delete(f"/files/{named.json()['id']}", params={"api-version": "v1"})
    hostile = body(("purpose", None, b"assistants"), ("filename", None, b"../x"), ("file", "a.txt", b"1"))
    assert_error(post(hostile), 400, "filename")
    assert_error(post(body(("purpose", None, b"assistants"), ("file", None, b"1"))), 400, "file")


# --- files in messages ---------------------------------------------------------------------------

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


def test_image_files_and_attachments_in_messages(agents: AgentsClient, model: ModelServer) -> None:
    image = agents.files.upload_and_poll(file=("dot.png", PNG), purpose=FilePurpose.AGENTS)
    attached = agents.files.upload_and_poll(file=("notes.txt", b"n"), purpose=FilePurpose.AGENTS)
    agent = agents.create_agent(model="gpt-test", instructions="Describe.")
    thread = agents.threads.create()
    message = agents.messages.create(
        thread_id=thread.id,
        role="user",
        content=[
            MessageInputTextBlock(text="What is this?"),
            MessageInputImageFileBlock(
                image_file=MessageImageFileParam(file_id=image.id, detail=ImageDetailLevel.LOW)
            ),
        ],
    )
    assert isinstance(message.content[1], MessageImageFileContent)
    assert message.content[1].as_dict()["image_file"] == {"file_id": image.id, "detail": "low"}

    model.script(text("A dot."))
    run = agents.runs.create_and_process(thread_id=thread.id, agent_id=agent.id)
    assert run.status == RunStatus.COMPLETED, run.last_error
    sent = model.last_request().messages[-1]["content"]
    expected_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert sent == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": expected_url, "detail": "low"}},
    ]
    # The run's own message, and no other, lists under its run_id.
    by_run = list(agents.messages.list(thread_id=thread.id, run_id=run.id))
    assert [(m.run_id, m.text_messages[0].text.value) for m in by_run] == [(run.id, "A dot.")]

    # Attachments are stored and returned as sent (a file_search one also joins the thread's store).
    with_attachment = agents.messages.create(
        thread_id=thread.id,
        role="user",
        content="Keep this.",
        attachments=[MessageAttachment(file_id=attached.id, tools=FileSearchTool().definitions)],
    )
    fetched = agents.messages.get(thread_id=thread.id, message_id=with_attachment.id)
    assert fetched.attachments is not None
    assert [a.as_dict() for a in fetched.attachments] == [
        {"file_id": attached.id, "tools": [{"type": "file_search"}]}
    ]
    with pytest.raises(HttpResponseError) as unknown:
        agents.messages.create(
            thread_id=thread.id,
            role="user",
            content=[MessageInputImageFileBlock(image_file=MessageImageFileParam(file_id="assistant-nope"))],
        )
    assert unknown.value.status_code == 400
    for file in (image, attached):
        agents.files.delete(file.id)


def test_tool_outputs_submitted_to_a_stream(agents: AgentsClient, model: ModelServer) -> None:
    toolset = ToolSet()
    toolset.add(FunctionTool({get_weather}))
    agent = agents.create_agent(model="gpt-test", instructions="Use get_weather.", toolset=toolset)
    thread = agents.threads.create(messages=[ThreadMessageOptions(role="user", content="Kyiv?")])
    model.script(tool_calls(call("get_weather", {"city": "Kyiv"})), text(["18 C ", "in Kyiv."]))
    first = Recorder()
    with agents.runs.stream(thread_id=thread.id, agent_id=agent.id, event_handler=first) as stream:
        stream.until_done()  # no functions enabled on this client: the stream stops at requires_action
    assert first.statuses[-1] == "RunStatus.REQUIRES_ACTION"
    run = agents.runs.list(thread_id=thread.id).next()
    assert isinstance(run.required_action, SubmitToolOutputsAction)
    outputs = toolset.execute_tool_calls(run.required_action.submit_tool_outputs.tool_calls)
    second = Recorder()
    agents.runs.submit_tool_outputs_stream(
        thread_id=thread.id, run_id=run.id, tool_outputs=outputs, event_handler=second
    )
    second.until_done()
    assert second.deltas == ["18 C ", "in Kyiv."] and second.done
    assert second.statuses[-1] == "RunStatus.COMPLETED"
    assert model.last_request().messages[-1]["content"] == get_weather("Kyiv")
    assert texts(agents, thread.id)[-1] == ("MessageRole.AGENT", ["18 C in Kyiv."])


# --- threads.list: Foundry's own GET /threads, refused -------------------------------------------


def test_listing_threads_is_refused_with_a_clear_400(
    agents: AgentsClient, devhost: DevHost, http: httpx.Client
) -> None:
    with pytest.raises(HttpResponseError) as refused:
        list(agents.threads.list(limit=5))
    assert refused.value.status_code == 400
    assert refused.value.error is not None and refused.value.error.code == "unsupported_operation"
    assert "Listing threads (GET /threads)" in str(refused.value.message)

    async def scenario() -> None:
        async with async_agents(devhost) as client:
            with pytest.raises(HttpResponseError) as refused:
                [t async for t in client.threads.list()]
            assert refused.value.status_code == 400

    asyncio.run(scenario())
    error = assert_error(
        http.get("/threads", params={"api-version": "v1"}), 400, None, "unsupported_operation"
    )
    assert "does not serve" in error["message"]
    # The key and the api-version are checked first, as on every route.
    with httpx.Client(base_url=devhost.api_url, timeout=60) as anonymous:
        assert anonymous.get("/threads", params={"api-version": "v1"}).status_code == 401
    assert http.get("/threads", params={"api-version": "v9"}).json()["error"]["code"] == "BadRequest"


def test_files_list_holds_more_than_one_default_page(agents: AgentsClient, http: httpx.Client) -> None:
    """Foundry's `files.list()` sends no limit and reads one response: OpenAI's default
    (10,000) for files, not the other lists' 20."""
    made = [agents.files.upload(file=(f"f{i}.txt", b"x"), purpose="vision").id for i in range(25)]
    listed = [f.id for f in agents.files.list(purpose=FilePurpose.VISION).data]
    assert set(made) <= set(listed) and len(listed) == len(set(listed))
    assert set(made) <= {f.id for f in agents.files.list().data}
    assert_error(http.get("/files", params={"limit": "10001"}), 400, "limit", "integer_above_max_value")
    assert http.get("/files", params={"limit": "10000", "purpose": "vision"}).status_code == 200
    for file_id in made:
        agents.files.delete(file_id)


def test_a_long_files_page_is_asked_of_storage_1000_rows_at_a_time(azurite: Azurite) -> None:
    """Table Storage returns at most 1,000 entities a response: a page of 10,000 asks for that
    many at a time, never for a `$top` it would refuse."""
    meter = StorageMeter()
    service = in_process_service(azurite.connection_string, meter=meter)
    service.files.list(ListQuery(limit=1), None)  # the table is created on first use
    orders: list[Order] = ["asc", "desc"]
    for order, purpose in itertools.product(orders, [None, "vision"]):
        meter.reset()
        service.files.list(ListQuery(limit=LIST_LIMIT, order=order), purpose)
        assert meter.requests >= 1 and meter.rows <= 1000 * meter.requests, (order, purpose)


def test_runs_and_steps_take_the_sdks_include(agents: AgentsClient, model: ModelServer) -> None:
    """The one `include[]` value there is (file_search contents) is accepted where the SDK
    sends it, and pages of runs end as the SDK reads them."""
    include: list[str | RunAdditionalFieldList] = [RunAdditionalFieldList.FILE_SEARCH_CONTENTS]
    agent = agents.create_agent(model="gpt-test", instructions="Be terse.")
    thread = agents.threads.create(messages=[ThreadMessageOptions(role="user", content="One")])
    runs = []
    for reply in ("First.", "Second.", "Third."):
        model.script(text(reply))
        runs.append(
            settled(agents, agents.runs.create(thread_id=thread.id, agent_id=agent.id, include=include))
        )
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 3
    listed = agents.runs.list(thread_id=thread.id, limit=2, order=ListSortOrder.ASCENDING)
    assert [r.id for r in listed] == [r.id for r in runs]
    steps = list(agents.run_steps.list(thread_id=thread.id, run_id=runs[1].id, include=include, limit=1))
    assert [s.type for s in steps] == ["message_creation"]
    step = agents.run_steps.get(thread_id=thread.id, run_id=runs[1].id, step_id=steps[0].id, include=include)
    assert step.step_details.as_dict()["message_creation"]["message_id"] in {
        m.id for m in agents.messages.list(thread_id=thread.id, run_id=runs[1].id)
    }


def test_the_async_client_beyond_the_basics(devhost: DevHost, model: ModelServer) -> None:
    async def scenario() -> None:
        async with async_agents(devhost) as client:
            toolset = AsyncToolSet()
            toolset.add(AsyncFunctionTool({get_weather_async}))
            agent = await client.create_agent(model="gpt-test", instructions="x", toolset=toolset)
            model.script(text("Hi."))
            run = await client.create_thread_and_process_run(
                agent_id=agent.id,
                thread=AgentThreadCreationOptions(messages=[ThreadMessageOptions(role="user", content="Hi")]),
            )
            assert run.status == RunStatus.COMPLETED
            thread = await client.threads.update(run.thread_id, metadata={"topic": "greeting"})
            assert thread.metadata == {"topic": "greeting"}
            assert [r.id async for r in client.runs.list(thread_id=thread.id)] == [run.id]
            steps = [s async for s in client.run_steps.list(thread_id=thread.id, run_id=run.id)]
            step = await client.run_steps.get(thread_id=thread.id, run_id=run.id, step_id=steps[0].id)
            assert step.type == "message_creation"
            ours = [m.run_id async for m in client.messages.list(thread_id=thread.id, run_id=run.id)]
            assert ours == [run.id]

            image = await client.files.upload_and_poll(file=("dot.png", PNG), purpose="assistants")
            await client.messages.create(
                thread_id=thread.id,
                role="user",
                content=[
                    MessageInputImageFileBlock(image_file=MessageImageFileParam(file_id=image.id)),
                    MessageInputTextBlock(text="Weather where this was taken?"),
                ],
            )
            model.script(
                tool_calls(call("get_weather_async", {"city": "Turin"})), text(["18 C ", "in Turin."])
            )
            first = await stream_run(client, thread.id, agent.id)
            assert first.statuses[-1] == "RunStatus.REQUIRES_ACTION"
            run = await anext(client.runs.list(thread_id=thread.id))  # the newest
            assert isinstance(run.required_action, SubmitToolOutputsAction)
            outputs = await toolset.execute_tool_calls(run.required_action.submit_tool_outputs.tool_calls)
            second = AsyncRecorder()
            await client.runs.submit_tool_outputs_stream(
                thread_id=thread.id, run_id=run.id, tool_outputs=outputs, event_handler=second
            )
            await second.until_done()
            assert second.deltas == ["18 C ", "in Turin."]
            assert second.statuses[-1] == "RunStatus.COMPLETED"
            sent = model.requests[-2].messages[-1]["content"]  # the image went with the question
            assert sent[0]["image_url"]["url"].startswith("data:image/png;base64,")
            await client.threads.delete(thread.id)
            await client.files.delete(image.id)
            await client.delete_agent(agent.id)

    asyncio.run(scenario())


def test_run_overrides_the_sdk_sends_reach_the_model(agents: AgentsClient, model: ModelServer) -> None:
    toolset = ToolSet()
    toolset.add(FunctionTool({get_weather}))
    agent = agents.create_agent(
        model="gpt-test", instructions="Use get_weather.", toolset=toolset, description="d", top_p=0.9
    )
    assert (agent.description, agent.top_p) == ("d", 0.9)
    thread = agents.threads.create(messages=[ThreadMessageOptions(role="user", content="Where?")])
    schema = ResponseFormatJsonSchema(
        name="place", schema={"type": "object", "properties": {"city": {"type": "string"}}}
    )
    model.script(tool_calls(call("get_weather", {"city": "Nice"})))
    run = agents.runs.create(
        thread_id=thread.id,
        agent_id=agent.id,
        model="gpt-other",
        temperature=0.1,
        top_p=0.5,
        max_prompt_tokens=5000,
        parallel_tool_calls=False,
        response_format=ResponseFormatJsonSchemaType(json_schema=schema),
        tool_choice=AgentsNamedToolChoice(
            type=AgentsNamedToolChoiceType.FUNCTION, function=FunctionName(name="get_weather")
        ),
    )
    run = settled(agents, run)
    assert run.status == RunStatus.REQUIRES_ACTION
    assert (run.model, run.temperature, run.top_p, run.parallel_tool_calls) == ("gpt-other", 0.1, 0.5, False)
    sent = model.last_request().json
    assert (sent["model"], sent["temperature"], sent["top_p"], sent["parallel_tool_calls"]) == (
        "gpt-other",
        0.1,
        0.5,
        False,
    )
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "place"
    agents.runs.cancel(thread_id=thread.id, run_id=run.id)


# --- vector stores, file search, code interpreter ------------------------------------------------

FACTS = {
    "tides.txt": b"Ocean tides are caused by the gravitational pull of the moon on the oceans.",
    "bees.txt": b"Honey bees tell each other where flowers are with a waggle dance in the hive.",
    "lava.md": b"# Volcanoes\nMagma rises through the crust and erupts as lava from a vent.",
}
# Seconds between the SDK's polls: typed int on its runs, float on its vector stores; it sleeps either.
POLL: Any = 0.2
AZURE_ASSET = VectorStoreDataSource(
    asset_identifier="azureml://x", asset_type=VectorStoreDataSourceAssetType.URI_ASSET
)


class StepRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[RunStep] = []

    def on_run_step(self, step: RunStep) -> None:
        self.steps.append(step)


def upload_facts(client: AgentsClient, *names: str) -> dict[str, str]:
    return {
        name: client.files.upload_and_poll(file=(name, FACTS[name]), purpose=FilePurpose.AGENTS).id
        for name in names
    }


def tool_call_of(client: AgentsClient, run: ThreadRun, **include: Any) -> Any:
    steps = list(client.run_steps.list(thread_id=run.thread_id, run_id=run.id, order=ListSortOrder.ASCENDING))
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    step = client.run_steps.get(thread_id=run.thread_id, run_id=run.id, step_id=steps[0].id, **include)
    assert isinstance(step.step_details, RunStepToolCallDetails)
    (tool_call,) = step.step_details.tool_calls
    return tool_call


def test_vector_stores_their_files_and_batches(agents: AgentsClient) -> None:
    files = upload_facts(agents, *FACTS)
    store = agents.vector_stores.create_and_poll(
        file_ids=[files["tides.txt"]], name="facts", metadata={"k": "v"}, polling_interval=POLL, timeout=60
    )
    assert (store.status, store.name, store.metadata) == (VectorStoreStatus.COMPLETED, "facts", {"k": "v"})
    assert store.file_counts.completed == 1
    attached = agents.vector_store_files.create_and_poll(
        vector_store_id=store.id, file_id=files["bees.txt"], polling_interval=POLL, timeout=60
    )
    assert (attached.id, attached.status) == (files["bees.txt"], "completed")
    batch = agents.vector_store_file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[files["lava.md"]], polling_interval=POLL, timeout=60
    )
    assert (batch.status, batch.file_counts.completed) == ("completed", 1)
    in_batch = agents.vector_store_file_batches.list_files(vector_store_id=store.id, batch_id=batch.id)
    assert [f.id for f in in_batch] == [files["lava.md"]]
    # The SDK pages on last_id: each list ends, and holds every file once.
    assert sorted(f.id for f in agents.vector_store_files.list(vector_store_id=store.id, limit=1)) == sorted(
        files.values()
    )
    assert store.id in [s.id for s in agents.vector_stores.list(limit=1)]
    renamed = agents.vector_stores.modify(store.id, name="renamed")
    assert agents.vector_stores.get(store.id).name == renamed.name == "renamed"
    agents.vector_store_files.delete(vector_store_id=store.id, file_id=files["bees.txt"])
    assert agents.vector_stores.get(store.id).file_counts.total == 2
    agents.vector_stores.delete(store.id)
    with pytest.raises(HttpResponseError) as gone:
        agents.vector_stores.get(store.id)
    assert gone.value.status_code == 404


def test_vector_stores_from_azure_data_sources_are_refused(agents: AgentsClient) -> None:
    def refused(call: Any, field: str) -> None:
        with pytest.raises(HttpResponseError) as error:
            call()
        assert error.value.status_code == 400
        assert error.value.error is not None and error.value.error.code == "unsupported_parameter"
        assert f"'{field}'" in str(error.value.message) and "does not serve" in str(error.value.message)

    before = {s.id for s in agents.vector_stores.list()}
    refused(lambda: agents.vector_stores.create_and_poll(data_sources=[AZURE_ASSET]), "configuration")
    assert {s.id for s in agents.vector_stores.list()} == before  # nothing half-made
    store = agents.vector_stores.create_and_poll(name="empty", polling_interval=POLL)
    refused(
        lambda: agents.vector_store_files.create(vector_store_id=store.id, data_source=AZURE_ASSET),
        "data_source",
    )
    refused(
        lambda: agents.vector_store_file_batches.create(vector_store_id=store.id, data_sources=[AZURE_ASSET]),
        "data_sources",
    )
    assert agents.vector_stores.get(store.id).file_counts.total == 0


def test_vector_store_data_sources_are_refused_over_http(http: httpx.Client) -> None:
    v1 = {"api-version": "v1"}
    source = AZURE_ASSET.as_dict()
    created = http.post("/vector_stores", params=v1, json={"configuration": {"data_sources": [source]}})
    assert_not_served(created, "configuration", "configuration")
    store = http.post("/vector_stores", params=v1, json={}).json()
    files = f"/vector_stores/{store['id']}/files"
    assert_not_served(http.post(files, params=v1, json={"data_source": source}), "data_source", "data_source")
    batches = f"/vector_stores/{store['id']}/file_batches"
    refused = http.post(batches, params=v1, json={"data_sources": [source]})
    assert_not_served(refused, "data_sources", "data_sources")
    assert http.get(files, params=v1).json()["data"] == []


def test_file_search_runs_cite_the_files(agents: AgentsClient, model: ModelServer) -> None:
    model.respond_with(searching)
    files = upload_facts(agents, "tides.txt", "bees.txt")
    store = agents.vector_stores.create_and_poll(
        file_ids=list(files.values()), polling_interval=POLL, timeout=60
    )
    search = FileSearchTool(vector_store_ids=[store.id])
    agent = agents.create_agent(
        model="gpt-test", tools=search.definitions, tool_resources=search.resources, instructions="Cite."
    )
    assert agent.as_dict()["tool_resources"] == {"file_search": {"vector_store_ids": [store.id]}}
    thread = agents.threads.create(messages=[ThreadMessageOptions(role="user", content="moon and tides?")])
    run = agents.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=POLL)
    assert run.status == RunStatus.COMPLETED, run.last_error
    tool_call = tool_call_of(agents, run, include=[RunAdditionalFieldList.FILE_SEARCH_CONTENTS])
    assert isinstance(tool_call, RunStepFileSearchToolCall)
    results = tool_call.file_search.results
    assert (results[0].file_id, results[0].file_name) == (files["tides.txt"], "tides.txt")
    assert results[0].content is not None and results[0].content[0].text == FACTS["tides.txt"].decode()

    reply = agents.messages.get_last_message_by_role(thread_id=thread.id, role=MessageRole.AGENT)
    assert reply is not None and reply.text_messages[0].text.value.startswith("According to the files, Ocean")
    (citation,) = reply.file_citation_annotations
    assert citation.file_citation.file_id == files["tides.txt"]
    assert citation.text.endswith("†tides.txt】")
    assert agents.files.get(citation.file_citation.file_id).filename == "tides.txt"

    # A file attached to a message joins the thread's store, made for it, and the run searches it.
    lava = upload_facts(agents, "lava.md")["lava.md"]
    agents.messages.create(
        thread_id=thread.id,
        role="user",
        content="magma and lava",
        attachments=[MessageAttachment(file_id=lava, tools=FileSearchTool().definitions)],
    )
    (thread_store,) = agents.threads.get(thread.id).as_dict()["tool_resources"]["file_search"][
        "vector_store_ids"
    ]
    assert thread_store != store.id
    streamed = StepRecorder()
    with agents.runs.stream(thread_id=thread.id, agent_id=agent.id, event_handler=streamed) as stream:
        stream.until_done()
    assert streamed.statuses[-1] == "RunStatus.COMPLETED"
    (searched,) = [
        s.step_details.tool_calls[0]
        for s in streamed.steps
        if s.status == "completed" and isinstance(s.step_details, RunStepToolCallDetails)
    ]
    assert isinstance(searched, RunStepFileSearchToolCall)
    assert searched.file_search.results[0].file_id == lava
    last = agents.messages.get_last_message_by_role(thread_id=thread.id, role=MessageRole.AGENT)
    assert last is not None and "".join(streamed.deltas) == last.text_messages[0].text.value
    assert [c.file_citation.file_id for c in last.file_citation_annotations] == [lava]


def test_code_interpreter_runs_code_on_the_files_given(
    agents: AgentsClient, model: ModelServer, tmp_path: Path
) -> None:
    model.respond_with(coder)
    data = agents.files.upload_and_poll(file=("numbers.csv", b"n\n1\n2\n3\n"), purpose=FilePurpose.AGENTS)
    interpreter = CodeInterpreterTool(file_ids=[data.id])
    agent = agents.create_agent(
        model="gpt-test", tools=interpreter.definitions, tool_resources=interpreter.resources
    )
    assert agent.as_dict()["tool_resources"] == {"code_interpreter": {"file_ids": [data.id]}}
    code = (
        "import pandas as pd, matplotlib.pyplot as plt\n"
        "frame = pd.read_csv('/mnt/data/numbers.csv')\n"
        "print(frame.n.sum())\n"
        "frame.plot(); plt.show()"
    )
    thread = agents.threads.create(messages=[ThreadMessageOptions(role="user", content=CODE_PREFIX + code)])
    run = agents.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=POLL)
    assert run.status == RunStatus.COMPLETED, run.last_error
    tool_call = tool_call_of(agents, run)
    assert isinstance(tool_call, RunStepCodeInterpreterToolCall)
    assert tool_call.code_interpreter.input == code
    logs, image = tool_call.code_interpreter.outputs
    assert isinstance(logs, RunStepCodeInterpreterLogOutput) and logs.logs == "6\n"
    assert isinstance(image, RunStepCodeInterpreterImageOutput)

    reply = agents.messages.get_last_message_by_role(thread_id=thread.id, role=MessageRole.AGENT)
    assert reply is not None and reply.text_messages[0].text.value.startswith("The output was: 6")
    (shown,) = reply.image_contents
    assert shown.image_file.file_id == image.image.file_id
    agents.files.save(file_id=shown.image_file.file_id, file_name="plot.png", target_dir=tmp_path)
    assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG")


def test_built_in_tools_through_the_async_client(devhost: DevHost, model: ModelServer) -> None:
    def responder(body: dict[str, Any]) -> Any:
        messages = body["messages"]
        if messages[-1]["role"] == "tool":  # answer as the tool that was called
            called = messages[-2]["tool_calls"][0]["function"]["name"]
            return coder(body) if called == "python" else searching(body)
        return coder(body) or searching(body)

    model.respond_with(responder)

    async def scenario() -> None:
        async with async_agents(devhost) as client:
            file = await client.files.upload_and_poll(
                file=("bees.txt", FACTS["bees.txt"]), purpose="assistants"
            )
            store = await client.vector_stores.create_and_poll(
                file_ids=[file.id], polling_interval=POLL, timeout=60
            )
            assert store.status == VectorStoreStatus.COMPLETED
            more = await client.files.upload_and_poll(
                file=("lava.md", FACTS["lava.md"]), purpose="assistants"
            )
            batch = await client.vector_store_file_batches.create_and_poll(
                vector_store_id=store.id, file_ids=[more.id], polling_interval=POLL, timeout=60
            )
            assert batch.file_counts.completed == 1
            listed = [f.id async for f in client.vector_store_files.list(vector_store_id=store.id, limit=1)]
            assert sorted(listed) == sorted([file.id, more.id])

            toolset = AsyncToolSet()
            toolset.add(FileSearchTool(vector_store_ids=[store.id]))
            toolset.add(CodeInterpreterTool())
            agent = await client.create_agent(model="gpt-test", toolset=toolset)
            thread = await client.threads.create(
                messages=[ThreadMessageOptions(role="user", content="how do bees dance?")]
            )
            run = await client.runs.create_and_process(
                thread_id=thread.id, agent_id=agent.id, polling_interval=POLL
            )
            assert run.status == RunStatus.COMPLETED, run.last_error
            reply = await client.messages.get_last_message_by_role(
                thread_id=thread.id, role=MessageRole.AGENT
            )
            assert reply is not None
            assert [c.file_citation.file_id for c in reply.file_citation_annotations] == [file.id]

            await client.messages.create(
                thread_id=thread.id, role="user", content=CODE_PREFIX + "print(2 ** 10)"
            )
            recorder = await stream_run(client, thread.id, agent.id)
            assert recorder.statuses[-1] == "RunStatus.COMPLETED"
            assert "".join(recorder.deltas).startswith("The output was: 1024")
            await client.vector_stores.delete(store.id)
            await client.delete_agent(agent.id)

    asyncio.run(scenario())
