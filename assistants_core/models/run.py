"""The run and run step objects, the bodies that create, modify and continue a run, and the
events a run emits (including the deltas that carry text and tool-call arguments)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from .assistant import ReasoningEffort
from .base import TAG, ApiObject, Metadata, NotNull, RequestModel, SparseModel, WireModel, by_type_among
from .message import CreateMessageRequest
from .thread import CreateThreadRequest
from .tool_calls import (
    CodeInterpreterCallDelta,
    CodeInterpreterToolCall,
    FileSearchCallDelta,
    FileSearchToolCall,
)
from .tools import AssistantTool, FunctionTool, NotServedTool, ResponseFormat, ToolResources, not_served_tag

MAX_RUN_TOOLS = 20
MIN_TOKEN_BUDGET = 256

RunStatus = Literal[
    "queued",
    "in_progress",
    "requires_action",
    "cancelling",
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
]
# While a run is in one of these, its thread takes no new run and no new message.
ACTIVE: frozenset[str] = frozenset({"queued", "in_progress", "requires_action", "cancelling"})
StepStatus = Literal["in_progress", "cancelled", "failed", "completed", "expired"]
ErrorCode = Literal["server_error", "rate_limit_exceeded", "invalid_prompt"]


class LastError(WireModel):
    code: ErrorCode
    message: str


class Usage(WireModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class TruncationStrategy(WireModel):
    type: Literal["auto", "last_messages"] = "auto"
    last_messages: int | None = Field(default=None, ge=1)


class FunctionName(WireModel):
    name: str


class FunctionToolChoice(WireModel):
    type: Literal["function"]
    function: FunctionName


class BuiltInToolChoice(WireModel):
    type: Literal["file_search", "code_interpreter"]


def _tool_choice_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return TAG + "mode"
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return not_served_tag(value) or TAG + ("function" if kind == "function" else "built_in")


ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag(TAG + "mode")]
    | Annotated[FunctionToolChoice, Tag(TAG + "function")]
    | Annotated[BuiltInToolChoice, Tag(TAG + "built_in")]
    | Annotated[NotServedTool, Tag(TAG + "not_served")],
    Discriminator(
        _tool_choice_tag,
        custom_error_type="invalid_union_member",
        custom_error_message=(
            "Invalid tool_choice. Supported values are: 'none', 'auto', 'required', "
            "{'type': 'function', 'function': {'name': ...}}, {'type': 'file_search'} and "
            "{'type': 'code_interpreter'}."
        ),
    ),
]


class IncompleteDetails(WireModel):
    reason: Literal["max_completion_tokens", "max_prompt_tokens"]


class FunctionCall(WireModel):
    name: str
    arguments: str


class RequiredActionToolCall(WireModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SubmitToolOutputsAction(WireModel):
    tool_calls: list[RequiredActionToolCall]


class RequiredAction(WireModel):
    type: Literal["submit_tool_outputs"] = "submit_tool_outputs"
    submit_tool_outputs: SubmitToolOutputsAction


class Run(ApiObject):
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    assistant_id: str
    thread_id: str
    status: RunStatus = "queued"
    started_at: int | None = None
    expires_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    required_action: RequiredAction | None = None
    last_error: LastError | None = None
    model: str
    instructions: str = ""
    tools: list[AssistantTool] = Field(default_factory=list)
    tool_resources: ToolResources = Field(default_factory=ToolResources)
    metadata: dict[str, str] = Field(default_factory=dict)
    temperature: float | None = 1.0
    top_p: float | None = 1.0
    max_completion_tokens: int | None = None
    max_prompt_tokens: int | None = None
    truncation_strategy: TruncationStrategy = Field(default_factory=TruncationStrategy)
    incomplete_details: IncompleteDetails | None = None
    usage: Usage | None = None
    response_format: ResponseFormat = "auto"
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    reasoning_effort: ReasoningEffort | None = None

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    def function_tools(self) -> list[FunctionTool]:
        return [tool for tool in self.tools if isinstance(tool, FunctionTool)]


# --- steps -----------------------------------------------------------------------------------


class MessageCreation(WireModel):
    message_id: str


class MessageCreationDetails(WireModel):
    type: Literal["message_creation"] = "message_creation"
    message_creation: MessageCreation


class FunctionCallWithOutput(WireModel):
    name: str
    arguments: str
    output: str | None = None


class FunctionToolCall(WireModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallWithOutput


StepToolCall = Annotated[
    FunctionToolCall | FileSearchToolCall | CodeInterpreterToolCall, Field(discriminator="type")
]


class ToolCallsDetails(WireModel):
    type: Literal["tool_calls"] = "tool_calls"
    tool_calls: list[StepToolCall] = Field(default_factory=list)


StepDetails = Annotated[
    Annotated[MessageCreationDetails, Tag(TAG + "message_creation")]
    | Annotated[ToolCallsDetails, Tag(TAG + "tool_calls")],
    by_type_among("step details", "message_creation", "tool_calls"),
]


class StepError(WireModel):
    code: Literal["server_error", "rate_limit_exceeded"]
    message: str


class RunStep(ApiObject):
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    run_id: str
    assistant_id: str
    thread_id: str
    type: Literal["message_creation", "tool_calls"]
    status: StepStatus = "in_progress"
    cancelled_at: int | None = None
    completed_at: int | None = None
    expired_at: int | None = None
    failed_at: int | None = None
    last_error: StepError | None = None
    step_details: StepDetails
    usage: Usage | None = None
    metadata: dict[str, str] | None = None

    def shown(self, search_content: bool) -> RunStep:
        """The step as a client sees it: file_search results without their content unless the
        request asked for it (`include[]`)."""
        details = self.step_details
        if search_content or not isinstance(details, ToolCallsDetails):
            return self
        calls = [c.without_content() if isinstance(c, FileSearchToolCall) else c for c in details.tool_calls]
        return self.model_copy(update={"step_details": ToolCallsDetails(tool_calls=calls)})


# --- request bodies --------------------------------------------------------------------------


class _RunSettings(RequestModel):
    assistant_id: str
    model: Annotated[str | None, NotNull] = None
    instructions: str | None = Field(default=None, max_length=256_000)
    tools: list[AssistantTool] | None = Field(default=None, max_length=MAX_RUN_TOOLS)
    metadata: Metadata | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool | None = None
    max_prompt_tokens: int | None = Field(default=None, ge=MIN_TOKEN_BUDGET)
    max_completion_tokens: int | None = Field(default=None, ge=MIN_TOKEN_BUDGET)
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None


class CreateRunRequest(_RunSettings):
    additional_instructions: str | None = Field(default=None, max_length=256_000)
    additional_messages: list[CreateMessageRequest] | None = Field(default=None, max_length=32)


class StreamOptions(SparseModel):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class CreateThreadAndRunRequest(_RunSettings):
    thread: CreateThreadRequest | None = None
    tool_resources: ToolResources | None = None
    stream_options: StreamOptions | None = None  # Azure's newer versions send it; nothing to do with it


class ModifyRunRequest(RequestModel):
    metadata: Metadata | None = None


class ToolOutput(RequestModel):
    tool_call_id: str
    output: str = Field(max_length=512 * 1024)


class SubmitToolOutputsRequest(RequestModel):
    tool_outputs: list[ToolOutput] = Field(max_length=128)
    stream: bool | None = None


# --- deltas (streamed events only) -----------------------------------------------------------


class TextDelta(SparseModel):
    value: str
    annotations: list[dict[str, Any]] | None = None  # [] in a part's first delta only


class TextDeltaBlock(SparseModel):
    index: int
    type: Literal["text"] = "text"
    text: TextDelta


class MessageDeltaContent(SparseModel):
    content: list[TextDeltaBlock]


class MessageDelta(SparseModel):
    id: str
    object: Literal["thread.message.delta"] = "thread.message.delta"
    delta: MessageDeltaContent


class FunctionDelta(SparseModel):
    name: str | None = None
    arguments: str
    output: None = None


class ToolCallDelta(SparseModel):
    index: int
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionDelta


class FunctionHeaderDelta(WireModel):
    """The first delta of a tool call: its name, empty arguments, and an explicit null output."""

    name: str
    arguments: Literal[""] = ""
    output: None = None


class ToolCallHeaderDelta(WireModel):
    index: int
    id: str
    type: Literal["function"] = "function"
    function: FunctionHeaderDelta


class ToolCallsDeltaDetails(WireModel):
    type: Literal["tool_calls"] = "tool_calls"
    tool_calls: list[ToolCallHeaderDelta | ToolCallDelta | FileSearchCallDelta | CodeInterpreterCallDelta]


class StepDeltaContent(WireModel):
    step_details: ToolCallsDeltaDetails


class RunStepDelta(WireModel):
    id: str
    object: Literal["thread.run.step.delta"] = "thread.run.step.delta"
    delta: StepDeltaContent
