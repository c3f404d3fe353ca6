"""The tools a run's model may call, one module per kind, behind one shape the executor's loop
calls: what the model is offered, how a call is shown while its arguments stream, the call as
its step stores it, and, for a built-in tool, how the service executes it.

A `function` call ends the model's turn in `requires_action` (the client runs it); a built-in
tool's call (file_search, code_interpreter) is executed here and the run goes on. The model sees
every tool as a chat-completions function: a built-in one under a name of its own (`function`),
which the run's own functions may not take.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..models.message import Attachment
from ..models.run import Run, StepToolCall, ToolCallDelta, ToolCallHeaderDelta
from ..models.tool_calls import BuiltinToolCall, CodeInterpreterCallDelta, FileSearchCallDelta
from ..models.tools import ToolResources

if TYPE_CHECKING:
    from .annotations import Annotator

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


class Toolbox:
    """The built-in tools this service has, by the function name the model calls them under."""

    def __init__(self, builtins: Sequence[BuiltinTool] = ()) -> None:
        from .function import FUNCTION

        self._function = FUNCTION
        self._builtins = {tool.function: tool for tool in builtins}
        self._by_kind = {tool.kind: tool for tool in builtins}

    def offered(self, tools: RunTools) -> dict[str, dict[str, Any]]:
        """The chat-completions tools the run offers the model for its built-in tools, by kind."""
        kinds = {tool.type for tool in tools.run.tools}
        offers = {kind: tool.offer(tools) for kind, tool in self._by_kind.items() if kind in kinds}
        return {kind: offer for kind, offer in offers.items() if offer is not None}

    def shape(self, name: str) -> Shape:
        return self._builtins.get(name) or self._function

    def builtin(self, name: str) -> BuiltinTool | None:
        return self._builtins.get(name)

    def by_kind(self, kind: str) -> BuiltinTool | None:
        return self._by_kind.get(kind)

    def annotator(self, calls: list[StepToolCall]) -> Annotator | None:
        """How the answer after these calls refers to what they produced (search results, files
        the code wrote), if they produced any."""
        from .annotations import Annotator
        from .code_interpreter import written
        from .file_search import cited

        citations, paths = cited(calls), written(calls)
        return Annotator(citations, paths) if citations or paths else None

    @property
    def reserved(self) -> frozenset[str]:
        """Function names the run's own functions may not take."""
        return frozenset(self._builtins)
