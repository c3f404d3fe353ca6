"""Queue triggers, run as the Functions host's storage-queue extension runs them.

For each `queueTrigger` function a listener polls its queue. It receives up to `batchSize`
messages at a time, each made invisible for 10 minutes (renewed halfway for as long as the function
runs), and processes them in parallel. Once more than `newBatchThreshold` are in flight it waits
for some to finish before it receives again, so at most batchSize + newBatchThreshold run at
once. An empty poll backs off at random, exponentially, from 100 ms up to `maxPollingInterval`;
finding messages makes the next poll immediate. A message whose text does not decode (base64 by
default; host.json `messageEncoding: none` takes the text as it is) goes to `<queue>-poison`
without running anything. A run that succeeds deletes its message; one that fails makes it
visible again after `visibilityTimeout`, or, at its `maxDequeueCount`th attempt, copies it to
`<queue>-poison` and deletes it. Unlike the host, the listener creates the queue and its poison
queue when it starts (the host polls a missing queue until someone creates it).

The storage calls go through the sync `azure-storage-queue` client, each on a daemon thread, so
that the loop never waits on the network and a call under way never holds up the host's exit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import logging
import os
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions.decorators.function_app import Function
from azure.functions.decorators.queue import QueueTrigger
from azure.functions.queue import QueueMessage
from azure.storage.queue import ExponentialRetry, QueueClient
from azure.storage.queue import QueueMessage as StoredMessage

if TYPE_CHECKING:
    from devhost import Invoker, Trigger

log = logging.getLogger("devhost.queues")

RECEIVE_VISIBILITY = 600.0  # seconds a received message stays invisible, renewed halfway
MIN_POLLING_INTERVAL = 0.1  # the host's QueuePollingIntervals.Minimum
MAX_BATCH_SIZE = 32  # the service's limit on one receive
_QUIET = logging.getLogger("devhost.queues.http")  # the SDK's per-request INFO lines
_QUIET.setLevel(logging.WARNING)

T = TypeVar("T")


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the extension's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8 * (os.cpu_count() or 1)
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    base64: bool = True

    @classmethod
    def from_host_json(cls, host: Mapping[str, Any]) -> QueueOptions:
        """Raises ValueError for a value the host would refuse to start with."""
        section = _lower_keys(_lower_keys(host).get("extensions", {})).get("queues", {})
        queues = _lower_keys(section)
        batch_size = int(queues.get("batchsize", cls.batch_size))
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"host.json: queues.batchSize must be 1-{MAX_BATCH_SIZE}, not {batch_size}")
        threshold = int(queues.get("newbatchthreshold", batch_size // 2 * (os.cpu_count() or 1)))
        if threshold < 0:
            raise ValueError(f"host.json: queues.newBatchThreshold must not be negative, not {threshold}")
        polling = timespan(str(queues.get("maxpollinginterval", "00:01:00")))
        if polling < MIN_POLLING_INTERVAL:
            raise ValueError("host.json: queues.maxPollingInterval must be at least 00:00:00.1")
        max_dequeue_count = int(queues.get("maxdequeuecount", cls.max_dequeue_count))
        if max_dequeue_count < 1:
            raise ValueError("host.json: queues.maxDequeueCount must be at least 1")
        encoding = str(queues.get("messageencoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f'host.json: queues.messageEncoding is "base64" or "none", not {encoding!r}')
        return cls(
            batch_size=batch_size,
            new_batch_threshold=threshold,
            max_polling_interval=polling,
            visibility_timeout=timespan(str(queues.get("visibilitytimeout", "00:00:00"))),
            max_dequeue_count=max_dequeue_count,
            base64=encoding == "base64",
        )

    @property
    def max_in_flight(self) -> int:
        return self.batch_size + self.new_batch_threshold


def timespan(text: str) -> float:
    """Seconds in a .NET TimeSpan as host.json writes them: `[d.]hh:mm[:ss[.fffffff]]`."""
    match = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+)(?::(\d+)(\.\d+)?)?", text.strip())
    if not match:
        raise ValueError(f"host.json: {text!r} is not a time span like 00:00:02")
    days, hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds or 0) > 59:
        raise ValueError(f"host.json: {text!r} is not a time span like 00:00:02")
    return (
        int(days or 0) * 86400
        + int(hours) * 3600
        + int(minutes) * 60
        + int(seconds or 0)
        + float(fraction or 0)
    )


def resolve(text: str, settings: Mapping[str, str]) -> str:
    """`%Name%` replaced by the app setting Name, as the host's name resolver does."""

    def setting(match: re.Match[str]) -> str:
        value = _setting(settings, match.group(1))
        if value is None:
            raise ValueError(f"'%{match.group(1)}%' does not resolve to a value")
        return value

    return re.sub(r"%([^%]+)%", setting, text)


class Backoff:
    """The host's RandomizedExponentialBackoffStrategy: after a poll that found messages the next
    empty one waits the minimum; each further empty poll waits about twice as long more (±20 %),
    up to the maximum."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum, self.maximum = minimum, maximum
        self.current = 0.0
        self._exponent = 0

    def next(self, succeeded: bool) -> float:
        if succeeded:
            self.current, self._exponent = self.minimum, 1
        elif self.current != self.maximum:
            interval = self.minimum
            if self._exponent > 0:
                interval += random.uniform(0.8, 1.2) * 2 ** (self._exponent - 1) * self.minimum
            if interval < self.maximum:
                self.current = interval
                self._exponent += 1
            else:
                self.current = self.maximum
        return self.current


def queue_clients(connection: str, settings: Mapping[str, str]) -> Callable[[str], QueueClient]:
    """Clients for the storage account the setting (or setting collection) `connection` names,
    looked up as the host does: `AzureWebJobs<connection>` first, then `<connection>`. A value is a
    connection string; `<name>__queueServiceUri` (or `__serviceUri`, or `__accountName`) is an
    identity-based connection, with DefaultAzureCredential (`__clientId` picks a user-assigned
    managed identity)."""
    name = connection or "AzureWebJobsStorage"
    for candidate in (f"AzureWebJobs{name}", name):
        value = _setting(settings, candidate)
        if value:
            return functools.partial(_from_connection_string, value)
        section = _section(settings, candidate)
        url = section.get("queueserviceuri") or section.get("serviceuri")
        if not url and section.get("accountname"):
            url = f"https://{section['accountname']}.queue.core.windows.net"
        if url:
            from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

            client_id = section.get("clientid") or None
            credential: Any
            if section.get("credential", "").lower() == "managedidentity":
                credential = ManagedIdentityCredential(client_id=client_id)
            else:
                credential = DefaultAzureCredential(managed_identity_client_id=client_id)
            return functools.partial(_from_url, url, credential)
    raise ValueError(
        f"storage connection {name!r} is not configured: set {name} to a connection string, "
        f"or {name}__queueServiceUri for an identity-based connection"
    )


def queue_triggers(
    functions: Iterable[Function],
    settings: Mapping[str, str],
    host: Mapping[str, Any],
    invoke: Invoker,
    *,
    visibility: float = RECEIVE_VISIBILITY,
) -> dict[str, Trigger]:
    """A listener for each queue-triggered function. A function whose binding cannot be resolved
    (a missing setting, a bad queue name) is left out with an error in the log, as the host runs
    the others when one function is in error; invalid host.json options raise ValueError."""
    options = QueueOptions.from_host_json(host)
    triggers: dict[str, Trigger] = {}
    for function in functions:
        trigger = function.get_trigger()
        if not isinstance(trigger, QueueTrigger):
            continue
        name = function.get_function_name() or ""
        try:
            queue_name = _valid_queue_name(resolve(str(trigger.queue_name), settings).lower())
            clients = queue_clients(str(getattr(trigger, "connection", "") or ""), settings)
        except ValueError as exc:
            log.error("The '%s' function is in error: %s", name, exc)
            continue
        triggers[name] = QueueListener(
            name,
            function.get_user_function(),
            str(trigger.name),
            clients(queue_name),
            clients(queue_name + "-poison"),
            options,
            invoke,
            visibility,
        )
    return triggers


class QueueListener:
    def __init__(
        self,
        name: str,
        function: Callable[..., Any],
        argument: str,
        queue: QueueClient,
        poison: QueueClient,
        options: QueueOptions,
        invoke: Invoker,
        visibility: float = RECEIVE_VISIBILITY,
    ) -> None:
        self.name = name
        self.queue = queue
        self.poison = poison
        self.options = options
        self.polls = 0  # receive requests made, for a look at the back-off
        self._function = function
        self._argument = argument
        self._invoke = invoke
        self._visibility = visibility

    async def fire(self, text: str) -> None:
        """As Core Tools' admin endpoint: the function runs once with `text` as the message body,
        which never touches the queue (no id, dequeue count 0, no retry)."""
        message = _function_message(body=text.encode(), dequeue_count=0)
        await self._invoke(self._function, {self._argument: message})

    async def run(self) -> None:
        backoff = Backoff(MIN_POLLING_INTERVAL, self.options.max_polling_interval)
        processing: set[asyncio.Task[None]] = set()
        ready = failing = found = False
        try:
            while True:
                while len(processing) > self.options.new_batch_threshold:
                    done, _ = await asyncio.wait(processing, return_when=asyncio.FIRST_COMPLETED)
                    processing -= done
                batch: list[StoredMessage] = []
                try:
                    if not ready:
                        await self._storage(self._create_queues)
                        ready = True
                    self.polls += 1
                    batch = await self._storage(self._receive)
                    if failing:
                        log.info("queue %s is reachable again", self.queue.queue_name)
                        failing = False
                except Exception as exc:
                    ready = False  # the queue may be gone (an emulator restarted): make it again
                    if not failing:
                        log.warning("queue %s: %s; will retry", self.queue.queue_name, _brief(exc))
                    failing = True
                for message in batch:
                    task = asyncio.create_task(self._process(message))
                    processing.add(task)
                    task.add_done_callback(processing.discard)
                if batch:
                    found = True
                    continue
                await asyncio.sleep(backoff.next(found))
                found = False
        finally:
            for task in processing:
                task.cancel()
            if processing:
                await asyncio.wait(processing, timeout=1)

    async def _process(self, stored: StoredMessage) -> None:
        try:
            text = stored.content or ""
            try:
                body = _decode(text) if self.options.base64 else text.encode()
            except ValueError:
                log.warning(
                    "Message decoding has failed! Check MessageEncoding settings. MessageId=%s; moving it to "
                    "%s.",
                    stored.id,
                    self.poison.queue_name,
                )
                await self._storage(self._move_to_poison, stored.id, stored.pop_receipt, text)
                return
            if (stored.dequeue_count or 0) > self.options.max_dequeue_count:
                await self._poison(stored, stored.pop_receipt, text)
                return
            receipt = await self._run_function(stored, body)
            if receipt is None:
                return
            if receipt.succeeded:
                await self._storage(self.queue.delete_message, stored.id, receipt.value)
            elif (stored.dequeue_count or 0) >= self.options.max_dequeue_count:
                await self._poison(stored, receipt.value, text)
            else:
                await self._storage(
                    self.queue.update_message,
                    stored.id,
                    receipt.value,
                    visibility_timeout=int(self.options.visibility_timeout),
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("queue %s, message %s: %s", self.queue.queue_name, stored.id, _brief(exc))

    async def _run_function(self, stored: StoredMessage, body: bytes) -> _Receipt | None:
        """Runs the function, keeping the message invisible meanwhile; the pop receipt to finish
        with, or None if the message was lost (deleted, or received again elsewhere)."""
        receipt = _Receipt(stored.pop_receipt)
        done = asyncio.Event()
        keeper = asyncio.create_task(self._keep_invisible(stored.id, receipt, done))
        message = _function_message(
            id=stored.id,
            body=body,
            dequeue_count=stored.dequeue_count,
            insertion_time=stored.inserted_on,
            expiration_time=stored.expires_on,
            time_next_visible=stored.next_visible_on,
            pop_receipt=stored.pop_receipt,
        )
        try:
            await self._invoke(self._function, {self._argument: message})
            receipt.succeeded = True
        except asyncio.CancelledError:
            keeper.cancel()
            raise
        except Exception:
            log.exception(
                "Executed 'Functions.%s' (Failed, MessageId=%s, DequeueCount=%d)",
                self.name,
                stored.id,
                stored.dequeue_count,
            )
        done.set()
        await keeper  # an update under way finishes, so its new pop receipt is the one used
        return None if receipt.lost else receipt

    async def _keep_invisible(self, message_id: str, receipt: _Receipt, done: asyncio.Event) -> None:
        interval = self._visibility / 2
        while True:
            try:
                await asyncio.wait_for(done.wait(), interval)
                return
            except TimeoutError:
                pass
            try:
                updated = await self._storage(
                    self.queue.update_message,
                    message_id,
                    receipt.value,
                    visibility_timeout=int(self._visibility),
                )
                receipt.value = updated.pop_receipt
                interval = self._visibility / 2
            except (ResourceNotFoundError, HttpResponseError) as exc:
                if isinstance(exc, ResourceNotFoundError) or exc.status_code == 400:
                    # Deleted, or its pop receipt is stale: the message is no longer ours.
                    log.warning("queue %s: lost %s: %s", self.queue.queue_name, message_id, _brief(exc))
                    receipt.lost = True
                    return
                interval = max(1.0, interval / 2)  # try again before the invisibility runs out
            except Exception as exc:
                log.warning("queue %s, message %s: %s", self.queue.queue_name, message_id, _brief(exc))
                interval = max(1.0, interval / 2)

    async def _poison(self, stored: StoredMessage, pop_receipt: str | None, text: str) -> None:
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'. MessageId=%s",
            self.options.max_dequeue_count,
            self.poison.queue_name,
            stored.id,
        )
        await self._storage(self._move_to_poison, stored.id, pop_receipt, text)

    def _move_to_poison(self, message_id: str, pop_receipt: str | None, text: str) -> None:
        # The text as it was: re-encoding a decoded body, as the host does, gives it back.
        try:
            self.poison.send_message(text)
        except ResourceNotFoundError:
            _create(self.poison)
            self.poison.send_message(text)
        self.queue.delete_message(message_id, pop_receipt)

    def _create_queues(self) -> None:
        _create(self.queue)
        _create(self.poison)

    def _receive(self) -> list[StoredMessage]:
        pages = self.queue.receive_messages(
            messages_per_page=self.options.batch_size,
            max_messages=self.options.batch_size,
            visibility_timeout=int(self._visibility),
        ).by_page()
        return list(next(pages, []))  # one request: the first page, empty if nothing is visible

    async def _storage(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`call` on a thread of its own, which (a daemon) never holds up the process's exit,
        as a pool's thread would while the SDK retries against storage that is down."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(outcome: Callable[[], None]) -> None:
            if not future.done():  # not cancelled meanwhile
                outcome()

        def work() -> None:
            try:
                result = call(*args, **kwargs)
            except BaseException as exc:
                report = functools.partial(settle, functools.partial(future.set_exception, exc))
            else:
                report = functools.partial(settle, functools.partial(future.set_result, result))
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(report)

        threading.Thread(target=work, name=f"queue-{self.name}", daemon=True).start()
        return await future


class _Receipt:
    def __init__(self, value: str | None) -> None:
        self.value = value
        self.succeeded = False
        self.lost = False


def _function_message(**fields: Any) -> Any:
    """What the worker hands a queue-triggered function: `azure.functions.queue.QueueMessage`,
    which has the dequeue count and times that `func.QueueMessage` lacks."""
    return QueueMessage(**fields)  # type: ignore[no-untyped-call]


def _decode(text: str) -> bytes:
    """Base64 as .NET's Convert.FromBase64String reads it (whitespace ignored, padding required);
    ValueError if it is not."""
    try:
        return base64.b64decode(re.sub(r"[ \t\r\n]", "", text), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def _create(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()


def _from_connection_string(value: str, queue_name: str) -> QueueClient:
    return QueueClient.from_connection_string(value, queue_name, **_client_options())


def _from_url(url: str, credential: Any, queue_name: str) -> QueueClient:
    return QueueClient(url, queue_name, credential=credential, **_client_options())


def _client_options() -> dict[str, Any]:
    return {
        # A few quick retries (the SDK's default waits 15 s and more): the listener backs off
        # and tries again on its own.
        "retry_policy": ExponentialRetry(initial_backoff=1, retry_total=2, random_jitter_range=1),
        "connection_timeout": 10,
        "read_timeout": 30,
        "logger": _QUIET,  # the SDK logs every request at INFO
    }


def _valid_queue_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]", name) or not 3 <= len(name) <= 63:
        raise ValueError(
            f"invalid queue name {name!r}: 3-63 lowercase letters, digits and single dashes, "
            "starting and ending with a letter or digit"
        )
    return name


def _lower_keys(section: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in section.items()} if isinstance(section, Mapping) else {}


def _setting(settings: Mapping[str, str], name: str) -> str | None:
    """A setting by name, any case (as the host's configuration reads them)."""
    if name in settings:
        return settings[name]
    wanted = name.lower()
    return next((v for k, v in settings.items() if k.lower() == wanted), None)


def _section(settings: Mapping[str, str], name: str) -> dict[str, str]:
    """The settings `name__key` (or `name:key`), by lowercase key."""
    prefixes = (name.lower() + "__", name.lower() + ":")
    return {
        k.lower()[len(p) :]: v
        for k, v in settings.items()
        for p in prefixes
        if k.lower().startswith(p) and v.strip()
    }


def _brief(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
