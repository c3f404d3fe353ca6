"""The code sandbox behind one small interface: a stateful Python session per thread, its files in
/mnt/data. Two implementations know their mechanism: local.py (an IPython kernel under bubblewrap)
and dynamic_sessions.py (Azure Container Apps dynamic sessions); `open_sandbox` picks one from the
settings. Nothing here imports either mechanism's libraries, so importing this is cheap."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assistants_core.settings import SandboxSettings

log = logging.getLogger(__name__)

# A cell's text beyond this is cut (head and tail kept): a print loop must not fill the service's memory.
MAX_LOGS_CHARS = 256 * 1024
# Names the caller may use in /mnt/data: one path component, as the Files API's filenames are.
_FILE_NAME = re.compile(r"[^/\x00]{1,255}")


class SandboxError(RuntimeError):
    """The sandbox could not run the call (not installed, unreachable, refused): the step fails
    with `server_error`; the message says what to fix and never carries the code's output."""


class SandboxUnavailable(SandboxError):
    """This instance has no usable sandbox: the message names what to install or set."""


@dataclass(frozen=True)
class Logs:
    text: str


@dataclass(frozen=True)
class Image:
    png: bytes


Output = Logs | Image


@dataclass(frozen=True)
class DataFile:
    """A regular file directly in the session's /mnt/data."""

    name: str
    size: int
    modified: float  # seconds since the epoch

    @property
    def path(self) -> str:
        return f"/mnt/data/{self.name}"


@dataclass(frozen=True)
class InputFile:
    """A file the session should hold. `read` is called only when the file is missing from the
    session (new, evicted, ended idle or lost), so a warm session costs no download."""

    name: str
    read: Callable[[], bytes]


@dataclass(frozen=True)
class Execution:
    """What one call produced. A cell that raised is not a failure of the call: its traceback is
    in the logs and `error` names the exception, so the model can fix its code."""

    outputs: tuple[Output, ...]
    # Files new or changed in /mnt/data during the call (inputs put before it are not).
    files_written: tuple[DataFile, ...] = ()
    error: str | None = None
    timed_out: bool = False
    interrupted: bool = False
    # The session was created for this call (first use, or the previous one was lost): the
    # variables of earlier calls are gone; the input files were put back.
    new_session: bool = False
    files_put: tuple[str, ...] = ()

    @property
    def logs(self) -> str:
        return "".join(o.text for o in self.outputs if isinstance(o, Logs))

    @property
    def images(self) -> list[bytes]:
        return [o.png for o in self.outputs if isinstance(o, Image)]


class Sandbox(ABC):
    """Sessions keyed by `session_key(...)`; every method may be called from any thread, and
    calls for one session run one at a time. A session that is gone is created again on use."""

    @abstractmethod
    def execute(
        self,
        session: str,
        code: str,
        *,
        files_in: Sequence[InputFile] = (),
        timeout: float | None = None,
    ) -> Execution:
        """Run `code` as one cell, after putting those of `files_in` the session lacks. `timeout`
        (seconds, the setting by default) interrupts the cell and says so in the logs."""

    @abstractmethod
    def put_file(self, session: str, name: str, data: bytes) -> None:
        """Write /mnt/data/<name>, replacing a file of that name."""

    @abstractmethod
    def list_files(self, session: str) -> list[DataFile]:
        """The regular files directly in /mnt/data, by name."""

    @abstractmethod
    def read_file(self, session: str, name: str) -> bytes:
        """The bytes of /mnt/data/<name>; FileNotFoundError when there is none."""

    @abstractmethod
    def interrupt(self, session: str) -> None:
        """Stop the cell running in the session, if any (cancel, expiry): its call returns
        with `interrupted`. Does nothing to a session that is idle or absent."""

    @abstractmethod
    def end(self, session: str) -> None:
        """End the session and delete its files (thread deleted); nothing if it is absent."""

    @property
    def unavailable(self) -> str | None:
        """Why this instance cannot run code (what to install or set), found at start; else None.
        Every call then raises SandboxUnavailable with it."""
        return None

    def reap_idle(self) -> int:
        """End the sessions idle past the setting; how many were ended. A timer may call it."""
        return 0

    @abstractmethod
    def close(self) -> None:
        """End every session this instance holds, and what it holds them with (the service stops)."""


def session_key(secret: bytes, thread_id: str) -> str:
    """The session of a thread: an HMAC of its id, so that knowing a thread id (which clients
    see) is not knowing its session (which, for dynamic sessions, is all it takes to reach one)."""
    return hmac.new(secret, thread_id.encode(), hashlib.sha256).hexdigest()[:48]


def check_file_name(name: str) -> str:
    if not _FILE_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"not a file name in /mnt/data: {name!r}")
    return name


def clip_logs(text: str) -> str:
    if len(text) <= MAX_LOGS_CHARS:
        return text
    half = MAX_LOGS_CHARS // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters of output cut ...]\n{text[-half:]}"


def merge_outputs(outputs: Sequence[Output]) -> tuple[Output, ...]:
    """Adjacent text as one `logs` output, images where they came, logs clipped."""
    merged: list[Output] = []
    for output in outputs:
        if isinstance(output, Logs) and merged and isinstance(merged[-1], Logs):
            merged[-1] = Logs(merged[-1].text + output.text)
        elif not (isinstance(output, Logs) and not output.text):
            merged.append(output)
    return tuple(Logs(clip_logs(o.text)) if isinstance(o, Logs) else o for o in merged)


def changed_files(before: Sequence[DataFile], after: Sequence[DataFile]) -> tuple[DataFile, ...]:
    earlier = {f.name: (f.size, f.modified) for f in before}
    return tuple(f for f in after if earlier.get(f.name) != (f.size, f.modified))


def open_sandbox(settings: SandboxSettings) -> Sandbox:
    """The sandbox the settings choose. A local sandbox that cannot run says so here, in the log,
    and each use then fails with the same message: never a silent unsandboxed fallback."""
    if settings.kind == "dynamic_sessions":
        from assistants_core.sandbox.dynamic_sessions import DynamicSessionsSandbox

        return DynamicSessionsSandbox(settings)
    from assistants_core.sandbox.local import LocalSandbox

    sandbox = LocalSandbox(settings)
    if sandbox.unavailable:
        log.warning("code_interpreter cannot run on this instance: %s", sandbox.unavailable)
    elif settings.unsafe_local:
        log.warning(
            "code_interpreter runs UNSANDBOXED (ASSISTANTS_SANDBOX_UNSAFE_LOCAL=1): the code it runs "
            "can read this service's settings and files and reach the network."
        )
    return sandbox
