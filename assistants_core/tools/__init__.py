"""The tools a run's model may call, one module per kind, behind one shape the executor's loop
calls: what the model is offered, how a call is shown while its arguments stream, the call as
its step stores it, and, for a built-in tool, how the service executes it.

A `function` call ends the model's turn in `requires_action` (the client runs it); a built-in
tool's call (file_search, code_interpreter) is executed here and the run goes on. The model sees
every tool as a chat-completions function: a built-in one under a name of its own (`function`),
which the run's own functions may not take.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models.run import StepToolCall
from .annotations import Annotator
from .code_interpreter import written
from .file_search import cited
from .function import FUNCTION
from .shape import BuiltinTool, CallDelta, RunTools, Shape, ToolFailure

__all__ = ["BuiltinTool", "CallDelta", "RunTools", "Shape", "ToolFailure", "Toolbox"]


class Toolbox:
    """The built-in tools this service has, by the function name the model calls them under."""

    def __init__(self, builtins: Sequence[BuiltinTool] = ()) -> None:
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
        citations, paths = cited(calls), written(calls)
        return Annotator(citations, paths) if citations or paths else None

    @property
    def reserved(self) -> frozenset[str]:
        """Function names the run's own functions may not take."""
        return frozenset(self._builtins)
