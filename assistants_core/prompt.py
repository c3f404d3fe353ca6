"""How a run becomes a chat-completions request: the system message, the thread's messages as
the truncation strategy and the prompt budget allow, the run's own earlier turns (its messages,
its tool calls and their outputs), the tools and the options.

Tokens are estimated (`estimate`: characters / 4, plus a few per message), since the model's
tokenizer is unknown; the model's own `usage` is what the run's budgets are charged with.
`truncation_strategy` `auto` keeps the most recent messages that fit the budget (the oldest
go first); `last_messages` keeps that many of the most recent, then fits them the same way.
Earlier runs' tool calls are not replayed: what they led to is in the messages they wrote.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from typing import Any

from .models import Message
from .models.message import ImageFileContentBlock, ImageURLContentBlock, TextContentBlock
from .models.run import BuiltInToolChoice, FunctionToolCall, FunctionToolChoice, Run, StepToolCall
from .models.tools import ResponseFormatJsonObject, ResponseFormatJsonSchema

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
IMAGE_TOKENS = 765  # what OpenAI charges a high-detail 1024x1024 image; an estimate like the rest
# What chat-completions models take: these types, each image at most 20 MB (OpenAI's limits).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_PROMPT_IMAGE_BYTES = 50 * 1024 * 1024  # all of a request's images, as base64 (OpenAI's 50 MB)

# How a run reads the image behind an `image_file` part: (bytes, media type), or None for a file
# that no longer exists; an oversized one raises. The model cannot reach this service's blobs:
# images go to it inline, as data: URLs.
ImageReader = Callable[[str, int], "tuple[bytes, str] | None"]


class Unservable(Exception):
    """The thread holds what cannot be sent to a chat-completions model yet."""


class TooLong(Exception):
    """Not even the newest message fits the prompt budget."""


def estimate(messages: Iterable[dict[str, Any]]) -> int:
    return sum(_tokens(m.get("content") or m.get("tool_calls") or "") + MESSAGE_OVERHEAD for m in messages)


def _tokens(content: Any) -> int:
    """Text by its length; an image (whose data: URL would count as megabytes of text) as one image."""
    if isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") == "image_url" for p in content
    ):
        return sum(IMAGE_TOKENS if p.get("type") == "image_url" else _tokens(p) for p in content)
    return len(json.dumps(content)) // CHARS_PER_TOKEN


def system_message(run: Run) -> list[dict[str, Any]]:
    return [{"role": "system", "content": run.instructions}] if run.instructions else []


def chat_message(message: Message, read_image: ImageReader | None = None) -> dict[str, Any]:
    """A thread message as chat completions takes it (its images read with `read_image`)."""
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextContentBlock):
            parts.append({"type": "text", "text": part.text.value})
        elif isinstance(part, ImageURLContentBlock) and message.role == "user":
            parts.append({"type": "image_url", "image_url": part.image_url.model_dump()})
        elif isinstance(part, ImageFileContentBlock) and message.role == "user":
            url = _data_url(message.id, part.image_file.file_id, read_image)
            parts.append({"type": "image_url", "image_url": {"url": url, "detail": part.image_file.detail}})
    if message.role == "assistant" or all(p["type"] == "text" for p in parts):
        return {"role": message.role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": message.role, "content": parts}


def _inline_image_bytes(chat: dict[str, Any]) -> int:
    content = chat.get("content")
    if not isinstance(content, list):
        return 0
    urls = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
    return sum(len(url) for url in urls if url.startswith("data:"))


def _data_url(message_id: str, file_id: str, read_image: ImageReader | None) -> str:
    """The image as a base64 data: URL, or Unservable saying why it cannot go to the model."""
    from .storage.blobs import BlobTooLarge

    if read_image is None:
        raise Unservable(f"Message {message_id} has an image_file part, and this process cannot read files.")
    try:
        image = read_image(file_id, MAX_IMAGE_BYTES)
    except BlobTooLarge:
        raise Unservable(
            f"The image file {file_id} in message {message_id} is larger than the {MAX_IMAGE_BYTES:,} bytes "
            "a model takes per image."
        ) from None
    if image is None:
        raise Unservable(f"The image file {file_id} in message {message_id} no longer exists.")
    data, media_type = image
    if media_type not in IMAGE_TYPES:
        raise Unservable(
            f"The file {file_id} in message {message_id} is not an image the model takes "
            f"({media_type}; PNG, JPEG, GIF and WebP are)."
        )
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def tool_turn(calls: list[StepToolCall]) -> list[dict[str, Any]]:
    """A tool_calls step and its outputs: the assistant's calls, then one tool message each (a
    built-in tool's as the model saw it: the function it called, the output it was given)."""
    seen = [_as_function(call) for call in calls]
    turn: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                for call_id, name, arguments, _ in seen
            ],
        }
    ]
    turn += [{"role": "tool", "tool_call_id": call_id, "content": output} for call_id, _, _, output in seen]
    return turn


def _as_function(call: StepToolCall) -> tuple[str, str, str, str]:
    if isinstance(call, FunctionToolCall):
        return call.id, call.function.name, call.function.arguments, call.function.output or ""
    turn = call.model_turn
    assert turn is not None, "a built-in call replayed before it ran"
    return call.id, turn.name, turn.arguments, turn.output


def fit(
    newest_first: Iterable[Message], run: Run, budget: int, read_image: ImageReader | None = None
) -> list[dict[str, Any]]:
    """The thread's messages, oldest first, that the truncation strategy keeps and `budget`
    (estimated tokens, after the system message and the run's own turns) holds."""
    kept: list[dict[str, Any]] = []
    limit = run.truncation_strategy.last_messages if run.truncation_strategy.type == "last_messages" else None
    used = images = 0
    if budget <= 0:
        raise TooLong()
    for message in newest_first:
        if limit is not None and len(kept) >= limit:
            break
        chat = chat_message(message, read_image)
        cost = estimate([chat])
        if used + cost > budget:
            if not kept:
                raise TooLong()
            break
        images += _inline_image_bytes(chat)
        if images > MAX_PROMPT_IMAGE_BYTES:
            raise Unservable(
                f"The thread's images take more than the {MAX_PROMPT_IMAGE_BYTES:,} bytes a model takes in "
                f"one request (as base64), counting back to message {message.id}."
            )
        kept.append(chat)
        used += cost
    kept.reverse()
    return kept


def request_body(
    run: Run,
    messages: list[dict[str, Any]],
    first_call: bool,
    completion_budget: int | None,
    builtins: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The chat-completions request for one model call of the run; `builtins`, the functions
    offered for its built-in tools, by tool kind."""
    body: dict[str, Any] = {"model": run.model, "messages": messages}
    builtins = builtins or {}
    tools = [tool.model_dump() for tool in run.function_tools()] + list(builtins.values())
    if tools:
        body["tools"] = tools
        body["parallel_tool_calls"] = run.parallel_tool_calls
        # A forcing choice applies to the run's first call only: forced on every call, the
        # model would call the tool again each time, for ever.
        choice = run.tool_choice if first_call else "auto"
        if isinstance(choice, FunctionToolChoice):
            body["tool_choice"] = {"type": "function", "function": {"name": choice.function.name}}
        elif isinstance(choice, BuiltInToolChoice) and choice.type in builtins:
            forced = builtins[choice.type]["function"]["name"]
            body["tool_choice"] = {"type": "function", "function": {"name": forced}}
        elif isinstance(choice, str):
            body["tool_choice"] = choice
    if isinstance(run.response_format, ResponseFormatJsonObject | ResponseFormatJsonSchema):
        body["response_format"] = run.response_format.model_dump()
    if run.temperature is not None:
        body["temperature"] = run.temperature
    if run.top_p is not None:
        body["top_p"] = run.top_p
    if completion_budget is not None:
        body["max_completion_tokens"] = completion_budget
    if run.reasoning_effort is not None:
        body["reasoning_effort"] = run.reasoning_effort
    return body
