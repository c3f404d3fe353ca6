"""The client's functions: shown as their arguments stream, stored with them, and asked for in
`requires_action` (the executor's `_ask_for_outputs`); their outputs come back from the client."""

from __future__ import annotations

from ..errors import InvalidRequest
from ..models.run import (
    FunctionCall,
    FunctionCallWithOutput,
    FunctionDelta,
    FunctionHeaderDelta,
    FunctionToolCall,
    RequiredAction,
    RequiredActionToolCall,
    StepToolCall,
    SubmitToolOutputsAction,
    ToolCallDelta,
    ToolCallHeaderDelta,
    ToolOutput,
)
from .shape import CallDelta


class Function:
    def header(self, index: int, call_id: str, name: str) -> CallDelta:
        return ToolCallHeaderDelta(index=index, id=call_id, function=FunctionHeaderDelta(name=name))

    def arguments(self, index: int, fragment: str, so_far: str) -> list[CallDelta]:
        return [ToolCallDelta(index=index, function=FunctionDelta(arguments=fragment))]

    def call(self, call_id: str, name: str, arguments: str | None) -> FunctionToolCall:
        return FunctionToolCall(
            id=call_id, function=FunctionCallWithOutput(name=name, arguments=arguments or "")
        )


FUNCTION = Function()


def required_action(calls: list[FunctionToolCall]) -> RequiredAction:
    """What a run in requires_action asks the client for: these calls' outputs."""
    return RequiredAction(
        submit_tool_outputs=SubmitToolOutputsAction(
            tool_calls=[
                RequiredActionToolCall(
                    id=c.id, function=FunctionCall(name=c.function.name, arguments=c.function.arguments)
                )
                for c in calls
            ]
        )
    )


def with_outputs(
    calls: list[StepToolCall], action: RequiredAction, outputs: list[ToolOutput]
) -> list[StepToolCall]:
    """The step's calls with the client's outputs for the functions `action` asked for; a 400
    unless there is exactly one output for each."""
    expected = [c.id for c in action.submit_tool_outputs.tool_calls]
    given = [o.tool_call_id for o in outputs]
    if sorted(expected) != sorted(given):
        raise InvalidRequest(f"Expected tool outputs for call_ids {expected}, got {given}")
    by_id = {o.tool_call_id: o.output for o in outputs}
    return [
        c.model_copy(
            update={"function": FunctionCallWithOutput(**{**c.function.model_dump(), "output": by_id[c.id]})}
        )
        if isinstance(c, FunctionToolCall)
        else c
        for c in calls
    ]
