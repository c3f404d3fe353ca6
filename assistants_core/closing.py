"""How a run's open step and message are closed: by the answer written into them, by a tool
call's step being stored, or by the run's end cutting them short. One computation, shared by
every write that closes them, so that a cut answer keeps its text whichever end cuts it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from . import ids
from .answer import Answer
from .models import Message
from .models.message import Text, TextContentBlock
from .models.run import LastError, RunStep, StepError, StepStatus, ToolCallsDetails, Usage
from .run_state import Event, StoredRun, document, new_step
from .storage import Batch, Collection, Record, ThreadRuns

Ending = Literal["completed", "failed", "cancelled", "expired", "incomplete"]
# Why a message is left incomplete when the run's end cuts it short.
MESSAGE_ENDS = {"failed": "run_failed", "cancelled": "run_cancelled", "expired": "run_expired"}
_STEP_ENDS: dict[str, StepStatus] = {"failed": "failed", "cancelled": "cancelled", "expired": "expired"}


@dataclass(frozen=True)
class Written:
    """An answer, for the message it streamed into: why the message ends incomplete (None: it is
    complete), the usage of the message's step, and whether the tool calls it showed are cut
    short (stored with the run's end, never asked for)."""

    answer: Answer
    reason: str | None
    usage: Usage | None
    calls_cut: bool = True

    @classmethod
    def cut(cls, answer: Answer | None, status: Ending) -> Written | None:
        """What `answer` had written when the run's end (`status`) cut it short."""
        return None if answer is None else cls(answer, MESSAGE_ENDS[status], None)

    @property
    def cut_step(self) -> int | None:
        """The number of the tool_calls step to store cut short, if there is one."""
        return self.answer.step_number if self.calls_cut else None


@dataclass
class Closing:
    """The writes that close a run's open step and message (replacements; an insert for a step
    only shown until now), and their events after."""

    writes: list[tuple[Collection, str, Record | None, bytes]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def add(self, collection: Collection, key: str, record: Record | None, value: BaseModel) -> None:
        self.writes.append((collection, key, record, document(value)))

    def write(self, batch: Batch) -> None:
        for collection, key, record, encoded in self.writes:
            if record is None:
                batch.insert(collection, key, encoded)
            else:
                batch.replace(collection, key, record, encoded)

    @classmethod
    def of(
        cls,
        runs: ThreadRuns,
        state: StoredRun,
        written: Written | None,
        status: Ending,
        error: LastError | None = None,
        known: Mapping[str, Record] | None = None,
    ) -> Closing:
        """The writes and events that close the run's open step and message, read as stored now
        (or as `known` holds them, by id: as the caller wrote them): the message finished with
        the answer `written` into it, or left incomplete by the run's end (`status`) with what
        was written so far; and a tool_calls step that was only shown, stored with the calls
        cut short."""
        now = ids.unix_seconds()
        run, execution = state.run, state.execution
        steps = runs.steps(run.id)
        closed = cls()
        by_itself = written is not None and written.reason not in MESSAGE_ENDS.values()
        known = known or {}
        message_record = (
            known.get(execution.open_message) or runs.messages.get(execution.open_message, for_write=True)
            if execution.open_message
            else None
        )
        if message_record is not None and execution.open_message:
            message = Message.model_validate_json(message_record.document)
            if written is not None and written.answer.text:
                text = Text(value=written.answer.text, annotations=written.answer.annotations)
                kept = [p for p in message.content if not isinstance(p, TextContentBlock)]
                message.content = [*kept, TextContentBlock(type="text", text=text)]
            if written is not None and written.reason is None:
                message.status, message.completed_at = "completed", now
            else:
                message.status, message.incomplete_at = "incomplete", now
                incomplete = written.reason if written is not None else MESSAGE_ENDS.get(status)
                message.incomplete_details = {"reason": incomplete or "max_tokens"}
            closed.add(runs.messages, execution.open_message, message_record, message)
            closed.events.append(Event(f"thread.message.{message.status}", message))
        step_record = (
            known.get(execution.open_step) or steps.get(execution.open_step, for_write=True)
            if execution.open_step
            else None
        )
        if step_record is not None and execution.open_step:
            step = RunStep.model_validate_json(step_record.document)
            if written is not None:
                step.usage = written.usage
            step_ended(step, "completed" if by_itself else status, now, error, otherwise="completed")
            closed.add(steps, execution.open_step, step_record, step)
            closed.events.append(Event(f"thread.run.step.{step.status}", step))
        if written is not None and written.cut_step is not None:
            details = ToolCallsDetails(tool_calls=written.answer.calls(cut=True))
            step = new_step(run, written.cut_step, details, written.answer.step_id)
            step_ended(step, status, now, error, otherwise="cancelled")
            closed.add(steps, step.id, None, step)
            closed.events.append(Event(f"thread.run.step.{step.status}", step))
        return closed


def step_ended(
    step: RunStep, status: Ending, now: int, error: LastError | None, otherwise: StepStatus
) -> None:
    """The step ended as the run did (`status`) where the run's end cut it short, else `otherwise`."""
    step.status = _STEP_ENDS.get(status, otherwise)
    setattr(step, f"{step.status}_at", now)
    if step.status == "failed" and error is not None:  # a step's codes lack invalid_prompt
        code = "server_error" if error.code == "invalid_prompt" else error.code
        step.last_error = StepError(code=code, message=error.message)
