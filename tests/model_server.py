"""A scripted, OpenAI-compatible chat-completions server for the tests.

It is a real HTTP/1.1 server on 127.0.0.1 (a free port), one thread per connection, that speaks
the wire format of `POST /v1/chat/completions` -- plain JSON replies and `text/event-stream`
ones -- and records every request it is sent. Nothing in it "thinks": each request is answered
with the next scripted `Reply`, or, when the script is empty, by the default responder::

    with ModelServer() as model:
        model.script(text("Hello there"), tool_calls(call("lookup", {"q": "x"})))
        client = OpenAI(base_url=model.base_url, api_key="x", max_retries=0)
        ...
        assert model.last_request().messages[-1]["role"] == "tool"

Replies (all built by the functions below, all `Reply` objects, all tunable with the same
keyword options, see `ReplyOptions`):

* `text("Hello there")`, `text(["Hel", "lo"])` -- text, streamed as those fragments (a string
  is split into words, each word carrying the whitespace before it);
* `tool_calls(call("f", {"a": 1}), call("g", "{}", id="call_1", fragments=['{', '}']))`,
  optionally with `content=` text before the calls;
* `error(503, "busy", retry_after=2)`, `rate_limit(retry_after=1)`;
* `cut("a b c", after=2)` -- the connection is closed after two body chunks, with no `[DONE]`;
* `malformed("a b", at=1)` -- an invalid-JSON `data:` line is sent before body chunk 1;
* `hang()` -- no byte is ever sent, until the client gives up or the server stops;
  `hang(after=2)` streams two body chunks first;
* any of them with `delay_before=`, `chunk_delay=`, `finish_reason=`, `prompt_filter_results=True`
  (Azure's extra first chunk), `headers=`, ... (`reply.replace(...)` changes them later).

A responder -- `Callable[[dict], Reply | str | None]` taking the parsed request body -- can stand
in for a reply in the script, or be the default (`model.respond_with(...)`), for tests whose
requests arrive in no fixed order. Returning None falls back to the built-in default reply,
`text(DEFAULT_TEXT)`.

Token accounting (deterministic, see `prompt_tokens` and `Reply.completion_tokens`):

* prompt_tokens = sum over the request's messages of `len(text) // 4 + 4`, where a message's text
  is its `content` (a string, or the `text` of its content parts, concatenated) followed by the
  `name` and `arguments` of each of its `tool_calls`;
* completion_tokens = number of text chunks + number of tool-call argument fragments (a call's
  first streamed delta, carrying its id and name, has `arguments: ""` and costs nothing);
* `max_completion_tokens` (or else `max_tokens`) in the request below that number truncates the
  reply to that many units -- text chunks first, then argument fragments in call order, a call
  left with none of its fragments dropped -- and the finish reason becomes `"length"`.

Streamed body chunks (the unit of `cut_after`, `malformed_at` and `hang(after=)`): one per text
chunk, one per tool call's opening delta, one per argument fragment. Before them come the Azure
prompt-filter chunk (if asked for) and the role chunk; after them the finish chunk, the usage
chunk (if `stream_options.include_usage`), then `data: [DONE]`. Streams are sent with chunked
transfer encoding, so a cut stream is an incomplete body to the client (an error, not a clean
end).

Embeddings: `POST .../embeddings` is answered with deterministic vectors (`embedding`: each word of
the input hashed, signed, into `dimensions` slots -- 256 unless the request asks -- then
L2-normalised), as plain float lists or, with `encoding_format: "base64"` (the Python SDK's
default), as little-endian float32 bytes in base64. Embeddings requests have a script of their own
(`script_embeddings(error(500), rate_limit(2), hang())`, any `Reply` whose status, `hang` and
`delay_before` apply); a 2xx reply there means "the computed vectors". They are recorded apart
(`embedding_requests`, `embedding_bodies()`), so that `requests` holds what runs ask, whatever a
late ingestion of an earlier test embeds meanwhile.

Recording: `model.requests` (every request, `RecordedRequest`: method, path, lower-cased headers,
parsed body, times, the reply chosen, and its `outcome`), `last_request()`, `bodies()`;
`model.aborted` counts replies whose client closed the connection before they were complete
(`wait_for_aborted()` waits for it); `in_flight` / `peak_in_flight` count replies in progress.
A request counts as completed just before its last bytes are sent, so a client that has read a
whole reply finds it recorded as such. `reset()` forgets everything between tests.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import re
import secrets
import selectors
import socket
import socketserver
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypedDict, Unpack
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_TEXT",
    "FINGERPRINT",
    "FinishReason",
    "ModelServer",
    "Outcome",
    "RecordedRequest",
    "Reply",
    "ReplyOptions",
    "Responder",
    "ToolCall",
    "call",
    "cut",
    "embedding",
    "error",
    "hang",
    "malformed",
    "prompt_tokens",
    "rate_limit",
    "searching",
    "split_words",
    "text",
    "tool_calls",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
Outcome = Literal["pending", "completed", "aborted", "cut", "stopped"]
"""What became of a request: answered in full; `aborted` by the client (it closed the connection
before the reply was complete); `cut` on purpose by a scripted reply; or cut short because the
server was `stopped`."""

DEFAULT_TEXT = "This is a scripted reply."
DEFAULT_EMBEDDING_DIMENSIONS = 256
FINGERPRINT = "fp_scripted"
ARGUMENT_FRAGMENT = 8
"""Tool-call arguments given without explicit fragments stream in pieces of this many characters."""

_POLL = 0.05  # how often a waiting handler looks at the server's stop flag
_MALFORMED = b'data: {"id": "chatcmpl-malformed", "choices": [{"delta": {"content": "oops"\n\n'
_SAFE = {"filtered": False, "severity": "safe"}
_CONTENT_FILTER = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
_PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": _CONTENT_FILTER}]


# ---------------------------------------------------------------------------------------------
# Replies


def split_words(content: str) -> tuple[str, ...]:
    """`"Hello  big world\\n"` -> `("Hello", "  big", " world\\n")`: each word with the whitespace
    before it, trailing whitespace on the last; the pieces join back to `content`."""
    words = re.findall(r"\s*\S+", content)
    if not words:
        return (content,) if content else ()
    rest = content[sum(map(len, words)) :]
    if rest:
        words[-1] += rest
    return tuple(words)


def _fragments(arguments: str) -> tuple[str, ...]:
    step = ARGUMENT_FRAGMENT
    return tuple(arguments[i : i + step] for i in range(0, len(arguments), step))


@dataclass(frozen=True)
class ToolCall:
    """One function call of a reply. `fragments` are how `arguments` is streamed (they must join
    to it); left empty, they are pieces of `ARGUMENT_FRAGMENT` characters. `id` defaults to a
    fresh `call_...` per request."""

    name: str
    arguments: str = "{}"
    id: str | None = None
    fragments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.fragments:
            object.__setattr__(self, "fragments", _fragments(self.arguments))
        elif "".join(self.fragments) != self.arguments:
            raise ValueError(f"fragments {self.fragments!r} do not join to arguments {self.arguments!r}")


def call(
    name: str,
    arguments: str | Mapping[str, Any] | None = None,
    *,
    id: str | None = None,
    fragments: Sequence[str] | None = None,
) -> ToolCall:
    """A tool call: `arguments` as a JSON string or a mapping (dumped); given only `fragments`,
    the arguments are their concatenation; given neither, `"{}"`."""
    if isinstance(arguments, Mapping):
        arguments = json.dumps(arguments)
    if arguments is None:
        arguments = "".join(fragments) if fragments is not None else "{}"
    return ToolCall(name, arguments, id, tuple(fragments or ()))


class ReplyOptions(TypedDict, total=False):
    """Keyword options every reply constructor takes (and `Reply.replace`)."""

    finish_reason: FinishReason | None
    """None: `tool_calls` if the reply has calls, else `stop` (`length` wins if truncated)."""
    delay_before: float
    """Seconds before the first byte of the response (headers included)."""
    chunk_delay: float
    """Seconds between two streamed `data:` lines."""
    cut_after: int | None
    """Close the connection after this many body chunks (non-streamed: after half the body)."""
    malformed_at: int | None
    """Send an invalid-JSON `data:` line before body chunk N (non-streamed: an invalid body)."""
    stall_after: int | None
    """Streamed: stop sending after N body chunks, until the client leaves or the server stops."""
    hang: bool
    """Send nothing at all, until the client leaves or the server stops."""
    prompt_filter_results: bool
    """Azure style: a first chunk with `choices: []` and `prompt_filter_results` -- and, as Azure
    sends it, `id: ""`, `object: ""`, `model: ""`, `created: 0` -- and `content_filter_results` on
    the choices; non-streamed, the same fields in the body."""
    headers: Mapping[str, str]
    """Extra response headers."""
    model: str | None
    """`model` of the response; None echoes the request's (or `scripted-model`)."""
    id: str | None
    """`id` of the completion; None: a fresh `chatcmpl-...`."""


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with `text`, `tool_calls`, `error`, ... rather than directly."""

    chunks: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    status: int = 200
    error_body: Any = None
    """For status >= 400: the JSON value sent as the body (a `str` is sent as is, as text/plain)."""
    finish_reason: FinishReason | None = None
    delay_before: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None
    malformed_at: int | None = None
    stall_after: int | None = None
    hang: bool = False
    prompt_filter_results: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None
    id: str | None = None

    @property
    def content(self) -> str | None:
        """The text of the reply, None if it has none (tool calls only)."""
        return "".join(self.chunks) if self.chunks or not self.tool_calls else None

    @property
    def completion_tokens(self) -> int:
        """Text chunks + argument fragments: what the reply costs if not truncated."""
        return len(self.chunks) + sum(len(c.fragments) for c in self.tool_calls)

    def replace(self, **options: Unpack[ReplyOptions]) -> Reply:
        """A copy with some options changed: `text("hi").replace(delay_before=1)`."""
        return dataclasses.replace(self, **options)


Responder = Callable[[dict[str, Any]], Reply | str | None]
"""Chooses a reply from the parsed request body; None means the built-in default reply."""


def _chunks(content: str | Sequence[str] | None) -> tuple[str, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return split_words(content)
    return tuple(content)


def text(content: str | Sequence[str] = DEFAULT_TEXT, **options: Unpack[ReplyOptions]) -> Reply:
    """A text answer: a string (streamed word by word) or the exact list of streamed chunks."""
    return Reply(chunks=_chunks(content), **options)


def tool_calls(
    *calls: ToolCall | tuple[str, str | Mapping[str, Any]],
    content: str | Sequence[str] | None = None,
    **options: Unpack[ReplyOptions],
) -> Reply:
    """An answer calling tools, in parallel if several: `tool_calls(call("f", {"x": 1}))` or
    `tool_calls(("f", {"x": 1}), ("g", "{}"))`, after the text `content` if given."""
    built = tuple(c if isinstance(c, ToolCall) else call(c[0], c[1]) for c in calls)
    if not built:
        raise ValueError("tool_calls() needs at least one call")
    return Reply(chunks=_chunks(content), tool_calls=built, **options)


def _error_type(status: int) -> tuple[str, str | None]:
    if status == 401:
        return "invalid_request_error", "invalid_api_key"
    if status == 429:
        return "requests", "rate_limit_exceeded"
    if status >= 500:
        return "server_error", None
    return "invalid_request_error", None


def error(
    status: int = 500,
    message: str | None = None,
    *,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
    retry_after: float | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    delay_before: float = 0.0,
) -> Reply:
    """An HTTP error, with OpenAI's body `{"error": {"message", "type", "param", "code"}}` (or
    `body` instead: any JSON value, or a string sent as text/plain) and, if `retry_after` is
    given, a `Retry-After` header (whole seconds are sent without a decimal point)."""
    if status < 400:
        raise ValueError(f"an error needs a status >= 400, not {status}")
    default_type, default_code = _error_type(status)
    if body is None:
        body = {
            "error": {
                "message": message or f"Scripted error {status}.",
                "type": type or default_type,
                "param": param,
                "code": code or default_code,
            }
        }
    extra = dict(headers or {})
    if retry_after is not None:
        extra["Retry-After"] = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
    return Reply(status=status, error_body=body, headers=extra, delay_before=delay_before)


def rate_limit(retry_after: float | None = 1, message: str | None = None) -> Reply:
    """A 429 as OpenAI sends it, with `Retry-After: retry_after`."""
    return error(429, message or "Rate limit reached for requests.", retry_after=retry_after)


def cut(content: str | Sequence[str] = DEFAULT_TEXT, *, after: int, **options: Unpack[ReplyOptions]) -> Reply:
    """A text answer whose connection is closed after `after` body chunks, without `[DONE]`."""
    return text(content, **options).replace(cut_after=after)


def malformed(
    content: str | Sequence[str] = DEFAULT_TEXT, *, at: int = 0, **options: Unpack[ReplyOptions]
) -> Reply:
    """A text answer with an invalid-JSON `data:` line before body chunk `at` (the rest of the
    stream is intact, so a client that skips the line still gets the whole text)."""
    return text(content, **options).replace(malformed_at=at)


def hang(
    *, after: int | None = None, content: str | Sequence[str] = DEFAULT_TEXT, **options: Unpack[ReplyOptions]
) -> Reply:
    """No answer until the client gives up or the server stops; with `after`, a stream that stalls
    after that many body chunks (a non-streamed request then gets nothing at all)."""
    if after is None:
        return text(content, **options).replace(hang=True)
    return text(content, **options).replace(stall_after=after)


SEARCH_FUNCTION = "file_search"
_MARKER = re.compile(r"【\d+:\d+†[^】\n]*】")


def searching(body: Mapping[str, Any]) -> Reply | None:
    """A responder that uses an offered search function (`file_search`) as a model would: asked
    by the user, it searches, with the question as its one query; given the results, it answers
    with the first result's first line, citing it with the marker the result came with; offered
    no search, it gives the default reply (None)."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool" and isinstance(last.get("content"), str):
        markers = _MARKER.findall(last["content"])
        if not markers:
            return text("I found nothing about it in the files.")
        block = last["content"].split(markers[0], 1)[1].strip()
        return text(f"According to the files, {block.splitlines()[0].rstrip('.')} {markers[0]}.")
    offered = any(
        (tool.get("function") or {}).get("name") == SEARCH_FUNCTION for tool in body.get("tools") or []
    )
    if offered and last.get("role") == "user":
        return tool_calls(call(SEARCH_FUNCTION, {"queries": [_message_text(last)]}))
    return None


CODE_PREFIX = "run:"


def coder(body: Mapping[str, Any]) -> Reply | None:
    """A responder offered code_interpreter's function (`python`): a user message `run:<code>` is
    run as is; given the output, it answers quoting it."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return text(f"The output was: {last['content']}")
    offered = any((t.get("function") or {}).get("name") == "python" for t in body.get("tools") or [])
    content = last.get("content")
    if offered and last["role"] == "user" and isinstance(content, str) and content.startswith(CODE_PREFIX):
        return tool_calls(call("python", {"code": content[len(CODE_PREFIX) :]}))
    return None


def _as_reply(value: Reply | str) -> Reply:
    return text(value) if isinstance(value, str) else value


# ---------------------------------------------------------------------------------------------
# Embeddings


_WORD = re.compile(r"\w+")


def embedding(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """Feature hashing: each lower-cased word adds +-1 to the slot its hash picks; the sum is
    L2-normalised (all zeros for a text with no word). Texts sharing words point alike."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vector[digest % dimensions] += 1.0 if (digest >> 63) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


def _embedding_inputs(body: Any) -> list[str] | None:
    inputs = body.get("input") if isinstance(body, dict) else None
    if isinstance(inputs, str):
        return [inputs]
    if isinstance(inputs, list) and inputs and all(isinstance(i, str) for i in inputs):
        return inputs
    return None


# ---------------------------------------------------------------------------------------------
# Token accounting


def _message_text(message: Any) -> str:
    if not isinstance(message, Mapping):
        return ""
    content = message.get("content")
    parts: list[str] = []
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        parts.extend(p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    for tool_call in message.get("tool_calls") or []:
        function = tool_call.get("function") if isinstance(tool_call, Mapping) else None
        if isinstance(function, Mapping):
            parts.extend(str(function.get(key) or "") for key in ("name", "arguments"))
    return "".join(parts)


def prompt_tokens(messages: Any) -> int:
    """The prompt tokens the server reports for these messages: sum of `len(text) // 4 + 4`."""
    if not isinstance(messages, list):
        return 0
    return sum(len(_message_text(m)) // 4 + 4 for m in messages)


# ---------------------------------------------------------------------------------------------
# Recording


@dataclass
class RecordedRequest:
    """One request as received. `body` is the parsed JSON (None if there was none or it was not
    JSON); `received_at` is `time.monotonic()`, `received_wall` is `time.time()`."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    received_at: float
    received_wall: float
    is_chat: bool = False
    is_embeddings: bool = False
    reply: Reply | None = None
    status: int | None = None
    outcome: Outcome = "pending"
    finished_at: float | None = None

    @property
    def json(self) -> dict[str, Any]:
        """The body as a dict (empty if it was not a JSON object)."""
        return self.body if isinstance(self.body, dict) else {}

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.json.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools = self.json.get("tools")
        return tools if isinstance(tools, list) else []

    @property
    def stream(self) -> bool:
        return self.json.get("stream") is True

    @property
    def model(self) -> str | None:
        model = self.json.get("model")
        return model if isinstance(model, str) else None


# ---------------------------------------------------------------------------------------------
# The reply as sent for one request


@dataclass
class _Plan:
    id: str
    created: int
    model: str
    chunks: tuple[str, ...]
    calls: list[tuple[str, ToolCall]]  # (id, call)
    finish_reason: str
    usage: dict[str, Any]

    @classmethod
    def build(cls, reply: Reply, body: dict[str, Any]) -> _Plan:
        chunks, calls, finish = reply.chunks, list(reply.tool_calls), reply.finish_reason
        if finish is None:
            finish = "tool_calls" if calls else "stop"
        budget = body.get("max_completion_tokens")
        if budget is None:
            budget = body.get("max_tokens")
        if isinstance(budget, int) and not isinstance(budget, bool) and budget < reply.completion_tokens:
            left = max(budget, 0)
            chunks = chunks[:left]
            left -= len(chunks)
            kept: list[ToolCall] = []
            for c in calls:
                if left <= 0 and c.fragments:
                    break
                fragments = c.fragments[:left]
                left -= len(fragments)
                kept.append(dataclasses.replace(c, arguments="".join(fragments), fragments=fragments))
            calls, finish = kept, "length"
        completion = len(chunks) + sum(len(c.fragments) for c in calls)
        prompt = prompt_tokens(body.get("messages"))
        requested_model = body.get("model")
        return cls(
            id=reply.id or f"chatcmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            model=reply.model or (requested_model if isinstance(requested_model, str) else "scripted-model"),
            chunks=chunks,
            calls=[(c.id or f"call_{secrets.token_hex(12)}", c) for c in calls],
            finish_reason=finish,
            usage={
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
        )

    def completion(self, prompt_filter: bool) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.chunks) if self.chunks or not self.calls else None,
            "refusal": None,
            "annotations": [],
        }
        if self.calls:
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for i, c in self.calls
            ]
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": self.finish_reason,
        }
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
        if prompt_filter:
            choice["content_filter_results"] = _CONTENT_FILTER
            body["prompt_filter_results"] = _PROMPT_FILTER
        return body

    def chunk_stream(
        self, prompt_filter: bool, include_usage: bool
    ) -> tuple[list[Any], list[Any], list[Any]]:
        """The streamed chunks: (lead, body, tail)."""
        base: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice: dict[str, Any] = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            if prompt_filter:
                choice["content_filter_results"] = {} if finish_reason else _CONTENT_FILTER
            out = {**base, "choices": [choice]}
            if include_usage:
                out["usage"] = None
            return out

        lead: list[Any] = []
        if prompt_filter:
            lead.append(
                {
                    "id": "",
                    "object": "",
                    "created": 0,
                    "model": "",
                    "choices": [],
                    "prompt_filter_results": _PROMPT_FILTER,
                }
            )
        lead.append(chunk({"role": "assistant", "content": "" if self.chunks else None, "refusal": None}))
        body = [chunk({"content": c}) for c in self.chunks]
        for index, (call_id, c) in enumerate(self.calls):
            opening = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": ""},
            }
            body.append(chunk({"tool_calls": [opening]}))
            body.extend(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": f}}]}) for f in c.fragments
            )
        tail = [chunk({}, self.finish_reason)]
        if include_usage:
            tail.append({**base, "choices": [], "usage": self.usage})
        return lead, body, tail


def _sse(value: Any) -> bytes:
    return b"data: " + json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _not_found(method: str, path: str) -> dict[str, Any]:
    return {
        "error": {
            "message": f"Unknown request URL: {method} {path}. The scripted model serves POST "
            ".../chat/completions and POST .../embeddings.",
            "type": "invalid_request_error",
            "param": None,
            "code": "unknown_url",
        }
    }


# ---------------------------------------------------------------------------------------------
# HTTP


class _Gone(Exception):
    """The client closed the connection (or the server is stopping) mid-reply."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    _record: RecordedRequest | None = None  # the request being answered, until settled
    _counted = False  # whether it counts in `in_flight`

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    # -- plumbing

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError as exc:
            raise _Gone from exc

    def _chunk(self, data: bytes) -> None:
        self._write(b"%X\r\n%s\r\n" % (len(data), data))

    def _client_gone(self) -> bool:
        try:
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        return peeked == b""

    def _wait(self, seconds: float | None) -> None:
        """Sleep (forever if None), raising _Gone as soon as the client leaves or the server stops."""
        stopping = self.server.owner._stopping
        deadline = None if seconds is None else time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            selector.register(self.connection, selectors.EVENT_READ)
            watching = True
            while True:
                if stopping.is_set():
                    raise _Gone("server stopping")
                left = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
                if left <= 0:
                    return
                if watching and selector.select(left):
                    if self._client_gone():
                        raise _Gone("client closed the connection")
                    # Data from the client mid-reply (pipelining): stop watching, just sleep.
                    selector.unregister(self.connection)
                    watching = False
                elif not watching:
                    time.sleep(left)

    def _send_head(self, status: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        try:
            self.end_headers()
        except OSError as exc:
            raise _Gone from exc

    def _send_whole(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        self._send_head(
            status,
            {
                "Content-Type": content_type,
                "Content-Length": str(len(body)),
                **self._common_headers(),
                **headers,
            },
        )
        self._write_last(body)

    def _write_last(self, data: bytes) -> None:
        """The reply's final bytes: the request counts as completed before they are sent, so that a
        client that has just read them finds it so."""
        self._settle("completed")
        try:
            self._write(data)
        except _Gone:
            self.close_connection = True

    def _settle(self, outcome: Outcome) -> None:
        record, self._record = self._record, None
        if record is not None:
            counted, self._counted = self._counted, False
            self.server.owner._finish(record, outcome, counted)

    def _common_headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_{secrets.token_hex(16)}", "openai-processing-ms": "1"}

    # -- requests

    def _serve(self) -> None:
        owner = self.server.owner
        raw = self._read_body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = urlsplit(self.path).path
        is_chat = self.command == "POST" and path.rstrip("/").endswith("/chat/completions")
        is_embeddings = self.command == "POST" and path.rstrip("/").endswith("/embeddings")
        record = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw_body=raw,
            received_at=time.monotonic(),
            received_wall=time.time(),
            is_chat=is_chat,
            is_embeddings=is_embeddings,
        )
        owner._record(record)
        self._record = record
        self._counted = False
        outcome: Outcome = "completed"
        try:
            if is_embeddings:
                outcome = self._embeddings(record, body)
            elif not is_chat:
                record.status = 404
                payload = json.dumps(_not_found(self.command, path)).encode()
                self._send_whole(404, payload, "application/json", {})
            elif not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                record.status = 400
                problem = (
                    "We could not parse the JSON body of your request."
                    if not isinstance(body, dict)
                    else ("Missing required parameter: 'messages'.")
                )
                payload = json.dumps(
                    {
                        "error": {
                            "message": problem,
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    }
                ).encode()
                self._send_whole(400, payload, "application/json", {})
            else:
                outcome = self._chat(record, body)
        except _Gone:
            outcome = "stopped" if owner._stopping.is_set() else "aborted"
        if outcome != "completed":
            self.close_connection = True
        self._settle(outcome)

    def _chat(self, record: RecordedRequest, body: dict[str, Any]) -> Outcome:
        owner = self.server.owner
        reply = owner._choose(body)
        with owner._lock:
            owner._in_flight += 1
            owner._peak_in_flight = max(owner._peak_in_flight, owner._in_flight)
            self._counted = True
        failed = self._begin(record, reply)
        if failed is not None:
            return failed
        plan = _Plan.build(reply, body)
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            return self._stream(reply, plan, include_usage)
        return self._complete(reply, plan)

    def _begin(self, record: RecordedRequest, reply: Reply) -> Outcome | None:
        """What every reply does first: wait as scripted, and answer an error reply whole."""
        record.reply = reply
        record.status = reply.status
        if reply.delay_before > 0:
            self._wait(reply.delay_before)
        if reply.hang:
            self._wait(None)
        return self._error(reply) if reply.status >= 400 else None

    def _embeddings(self, record: RecordedRequest, body: Any) -> Outcome:
        reply = self.server.owner._choose_embeddings()
        failed = self._begin(record, reply)
        if failed is not None:
            return failed
        inputs = _embedding_inputs(body)
        dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS) if isinstance(body, dict) else None
        if inputs is None or len(inputs) > 2048 or not isinstance(dimensions, int) or dimensions < 1:
            record.status = 400
            problem = {
                "message": "Invalid embeddings request: 'input' must be a string or 1-2048 strings, "
                "'dimensions' a positive integer.",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
            self._send_whole(400, json.dumps({"error": problem}).encode(), "application/json", {})
            return "completed"
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(inputs):
            vector = embedding(text, dimensions)
            value: Any = (
                base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = sum(len(_WORD.findall(text)) for text in inputs)
        model = body.get("model")
        payload = {
            "object": "list",
            "data": data,
            "model": model if isinstance(model, str) else "scripted-embeddings",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        self._send_whole(200, json.dumps(payload).encode(), "application/json", reply.headers)
        return "completed"

    def _error(self, reply: Reply) -> Outcome:
        if isinstance(reply.error_body, str | bytes):
            payload = reply.error_body.encode() if isinstance(reply.error_body, str) else reply.error_body
            content_type = "text/plain; charset=utf-8"
        else:
            payload = json.dumps(reply.error_body).encode()
            content_type = "application/json"
        self._send_whole(reply.status, payload, content_type, reply.headers)
        return "completed"

    def _complete(self, reply: Reply, plan: _Plan) -> Outcome:
        if reply.stall_after is not None:
            self._wait(None)
        if reply.malformed_at is not None:
            payload = json.dumps(plan.completion(reply.prompt_filter_results)).encode()[:-1]  # no final }
        else:
            payload = json.dumps(plan.completion(reply.prompt_filter_results), ensure_ascii=False).encode()
        if reply.cut_after is None:
            self._send_whole(200, payload, "application/json", reply.headers)
            return "completed"
        self._send_head(
            200,
            {
                "Content-Type": "application/json",
                "Content-Length": str(len(payload)),
                **self._common_headers(),
                **reply.headers,
            },
        )
        self._write(payload[: len(payload) // 2])
        return "cut"

    def _stream(self, reply: Reply, plan: _Plan, include_usage: bool) -> Outcome:
        lead, body, tail = plan.chunk_stream(reply.prompt_filter_results, include_usage)
        self._send_head(
            200,
            {
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "Transfer-Encoding": "chunked",
                **self._common_headers(),
                **reply.headers,
            },
        )
        events = [_sse(e) for e in (*lead, *body, *tail)]
        first_body = len(lead)
        done = b"data: [DONE]\n\n"
        for index, event in enumerate([*events, done]):
            position = index - first_body  # body chunk number (negative: lead)
            if reply.cut_after is not None and position == reply.cut_after:
                return "cut"
            if reply.stall_after is not None and position == reply.stall_after:
                self._wait(None)
            if index and reply.chunk_delay > 0:
                self._wait(reply.chunk_delay)
            if reply.malformed_at is not None and position == reply.malformed_at:
                self._chunk(_MALFORMED)
            if event is done:
                self._write_last(b"%X\r\n%s\r\n0\r\n\r\n" % (len(done), done))
            else:
                self._chunk(event)
        return "completed"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, owner: ModelServer, host: str) -> None:
        self.owner = owner
        self.connections: dict[threading.Thread, socket.socket] = {}
        self.connections_lock = threading.Lock()
        super().__init__((host, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host's FQDN, which can stall without a network.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        worker = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            daemon=True,
            name="model-server-conn",
        )
        if isinstance(request, socket.socket):
            with self.connections_lock:
                self.connections[worker] = request
        worker.start()

    def _serve_connection(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that vanished mid-request is part of what we test

    def close_connections(self, timeout: float) -> None:
        with self.connections_lock:
            open_now = dict(self.connections)
        for sock in open_now.values():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for worker in open_now:
            worker.join(max(0.0, deadline - time.monotonic()))


# ---------------------------------------------------------------------------------------------
# The server


class ModelServer:
    """The scripted model. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, default: Reply | Responder | str | None = None, *, host: str = "127.0.0.1") -> None:
        self._host = host
        self._initial_default = default
        self._default: Reply | Responder | str | None = default
        self._script: deque[Reply | Responder | str] = deque()
        self._embedding_script: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._embedding_requests: list[RecordedRequest] = []
        self._responder_errors: list[BaseException] = []
        self._aborted = 0
        self._in_flight = 0
        self._peak_in_flight = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> ModelServer:
        if self._server is not None:
            raise RuntimeError("the model server is already running")
        self._stopping.clear()
        self._server = _HTTPServer(self, self._host)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL},
            daemon=True,
            name="model-server",
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, end every reply in progress and every open connection, and wait (up to
        `timeout`) for their threads. Hanging replies end with the outcome `stopped`."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        thread.join(timeout)
        server.close_connections(timeout)
        server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the model server is not running")
        return self._server.server_port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the server's root."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, for `OpenAI(base_url=...)`. Any prefix before
        `/chat/completions` is served, so `f"{model.url}/openai/v1"` works as well."""
        return f"{self.url}/v1"

    # -- scripting

    def script(self, *replies: Reply | Responder | str) -> None:
        """Queue replies, answered one per chat-completions request in order (a string is
        `text(string)`, a callable is asked with the request body)."""
        with self._lock:
            self._script.extend(replies)

    def script_embeddings(self, *replies: Reply) -> None:
        """Queue replies to embeddings requests, one per request in order: an error (`error`,
        `rate_limit`), `hang()`, or any 2xx reply (`text()`, perhaps with `delay_before=`) for
        the computed vectors. With the script empty, every request gets its vectors at once."""
        with self._lock:
            self._embedding_script.extend(replies)

    def respond_with(self, default: Reply | Responder | str | None) -> None:
        """What answers when the script is empty: a reply (every time), a responder, or None for
        the built-in `text(DEFAULT_TEXT)`."""
        with self._lock:
            self._default = default

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget the script, the recorded requests, the counters and the responder errors, and go
        back to the default responder given to the constructor."""
        with self._lock:
            self._script.clear()
            self._embedding_script.clear()
            self._requests.clear()
            self._embedding_requests.clear()
            self._responder_errors.clear()
            self._aborted = 0
            self._peak_in_flight = self._in_flight
            self._default = self._initial_default

    # -- what happened

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received but embeddings requests, in order of arrival (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self._requests:
                raise AssertionError("the model server has received no request")
            return self._requests[-1]

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat-completions requests, in order of arrival."""
        return [r.json for r in self.requests if r.is_chat]

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        """Every embeddings request received, in order of arrival (a snapshot)."""
        with self._lock:
            return list(self._embedding_requests)

    def embedding_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the embeddings requests, in order of arrival."""
        return [r.json for r in self.embedding_requests]

    @property
    def aborted(self) -> int:
        """Replies the client walked away from: it closed the connection before the reply was
        complete (detected within ~50 ms while the server waits, else at the next write)."""
        with self._lock:
            return self._aborted

    @property
    def in_flight(self) -> int:
        """Chat-completions replies being produced right now."""
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most chat-completions replies in progress at once (since start or reset)."""
        with self._lock:
            return self._peak_in_flight

    @property
    def responder_errors(self) -> list[BaseException]:
        """Exceptions raised by responders (each answered with a 500 naming it)."""
        with self._lock:
            return list(self._responder_errors)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until `count` requests have been received; TimeoutError otherwise."""
        self._wait_until(lambda: len(self._requests) >= count, timeout, f"{count} request(s)")
        return self.requests

    def wait_for_aborted(self, count: int = 1, timeout: float = 5.0) -> None:
        """Block until `count` replies have been aborted by their client; TimeoutError otherwise."""
        self._wait_until(lambda: self._aborted >= count, timeout, f"{count} aborted repl(ies)")

    def wait_until_idle(self, timeout: float = 5.0) -> None:
        """Block until every received request is finished (whatever its outcome)."""
        self._wait_until(lambda: all(r.outcome != "pending" for r in self._requests), timeout, "idle")

    def _wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(condition, timeout):
                raise TimeoutError(
                    f"model server: waited {timeout} s for {what}; "
                    f"{len(self._requests)} request(s), {self._aborted} aborted"
                )

    # -- called by the handlers

    def _record(self, record: RecordedRequest) -> None:
        with self._changed:
            (self._embedding_requests if record.is_embeddings else self._requests).append(record)
            self._changed.notify_all()

    def _finish(self, record: RecordedRequest, outcome: Outcome, counted: bool) -> None:
        with self._changed:
            if counted:
                self._in_flight -= 1
            record.outcome = outcome
            record.finished_at = time.monotonic()
            if outcome == "aborted":
                self._aborted += 1
            self._changed.notify_all()

    def _choose_embeddings(self) -> Reply:
        with self._lock:
            return self._embedding_script.popleft() if self._embedding_script else text("")

    def _choose(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            source = self._script.popleft() if self._script else self._default
        try:
            chosen = source(body) if callable(source) else source
        except Exception as exc:
            with self._lock:
                self._responder_errors.append(exc)
            return error(500, f"Scripted responder failed: {exc!r}")
        return _as_reply(chosen) if chosen is not None else text(DEFAULT_TEXT)

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"<ModelServer {where}: {len(self.requests)} request(s), {self.pending} scripted>"
