"""The local sandbox, driven through the one interface: a real IPython kernel per session under
bubblewrap (make setup installs bwrap and builds .venv-sandbox). The security tests are in
test_sandbox_security.py."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistants_core.sandbox import (
    MAX_LOGS_CHARS,
    Execution,
    Image,
    InputFile,
    SandboxError,
    SandboxUnavailable,
    open_sandbox,
    session_key,
)
from assistants_core.sandbox.local import LocalSandbox
from assistants_core.settings import ConfigurationError, SandboxSettings

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    box = LocalSandbox(SandboxSettings(max_sessions=3, timeout_seconds=20))
    assert box.unavailable is None, box.unavailable
    yield box
    box.close()


def key(name: str) -> str:
    return session_key(b"test-secret", f"thread_{name}")


def test_a_cell_prints_and_state_is_kept_across_calls(sandbox: LocalSandbox) -> None:
    first = sandbox.execute(key("state"), "x = 6 * 7\nprint(x)")
    assert first.logs == "42\n" and first.error is None and first.new_session
    second = sandbox.execute(key("state"), "x + 1")  # an expression's value, as Jupyter shows it
    assert second.logs == "43\n" and not second.new_session
    assert not (second.timed_out or second.interrupted)


def test_a_failing_cell_is_logs_not_a_failure(sandbox: LocalSandbox) -> None:
    failed = sandbox.execute(key("fail"), "print('before')\n1 / 0")
    assert failed.error == "ZeroDivisionError"
    assert failed.logs.startswith("before\n")
    assert "ZeroDivisionError: division by zero" in failed.logs
    assert "\x1b[" not in failed.logs  # plain text, no terminal colours
    assert sandbox.execute(key("fail"), "print('after')").logs == "after\n"


def test_files_in_are_put_once_and_files_out_are_reported(sandbox: LocalSandbox) -> None:
    reads: list[str] = []

    def source(name: str, data: bytes) -> InputFile:
        def read() -> bytes:
            reads.append(name)
            return data

        return InputFile(name, read)

    inputs = [source("data.csv", b"a,b\n1,2\n3,4\n"), source("notes v2.txt", b"hello")]
    code = (
        "import pandas as pd\n"
        "df = pd.read_csv('/mnt/data/data.csv')\n"
        "print(df['b'].sum(), open('/mnt/data/notes v2.txt').read())\n"
        "df.to_excel('/mnt/data/out.xlsx')\n"
    )
    result = sandbox.execute(key("files"), code, files_in=inputs)
    assert result.error is None, result.logs
    assert result.logs == "6 hello\n"
    assert sorted(result.files_put) == ["data.csv", "notes v2.txt"]
    assert [f.path for f in result.files_written] == ["/mnt/data/out.xlsx"]
    again = sandbox.execute(key("files"), "print(len(df))", files_in=inputs)
    assert again.logs == "2\n" and again.files_put == () and again.files_written == ()
    assert sorted(reads) == ["data.csv", "notes v2.txt"]  # read once: the warm session had them
    assert sandbox.read_file(key("files"), "out.xlsx")[:2] == b"PK"  # openpyxl wrote a zip
    assert [f.name for f in sandbox.list_files(key("files"))] == ["data.csv", "notes v2.txt", "out.xlsx"]
    sandbox.put_file(key("files"), "data.csv", b"a,b\n5,6\n")
    assert sandbox.execute(key("files"), "print(open('data.csv').read())").logs == "a,b\n5,6\n\n"
    with pytest.raises(FileNotFoundError):
        sandbox.read_file(key("files"), "missing.txt")
    for bad in ("../escape", "a/b", "", ".", ".."):
        with pytest.raises(ValueError):
            sandbox.put_file(key("files"), bad, b"x")


def test_a_plot_is_a_png_image(sandbox: LocalSandbox) -> None:
    code = (
        "import matplotlib.pyplot as plt, numpy as np, scipy.stats\n"
        "plt.plot(np.arange(10), scipy.stats.norm.pdf(np.linspace(-3, 3, 10)))\n"
        "plt.title('pdf')\n"
        "plt.show()\n"
        "print('drawn')"
    )
    result = sandbox.execute(key("plot"), code)
    assert result.error is None, result.logs
    assert [type(o).__name__ for o in result.outputs] == ["Image", "Logs"]
    (image,) = result.images
    assert image.startswith(PNG) and len(image) > 1000
    assert "Fontconfig" not in result.logs
    shown = sandbox.execute(key("plot"), "plt.figure(); plt.bar([1, 2], [3, 4])")  # shown at cell end
    assert any(isinstance(o, Image) for o in shown.outputs)


def test_the_timeout_interrupts_the_cell_and_says_so(sandbox: LocalSandbox) -> None:
    sandbox.execute(key("slow"), "kept = 'yes'")
    started = time.monotonic()
    result = sandbox.execute(key("slow"), "import time\nprint('working')\ntime.sleep(30)", timeout=1)
    assert time.monotonic() - started < 10
    assert result.timed_out and not result.interrupted
    assert result.logs.startswith("working\n")
    assert "Execution timed out after 1 seconds and was interrupted." in result.logs
    assert sandbox.execute(key("slow"), "print(kept)").logs == "yes\n"  # the same kernel goes on


def test_interrupt_stops_a_running_cell(sandbox: LocalSandbox) -> None:
    sandbox.execute(key("loop"), "n = 0")
    timer = threading.Timer(1.0, sandbox.interrupt, args=(key("loop"),))
    timer.start()
    try:
        result = sandbox.execute(key("loop"), "while True:\n    n += 1")
    finally:
        timer.join()
    assert result.interrupted and not result.timed_out
    assert result.error == "KeyboardInterrupt"
    assert int(sandbox.execute(key("loop"), "print(n)").logs) > 0
    sandbox.interrupt(key("loop"))  # idle: nothing to stop, and the next call is not cut short
    assert sandbox.execute(key("loop"), "print('still')").logs == "still\n"


def test_end_forgets_variables_and_files(sandbox: LocalSandbox) -> None:
    sandbox.execute(key("end"), "gone = 1\nopen('/mnt/data/f.txt', 'w').write('x')")
    assert [f.name for f in sandbox.list_files(key("end"))] == ["f.txt"]
    sandbox.end(key("end"))
    sandbox.end(key("end"))  # twice: nothing
    assert sandbox.list_files(key("end")) == []
    after = sandbox.execute(key("end"), "print('gone' in globals())")
    assert after.new_session and after.logs == "False\n"


def test_the_least_recently_used_session_is_ended_beyond_the_limit() -> None:
    box = LocalSandbox(SandboxSettings(max_sessions=2))
    try:
        for name in ("a", "b"):
            box.execute(key(name), f"me = {name!r}")
        box.execute(key("a"), "pass")  # a is used again: b is now the least recent
        assert box.execute(key("c"), "me = 'c'").new_session
        assert box.live_sessions() == 2
        assert box.execute(key("a"), "print(me)").logs == "a\n"
        evicted = box.execute(key("b"), "print('me' in globals())")
        assert evicted.new_session and evicted.logs == "False\n"  # recreated, empty
        root = box._root
    finally:
        box.close()
    assert box.live_sessions() == 0
    assert root is not None and not root.exists()  # every session's files gone with it


def test_idle_sessions_end_after_the_setting() -> None:
    box = LocalSandbox(SandboxSettings(idle_seconds=1))
    try:
        box.execute(key("idle"), "x = 1")
        assert box.reap_idle() == 0
        time.sleep(1.5)
        assert box.reap_idle() == 1
        assert box.live_sessions() == 0
        assert box.execute(key("idle"), "print('x' in globals())").logs == "False\n"
    finally:
        box.close()


def test_a_dead_kernel_is_replaced_and_its_files_kept(sandbox: LocalSandbox) -> None:
    sandbox.execute(key("dies"), "open('/mnt/data/keep.txt', 'w').write('k')\nv = 1")
    died = sandbox.execute(key("dies"), "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert "the Python session ended" in died.logs
    again = sandbox.execute(key("dies"), "print(open('keep.txt').read(), 'v' in globals())")
    assert again.new_session and again.logs == "k False\n"


def test_links_the_code_plants_are_not_followed(sandbox: LocalSandbox, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only")
    sandbox.execute(
        key("links"),
        f"import os\nos.symlink({str(secret)!r}, '/mnt/data/link')\nos.mkfifo('/mnt/data/pipe')",
    )
    assert sandbox.list_files(key("links")) == []  # neither is a regular file
    for name in ("link", "pipe"):
        with pytest.raises(FileNotFoundError):
            sandbox.read_file(key("links"), name)
    sandbox.put_file(key("links"), "link", b"replaced")
    assert secret.read_text() == "host only"  # the link was replaced, not written through
    assert sandbox.read_file(key("links"), "link") == b"replaced"


def test_session_keys_are_secret_and_stable() -> None:
    assert session_key(b"s", "thread_1") == session_key(b"s", "thread_1")
    assert session_key(b"s", "thread_1") != session_key(b"s", "thread_2")
    assert session_key(b"s", "thread_1") != session_key(b"t", "thread_1")
    assert "thread" not in session_key(b"s", "thread_1") and len(session_key(b"s", "thread_1")) == 48


def test_without_bwrap_it_refuses_and_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap (nor anything else) on it
    (tmp_path / "prlimit").symlink_to("/usr/bin/prlimit")
    box = LocalSandbox(SandboxSettings())
    assert box.unavailable and "apt-get install bubblewrap" in box.unavailable
    with pytest.raises(SandboxUnavailable, match="bubblewrap is not installed"):
        box.execute(key("x"), "print(1)")
    with pytest.raises(SandboxUnavailable):
        box.list_files(key("x"))
    with caplog.at_level(logging.WARNING):
        opened = open_sandbox(SandboxSettings())  # at start: said in the log, and no fallback
    assert isinstance(opened, LocalSandbox) and opened.unavailable
    assert "code_interpreter cannot run on this instance: bubblewrap is not installed" in caplog.text
    missing = LocalSandbox(SandboxSettings(), env=tmp_path / "nothing")
    assert missing.unavailable and "make setup" in missing.unavailable
    assert issubclass(SandboxUnavailable, SandboxError)


def test_the_unsandboxed_kernel_runs_only_when_asked() -> None:
    box = LocalSandbox(SandboxSettings(unsafe_local=True))
    try:
        result = box.execute(key("unsafe"), "import os\nprint(os.getcwd().endswith('/data'))")
        assert result.logs == "True\n"
    finally:
        box.close()


def test_sandbox_settings() -> None:
    defaults = SandboxSettings.from_environ({}, (b"key",))
    assert (defaults.kind, defaults.timeout_seconds, defaults.idle_seconds) == ("local", 60, 3600)
    assert defaults.secret and defaults.secret != b"key" and not defaults.unsafe_local
    assert SandboxSettings.from_environ({}, (b"other",)).secret != defaults.secret
    pool = SandboxSettings.from_environ({"ASSISTANTS_SANDBOX_ENDPOINT": "https://x.dynamicsessions.io/p/"})
    assert (pool.kind, pool.endpoint) == ("dynamic_sessions", "https://x.dynamicsessions.io/p")
    chosen = SandboxSettings.from_environ(
        {
            "ASSISTANTS_SANDBOX": "local",
            "ASSISTANTS_SANDBOX_ENDPOINT": "https://x",
            "ASSISTANTS_SANDBOX_SECRET": "s",
        }
    )
    assert (chosen.kind, chosen.secret) == ("local", b"s")
    for bad in (
        {"ASSISTANTS_SANDBOX": "docker"},
        {"ASSISTANTS_SANDBOX": "dynamic_sessions"},
        {"ASSISTANTS_SANDBOX_TIMEOUT_SECONDS": "0"},
        {"ASSISTANTS_SANDBOX_TIMEOUT_SECONDS": "221"},
        {"ASSISTANTS_SANDBOX_MAX_SESSIONS": "x"},
        {"ASSISTANTS_SANDBOX_UNSAFE_LOCAL": "yes"},
    ):
        with pytest.raises(ConfigurationError):
            SandboxSettings.from_environ(bad)
    assert SandboxSettings.from_environ({"ASSISTANTS_SANDBOX_UNSAFE_LOCAL": "1"}).unsafe_local


def test_a_flood_of_output_is_cut_and_its_end_kept(sandbox: LocalSandbox) -> None:
    result = sandbox.execute(key("flood"), "for i in range(200_000):\n    print('line', i)\nprint('the end')")
    assert len(result.logs) < MAX_LOGS_CHARS + 200
    assert result.logs.startswith("line 0\nline 1\n") and result.logs.endswith("line 199999\nthe end\n")
    assert "characters of output cut" in result.logs
    code = (
        "import matplotlib.pyplot as plt\n"
        "for i in range(25):\n"
        "    plt.figure()\n    plt.plot([i])\n    plt.show()\n"
    )
    many = sandbox.execute(key("flood"), code)
    assert len(many.images) == 20 and "[5 more images not shown]" in many.logs


@pytest.mark.skipif(os.geteuid() != 0, reason="sessions get users of their own only when the service is root")
def test_a_python_the_sessions_users_cannot_run_is_refused(tmp_path: Path) -> None:
    env = tmp_path / "env"  # under pytest's directory for root, which no other user may enter
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(LocalSandbox(SandboxSettings()).python)
    refused = LocalSandbox(SandboxSettings(), env=env)
    assert refused.unavailable and "does not run in the sandbox" in refused.unavailable


def test_a_session_outlives_the_thread_that_started_it(sandbox: LocalSandbox) -> None:
    """A run's thread ends; the thread's session must not (bwrap's --die-with-parent fires when the
    thread that started a kernel ends, not its process)."""
    started = threading.Thread(target=sandbox.execute, args=(key("outlives"), "x = 41"))
    started.start()
    started.join()
    time.sleep(0.5)  # a kernel killed with its thread is gone by now
    after = sandbox.execute(key("outlives"), "print(x + 1)")
    assert (after.new_session, after.logs) == (False, "42\n")


def test_sessions_all_running_code_refuse_a_new_one_and_an_ended_one_is_not_reused() -> None:
    box = LocalSandbox(SandboxSettings(max_sessions=1))
    try:
        box.execute(key("busy"), "import time")
        results: dict[str, object] = {}

        def run(name: str, code: str) -> None:
            results[name] = box.execute(key("busy"), code)

        first = threading.Thread(target=run, args=("first", "time.sleep(3)"))
        first.start()
        time.sleep(0.5)
        with pytest.raises(SandboxError, match="running code"):
            box.execute(key("other"), "print(1)")  # the one live session is busy: not evicted
        waiting = threading.Thread(target=run, args=("waiting", "print('time' in globals())"))
        waiting.start()  # waits for the busy session...
        time.sleep(0.5)
        box.end(key("busy"))  # ...which ends meanwhile
        first.join()
        waiting.join()
        after = results["waiting"]
        assert isinstance(after, Execution)
        assert after.new_session and after.logs == "False\n"  # a fresh session, not the ended one
        assert box.live_sessions() == 1
    finally:
        box.close()
