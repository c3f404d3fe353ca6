"""What each run operation does: create (on a thread, or with a new thread), list, retrieve,
modify, submit tool outputs, cancel, and the steps. The lifecycle itself is the executor's.

A run is created `queued`, in the same transaction that locks its thread, and handed to the
runs queue; the queue trigger's executor takes it from there. A streamed run is created taken
by the executor of the request that streams it instead (its events still say `queued`, then
`in_progress`), and is not queued. Reads settle a run first (see
`Executor.settle`), so a run past its deadline or abandoned by its executor is seen ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Protocol

from . import ids
from .beside import beside
from .documents import NewThread, document, optimistically
from .errors import ApiError, InvalidRequest, NotFound
from .executor import Executor
from .models import Assistant, CreateThreadRequest
from .models.message import Attachment
from .models.run import (
    CreateRunRequest,
    CreateThreadAndRunRequest,
    FunctionToolChoice,
    ModifyRunRequest,
    Run,
    RunStep,
    SubmitToolOutputsRequest,
)
from .models.tools import FunctionTool, ResponseFormatJsonSchema
from .pagination import ListPage, ListQuery
from .run_state import STREAM_ENDS, Event, EventStream, RunGone, StoredRun, stored
from .settings import MODEL_BASE_URL
from .storage import (
    Batch,
    ConcurrentUpdate,
    OwnerGone,
    Record,
    StorageUnavailable,
    Store,
    locked_by,
    next_message,
)
from .storage.queue import RunQueue
from .tools import Toolbox


class Owners(Protocol):
    """What runs need of the service that owns assistants and threads (the service itself)."""

    def thread_record(self, thread_id: str) -> Record: ...

    def retrieve_assistant(self, assistant_id: str) -> Assistant: ...

    def attach_to_thread(self, thread_id: str, attachments: list[Attachment]) -> None: ...

    def new_thread_resources(self, request: CreateThreadRequest, within: str = "") -> None: ...


log = logging.getLogger("assistants.runs")

POLL_AFTER_MS = 250  # what `openai-poll-after-ms` advises while a run is under way


class Runs:
    def __init__(self, store: Store, executor: Executor, service: Owners) -> None:
        self._store = store
        self._settings = store.settings
        self.executor = executor
        self._queue = RunQueue(store.settings)
        self._service = service

    def _thread(self, thread_id: str) -> Record:
        return self._service.thread_record(thread_id)

    def _assistant(self, assistant_id: str) -> Assistant:
        return self._service.retrieve_assistant(assistant_id)

    # --- creating ---------------------------------------------------------------------------

    def create(
        self, thread_id: str, request: CreateRunRequest, search_content: bool = False
    ) -> Run | EventStream:
        """`search_content`: the run's events show file_search results' content."""
        self._require_backend()
        attached = [a for m in request.additional_messages or [] for a in m.attachments or []]
        self._service.attach_to_thread(thread_id, attached)
        finding = beside(self._assistant, request.assistant_id)  # read beside the thread's first read
        written: dict[str, Record] = {}

        def attempt() -> Run:
            thread = self._thread(thread_id)
            assistant = finding.result()
            self.check_unlocked(
                thread, lambda run_id: f"Thread {thread_id} already has an active run {run_id}."
            )
            number = next_message(thread)
            created_at = ids.unix_seconds()
            runs = self._store.threads().runs(thread_id)
            batch = Batch(runs.partition)
            for n, body in enumerate(request.additional_messages or []):
                message = body.to_message(ids.sequential_id(ids.MESSAGE, number + n), thread_id, created_at)
                batch.insert(
                    runs.messages,
                    message.id,
                    document(message, body.given(), f"additional_messages[{n}]"),
                )
            number += len(request.additional_messages or [])
            run = self._new_run(assistant, request, thread_id, ids.sequential_id(ids.RUN, number), created_at)
            batch.merge(thread_id, thread, runs.lock(thread, run.id, number + 1))
            batch.insert(runs.runs, run.id, self._stored(run, request, search_content))
            indexing = self._index(thread_id, run.id)
            written.update(batch.commit())
            _indexed(indexing, run.id)
            return run

        run: Run = optimistically(attempt)
        return self._start(run, request.stream, [], written[run.id], written[thread_id])

    def create_thread_and_run(self, request: CreateThreadAndRunRequest) -> Run | EventStream:
        self._require_backend()
        assistant = self._assistant(request.assistant_id)
        thread_request = request.thread or CreateThreadRequest.parse({})
        self._service.new_thread_resources(thread_request, "thread")
        new = NewThread.of(thread_request, "thread")
        thread = new.thread
        run_id = ids.sequential_id(ids.RUN, len(new.messages))
        run = self._new_run(assistant, request, thread.id, run_id, thread.created_at)
        indexing = self._index(thread.id, run.id)
        self._store.threads().create(
            thread.id, new.document, new.messages, run=(run.id, self._stored(run, request))
        )
        _indexed(indexing, run.id)
        return self._start(run, request.stream, [Event("thread.created", thread)])

    def _index(self, thread_id: str, run_id: str) -> Future[None]:
        """The run's row in the active-runs index, for the sweeper: written beside the run's own
        transaction, on a best-effort basis (a row whose run never came to be is dropped by the
        sweeper; a run without one is still ended by whoever reads it, past its deadline)."""
        return beside(self._store.active_runs().add, thread_id, run_id)

    def _start(
        self,
        run: Run,
        stream: bool | None,
        before: list[Event],
        record: Record | None = None,
        thread: Record | None = None,
    ) -> Run | EventStream:
        """The new run, handed to the queue; or, streamed, its events as this request drives it
        (it was written taken: see `_stored`), from `record`, the run as just written, and
        `thread`, the thread as the run's creation left it, if known."""
        if not stream:
            self.enqueue(run)
            return run
        created = [Event("thread.run.created", run), Event("thread.run.queued", run)]
        return EventStream(self._drive(run, [*before, *created], record, taken=True, thread=thread))

    def _drive(
        self,
        run: Run,
        before: list[Event],
        record: Record | None = None,
        taken: bool = False,
        thread: Record | None = None,
    ) -> Iterator[Event]:
        """The events of a run this request drives, after those that came `before`. If another
        executor has it (it cannot, but for a sweeper's late resend), the run is followed until
        it stops, so the stream still ends with the run's own end."""
        yield from before
        last = None
        for last in self.executor.drive(run.thread_id, run.id, record, taken, thread):
            yield last
        if last is None or last.event not in STREAM_ENDS:
            yield from self.executor.follow(run.thread_id, run.id)

    def _new_run(
        self,
        assistant: Assistant,
        request: CreateRunRequest | CreateThreadAndRunRequest,
        thread_id: str,
        run_id: str,
        created_at: int,
    ) -> Run:
        """The run as the request and its assistant make it: the request's settings win."""
        instructions = (
            request.instructions if request.instructions is not None else assistant.instructions or ""
        )
        extra = request.additional_instructions if isinstance(request, CreateRunRequest) else None
        if extra:
            instructions = f"{instructions}\n\n{extra}" if instructions else extra
        tools = request.tools if request.tools is not None else assistant.tools
        run = Run(
            id=run_id,
            created_at=created_at,
            assistant_id=assistant.id,
            thread_id=thread_id,
            expires_at=created_at + self._settings.run_expiry_seconds,
            model=request.model or assistant.model,
            instructions=instructions,
            tools=tools,
            tool_resources=(
                request.tool_resources
                if isinstance(request, CreateThreadAndRunRequest) and request.tool_resources
                else assistant.tool_resources
            ),
            metadata=request.metadata or {},
            temperature=request.temperature if request.temperature is not None else assistant.temperature,
            top_p=request.top_p if request.top_p is not None else assistant.top_p,
            max_prompt_tokens=request.max_prompt_tokens,
            max_completion_tokens=request.max_completion_tokens,
            response_format=request.response_format or assistant.response_format,
            parallel_tool_calls=request.parallel_tool_calls
            if request.parallel_tool_calls is not None
            else True,
            reasoning_effort=request.reasoning_effort or assistant.reasoning_effort,
        )
        if request.truncation_strategy is not None:
            run.truncation_strategy = request.truncation_strategy
        if request.tool_choice is not None:
            run.tool_choice = request.tool_choice
        _check(run, self.executor.tools)
        return run

    def _stored(
        self, run: Run, request: CreateRunRequest | CreateThreadAndRunRequest, search_content: bool = False
    ) -> bytes:
        """The new run as stored: queued for the queue trigger's executor, or, streamed, taken
        by the executor of the request that creates it."""
        state = StoredRun(run=run.model_copy(deep=True))  # `run` stays as created, for its events
        state.execution.queued_at = run.created_at
        state.execution.search_content = search_content
        if request.stream:
            self.executor.take(state)
        return document(state, request.given())

    def enqueue(self, run: Run) -> None:
        try:
            self._queue.send(run.thread_id, run.id)
        except StorageUnavailable:
            # Nothing would ever execute it: end it now, rather than leave the thread locked.
            try:
                self.executor.fail(run.thread_id, run.id, "The run could not be queued for execution.")
            finally:
                raise

    def _require_backend(self) -> None:
        if self.executor.backend is None:
            raise InvalidRequest(
                f"This service has no model backend configured: set {MODEL_BASE_URL} (and, unless the "
                "backend authenticates the app's identity, ASSISTANTS_MODEL_API_KEY) to run assistants.",
                param="assistant_id",
                code="model_not_configured",
            )

    def check_unlocked(self, thread: Record, refusal: Callable[[str], str]) -> None:
        """A 400 (`refusal` of the run's id) if a run locks the thread. A run that has to end now
        (expired, abandoned) is ended first, and ConcurrentUpdate asks the caller to read the
        thread again."""
        run_id = locked_by(thread)
        if run_id is None:
            return
        thread_id = str(thread.first["id"])
        state = self.executor.settle(thread_id, run_id)
        if state is not None and state.run.is_active:
            raise InvalidRequest(refusal(run_id))
        fresh = self._store.threads().get(thread_id)
        if fresh is not None and fresh.etag != thread.etag:
            raise ConcurrentUpdate()

    # --- reading and changing ---------------------------------------------------------------

    def list(self, thread_id: str, query: ListQuery) -> ListPage[Run]:
        if not ids.is_valid(ids.THREAD, thread_id):
            raise NotFound.object("thread", thread_id)
        try:
            documents, has_more = (
                self._store.threads()
                .runs(thread_id)
                .runs.page(query.order, query.limit, query.after, query.before)
            )
        except OwnerGone:
            raise NotFound.object("thread", thread_id) from None
        return ListPage[Run].of([StoredRun.model_validate_json(d).run for d in documents], has_more)

    def retrieve(self, thread_id: str, run_id: str) -> Run:
        self._ids(thread_id, run_id)
        state = self.executor.settle(thread_id, run_id)
        if state is None:
            raise self._missing(thread_id, run_id)
        return state.run

    def modify(self, thread_id: str, run_id: str, request: ModifyRunRequest) -> Run:
        self._ids(thread_id, run_id)
        runs = self._store.threads().runs(thread_id)

        def attempt() -> Run:
            record = runs.get(run_id)
            if record is None:
                raise self._missing(thread_id, run_id)
            state = stored(record)
            state.run = state.run.with_changes(request.given())
            runs.runs.replace(run_id, record, document(state, request.given()))
            return state.run

        run: Run = optimistically(attempt)
        return run

    def submit_tool_outputs(
        self, thread_id: str, run_id: str, request: SubmitToolOutputsRequest
    ) -> Run | EventStream:
        self._ids(thread_id, run_id)

        def attempt() -> list[Event]:
            try:
                return self.executor.accept_tool_outputs(thread_id, run_id, request.tool_outputs)
            except RunGone:
                raise self._missing(thread_id, run_id) from None

        events: list[Event] = optimistically(attempt)
        run = events[-1].data
        assert isinstance(run, Run)
        if not request.stream:
            self.enqueue(run)
            return run
        return EventStream(self._drive(run, events))

    def cancel(self, thread_id: str, run_id: str) -> Run:
        self._ids(thread_id, run_id)
        try:
            run, _ = self.executor.cancel(thread_id, run_id)
        except RunGone:
            raise self._missing(thread_id, run_id) from None
        return run

    def list_steps(self, thread_id: str, run_id: str, query: ListQuery) -> ListPage[RunStep]:
        self.retrieve(thread_id, run_id)
        documents, has_more = (
            self._store.threads()
            .runs(thread_id)
            .steps(run_id)
            .page(query.order, query.limit, query.after, query.before)
        )
        return ListPage[RunStep].of([RunStep.model_validate_json(d) for d in documents], has_more)

    def retrieve_step(self, thread_id: str, run_id: str, step_id: str) -> RunStep:
        self.retrieve(thread_id, run_id)
        record = None
        if ids.is_valid(ids.STEP, step_id):
            record = self._store.threads().runs(thread_id).steps(run_id).get(step_id, for_write=True)
        if record is None:
            raise NotFound.object("run step", step_id)
        return RunStep.model_validate_json(record.document)

    def _ids(self, thread_id: str, run_id: str) -> None:
        if not ids.is_valid(ids.THREAD, thread_id):
            raise NotFound.object("thread", thread_id)
        if not ids.is_valid(ids.RUN, run_id):
            raise self._missing(thread_id, run_id)

    def _missing(self, thread_id: str, run_id: str) -> ApiError:
        """A 404 for the run, or for its thread if that is what is missing."""
        self._thread(thread_id)
        return NotFound.object("run", run_id)


def _indexed(indexing: Future[None], run_id: str) -> None:
    try:
        indexing.result()
    except StorageUnavailable:
        log.warning("run %s was created without its row in the active-runs index", run_id)


def _check(run: Run, tools: Toolbox) -> None:
    """What no model could be asked: a json_schema answer with tools it cannot call, a forced
    function the run does not have, or a function under the name a built-in tool of the run is
    offered to the model with."""
    kinds = {tool.type for tool in run.tools}
    for position, tool in enumerate(run.tools):
        builtin = tools.builtin(tool.function.name) if isinstance(tool, FunctionTool) else None
        if builtin is not None and builtin.kind in kinds:
            raise InvalidRequest(
                f"Invalid 'tools': the function name '{builtin.function}' is reserved for the "
                f"{builtin.kind} tool of this run.",
                param=f"tools[{position}].function.name",
                code="invalid_value",
            )
    if isinstance(run.response_format, ResponseFormatJsonSchema) and any(
        not isinstance(tool, FunctionTool) for tool in run.tools
    ):
        raise InvalidRequest(
            "Invalid tools: all tools must be of type `function` when `response_format` is of type "
            "`json_schema`.",
            param="response_format",
        )
    if isinstance(run.tool_choice, FunctionToolChoice):
        name = run.tool_choice.function.name
        if name not in {tool.function.name for tool in run.function_tools()}:
            raise InvalidRequest(
                f"Invalid 'tool_choice': the run has no function named '{name}'.",
                param="tool_choice.function.name",
                code="invalid_value",
            )
