"""The one component that drives a run through its life and emits its events.

Every transition is written to storage first, conditional on the run being as this executor
last saw it, and then reported as an OpenAI-shaped event (`Event`): the queue worker drains
`drive` and drops the events; a streaming response forwards them. What a stream delivers and
what a poller reads are therefore the same states. Text and tool-call arguments are streamed as
deltas and stored once, when their message or step is complete, so a run's storage requests do
not grow with the length of its answer.

One executor at a time holds a run: it claims the run (queued -> in_progress) with a
conditional write that also takes a lease, and renews the lease while the model answers. A
second delivery of the same run finds it claimed and does nothing. A run whose executor died
(its lease lapsed) is failed by whoever looks at it next (`settle`: a read, a lock check, the
sweeper), and a run past `expires_at` is expired the same way, so no thread stays locked.
Cancelling reaches the executor through storage: the run is marked `cancelling`, and flagged in
the active-runs index that the process's CancelWatch looks at twice a second; the executor
reads its run when the flag is up (and every LOOK_SECONDS regardless) and stops reading the
model when it finds `cancelling`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import closing, suppress
from dataclasses import dataclass, field
from typing import Literal

from . import conversation, ids, prompt
from .answer import Answer, step_delta
from .backend import Finished, ModelBackend, ModelError, TextFragment, ToolCallFragment
from .beside import beside
from .cancels import CancelWatch
from .closing import Closing, Ending, Written
from .errors import InvalidRequest
from .models import Message
from .models.message import Attachment, ImageFile, ImageFileContentBlock
from .models.run import (
    FunctionToolCall,
    IncompleteDetails,
    LastError,
    MessageCreation,
    MessageCreationDetails,
    Run,
    RunStep,
    ToolCallsDetails,
    ToolOutput,
    Usage,
)
from .models.thread import Thread
from .models.tool_calls import CodeInterpreterToolCall, FileSearchToolCall
from .run_state import (
    STREAM_ENDS,
    Event,
    RunGone,
    StoredRun,
    document,
    new_step,
    stored,
)
from .storage import (
    Batch,
    ConcurrentUpdate,
    Record,
    StorageUnavailable,
    Store,
    ThreadRuns,
    next_message,
)
from .tools import RunTools, Toolbox, ToolFailure, function
from .tools.annotations import Annotator

log = logging.getLogger("assistants.runs")

LEASE_SECONDS = 30  # a run whose executor has not renewed its lease for this long is taken as lost
RENEW_SECONDS = 10
CANCEL_CHECK_SECONDS = 0.5  # how often the process looks for cancels (cancels.py)
LOOK_SECONDS = 5  # how often an executor reads its run itself while the model answers
# A run past its deadline whose executor holds it is left to that executor this long, so that it
# ends the run itself, with what the model wrote so far (it looks every CANCEL_CHECK_SECONDS).
EXPIRY_GRACE_SECONDS = 5
MAX_MODEL_CALLS = 20  # per run: a model that calls tools for ever ends as failed
DEFAULT_CONTEXT_TOKENS = 128_000
FOLLOW_SECONDS = 0.25  # how often a request that follows another's run reads it
LOST = "The run's worker stopped before the run finished."
_FILTERED = "The model's answer was stopped by its content filter."
_TOO_MANY_CALLS = f"The model called tools {MAX_MODEL_CALLS} times in one run without answering."


class _Cancelled(Exception):
    pass


class _Expired(Exception):
    pass


@dataclass
class _Held:
    """The run as this executor last wrote or read it, and the thread's record; and the reads
    for the next model call's prompt, if they were started early."""

    runs: ThreadRuns
    record: Record
    state: StoredRun
    thread: Record | None = None
    reads: conversation.Reads | None = None
    answer: Answer | None = None  # of the model call under way, kept for an end that cuts it short
    annotator: Annotator | None = None  # what the run's next answer may refer to of its tools' work
    attachments: list[Attachment] = field(default_factory=list)  # of the messages the model is shown
    # The open step and message as this executor wrote them: the write that closes them uses
    # these rather than reading them again (two requests a run); a write redone reads them.
    opened: dict[str, Record] = field(default_factory=dict)

    @property
    def run(self) -> Run:
        return self.state.run


class Executor:
    def __init__(
        self,
        store: Store,
        backend: ModelBackend | None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        tools: Toolbox | None = None,
        images: prompt.ImageReader | None = None,
    ) -> None:
        """`images` reads the images of `image_file` parts, which go to the model inline."""
        self._store = store
        self.backend = backend
        self._context_tokens = context_tokens
        self.tools = tools or Toolbox()
        self._images = images
        self._cancels = CancelWatch(store.active_runs, CANCEL_CHECK_SECONDS)

    # --- driving ----------------------------------------------------------------------------

    def drive(
        self,
        thread_id: str,
        run_id: str,
        record: Record | None = None,
        taken: bool = False,
        thread: Record | None = None,
    ) -> Iterator[Event]:
        """Take the run if it waits for an executor and run it to its next stop (an end, or
        `requires_action`), yielding its events; nothing if it needs no executor. `record` is
        the run as its caller just wrote it, if it did (one read less), and `thread` the thread
        as that write left it (another); `taken`, if the caller wrote it already taken (`take`)
        for this executor to run."""
        runs = self._store.threads().runs(thread_id)
        if record is not None:
            held: _Held | None = _Held(runs, record, stored(record), thread=thread)
        else:
            held = self._load(thread_id, run_id)
        if held is None:
            return
        try:
            yield from self._drive(held, taken)
        except RunGone:  # another executor or a request moved the run first (ended it): theirs stands
            return

    def _drive(self, held: _Held, taken: bool) -> Iterator[Event]:
        reads = None
        if not taken:
            settled = self._settle(held)
            if settled is not None:
                yield from settled
                return
            if held.run.status == "cancelling":  # cancelled before anyone took it
                yield from self._end(held, "cancelled")
                return
            if held.run.status != "queued":
                return
            # beside the claim, which they do not depend on
            reads = conversation.Reads.start(self._store, held.runs, held.run.thread_id)
            owner = secrets.token_hex(8)
            self._write(held, lambda s: _claim(s, owner))
        held.reads = reads
        yield Event("thread.run.in_progress", held.run)
        try:
            yield from self._loop(held)
        except _Cancelled:
            yield Event("thread.run.cancelling", held.run)
            yield from self._end(held, "cancelled", written=Written.cut(held.answer, "cancelled"))
        except _Expired:
            yield from self._end(held, "expired", written=Written.cut(held.answer, "expired"))

    @staticmethod
    def take(state: StoredRun) -> None:
        """A new run's state as it is written when the request that creates it will drive it
        (streamed): taken already, in the transaction that creates it, one write less."""
        _claim(state, secrets.token_hex(8))

    def _loop(self, held: _Held) -> Iterator[Event]:
        """One model call, and what follows from its answer."""
        if held.state.execution.calls > MAX_MODEL_CALLS:
            yield from self._end(held, "failed", LastError(code="server_error", message=_TOO_MANY_CALLS))
            return
        try:
            body = self._request(held)
        except prompt.Unservable as exc:
            yield from self._end(held, "failed", LastError(code="invalid_prompt", message=str(exc)))
            return
        except ToolFailure as exc:  # what a built-in tool needed to be offered failed
            yield from self._end(held, "failed", LastError(code="server_error", message=str(exc)))
            return
        if body is None:
            yield from self._end(held, "incomplete", reason="max_prompt_tokens")
            return
        held.answer = answer = Answer(self.tools.shape, held.annotator)
        try:
            yield from self._call(held, body, answer)
        except ModelError as exc:
            error = LastError(code=exc.code, message=exc.message)
            yield from self._end(held, "failed", error, written=Written.cut(answer, "failed"))
            return
        usage = answer.usage or Usage(
            prompt_tokens=prompt.estimate(body["messages"]),  # type: ignore[arg-type]
            completion_tokens=len(answer.text) // prompt.CHARS_PER_TOKEN + 1,
        )
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        yield from self._record_answer(held, answer, usage)

    def _request(self, held: _Held) -> dict[str, object] | None:
        """The next model call's request (the claim counted it), or None if the prompt budget
        cannot hold even the newest message."""
        run, execution = held.run, held.state.execution
        turns, calls = conversation.turns(held.runs, run.id) if execution.steps else ([], [])
        held.annotator = self.tools.annotator(calls)
        fixed = prompt.system_message(run) + turns
        budget = self._context_tokens
        if run.max_prompt_tokens is not None:
            budget = min(budget, run.max_prompt_tokens - execution.prompt_tokens)
        reads, held.reads = held.reads, None
        if reads is None:
            reads = conversation.Reads.start(self._store, held.runs, run.thread_id, held.thread)
        held.attachments = []
        earlier = conversation.history(held.runs, run.id, reads.newest, held.attachments)
        try:
            history = prompt.fit(earlier, run, budget - prompt.estimate(fixed), self._images)
        except prompt.TooLong:
            return None
        finally:
            held.thread = reads.thread.result()
        completion_budget = None
        if run.max_completion_tokens is not None:
            completion_budget = run.max_completion_tokens - execution.completion_tokens
        messages = prompt.system_message(run) + history + turns
        first = execution.calls == 1
        builtins = {}
        if run.tools:
            with self._cancels.watching(run.id):  # offering may wait (file_search's thread store)
                builtins = self.tools.offered(self._run_tools(held, 0, self._vigil(held), first))
        return prompt.request_body(run, messages, first, completion_budget, builtins)

    def _run_tools(
        self, held: _Held, step: int = 0, check: Callable[[], None] | None = None, first_call: bool = False
    ) -> RunTools:
        thread = Thread.model_validate_json(self._thread(held).document)
        attached = tuple(held.attachments)
        return RunTools(held.run, thread.tool_resources, attached, step, first_call, check or (lambda: None))

    def _call(self, held: _Held, body: dict[str, object], answer: Answer) -> Iterator[Event]:
        """One model call: text and tool-call deltas as they come."""
        assert self.backend is not None
        stream = self.backend.stream(dict(body))
        with closing(stream), self._cancels.watching(held.run.id):
            vigil = self._vigil(held)
            while True:
                try:
                    fragment = stream.next(timeout=CANCEL_CHECK_SECONDS)
                except StopIteration:
                    message_id = held.state.execution.open_message
                    for delta in answer.flush(message_id) if message_id else ():
                        yield Event("thread.message.delta", delta)
                    return
                vigil()
                if isinstance(fragment, TextFragment):
                    if held.state.execution.open_message is None:
                        yield from self._open_message(held)
                    message_id = held.state.execution.open_message
                    assert message_id is not None
                    for delta in answer.add_text(fragment.text, message_id):
                        yield Event("thread.message.delta", delta)
                elif isinstance(fragment, ToolCallFragment):
                    deltas = answer.add_call(fragment)
                    if deltas:
                        if answer.step_number is None:  # its step is shown now, stored later
                            answer.step_number = self._step_number(held)
                            step = new_step(held.run, answer.step_number, ToolCallsDetails())
                            answer.step_id = step.id
                            yield from _started(step)
                        yield Event("thread.run.step.delta", step_delta(answer.step_id, deltas))
                elif isinstance(fragment, Finished):
                    answer.reason, answer.usage = fragment.reason, fragment.usage

    def _vigil(self, held: _Held) -> Callable[[], None]:
        """What keeps watch while the model answers or a tool works, called often: raises
        _Expired past the run's deadline, _Cancelled once it is being cancelled (looked for at
        most every CANCEL_CHECK_SECONDS), and renews the lease every RENEW_SECONDS. Must be
        called within `self._cancels.watching(run id)`."""
        checked = looked = renewed = time.monotonic()

        def keep() -> None:
            nonlocal checked, looked, renewed
            now = time.monotonic()
            if now - checked >= CANCEL_CHECK_SECONDS:
                checked = now
                if time.time() >= (held.run.expires_at or 0):
                    raise _Expired()
                if self._cancels.asked(held.run.id) or now - looked >= LOOK_SECONDS:
                    looked = now
                    self._through_blips(held, lambda: self._check(held))
            if now - renewed >= RENEW_SECONDS:
                renewed = now
                self._through_blips(held, lambda: self._write(held, _renew))

        return keep

    def _through_blips(self, held: _Held, step: Callable[[], object]) -> None:
        """A look for a cancel, or a lease renewal, that storage could not serve: let go while
        the lease still holds, so that a blip of storage does not end a run mid-answer."""
        try:
            step()
        except StorageUnavailable:
            if time.time() >= held.state.execution.lease_until - RENEW_SECONDS:
                raise
            log.warning("storage unavailable while run %s is at the model; going on", held.run.id)

    def _check(self, held: _Held) -> None:
        """Read the run: raise _Cancelled if it is being cancelled; take in other changes
        (metadata)."""
        record = held.runs.get(held.run.id)
        if record is None:
            raise RunGone()
        if record.etag != held.record.etag:
            held.record, held.state = record, stored(record)
        if held.run.status == "cancelling":
            raise _Cancelled()
        if held.run.status != "in_progress":
            raise RunGone()

    def _step_number(self, held: _Held) -> int:
        """The next step's number: after the steps stored and a tool_calls step only shown."""
        number = held.state.execution.steps
        return number + 1 if held.answer is not None and held.answer.step_number == number else number

    def _open_message(self, held: _Held) -> Iterator[Event]:
        """A message_creation step and its message, in progress, empty."""
        run = held.run
        number = next_message(self._thread(held))  # no other message comes while the run locks the thread
        message_id = ids.sequential_id(ids.MESSAGE, number)
        step_number = self._step_number(held)
        creation = MessageCreationDetails(message_creation=MessageCreation(message_id=message_id))
        step = new_step(run, step_number, creation)
        step_id = step.id
        message = Message(
            id=message_id,
            created_at=step.created_at,
            thread_id=run.thread_id,
            status="in_progress",
            role="assistant",
            # What the run's code displayed since its last message comes first.
            content=[
                ImageFileContentBlock(type="image_file", image_file=ImageFile(file_id=file_id))
                for file_id in held.state.execution.images
            ],
            assistant_id=run.assistant_id,
            run_id=run.id,
        )

        def change(state: StoredRun) -> None:
            state.execution.images = []
            state.execution.steps = step_number + 1
            state.execution.open_step, state.execution.open_message = step_id, message_id

        def extra(batch: Batch) -> None:
            batch.add(held.runs.lock(self._thread(held), run.id, number + 1))
            batch.insert(held.runs.steps(run.id), step_id, document(step))
            batch.insert(held.runs.messages, message_id, document(message), group=run.id)

        written = self._write(held, change, extra)
        held.thread = None  # its version moved on
        held.opened = {step_id: written[step_id], message_id: written[message_id]}
        if held.answer is not None:
            held.answer.part = len(message.content)  # the text follows the images
        yield from _started(step)
        yield Event("thread.message.created", message)
        yield Event("thread.message.in_progress", message)

    def _record_answer(self, held: _Held, answer: Answer, usage: Usage) -> Iterator[Event]:
        """After a model call: the message finished, then the tool calls asked for, or the run's end."""
        run = held.run
        calls = answer.calls()
        budget_spent = (
            run.max_completion_tokens is not None
            and held.state.execution.completion_tokens + usage.completion_tokens >= run.max_completion_tokens
        )
        cut = answer.reason in ("length", "content_filter")

        def charge(state: StoredRun) -> None:
            state.execution.prompt_tokens += usage.prompt_tokens
            state.execution.completion_tokens += usage.completion_tokens

        wrote = held.state.execution.open_message is not None
        reason = None
        if cut:
            reason = "content_filter" if answer.reason == "content_filter" else "max_tokens"
        # A cut answer's tool calls may have cut arguments: never asked for, stored without them.
        asks = bool(calls) and not cut
        written = Written(answer, reason, Usage() if calls else usage, calls_cut=not asks)
        # Cut with nothing written, the run has nothing to show for it, and ends saying why.
        if answer.reason == "length" and (budget_spent or not wrote):
            yield from self._end(
                held, "incomplete", reason="max_completion_tokens", written=written, charge=charge
            )
        elif answer.reason == "content_filter" and not wrote:
            error = LastError(code="invalid_prompt", message=_FILTERED)
            yield from self._end(held, "failed", error, written=written, charge=charge)
        elif asks:
            yield from self._take_calls(held, answer, usage, charge, written)
        else:
            yield from self._end(held, "completed", written=written, charge=charge)

    def _take_calls(
        self,
        held: _Held,
        answer: Answer,
        usage: Usage,
        charge: Callable[[StoredRun], None],
        written: Written,
    ) -> Iterator[Event]:
        """The message written before the calls, if one was, finished and the tool_calls step
        shown while the calls streamed stored, in one write: with requires_action if the calls
        are all the client's functions; else the built-in ones are executed next (`_execute`)."""
        number = answer.step_number
        assert number is not None
        calls = answer.calls()
        step = new_step(held.run, number, ToolCallsDetails(tool_calls=calls), answer.step_id)
        functions = [c for c in calls if isinstance(c, FunctionToolCall)]
        builtin = len(functions) < len(calls)
        closed = Closing()

        def change(state: StoredRun) -> None:
            charge(state)
            state.execution.steps = max(state.execution.steps, number + 1)
            state.execution.open_step, state.execution.open_message = step.id, None
            if builtin:
                _renew(state)
            else:
                _ask_for(state, functions, usage)

        def extra(batch: Batch) -> None:
            nonlocal closed
            known, held.opened = held.opened, {}  # read again for a write redone
            closed = Closing.of(held.runs, held.state, written, "completed", known=known)
            closed.write(batch)
            batch.insert(held.runs.steps(held.run.id), step.id, document(step))

        self._write(held, change, extra)
        held.answer = None  # its calls are stored: an end from now on closes their step
        yield from closed.events
        if builtin:
            yield from self._execute(held, step, number, usage)
        else:
            yield Event("thread.run.requires_action", held.run)

    def _execute(self, held: _Held, step: RunStep, number: int, usage: Usage) -> Iterator[Event]:
        """The step's built-in calls executed, with their deltas; then, in one write, the step
        completed and the run on to its next model call, or requires_action for the client's
        functions among the calls. A tool that fails ends the run failed."""
        details = step.step_details
        assert isinstance(details, ToolCallsDetails)
        with self._cancels.watching(held.run.id):
            tools = self._run_tools(held, number, self._vigil(held))
            for position, call in enumerate(details.tool_calls):
                tool = None if isinstance(call, FunctionToolCall) else self.tools.by_kind(call.type)
                if tool is None or isinstance(call, FunctionToolCall):
                    continue
                try:
                    for item in tool.execute(tools, call, position):
                        if isinstance(item, FileSearchToolCall | CodeInterpreterToolCall):
                            details.tool_calls[position] = item  # the call, executed
                        else:
                            yield Event("thread.run.step.delta", step_delta(step.id, [item]))
                except ToolFailure as exc:
                    error = LastError(code="server_error", message=str(exc))
                    yield from self._end(held, "failed", error)
                    return
        functions = [c for c in details.tool_calls if isinstance(c, FunctionToolCall)]
        if not functions:
            step.status, step.completed_at, step.usage = "completed", ids.unix_seconds(), usage

        def change(state: StoredRun) -> None:
            if functions:
                _ask_for(state, functions, usage)
            else:  # on to the next model call, counted as a claim counts it
                shown = [c.images() for c in details.tool_calls if isinstance(c, CodeInterpreterToolCall)]
                state.execution.images += [file_id for images in shown for file_id in images]
                state.execution.open_step = None
                state.execution.calls += 1
                _renew(state)

        def extra(batch: Batch) -> None:
            steps = held.runs.steps(held.run.id)
            record = steps.get(step.id, for_write=True)  # read again for a write redone
            if record is None:
                raise RunGone()
            batch.replace(steps, step.id, record, document(step))

        self._write(held, change, extra)
        if functions:
            yield Event("thread.run.requires_action", held.run)
            return
        yield Event("thread.run.step.completed", step.shown(held.state.execution.search_content))
        yield from self._loop(held)

    # --- ends -------------------------------------------------------------------------------

    def _end(
        self,
        held: _Held,
        status: Ending,
        error: LastError | None = None,
        reason: Literal["max_completion_tokens", "max_prompt_tokens"] | None = None,
        written: Written | None = None,
        charge: Callable[[StoredRun], None] | None = None,
    ) -> Iterator[Event]:
        """The run's end: its open step and message closed (with the answer `written` into the
        message, if any; else as the end leaves them), the lock released, all in one write;
        then their events and the run's."""
        now = ids.unix_seconds()
        closed = Closing()

        def extra(batch: Batch) -> None:
            nonlocal closed
            known, held.opened = held.opened, {}  # read again for a write redone
            closed = Closing.of(held.runs, held.state, written, status, error, known)
            closed.write(batch)
            batch.add(held.runs.unlock())

        def change(state: StoredRun) -> None:
            if charge is not None:
                charge(state)
            run = state.run
            run.status, run.required_action = status, None
            run.usage = state.usage()
            if status != "expired":
                run.expires_at = None
            if status in ("completed", "failed", "cancelled"):
                setattr(run, f"{status}_at", now)
            run.last_error = error
            run.incomplete_details = IncompleteDetails(reason=reason) if reason else None
            state.execution.open_step = state.execution.open_message = None
            state.execution.owner = None
            if written is not None and written.cut_step is not None:
                state.execution.steps = max(state.execution.steps, written.cut_step + 1)

        self._write(held, change, extra)
        # Best effort, and nobody waits for it: the sweeper drops an ended run's row it finds.
        beside(self._store.active_runs().remove, held.run.id).add_done_callback(_logged)
        yield from closed.events
        yield Event(f"thread.run.{status}", held.run)

    def follow(self, thread_id: str, run_id: str) -> Iterator[Event]:
        """The run's next stop (an end, or requires_action) as another executor reaches it."""
        while True:
            state = self.settle(thread_id, run_id)
            if state is None:
                return
            event = f"thread.run.{state.run.status}"
            if event in STREAM_ENDS:
                yield Event(event, state.run)
                return
            time.sleep(FOLLOW_SECONDS)

    def settle(self, thread_id: str, run_id: str) -> StoredRun | None:
        """The run, after ending it if it is past its deadline or its executor is lost."""
        held = self._load(thread_id, run_id)
        while held is not None:
            seen = held.record.etag
            try:
                for _ in self._settle(held) or ():
                    pass
                return held.state
            except RunGone:
                # Another reader or the run's executor wrote first (the same end, as a rule):
                # what they wrote is the answer, settled in turn. A run nobody wrote meanwhile
                # lost its thread (being deleted), and goes with it.
                held = self._load(thread_id, run_id)
                if held is not None and held.record.etag == seen:
                    return None
        return None

    def _settle(self, held: _Held) -> Iterator[Event] | None:
        """The events of ending the run now, if it must end now; else None."""
        run, execution = held.run, held.state.execution
        if not run.is_active:
            return None
        now = time.time()
        held_by_executor = run.status in ("in_progress", "cancelling") and execution.owner is not None
        live = held_by_executor and now <= execution.lease_until
        if now >= (run.expires_at or 0) + (EXPIRY_GRACE_SECONDS if live else 0):
            return self._end(held, "expired")
        lost = execution.owner is not None and now > execution.lease_until
        if lost and run.status == "in_progress":
            return self._end(held, "failed", LastError(code="server_error", message=LOST))
        if lost and run.status == "cancelling":
            return self._end(held, "cancelled")
        return None

    def fail(self, thread_id: str, run_id: str, message: str) -> None:
        """End the run as failed, if it has not ended."""
        held = self._load(thread_id, run_id)
        if held is not None and held.run.is_active:
            with suppress(RunGone):  # it ended meanwhile
                for _ in self._end(held, "failed", LastError(code="server_error", message=message)):
                    pass

    # --- requests from clients --------------------------------------------------------------

    def accept_tool_outputs(self, thread_id: str, run_id: str, outputs: list[ToolOutput]) -> list[Event]:
        """requires_action -> queued, the tool_calls step completed with the outputs."""
        held = self._load(thread_id, run_id)
        if held is None:
            raise RunGone()
        for _ in self._settle(held) or ():
            pass
        run = held.run
        if run.status != "requires_action" or run.required_action is None:
            raise InvalidRequest(f'Runs in status "{run.status}" do not accept tool outputs.')
        step_id = held.state.execution.open_step
        assert step_id is not None
        step_record = held.runs.steps(run_id).get(step_id, for_write=True)
        if step_record is None:
            raise RunGone()
        step = RunStep.model_validate_json(step_record.document)
        assert isinstance(step.step_details, ToolCallsDetails)
        calls = function.with_outputs(step.step_details.tool_calls, run.required_action, outputs)
        step.step_details.tool_calls = calls
        step.status, step.completed_at = "completed", ids.unix_seconds()
        step.usage = held.state.execution.pending_usage or Usage()

        def change(state: StoredRun) -> None:
            state.run.status, state.run.required_action = "queued", None
            state.execution.open_step, state.execution.pending_usage = None, None
            state.execution.queued_at = ids.unix_seconds()

        self._write(
            held,
            change,
            lambda b: b.replace(held.runs.steps(run_id), step_id, step_record, document(step)),
            retry=False,
        )
        return [Event("thread.run.step.completed", step), Event("thread.run.queued", held.run)]

    def cancel(self, thread_id: str, run_id: str) -> tuple[Run, list[Event]]:
        """A queued or waiting run ends cancelled now; a running one is marked cancelling and its
        executor ends it."""
        while True:
            held = self._load(thread_id, run_id)
            if held is None:
                raise RunGone()
            events = list(self._settle(held) or ())
            run = held.run
            if not run.is_active or run.status == "cancelling":
                raise InvalidRequest(f"Cannot cancel run with status '{run.status}'.")
            try:
                if run.status == "in_progress":
                    self._write(held, _mark_cancelling, retry=False)
                    try:
                        self._store.active_runs().mark_cancelling(run_id)
                    except StorageUnavailable:  # the executor's own look at its run finds it later
                        log.warning("could not flag run %s as cancelling in the index", run_id)
                    return held.run, events
                events += list(self._end(held, "cancelled"))
                return held.run, events
            except (ConcurrentUpdate, RunGone):  # it moved on meanwhile (an executor took it): look again
                continue

    # --- storage ----------------------------------------------------------------------------

    def _load(self, thread_id: str, run_id: str) -> _Held | None:
        runs = self._store.threads().runs(thread_id)
        record = runs.get(run_id)
        return _Held(runs, record, stored(record)) if record is not None else None

    def _thread(self, held: _Held) -> Record:
        if held.thread is None:
            held.thread = self._store.threads().get(held.run.thread_id)
            if held.thread is None:
                raise RunGone()
        return held.thread

    def _write(
        self,
        held: _Held,
        change: Callable[[StoredRun], None],
        extra: Callable[[Batch], None] | None = None,
        retry: bool = True,
    ) -> dict[str, Record]:
        """Apply `change` to the run and write it (with `extra` in the same transaction), only if
        the run is as last seen; the new records of the objects written. If it changed meanwhile:
        a cancel or an end stops this executor (_Cancelled, RunGone); any other change (metadata,
        another row of the write) is taken in and the write redone, unless the thread is gone
        (RunGone)."""
        while True:
            state = held.state.model_copy(deep=True)
            change(state)
            batch = Batch(held.runs.partition)
            batch.replace(held.runs.runs, held.run.id, held.record, document(state))
            if extra is not None:
                extra(batch)
            try:
                written = batch.commit()
            except ConcurrentUpdate:
                if not retry:
                    raise
                was = held.run.status
                record = held.runs.get(held.run.id)
                if record is None:
                    raise RunGone() from None
                held.record, held.state, held.thread = record, stored(record), None
                if held.run.status != was:
                    if held.run.status == "cancelling" and was == "in_progress":
                        raise _Cancelled() from None
                    raise RunGone() from None
                # The thread row is in most writes (its lock): one being deleted fails them all.
                self._thread(held)
                continue
            held.record, held.state = written[held.run.id], state
            return written


def _claim(state: StoredRun, owner: str) -> None:
    """Taken by `owner` for one model call."""
    now = time.time()
    state.run.status = "in_progress"
    state.run.started_at = int(now)
    state.execution.owner, state.execution.lease_until = owner, now + LEASE_SECONDS
    state.execution.calls += 1


def _ask_for(state: StoredRun, calls: list[FunctionToolCall], usage: Usage) -> None:
    """requires_action: the client's function calls asked for."""
    state.execution.pending_usage = usage
    state.run.status, state.run.required_action = "requires_action", function.required_action(calls)


def _renew(state: StoredRun) -> None:
    state.execution.lease_until = time.time() + LEASE_SECONDS


def _mark_cancelling(state: StoredRun) -> None:
    state.run.status = "cancelling"


def _logged(done: Future[None]) -> None:
    if done.exception() is not None:
        log.warning("could not drop an ended run from the active runs: %s", done.exception())


def _started(step: RunStep) -> Iterator[Event]:
    yield Event("thread.run.step.created", step)
    yield Event("thread.run.step.in_progress", step)
