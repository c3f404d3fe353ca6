"""The local sandbox: one IPython kernel per session, from the venv `make setup` builds
(.venv-sandbox), run under bubblewrap with its own namespaces (no network at all, not even the
host's loopback), a read-only system, its session directory as the only writable /mnt/data, and
rlimits; reached over IPC sockets in a directory both sides see. Only this module knows it."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from assistants_core.sandbox import (
    MAX_LOGS_CHARS,
    DataFile,
    Execution,
    Image,
    InputFile,
    Logs,
    Output,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    changed_files,
    check_file_name,
    merge_outputs,
)
from assistants_core.settings import SANDBOX_UNSAFE_LOCAL, SandboxSettings

if TYPE_CHECKING:
    from jupyter_client.blocking.client import BlockingKernelClient

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ENV = ROOT / ".venv-sandbox"
# Inside the sandbox: where the kernel's sockets and connection file are.
KERNEL_DIR = "/run/kernel"
DATA_DIR = "/mnt/data"
ENV_DIR = "/opt/env"  # the venv, bound here so that the host's paths stay unseen
# After an interrupt, how long a cell has to stop before its kernel is killed (C code ignores SIGINT).
INTERRUPT_GRACE_SECONDS = 5.0
READY_SECONDS = 30.0
MAX_FILE_BYTES = 512 * 1024 * 1024  # the Files API's limit; bigger outputs are refused
# Run as root, each session gets a host user of its own (from this range, per instance): the
# process limit counts per user, and root's processes escape it even in a user namespace.
_UID_BASE = 0x60000000
_UIDS_PER_INSTANCE = 100_000
MAX_IMAGES = 20  # per cell
TMP_BYTES = 256 * 1024 * 1024
SHM_BYTES = 64 * 1024 * 1024
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(eq=False)
class _Session:
    key: str
    directory: Path
    uid: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    interrupt: threading.Event = field(default_factory=threading.Event)
    process: subprocess.Popen[bytes] | None = None
    client: BlockingKernelClient | None = None
    last_used: float = field(default_factory=time.monotonic)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Kill the kernel and everything it started (its pid namespace dies with bwrap)."""
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None


class LocalSandbox(Sandbox):
    def __init__(self, settings: SandboxSettings, *, env: Path = DEFAULT_ENV) -> None:
        self.settings = settings
        self.python = env / "bin" / "python"
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}  # least recently used first
        self._root: Path | None = None
        self._created = 0
        self._as_root = os.geteuid() == 0 and not settings.unsafe_local
        # bwrap's --die-with-parent is the kernel's PR_SET_PDEATHSIG, which fires when the *thread*
        # that started it ends, not the process: a kernel started on a run's thread would be killed
        # when that thread ended. Every kernel is started from this one long-lived thread.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawn")
        self._unavailable = self._probe()

    # The interface.

    @property
    def unavailable(self) -> str | None:
        return self._unavailable

    def execute(
        self,
        session: str,
        code: str,
        *,
        files_in: Sequence[InputFile] = (),
        timeout: float | None = None,
    ) -> Execution:
        entry, new = self._acquire(session)
        try:
            put = []
            for file in files_in:
                if not (entry.data / check_file_name(file.name)).exists():
                    self._write(entry, file.name, file.read())
                    put.append(file.name)
            before = self._listing(entry)
            outputs, error, timed_out, interrupted, lost = self._run(
                entry, code, timeout or self.settings.timeout_seconds
            )
            if lost:
                entry.stop()
            return Execution(
                outputs=merge_outputs(outputs),
                files_written=changed_files(before, self._listing(entry)),
                error=error,
                timed_out=timed_out,
                interrupted=interrupted,
                new_session=new,
                files_put=tuple(put),
            )
        finally:
            self._release(entry)

    def put_file(self, session: str, name: str, data: bytes) -> None:
        check_file_name(name)
        entry, _ = self._acquire(session, start=False)
        try:
            self._write(entry, name, data)
        finally:
            self._release(entry)

    def list_files(self, session: str) -> list[DataFile]:
        entry, _ = self._acquire(session, start=False)
        try:
            return self._listing(entry)
        finally:
            self._release(entry)

    def read_file(self, session: str, name: str) -> bytes:
        check_file_name(name)
        entry, _ = self._acquire(session, start=False)
        try:
            return _read_regular(entry.data / name)
        finally:
            self._release(entry)

    def interrupt(self, session: str) -> None:
        with self._lock:
            entry = self._sessions.get(session)
        if entry is not None and entry.lock.locked():
            entry.interrupt.set()

    def end(self, session: str) -> None:
        with self._lock:
            entry = self._sessions.pop(session, None)
        if entry is not None:
            entry.interrupt.set()
            with entry.lock:
                self._discard(entry)

    def reap_idle(self) -> int:
        deadline = time.monotonic() - self.settings.idle_seconds
        with self._lock:
            idle = [s for s in self._sessions.values() if s.last_used < deadline and s.lock.acquire(False)]
            for entry in idle:
                del self._sessions[entry.key]
        for entry in idle:
            self._discard(entry)
            entry.lock.release()
        return len(idle)

    def close(self) -> None:
        with self._lock:
            entries = list(self._sessions.values())
            self._sessions.clear()
        for entry in entries:
            entry.interrupt.set()
            with entry.lock:
                self._discard(entry)
        if self._root is not None:
            _remove(self._root)
            self._root = None
        self._spawner.shutdown(wait=False)

    def live_sessions(self) -> int:
        with self._lock:
            return sum(1 for s in self._sessions.values() if s.alive())

    # Sessions: at most max_sessions live kernels, the least recently used one ended for a new one.

    def _acquire(self, key: str, *, start: bool = True) -> tuple[_Session, bool]:
        """The session, locked, its kernel running when `start` (and whether it was started)."""
        if self._unavailable:
            raise SandboxUnavailable(self._unavailable)
        self.reap_idle()
        while True:
            with self._lock:
                entry = self._sessions.pop(key, None) or self._new_session(key)
                self._sessions[key] = entry  # now the most recently used
                evicted = self._evict(keep=entry) if start and not entry.alive() else []
            for victim in evicted:
                self._discard(victim)
                victim.lock.release()
            entry.lock.acquire()
            with self._lock:
                current = self._sessions.get(key) is entry
            if current:
                break
            entry.lock.release()  # ended while we waited for it: take the one there is now
        entry.interrupt.clear()
        if not start or entry.alive():
            return entry, False
        try:
            if entry.process is not None:  # died (a limit, a crash): a fresh kernel, the files kept
                entry.stop()
            self._start(entry)
        except BaseException:
            entry.stop()
            entry.lock.release()
            raise
        return entry, True

    def _new_session(self, key: str) -> _Session:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="assistants-sandbox-"))
            self._root.chmod(0o711)  # sessions' users may pass, never list
        directory = Path(tempfile.mkdtemp(dir=self._root))
        uid = None
        if self._as_root:
            self._created += 1
            uid = _instance_uid_base() + self._created % _UIDS_PER_INSTANCE
        for path in (directory, directory / "data", directory / "conn"):
            path.mkdir(exist_ok=True)
            if uid is not None:
                os.chown(path, uid, uid)
        return _Session(key, directory, uid)

    def _evict(self, keep: _Session) -> list[_Session]:
        """Lock and unlist the least recently used live sessions beyond the limit, or none."""
        live = [s for s in self._sessions.values() if s is not keep and s.alive()]
        excess = len(live) - self.settings.max_sessions + 1
        evicted: list[_Session] = []
        for candidate in live:
            if len(evicted) >= excess:
                break
            if candidate.lock.acquire(False):  # never one running code
                evicted.append(candidate)
        if len(evicted) < excess:
            for victim in evicted:
                victim.lock.release()
            raise SandboxError(
                f"all {self.settings.max_sessions} code_interpreter sessions of this instance are "
                "running code: try again when one is done (ASSISTANTS_SANDBOX_MAX_SESSIONS)."
            )
        for victim in evicted:
            del self._sessions[victim.key]
        return evicted

    def _release(self, entry: _Session) -> None:
        entry.last_used = time.monotonic()
        entry.interrupt.clear()
        entry.lock.release()

    def _discard(self, entry: _Session) -> None:
        entry.stop()
        _remove(entry.directory)

    # The kernel.

    def _start(self, entry: _Session) -> None:
        from jupyter_client.blocking.client import BlockingKernelClient

        conn = entry.directory / "conn"
        inside = KERNEL_DIR if not self.settings.unsafe_local else str(conn)
        info: dict[str, Any] = {
            "transport": "ipc",
            "shell_port": 1,
            "iopub_port": 2,
            "stdin_port": 3,
            "control_port": 4,
            "hb_port": 5,
            "key": secrets.token_hex(32),
            "signature_scheme": "hmac-sha256",
            "kernel_name": "",
        }
        for leftover in conn.iterdir():
            leftover.unlink()
        (conn / "kernel.json").write_text(json.dumps({**info, "ip": f"{inside}/k"}))
        log = (entry.directory / "kernel.log").open("wb")
        try:
            entry.process = self._spawner.submit(
                subprocess.Popen,
                self._command(entry),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=entry.data,
                env=self._environment(entry),
                start_new_session=True,  # its own process group, killed whole
            ).result()
        finally:
            log.close()
        client = BlockingKernelClient()
        client.load_connection_info(cast("Any", {**info, "ip": str(conn / "k")}))
        client.start_channels()
        entry.client = client
        deadline = time.monotonic() + READY_SECONDS
        while True:
            # Ready when a request is answered on the shell *and* its status arrives on IOPub:
            # before the IOPub subscription is through, a cell's output would be lost.
            # (wait_for_ready would also wait out its timeout for a kernel that died at once.)
            client.kernel_info()
            replied = published = False
            with contextlib.suppress(queue.Empty):
                replied = client.get_shell_msg(timeout=0.25)["msg_type"] == "kernel_info_reply"
                published = client.get_iopub_msg(timeout=0.25) is not None
            if replied and published:
                break
            if not entry.alive() or time.monotonic() > deadline:
                detail = (entry.directory / "kernel.log").read_text(errors="replace")[-2000:].strip()
                raise SandboxError(f"the Python sandbox did not start: {detail or 'no output'}")
        _drain(client)

    def _command(self, entry: _Session) -> list[str]:
        limits = [
            "prlimit",
            f"--as={self.settings.memory_mb * 1024 * 1024}",
            f"--nproc={self.settings.processes}",
            f"--cpu={self.settings.cpu_seconds}",
            f"--fsize={MAX_FILE_BYTES * 2}",
            "--core=0",
            "--",
        ]
        user = []
        if entry.uid is not None:
            user = ["setpriv", f"--reuid={entry.uid}", f"--regid={entry.uid}", "--clear-groups", "--"]
        kernel = [
            str(self.python) if self.settings.unsafe_local else f"{ENV_DIR}/bin/python",
            "-m",
            "ipykernel_launcher",
            "-f",
            f"{KERNEL_DIR if not self.settings.unsafe_local else entry.directory / 'conn'}/kernel.json",
            "--InteractiveShell.colors=nocolor",
            "--HistoryManager.enabled=False",
            "--IPKernelApp.quiet=True",
        ]
        if self.settings.unsafe_local:
            return limits + kernel
        return user + limits + self._bwrap(entry) + kernel

    def _system(self) -> list[str]:
        """The read-only part of the sandbox: /usr (and the merged-/usr links), a few files of
        /etc, the venv and the Python it was made from; nothing else of the host's files."""
        argv = ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/lib", "/lib64", "/lib32", "/sbin"):
            if os.path.islink(top):
                argv += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                argv += ["--ro-bind", top, top]
        for shared in ("/etc/alternatives", "/etc/fonts", "/etc/ld.so.cache", "/etc/localtime"):
            if os.path.exists(shared):
                argv += ["--ro-bind", shared, shared]
        # bwrap opens it as the session's user: every directory above it must let others pass.
        argv += ["--ro-bind", str(self.python.parent.parent), ENV_DIR]
        base = _base_prefix(self.python)
        if not base.startswith("/usr/"):
            argv += ["--ro-bind", base, base]
        return argv

    def _bwrap(self, entry: _Session) -> list[str]:
        argv = [
            "bwrap",
            "--unshare-all",  # network, pid, ipc, uts, cgroup: a network namespace with no route
            "--unshare-user",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--hostname",
            "sandbox",
            "--die-with-parent",
            "--new-session",  # no TIOCSTI into a terminal
            "--cap-drop",
            "ALL",
            *self._system(),
        ]
        argv += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            # tmpfs is memory the address-space limit does not see: each one sized, /dev read-only.
            "--size",
            str(SHM_BYTES),
            "--tmpfs",
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--size",
            str(TMP_BYTES),
            "--tmpfs",
            "/tmp",
            "--bind",
            str(entry.directory / "conn"),
            KERNEL_DIR,
            "--bind",
            str(entry.data),
            DATA_DIR,
            "--chdir",
            DATA_DIR,
            "--clearenv",
        ]
        for name, value in self._environment(entry).items():
            argv += ["--setenv", name, value]
        return argv

    def _environment(self, entry: _Session) -> dict[str, str]:
        home = "/tmp" if not self.settings.unsafe_local else str(entry.directory)
        bin_dir = f"{ENV_DIR}/bin" if not self.settings.unsafe_local else str(self.python.parent)
        return {
            "HOME": home,
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "MPLCONFIGDIR": f"{home}/.matplotlib",
            "PYTHONDONTWRITEBYTECODE": "1",
            # One thread per numerical library: threads count against the process limit.
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }

    def _run(
        self, entry: _Session, code: str, timeout: float
    ) -> tuple[list[Output], str | None, bool, bool, bool]:
        client = entry.client
        assert client is not None
        msg_id = client.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        outputs = _Outputs()
        error: str | None = None
        timed_out = interrupted = lost = False
        deadline = time.monotonic() + timeout
        interrupted_at: float | None = None
        while True:
            now = time.monotonic()
            if interrupted_at is None and (entry.interrupt.is_set() or now >= deadline):
                timed_out = not entry.interrupt.is_set()
                interrupted = not timed_out
                interrupted_at = now
                client.control_channel.send(client.session.msg("interrupt_request", {}))
            if interrupted_at is not None and now - interrupted_at > INTERRUPT_GRACE_SECONDS:
                outputs.add(Logs("\n[the cell did not stop when interrupted: the session was restarted]\n"))
                lost = True
                break
            if not entry.alive():
                outputs.add(
                    Logs(
                        "\n[the Python session ended (a memory, process or CPU-time limit, or a crash): "
                        "its variables are lost, its files in /mnt/data are kept]\n"
                    )
                )
                lost = True
                break
            try:
                message = client.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                outputs.text(content["text"])
            elif kind in ("display_data", "execute_result"):
                outputs.add(_rich(content["data"]))
            elif kind == "error":
                outputs.text(_ANSI.sub("", "\n".join(content["traceback"])) + "\n")
                error = content["ename"]
            elif kind == "status" and content["execution_state"] == "idle":
                break
        if timed_out:
            outputs.add(Logs(f"\nExecution timed out after {timeout:g} seconds and was interrupted.\n"))
        _drain(client)
        return outputs.done(), error, timed_out, interrupted, lost

    # Files: the session directory is writable by the code, so nothing here follows a link it made.

    def _write(self, entry: _Session, name: str, data: bytes) -> None:
        fd, temporary = tempfile.mkstemp(dir=entry.data, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(temporary, 0o644)
            if entry.uid is not None:  # the code may change or remove what it was given
                os.chown(temporary, entry.uid, entry.uid)
            os.replace(temporary, entry.data / name)  # replaces a link itself, never its target
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def _listing(self, entry: _Session) -> list[DataFile]:
        files = []
        with os.scandir(entry.data) as found:
            for item in found:
                if item.name.startswith(".put-") or not item.is_file(follow_symlinks=False):
                    continue
                info = item.stat(follow_symlinks=False)
                files.append(DataFile(item.name, info.st_size, info.st_mtime))
        return sorted(files, key=lambda f: f.name)

    # Can this instance sandbox at all? Asked once, at start.

    def _probe(self) -> str | None:
        if not self.python.exists():
            return (
                f"the sandbox's Python environment is missing ({self.python.parent.parent}): "
                "run `make setup`, which builds it from requirements-sandbox.txt"
            )
        if shutil.which("prlimit") is None:
            return "prlimit is not installed: install util-linux"
        if self.settings.unsafe_local:
            return None
        if shutil.which("bwrap") is None:
            return (
                "bubblewrap is not installed: install it (Debian and Ubuntu: `apt-get install bubblewrap`; "
                "`make setup` does where it can), or use Azure Container Apps dynamic sessions "
                "(ASSISTANTS_SANDBOX_ENDPOINT). "
                f"{SANDBOX_UNSAFE_LOCAL}=1 runs code without any sandbox, for trusted use only."
            )
        user = []
        if self._as_root:
            if shutil.which("setpriv") is None:
                return "setpriv is not installed: install util-linux"
            user = [
                "setpriv",
                f"--reuid={_instance_uid_base()}",
                f"--regid={_instance_uid_base()}",
                "--clear-groups",
            ]
        probe = subprocess.run(
            [
                *user,
                "bwrap",
                "--unshare-all",
                "--unshare-user",
                "--die-with-parent",
                "--ro-bind",
                "/",
                "/",
                "true",
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if probe.returncode != 0:
            reason = probe.stderr.decode(errors="replace").strip()
            return (
                f"bubblewrap cannot create its namespaces here ({reason}): it needs unprivileged user "
                "namespaces (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0; "
                "in a container, one allowed to create them), or root"
            )
        runs = subprocess.run(
            [
                *user,
                "bwrap",
                "--unshare-all",
                "--unshare-user",
                "--die-with-parent",
                *self._system(),
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                f"{ENV_DIR}/bin/python",
                "-c",
                "import ipykernel",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if runs.returncode != 0:
            reason = runs.stderr.decode(errors="replace").strip()[-300:]
            return (
                f"the sandbox's Python ({self.python}) does not run in the sandbox ({reason}): it must be "
                "a venv of a system-wide Python 3.11 (not one under /root, such as pyenv's), in a "
                "directory the sessions' unprivileged users can reach "
                "(rm -r .venv-sandbox; make setup SANDBOX_PYTHON=...)"
            )
        return None


class _Outputs:
    """What a cell shows, bounded as it arrives (a print loop must not fill the service's memory):
    text past half the logs limit keeps only its tail, images past MAX_IMAGES are only counted."""

    def __init__(self) -> None:
        self.items: list[Output] = []
        self.chars = self.cut = self.images = self.unshown = 0
        self.tail = ""

    def text(self, text: str) -> None:
        half = MAX_LOGS_CHARS // 2
        if self.chars < half:
            self.items.append(Logs(text))
            self.chars += len(text)
            return
        self.tail += text
        if len(self.tail) > half:
            self.cut += len(self.tail) - half
            self.tail = self.tail[-half:]

    def add(self, output: Output) -> None:
        if isinstance(output, Logs):
            self.text(output.text)
        elif self.images < MAX_IMAGES:
            self.items.append(output)
            self.images += 1
        else:
            self.unshown += 1

    def done(self) -> list[Output]:
        items = list(self.items)
        if self.cut:
            items.append(Logs(f"\n[... {self.cut} characters of output cut ...]\n"))
        items.append(Logs(self.tail))
        if self.unshown:
            items.append(Logs(f"\n[{self.unshown} more images not shown]\n"))
        return items


def _rich(data: dict[str, Any]) -> Output:
    png = data.get("image/png")
    if isinstance(png, str):
        with contextlib.suppress(binascii.Error, ValueError):
            return Image(base64.b64decode(png))
    return Logs(str(data.get("text/plain", "")) + "\n")


def _drain(client: BlockingKernelClient) -> None:
    """Replies nobody waits for (execute_reply, stray messages) would pile up in the client."""
    for get in (client.get_shell_msg, client.get_iopub_msg, client.get_control_msg):
        with contextlib.suppress(queue.Empty):
            while True:
                get(timeout=0)


def _read_regular(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO must not hang us
    except OSError as error:
        raise FileNotFoundError(f"no file {path.name} in /mnt/data") from error
    with os.fdopen(fd, "rb") as opened:
        info = os.fstat(opened.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise FileNotFoundError(f"no file {path.name} in /mnt/data")
        if info.st_size > MAX_FILE_BYTES:
            raise SandboxError(f"/mnt/data/{path.name} is larger than {MAX_FILE_BYTES} bytes")
        return opened.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]


def _remove(path: Path) -> None:
    """Delete a session's tree. Its processes die with bwrap but not at once, and one still
    closing its sockets can race a removal: try again shortly."""
    for _ in range(20):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.05)


def _instance_uid_base() -> int:
    return _UID_BASE + (os.getpid() % 4096) * _UIDS_PER_INSTANCE


def _base_prefix(python: Path) -> str:
    """The installation a venv was made from (its `home`), which its interpreter needs to run."""
    config = python.parent.parent / "pyvenv.cfg"
    if config.exists():
        for line in config.read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "home":
                return str(Path(value.strip()).resolve().parent)
    return sys.base_prefix
