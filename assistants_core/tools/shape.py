"""The shape every tool kind has: how its calls stream and are stored, and, for a built-in tool,
what the model is offered and how the service executes a call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..models.message import Attachment
from ..models.run import Run, StepToolCall, ToolCallDelta, ToolCallHeaderDelta
from ..models.tool_calls import BuiltinToolCall, CodeInterpreterCallDelta, FileSearchCallDelta
from ..models.tools import ToolResources

CallDelta = ToolCallHeaderDelta | ToolCallDelta | FileSearchCallDelta | CodeInterpreterCallDelta


class ToolFailure(Exception):
    """A built-in tool could not do its work (its backing service failed): the run fails."""


@dataclass(frozen=True)
class RunTools:
    """What a run's tools work with: the run, the resources of its thread, and the attachments
    of the thread's messages that the model is shown."""

    run: Run
    thread_resources: ToolResources | None = None
    attachments: tuple[Attachment, ...] = ()
    step: int = 0  # the number of the step whose calls are executed
    first_call: bool = False  # the run's first model call is being asked
    # Raises if the run must stop (cancelled, expired); renews its lease while a tool works.
    check: Callable[[], None] = field(default=lambda: None)


class Shape(Protocol):
    """How a call of one kind streams and is stored."""

    def header(self, index: int, call_id: str, name: str) -> CallDelta:
        """The call's first delta (what makes the SDKs' `on_tool_call_created` fire)."""

    def arguments(self, index: int, fragment: str, so_far: str) -> list[CallDelta]:
        """The deltas that show a fragment of the call's arguments (`so_far` includes it)."""

    def call(self, call_id: str, name: str, arguments: str | None) -> StepToolCall:
        """The call as its step stores it before any output; `arguments` None for a call cut
        short (none of its cut arguments kept)."""


class BuiltinTool(Shape, Protocol):
    kind: str  # the tool's `type` in runs, tool_choice and steps
    function: str  # the name of the function the model is offered for it

    def offer(self, tools: RunTools) -> dict[str, Any] | None:
        """The chat-completions tool for this run, or None if it has nothing to offer."""

    def execute(
        self, tools: RunTools, call: BuiltinToolCall, index: int
    ) -> Iterator[CallDelta | BuiltinToolCall]:
        """Runs the call (at `index` in its step), yielding deltas as it goes and, last, the call
        with its outputs and its `model_turn` (what the model is given back); ToolFailure if it
        cannot."""
