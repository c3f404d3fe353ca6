"""code_interpreter: the model is offered one function taking Python source; the service runs it
in the thread's sandbox session (see sandbox/), where the run's files wait in /mnt/data, and gives
the model back what the cell printed. The step shows the code as the model writes it (decoded
from the function's JSON arguments as they stream) and each output as it comes; images the code
displays and files it writes become Files (`assistants_output`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import Any, Protocol

from ..beside import beside
from ..models.file import File
from ..models.run import StepToolCall
from ..models.tool_calls import (
    BuiltinToolCall,
    CodeInterpreterCallDelta,
    CodeInterpreterDelta,
    CodeInterpreterDetails,
    CodeInterpreterImage,
    CodeInterpreterImageDelta,
    CodeInterpreterLogs,
    CodeInterpreterLogsDelta,
    CodeInterpreterOutput,
    CodeInterpreterToolCall,
    ImageFileId,
    ModelTurn,
)
from ..sandbox import Execution, InputFile, Sandbox, SandboxError, session_key
from .shape import CallDelta, RunTools, ToolFailure

log = logging.getLogger("assistants.runs")

FUNCTION = "python"
MAX_INPUT_BYTES = 512 * 1024 * 1024  # a file put in /mnt/data
MAX_LOGS_FOR_MODEL = 20_000  # characters of a cell's output the model is given back
WAIT_SECONDS = 0.25  # how often a running cell's run is looked at (cancel, expiry, lease)
DESCRIPTION = (
    "Run Python code in a stateful Jupyter kernel (variables and files persist between calls in "
    "this conversation). Files are read from and written to /mnt/data; link a file you write as "
    "sandbox:/mnt/data/<name>. There is no internet access. Print what you need to see; "
    "matplotlib figures you show are displayed to the user."
)


class FileStore(Protocol):
    def filename(self, file_id: str) -> str | None: ...

    def read(self, file_id: str, limit: int) -> tuple[str, bytes] | None: ...

    def keep(self, filename: str, data: bytes) -> File: ...


class CodeInterpreter:
    kind = "code_interpreter"
    function = FUNCTION

    def __init__(self, sandbox: Callable[[], Sandbox], files: FileStore, secret: bytes) -> None:
        """`sandbox` opens the sandbox, on the first call that needs it."""
        self._open, self._files, self._secret = sandbox, files, secret
        self._opened: Sandbox | None = None

    @property
    def _sandbox(self) -> Sandbox:
        if self._opened is None:
            self._opened = self._open()
        return self._opened

    def end(self, thread_id: str) -> None:
        """The thread's session ended (its thread deleted), if this instance has a sandbox open."""
        if self._opened is not None:
            self._opened.end(session_key(self._secret, thread_id))

    def reap_idle(self) -> None:
        if self._opened is not None:
            self._opened.reap_idle()

    def offer(self, tools: RunTools) -> dict[str, Any] | None:
        names = [f"/mnt/data/{name} ({file_id})" for file_id, name in self._inputs(tools)]
        listed = f" Files already in /mnt/data: {', '.join(names)}." if names else ""
        parameters = {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python source of one cell."}},
            "required": ["code"],
        }
        return {
            "type": "function",
            "function": {"name": FUNCTION, "description": DESCRIPTION + listed, "parameters": parameters},
        }

    def header(self, index: int, call_id: str, name: str) -> CallDelta:
        return CodeInterpreterCallDelta(
            index=index, id=call_id, code_interpreter=CodeInterpreterDelta(input="", outputs=[])
        )

    def arguments(self, index: int, fragment: str, so_far: str) -> list[CallDelta]:
        before, now = code_of(so_far[: len(so_far) - len(fragment)]), code_of(so_far)
        added = now[len(before) :]
        if not added:
            return []
        return [CodeInterpreterCallDelta(index=index, code_interpreter=CodeInterpreterDelta(input=added))]

    def call(self, call_id: str, name: str, arguments: str | None) -> StepToolCall:
        if arguments is None:
            return CodeInterpreterToolCall(id=call_id)
        return CodeInterpreterToolCall(
            id=call_id,
            code_interpreter=CodeInterpreterDetails(input=code_of(arguments)),
            model_turn=ModelTurn(name=name, arguments=arguments, output=""),
        )

    def execute(
        self, tools: RunTools, call: BuiltinToolCall, index: int
    ) -> Iterator[CallDelta | BuiltinToolCall]:
        assert isinstance(call, CodeInterpreterToolCall) and call.model_turn is not None
        session = session_key(self._secret, tools.run.thread_id)
        inputs = [
            InputFile(name=name, read=partial(self._read, file_id)) for file_id, name in self._inputs(tools)
        ]
        code = call.code_interpreter.input
        running = beside(self._sandbox.execute, session, code, files_in=inputs)
        execution = self._wait(tools, session, running)
        outputs: list[CodeInterpreterOutput] = []
        if execution.logs:
            outputs.append(CodeInterpreterLogs(logs=execution.logs))
        for png in execution.images:
            image = self._files.keep("image.png", png)
            outputs.append(CodeInterpreterImage(image=ImageFileId(file_id=image.id)))
        files_written = [self._kept(session, f.name) for f in execution.files_written]
        for position, output in enumerate(outputs):
            shown = (
                CodeInterpreterLogsDelta(index=position, logs=output.logs)
                if isinstance(output, CodeInterpreterLogs)
                else CodeInterpreterImageDelta(index=position, image=output.image)
            )
            yield CodeInterpreterCallDelta(
                index=index, code_interpreter=CodeInterpreterDelta(outputs=[shown])
            )
        names = {f.filename.removeprefix("/mnt/data/"): f.id for f in files_written}
        turn = call.model_turn.model_copy(
            update={"output": _for_model(execution, files_written), "files": names}
        )
        details = CodeInterpreterDetails(input=code, outputs=outputs)
        yield CodeInterpreterToolCall(id=call.id, code_interpreter=details, model_turn=turn)

    def _wait(self, tools: RunTools, session: str, running: Future[Execution]) -> Execution:
        """The cell's execution, looking at the run meanwhile: a cancel or the deadline
        interrupts the cell (and is raised); a sandbox that fails fails the step."""
        while True:
            try:
                return running.result(timeout=WAIT_SECONDS)
            except FutureTimeout:
                pass
            except SandboxError as exc:
                raise ToolFailure(f"The code interpreter could not run the code: {exc}") from exc
            except Exception as exc:  # the sandbox broke: the run fails, its executor goes on
                log.exception("code_interpreter's sandbox failed")
                raise ToolFailure("The code interpreter failed while running the code.") from exc
            try:
                tools.check()
            except BaseException:
                self._sandbox.interrupt(session)
                deadline = time.monotonic() + 5
                while not running.done() and time.monotonic() < deadline:
                    time.sleep(0.05)
                raise

    def _inputs(self, tools: RunTools) -> list[tuple[str, str]]:
        """(file id, name in /mnt/data) of the run's files: the assistant's, the thread's, then
        those attached to the messages for code_interpreter."""
        given: list[str] = []
        for resources in (tools.run.tool_resources, tools.thread_resources):
            if resources is not None and resources.code_interpreter is not None:
                given += resources.code_interpreter.file_ids
        given += [  # oldest first, as the model reads them
            a.file_id for a in reversed(tools.attachments) if any(t.type == self.kind for t in a.tools)
        ]
        names: set[str] = set()
        inputs = []
        for file_id in dict.fromkeys(given):  # each file once, where it first stands
            name = self._files.filename(file_id)
            if name is None:  # deleted since: the run goes on without it
                continue
            name = name.rsplit("/", 1)[-1]
            if name in names:  # two files of one name: the later one keeps its id too
                name = f"{file_id}-{name}"
            names.add(name)
            inputs.append((file_id, name))
        return inputs

    def _read(self, file_id: str) -> bytes:
        found = self._files.read(file_id, MAX_INPUT_BYTES)
        if found is None:
            raise ToolFailure(f"The file {file_id} is gone.")
        return found[1]

    def _kept(self, session: str, name: str) -> File:
        return self._files.keep(f"/mnt/data/{name}", self._sandbox.read_file(session, name))


def written(calls: Iterable[StepToolCall]) -> dict[str, str]:
    """The files the run's code wrote to /mnt/data: name -> file id (the latest for a name)."""
    found: dict[str, str] = {}
    for call in calls:
        if isinstance(call, CodeInterpreterToolCall) and call.model_turn is not None:
            found.update(call.model_turn.files)
    return found


def code_of(arguments: str) -> str:
    """The Python source in the function's arguments, as far as they have come: the decoded
    prefix of the `code` string of `{"code": "..."}` (an escape split across fragments waits for
    its end); arguments that are not a JSON object are taken as the source itself."""
    text = arguments.lstrip()
    if not text.startswith("{"):
        return arguments
    key = text.find('"code"')
    start = text.find('"', text.find(":", key + 6) + 1) if key != -1 else -1
    if start == -1:
        return ""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == '"':
            break
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= len(text):
            break
        escape = text[i + 1]
        if escape == "u":
            if i + 6 > len(text):
                break
            unit = int(text[i + 2 : i + 6], 16)
            if 0xD800 <= unit < 0xDC00:  # a surrogate pair: both halves or nothing
                if i + 12 > len(text):
                    break
                low = int(text[i + 8 : i + 12], 16)
                out.append(chr(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)))
                i += 12
                continue
            out.append(chr(unit))
            i += 6
            continue
        out.append(json.loads(f'"\\{escape}"'))
        i += 2
    return "".join(out)


def _for_model(execution: Execution, written: list[File]) -> str:
    parts = []
    logs = execution.logs
    if len(logs) > MAX_LOGS_FOR_MODEL:
        half = MAX_LOGS_FOR_MODEL // 2
        left_out = len(logs) - MAX_LOGS_FOR_MODEL
        logs = f"{logs[:half]}\n... ({left_out} characters left out) ...\n{logs[-half:]}"
    parts.append(logs or "(no output)")
    if execution.images:
        parts.append(f"[{len(execution.images)} image(s) displayed to the user]")
    if written:
        parts.append("Files written: " + ", ".join(f"sandbox:{f.filename}" for f in written))
    if execution.timed_out:
        parts.append("[the cell was interrupted: it ran past the time limit]")
    if execution.new_session:
        parts.append("[a new session: variables from earlier calls are gone; the files were put back]")
    return "\n".join(parts)
