"""What a run's model is shown of the conversation: the thread's messages from before the run,
newest first, read a page at a time (the first page read beside the run's claim), and the run's
own earlier turns (its messages, its tool calls and their outputs), as prompt.py shapes them."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from . import prompt
from .beside import beside
from .models import Message
from .models.message import Attachment
from .models.run import RunStep, StepToolCall, ToolCallsDetails
from .storage import Record, Store, ThreadRuns

HISTORY_PAGE = 100  # messages read at a time
MAX_STEPS = 100  # a run's steps read for its turns (MAX_MODEL_CALLS keeps a run well below)


@dataclass(frozen=True)
class Reads:
    """The thread's row (for the message an answer adds) and the newest page of its history,
    being read side by side."""

    thread: Future[Record | None]
    newest: Future[tuple[list[bytes], bool]]

    @classmethod
    def start(cls, store: Store, runs: ThreadRuns, thread_id: str, thread: Record | None = None) -> Reads:
        """`thread`: the thread's row as the caller knows it to be now, if it does (not read)."""
        if thread is None:
            return cls(beside(store.threads().get, thread_id), beside(_newest_page, runs))
        known: Future[Record | None] = Future()
        known.set_result(thread)
        return cls(known, beside(_newest_page, runs))


def history(
    runs: ThreadRuns,
    run_id: str,
    newest: Future[tuple[list[bytes], bool]],
    attachments: list[Attachment] | None = None,
) -> Iterator[Message]:
    """The thread's messages from before the run, newest first (the first page, `newest`,
    already under way); the attachments of those read are added to `attachments`."""
    after: str | None = None
    while True:
        if after is None:
            documents, more = newest.result()
        else:
            documents, more = runs.messages.page("desc", HISTORY_PAGE, after, None)
        for doc in documents:
            message = Message.model_validate_json(doc)
            if message.run_id != run_id:
                if attachments is not None:
                    attachments += message.attachments
                yield message
        if not more or not documents:
            return
        after = Message.model_validate_json(documents[-1]).id


def turns(runs: ThreadRuns, run_id: str) -> tuple[list[dict[str, Any]], list[StepToolCall]]:
    """The run's own earlier turns, in order: its messages and its answered tool calls; and those
    calls."""
    steps, _ = runs.steps(run_id).page("asc", MAX_STEPS, None, None)
    said: list[dict[str, Any]] = []
    calls: list[StepToolCall] = []
    for doc in steps:
        details = RunStep.model_validate_json(doc).step_details
        if isinstance(details, ToolCallsDetails):
            said += prompt.tool_turn(details.tool_calls)
            calls += details.tool_calls
        else:
            record = runs.messages.get(details.message_creation.message_id, for_write=True)
            if record is not None:
                said.append(prompt.chat_message(Message.model_validate_json(record.document)))
    return said, calls


def _newest_page(runs: ThreadRuns) -> tuple[list[bytes], bool]:
    return runs.messages.page("desc", HISTORY_PAGE, None, None)
