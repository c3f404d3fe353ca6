"""One model call's answer as it streams: its text and tool calls gathered, and the deltas that
show them to a stream, at the indexes the stored message and step will use.

Tool calls are shown as they arrive (each as its tool's shape has it: see `tools`), in a
`tool_calls` step that is announced in the stream (`thread.run.step.created`) and stored with the
write that follows the answer: the calls asked for or executed when the answer is whole, or the
run's end when it is cut short, which stores the step with the calls' ids and names but none of
their (cut) arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import ids
from .backend import ToolCallFragment
from .models.run import (
    MessageDelta,
    MessageDeltaContent,
    RunStepDelta,
    StepDeltaContent,
    StepToolCall,
    TextDelta,
    TextDeltaBlock,
    ToolCallsDeltaDetails,
    Usage,
)
from .tools import CallDelta, Shape
from .tools.annotations import Annotator


@dataclass
class _Call:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class Answer:
    """What one model call has produced so far."""

    shape: Callable[[str], Shape]  # how a call to a tool of that name streams and is stored
    annotator: Annotator | None = None  # what the text may refer to of the run's tools' outputs
    part: int = 0  # the index of the text part in its message
    text: str = ""  # as sent
    annotations: list[dict[str, Any]] = field(default_factory=list)  # as the message keeps them
    reason: str = "stop"
    usage: Usage | None = None
    # The tool_calls step shown in the stream, if one was: its number among the run's steps, its id.
    step_number: int | None = None
    step_id: str = ""
    _calls: dict[int, _Call] = field(default_factory=dict)  # by the model's index
    _shown: list[int] = field(default_factory=list)  # the model's indexes, in the step's order

    def add_text(self, text: str, message_id: str) -> list[MessageDelta]:
        """The deltas that send the text: as it comes, but a citation marker held back until
        whole and sent as one delta with its annotation."""
        pieces = self.annotator.feed(text) if self.annotator is not None else [(text, None)]
        return [self._sent(piece, annotation, message_id) for piece, annotation in pieces]

    def flush(self, message_id: str) -> list[MessageDelta]:
        """The text held back at the end of the answer, if any."""
        pieces = self.annotator.flush() if self.annotator is not None else []
        return [self._sent(piece, annotation, message_id) for piece, annotation in pieces]

    def _sent(self, text: str, annotation: dict[str, Any] | None, message_id: str) -> MessageDelta:
        first = not self.text
        annotations: list[dict[str, Any]] = []
        if annotation is not None:
            start = len(self.text)  # in code points, as OpenAI counts them
            kept = {
                "type": "",
                "text": text,
                "start_index": start,
                "end_index": start + len(text),
                **annotation,
            }
            self.annotations.append(kept)
            sent = {"index": len(self.annotations) - 1, **kept}
            if annotation["type"] == "file_citation":  # deltas carried an empty quote
                sent["file_citation"] = {**annotation["file_citation"], "quote": ""}
            annotations.append(sent)
        self.text += text
        shown = annotations if annotations or first else None  # a part's first delta: [] at least
        block = TextDeltaBlock(index=self.part, text=TextDelta(value=text, annotations=shown))
        return MessageDelta(id=message_id, delta=MessageDeltaContent(content=[block]))

    def add_call(self, fragment: ToolCallFragment) -> list[CallDelta]:
        """The fragment gathered; the deltas that show it, once its call has a name (a call is
        shown from its first named fragment on, with an id of its own if the model gave none)."""
        call = self._calls.setdefault(fragment.index, _Call())
        call.id = call.id or (fragment.id or "")
        call.name = call.name or (fragment.name or "")
        call.arguments += fragment.arguments
        shape = self.shape(call.name)
        if fragment.index in self._shown:
            if not fragment.arguments:
                return []
            return shape.arguments(self._shown.index(fragment.index), fragment.arguments, call.arguments)
        if not call.name:
            return []
        call.id = call.id or ids.random_id(ids.CALL)
        self._shown.append(fragment.index)
        index = len(self._shown) - 1
        deltas = [shape.header(index, call.id, call.name)]
        if call.arguments:
            deltas += shape.arguments(index, call.arguments, call.arguments)
        return deltas

    def calls(self, cut: bool = False) -> list[StepToolCall]:
        """The calls shown, in their step's order, as the step stores them; `cut`, without their
        arguments."""
        return [
            self.shape(call.name).call(call.id, call.name, None if cut else call.arguments)
            for call in (self._calls[index] for index in self._shown)
        ]


def step_delta(step_id: str, calls: list[CallDelta]) -> RunStepDelta:
    return RunStepDelta(
        id=step_id, delta=StepDeltaContent(step_details=ToolCallsDeltaDetails(tool_calls=calls))
    )
