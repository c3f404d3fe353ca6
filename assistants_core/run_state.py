"""A run as the executor keeps it and as it tells it: the run with its hidden execution state,
stored as one document, and the OpenAI-shaped events a run's changes are reported as."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, Field

from . import ids
from .models.base import WireModel
from .models.run import Run, RunStep, StepDetails, Usage
from .models.tool_calls import STORED
from .storage import Record


@dataclass(frozen=True)
class Event:
    """An Assistants stream event: its name and its data."""

    event: str
    data: BaseModel


@dataclass(frozen=True)
class EventStream:
    """A run's events, for a client that asked for them as a stream (`stream: true`)."""

    events: Iterator[Event]


# The events after which a run's stream has nothing more to say.
STREAM_ENDS = frozenset(
    f"thread.run.{status}"
    for status in ("requires_action", "completed", "incomplete", "failed", "cancelled", "expired")
)


class RunGone(Exception):
    """The run ended or vanished under this executor (another ended it, the thread was deleted)."""


class Execution(WireModel):
    """What the executor keeps with a run, never shown to clients."""

    owner: str | None = None
    lease_until: float = 0
    queued_at: int = 0
    steps: int = 0  # the number the next step takes
    calls: int = 0  # model calls made
    prompt_tokens: int = 0
    completion_tokens: int = 0
    open_step: str | None = None
    open_message: str | None = None
    pending_usage: Usage | None = None  # of the completion that asked for the pending tool calls
    search_content: bool = False  # file_search results' content shown in the run's events
    images: list[str] = Field(default_factory=list)  # displayed by code, for the next message


class StoredRun(WireModel):
    run: Run
    execution: Execution = Field(default_factory=Execution)

    def usage(self) -> Usage:
        e = self.execution
        return Usage(
            prompt_tokens=e.prompt_tokens,
            completion_tokens=e.completion_tokens,
            total_tokens=e.prompt_tokens + e.completion_tokens,
        )


def stored(record: Record) -> StoredRun:
    return StoredRun.model_validate_json(record.document)


def document(model: BaseModel) -> bytes:
    """A run's, step's or message's document, with what only storage keeps of a tool call."""
    return model.model_dump_json(context=STORED).encode()


def new_step(run: Run, number: int, details: StepDetails, step_id: str = "") -> RunStep:
    """The run's step `number`, in progress (`step_id`: the id it was shown with already)."""
    return RunStep(
        id=step_id or ids.sequential_id(ids.STEP, number),
        created_at=ids.unix_seconds(),
        run_id=run.id,
        assistant_id=run.assistant_id,
        thread_id=run.thread_id,
        type=details.type,
        step_details=details,
    )
