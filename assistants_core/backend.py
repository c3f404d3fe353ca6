"""The model backend: one OpenAI-compatible chat-completions endpoint, called with the official
`openai` client, always streamed.

`ASSISTANTS_MODEL_BASE_URL` is the endpoint (an Azure OpenAI or Foundry resource's
`.../openai/v1/`, OpenAI's, or any compatible server such as Ollama or vLLM);
`ASSISTANTS_MODEL_API_KEY` its key. Without a key, an Azure endpoint is called with an Entra ID
token of the app's identity, and any other endpoint with no credentials at all (a local server).

A call is retried, before any of its answer has arrived, on 429 (waiting what `Retry-After` asks
when that is at most `MAX_RETRY_AFTER_SECONDS`), 5xx, timeouts and lost connections; then it
fails with a `ModelError` whose code is what the run's `last_error` takes: `rate_limit_exceeded`
for 429, `server_error` for the rest, and `invalid_prompt` for a request the backend refuses
(4xx: no such model or deployment, context too long, content filtered). A stream that breaks
mid-answer, or sends what is not a chunk, fails at once: its answer cannot be trusted whole.

Embeddings (`embed`) come from the same endpoint's `/embeddings`, in as few requests as the
endpoint's limits allow (`MAX_EMBEDDING_INPUTS` inputs and `MAX_EMBEDDING_TOKENS` tokens a
request), each retried like a chat call (429 within `MAX_RETRY_AFTER_SECONDS`, 5xx, timeouts,
lost connections; `EMBEDDING_RETRIES` times) and then failed with `EmbeddingError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

from .models.run import ErrorCode, Usage

if TYPE_CHECKING:
    import openai  # imported when the first run calls the model: a cold start does not pay for it

log = logging.getLogger("assistants.backend")

MAX_RETRIES = 2
MAX_RETRY_AFTER_SECONDS = 10.0
TIMEOUTS = {"connect": 10.0, "read": 120.0, "write": 30.0, "pool": 10.0}  # seconds
# After `data: [DONE]` only the end of the response's body is left (in the same packet, as a
# rule). Read, the connection goes back to the client's pool for the next call; closed unread,
# the client drops it and the next call connects again (in Azure, with a TLS handshake). A
# backend that sends more, or holds its body open, is let go after this long.
DRAIN_SECONDS = 0.5
AZURE_HOSTS = (".openai.azure.com", ".services.ai.azure.com", ".cognitiveservices.azure.com")
AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"
GENERIC_ERROR = "Sorry, something went wrong."

FinishReason = Literal["stop", "tool_calls", "length", "content_filter"]

# OpenAI's CreateEmbeddingRequest: at most 2,048 inputs and 300,000 tokens summed per request.
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_TOKENS = 300_000
EMBEDDING_RETRIES = 3
EMBEDDING_TIMEOUT_SECONDS = 60.0


class ModelError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


class EmbeddingError(ModelError):
    """The embeddings could not be had (after the retries); a file being ingested fails with
    `server_error`. The message is for the logs, not for clients."""

    def __init__(self, message: str) -> None:
        super().__init__("server_error", message)


@dataclass(frozen=True)
class TextFragment:
    text: str


@dataclass(frozen=True)
class ToolCallFragment:
    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True)
class Finished:
    reason: FinishReason
    usage: Usage | None


Fragment = TextFragment | ToolCallFragment | Finished


class ModelStream:
    """One streamed call, made and read on the process's model loop (`_ModelLoop`), its
    fragments handed over as they come, so that the reader can wait for them in slices
    (`next(timeout)`) and look for a cancel in between. `close` ends the call at once, wherever
    it is (connecting, waiting to retry, or reading an answer): a model that has gone quiet stops
    being waited for (and billed)."""

    _END = object()

    def __init__(self, open_call: Callable[[AsyncExitStack], Awaitable[AsyncIterator[str]]]) -> None:
        # SimpleQueue: the C queue, one lock and no condition objects per hand-over.
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._answered = False  # the whole answer handed over: the response is read to its end
        self._call = _MODEL_LOOP.submit(self._pump(open_call))

    async def _pump(self, open_call: Callable[[AsyncExitStack], Awaitable[AsyncIterator[str]]]) -> None:
        try:
            async with AsyncExitStack() as stack:  # the response, closed however the call ends
                lines = await open_call(stack)
                async with aclosing(_fragments(lines)) as fragments:
                    async for fragment in fragments:
                        self._queue.put(fragment)
                self._answered = True  # before the end is handed over, so that `close` sees it
                self._queue.put(self._END)
                await _drained(lines)
        except asyncio.CancelledError:  # closed: nobody reads on
            raise
        except BaseException as exc:  # handed to the reader, raised on its thread
            if self._answered:  # the answer is whole and handed over: nobody waits for more
                log.debug("closing a model response failed: %s", exc)
            else:
                self._queue.put(exc)

    def next(self, timeout: float) -> Fragment | None:
        """The next fragment; None if none came within `timeout`. StopIteration at the end."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, TextFragment | ToolCallFragment | Finished)
        return item

    def close(self) -> None:
        # Cancelling the call's task on the loop closes its response, and with it the connection;
        # a whole answer's response is left to be read to its end (bounded: `_drained`).
        if not self._answered:
            self._call.cancel()


class _ModelLoop:
    """The event loop that every model call of the process is made on: one thread, started
    with the first call, rather than a thread per call."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def submit(self, call: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="model-calls", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(call, self._loop)


_MODEL_LOOP = _ModelLoop()


class ModelBackend:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        embeddings_timeout: float = EMBEDDING_TIMEOUT_SECONDS,
        retry_pause: float = 0.5,
    ) -> None:
        self.base_url = base_url
        self._api_key = api_key
        self._embeddings_timeout = embeddings_timeout
        self._retry_pause = retry_pause  # the first pause after a 5xx or a timeout; doubled after
        self._client: openai.AsyncOpenAI | None = None
        # Embeddings are asked from ingestion's threads, with a client of their own.
        self._sync_client: openai.OpenAI | None = None
        self._lock = threading.Lock()

    def _openai(self) -> openai.AsyncOpenAI:
        # Made on the model loop, and only ever used there: no lock needed.
        if self._client is None:
            import openai

            credential: Any = self._api_key or _token_provider(self.base_url) or "none"
            timeout = openai.Timeout(**TIMEOUTS)
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=credential, max_retries=0, timeout=timeout
            )
        return self._client

    def stream(self, body: dict[str, Any]) -> ModelStream:
        """One call with this chat-completions request body, streamed."""
        streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
        return ModelStream(lambda stack: self._open(streamed, stack))

    async def _open(self, body: dict[str, Any], stack: AsyncExitStack) -> AsyncIterator[str]:
        """The lines of the call's event stream, once the backend has accepted it (retried as
        the module says); its response is closed with `stack`. The response is read as lines,
        not as the client's chunk objects: building those is most of what the call costs."""
        client = self._openai()
        import openai

        for attempt in range(MAX_RETRIES + 1):
            try:
                call = client.chat.completions.with_streaming_response.create(**body)
                response = await stack.enter_async_context(call)
                return cast(AsyncIterator[str], response.iter_lines())
            except openai.RateLimitError as exc:
                wait = _retry_after(exc.response)
                if attempt == MAX_RETRIES or wait is None or wait > MAX_RETRY_AFTER_SECONDS:
                    raise ModelError("rate_limit_exceeded", _rate_limit_message(exc)) from None
            except (openai.InternalServerError, openai.APIConnectionError) as exc:
                log.warning("model call failed (attempt %d): %s", attempt + 1, exc)
                if attempt == MAX_RETRIES:
                    raise ModelError("server_error", GENERIC_ERROR) from None
                wait = 0.5 * 2**attempt
            except openai.APIStatusError as exc:
                if exc.status_code in (401, 403):
                    log.error("the model backend refused this service's credentials: %s", exc)
                    raise ModelError("server_error", GENERIC_ERROR) from None
                raise ModelError("invalid_prompt", f"The model refused the request: {_detail(exc)}") from None
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def embed(
        self,
        inputs: Sequence[str],
        *,
        model: str,
        dimensions: int | None,
        tokens: Sequence[int] | None = None,
        max_inputs: int = MAX_EMBEDDING_INPUTS,
        max_tokens: int = MAX_EMBEDDING_TOKENS,
    ) -> list[list[float]]:
        """One vector per input, in order. `tokens` (each input's token count) lets the batches
        fill up to `max_tokens`; without it every input is counted as a whole request's share."""
        counts = list(tokens) if tokens is not None else [max_tokens // max_inputs] * len(inputs)
        if len(counts) != len(inputs):
            raise ValueError("one token count per input")
        vectors: list[list[float]] = []
        start = 0
        while start < len(inputs):
            end, budget = start, 0
            while end < len(inputs) and end - start < max_inputs:
                if end > start and budget + counts[end] > max_tokens:
                    break
                budget += counts[end]
                end += 1
            vectors.extend(self._embed_batch(list(inputs[start:end]), model, dimensions))
            start = end
        return vectors

    def _sync(self) -> openai.OpenAI:
        with self._lock:
            if self._sync_client is None:
                import openai

                credential: Any = self._api_key or _sync_token_provider(self.base_url) or "none"
                timeout = openai.Timeout(**TIMEOUTS)
                self._sync_client = openai.OpenAI(
                    base_url=self.base_url, api_key=credential, max_retries=0, timeout=timeout
                )
            return self._sync_client

    def _embed_batch(self, inputs: list[str], model: str, dimensions: int | None) -> list[list[float]]:
        client = self._sync()
        import openai

        extra: dict[str, Any] = {} if dimensions is None else {"dimensions": dimensions}
        for attempt in range(EMBEDDING_RETRIES + 1):
            try:
                response = client.embeddings.create(
                    input=inputs, model=model, timeout=self._embeddings_timeout, **extra
                )
                return _vectors(response, len(inputs), dimensions)
            except openai.RateLimitError as exc:
                wait = _retry_after(exc.response)
                if attempt == EMBEDDING_RETRIES or wait is None or wait > MAX_RETRY_AFTER_SECONDS:
                    raise EmbeddingError(f"embeddings rate limited: {_detail(exc)}") from None
            except (openai.InternalServerError, openai.APIConnectionError) as exc:
                log.warning("embeddings call failed (attempt %d): %s", attempt + 1, exc)
                if attempt == EMBEDDING_RETRIES:
                    raise EmbeddingError(f"embeddings failed {attempt + 1} times: {exc}") from None
                wait = self._retry_pause * 2**attempt
            except openai.APIStatusError as exc:
                raise EmbeddingError(f"embeddings refused: {_detail(exc)}") from None
            time.sleep(wait)
        raise AssertionError("unreachable")


def _vectors(response: Any, count: int, dimensions: int | None) -> list[list[float]]:
    """The response's vectors in input order, checked: one per input, all of one length (the
    one asked for)."""
    data = sorted(response.data, key=lambda item: item.index)
    if [item.index for item in data] != list(range(count)):
        raise EmbeddingError(f"the embeddings endpoint answered {len(data)} vectors for {count} inputs")
    vectors = [list(map(float, item.embedding)) for item in data]
    lengths = {len(vector) for vector in vectors}
    if len(lengths) != 1 or (dimensions is not None and lengths != {dimensions}):
        raise EmbeddingError(f"the embeddings endpoint answered vectors of lengths {sorted(lengths)}")
    return vectors


async def _drained(lines: AsyncIterator[str]) -> None:
    """The rest of a response whose answer is whole read and dropped, within DRAIN_SECONDS, so
    that its connection is kept for the next call; if it does not end by then, it is closed."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in lines:
                pass
    except Exception:  # a timeout or a broken body: closed with the response, as if unread
        log.debug("a model response did not end after its answer")


async def _fragments(lines: AsyncIterator[str]) -> AsyncGenerator[Fragment, None]:
    """The chunks of a streamed answer (Server-Sent Events, one JSON chunk per `data:` line, as
    the backend sends them) as fragments, the finish reason and usage last."""
    reason: FinishReason | None = None
    usage: Usage | None = None
    try:
        async for line in lines:
            if not line.startswith("data:"):  # a blank line, a comment, `event:` or `id:`
                continue
            data = line[5:].removeprefix(" ")
            if data.startswith("[DONE]"):
                break
            chunk = json.loads(data)
            if chunk.get("error"):
                raise ValueError(f"an error event: {chunk['error']}")
            counted = chunk.get("usage")
            if counted is not None:
                usage = Usage(
                    prompt_tokens=counted["prompt_tokens"],
                    completion_tokens=counted["completion_tokens"],
                    total_tokens=counted["total_tokens"],
                )
            # No choices in Azure's filter results and in the usage chunk.
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    yield TextFragment(delta["content"])
                for position, call in enumerate(delta.get("tool_calls") or ()):
                    function = call.get("function") or {}
                    index = call.get("index")
                    yield ToolCallFragment(
                        index=index if index is not None else position,
                        id=call.get("id") or None,
                        name=function.get("name") or None,
                        arguments=function.get("arguments") or "",
                    )
                if choice.get("finish_reason") is not None:
                    reason = _finish_reason(choice["finish_reason"])
    except Exception as exc:  # the connection broke, or what came is not a chunk
        log.warning("model stream broke: %s", exc)
        raise ModelError("server_error", GENERIC_ERROR) from None
    if reason is None:
        log.warning("model stream ended without a finish reason")
        raise ModelError("server_error", GENERIC_ERROR)
    yield Finished(reason, usage)


def _finish_reason(value: str) -> FinishReason:
    if value in ("tool_calls", "function_call"):
        return "tool_calls"
    if value in ("length", "content_filter"):
        return "length" if value == "length" else "content_filter"
    return "stop"


def _retry_after(response: Any) -> float | None:
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(header)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                return None
    return 1.0  # no advice: a short pause


def _rate_limit_message(exc: openai.APIStatusError) -> str:
    return f"The model is rate limited right now ({_detail(exc)}). Please try again later."


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:1000]
    return f"HTTP {exc.status_code}"


def _sync_token_provider(base_url: str) -> Callable[[], str] | None:
    """For an Azure endpoint: Entra ID tokens of the app's identity, refreshed as they expire."""
    host = urlsplit(base_url).hostname or ""
    if not host.endswith(AZURE_HOSTS):
        return None
    from azure.identity import DefaultAzureCredential, get_bearer_token_provider

    return get_bearer_token_provider(DefaultAzureCredential(), AZURE_SCOPE)


def _token_provider(base_url: str) -> Callable[[], Awaitable[str]] | None:
    """The same, for the model loop: fetched off it, since a refresh blocks on the identity
    endpoint."""
    token = _sync_token_provider(base_url)
    if token is None:
        return None

    async def provider() -> str:
        return await asyncio.to_thread(token)

    return provider
