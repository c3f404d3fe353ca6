"""What the code in the local sandbox cannot do. Written with the limits in place, and each one
bounded on its own (a fork loop with a cap, an allocation that stops itself), so that a missing
limit fails the test rather than the machine."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator

import pytest

from assistants_core.sandbox import session_key
from assistants_core.sandbox.local import ROOT, LocalSandbox
from assistants_core.settings import SandboxSettings

MEMORY_MB = 1024
PROCESSES = 64


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    box = LocalSandbox(SandboxSettings(memory_mb=MEMORY_MB, processes=PROCESSES, timeout_seconds=60))
    assert box.unavailable is None, box.unavailable
    yield box
    box.close()


def key(name: str) -> str:
    return session_key(b"security", f"thread_{name}")


class Listener:
    """A TCP port (and an abstract unix socket) of the test's own, counting who gets through."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.abstract_name = f"assistants-test-{secrets.token_hex(4)}"
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + self.abstract_name)
        self.unix.listen()
        self.accepted = 0
        self._threads = [
            threading.Thread(target=self._accept, args=(s,), daemon=True) for s in (self.tcp, self.unix)
        ]
        for thread in self._threads:
            thread.start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        for server in (self.tcp, self.unix):
            server.shutdown(socket.SHUT_RDWR)
            server.close()
        for thread in self._threads:
            thread.join(timeout=5)


def test_no_socket_reaches_anything(sandbox: LocalSandbox) -> None:
    listener = Listener()
    try:
        # Reachable from the host: the check below would notice a sandbox that could.
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5):
            pass
        code = (
            "import socket\n"
            "def attempt(family, address):\n"
            "    s = socket.socket(family, socket.SOCK_STREAM)\n"
            "    s.settimeout(3)\n"
            "    try:\n"
            "        s.connect(address)\n"
            "        return 'CONNECTED'\n"
            "    except OSError as e:\n"
            "        return type(e).__name__\n"
            "    finally:\n"
            "        s.close()\n"
            f"print(attempt(socket.AF_INET, ('127.0.0.1', {listener.port})))\n"
            f"print(attempt(socket.AF_UNIX, '\\0{listener.abstract_name}'))\n"
            "print(attempt(socket.AF_INET, ('1.1.1.1', 443)))\n"
            "print(attempt(socket.AF_INET, ('10.0.0.1', 10000)))\n"
            "try:\n"
            "    socket.getaddrinfo('pypi.org', 443)\n"
            "    print('RESOLVED')\n"
            "except OSError as e:\n"
            "    print('no dns')\n"
            "print([line.split(':')[0].strip() for line in open('/proc/net/dev').readlines()[2:]])\n"
        )
        result = sandbox.execute(key("net"), code)
        lines = result.logs.splitlines()
        assert result.error is None, result.logs
        assert "CONNECTED" not in result.logs and "RESOLVED" not in result.logs
        assert lines[:2] == ["ConnectionRefusedError", "ConnectionRefusedError"]  # its own loopback
        assert lines[2:4] == ["OSError", "OSError"]  # Network is unreachable
        assert lines[4] == "no dns"
        assert lines[5] == "['lo']"
        assert listener.accepted == 1  # only the host's own connection above
    finally:
        listener.close()


def test_the_services_environment_and_files_are_out_of_sight(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"marker-{secrets.token_hex(8)}"
    monkeypatch.setenv("ASSISTANTS_TEST_SECRET", marker)
    code = (
        "import os, glob\n"
        f"marker = {marker!r}\n"
        "print(marker in str(os.environ))\n"
        "seen = False\n"
        "for path in glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline'):\n"
        "    try:\n"
        "        seen = seen or marker.encode() in open(path, 'rb').read()\n"
        "    except OSError:\n"
        "        pass\n"
        "print(seen)\n"
        f"print([p for p in ({str(ROOT)!r}, {str(ROOT / 'local.settings.sample.json')!r}, '/work', '/home', "
        "'/etc/passwd', '/etc/shadow', '/var') if os.path.exists(p)])\n"
        "print(os.getuid(), len([p for p in os.listdir('/proc') if p.isdigit()]) < 10)\n"
        "try:\n"
        "    open('/usr/lib/os-release-copy', 'w')\n"
        "except OSError as e:\n"
        "    print(e.strerror)\n"
    )
    result = sandbox.execute(key("env"), code)
    assert result.error is None, result.logs
    assert result.logs.splitlines() == ["False", "False", "[]", "65534 True", "Read-only file system"]


def test_another_sessions_files_are_out_of_sight(sandbox: LocalSandbox) -> None:
    name = f"only-{secrets.token_hex(6)}.txt"
    sandbox.execute(key("owner"), f"open('/mnt/data/{name}', 'w').write('mine')")
    code = (
        "import os\n"
        "found = []\n"
        "for top, dirs, files in os.walk('/'):\n"
        "    if top in ('/proc', '/sys', '/usr', '/opt'):\n"
        "        dirs[:] = []\n"
        f"    found += [os.path.join(top, f) for f in files if f == {name!r}]\n"
        "print(found, os.listdir('/mnt/data'))\n"
    )
    result = sandbox.execute(key("other"), code)
    assert result.logs == "[] []\n", result.logs
    assert [f.name for f in sandbox.list_files(key("owner"))] == [name]


def test_a_fork_bomb_is_contained_and_the_kernel_answers(sandbox: LocalSandbox) -> None:
    cap = 4 * PROCESSES  # a missing limit stops here, not at the machine's
    code = (
        "import os, time\n"
        "children, refused = [], None\n"
        f"for _ in range({cap}):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as e:\n"
        "        refused = type(e).__name__\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(2)\n"
        "        os._exit(0)\n"
        "    children.append(pid)\n"
        "for pid in children:\n"
        "    os.waitpid(pid, 0)\n"
        "print(len(children), refused)\n"
    )
    result = sandbox.execute(key("fork"), code)
    forked, refused = result.logs.split()
    assert refused == "BlockingIOError", result.logs  # EAGAIN: the process limit
    assert int(forked) < PROCESSES
    assert sandbox.execute(key("fork"), "print(1 + 1)").logs == "2\n"


def test_a_10_gb_allocation_is_contained_and_the_kernel_answers(sandbox: LocalSandbox) -> None:
    code = (
        "chunks, total, stopped = [], 0, None\n"
        "while total < 10 * 2**30:\n"  # stops itself at 10 GiB
        "    try:\n"
        "        chunks.append(b'\\x01' * 2**28)\n"  # touched: 256 MiB really in use
        "    except MemoryError:\n"
        "        stopped = 'MemoryError'\n"
        "        break\n"
        "    total += 2**28\n"
        "del chunks\n"
        "print(total // 2**20, stopped)\n"
    )
    result = sandbox.execute(key("memory"), code)
    reached, stopped = result.logs.split()
    assert stopped == "MemoryError", result.logs
    assert int(reached) < MEMORY_MB
    assert sandbox.execute(key("memory"), "print(2 + 2)").logs == "4\n"
    big = sandbox.execute(key("memory"), "import numpy as np\nnp.ones(10 * 2**30 // 8)")
    assert big.error in ("MemoryError", "_ArrayMemoryError"), big.logs
    assert sandbox.execute(key("memory"), "print('alive')").logs == "alive\n"


def test_cpu_time_is_limited() -> None:
    box = LocalSandbox(SandboxSettings(cpu_seconds=2, timeout_seconds=30))
    try:
        result = box.execute(key("cpu"), "while True:\n    pass")  # stopped by the limit, not the timeout
        assert not result.timed_out
        assert "the Python session ended" in result.logs
        fresh = box.execute(key("cpu"), "print('fresh')")
        assert fresh.new_session and fresh.logs == "fresh\n"
    finally:
        box.close()


def test_memory_backed_filesystems_are_bounded(sandbox: LocalSandbox) -> None:
    code = (
        "import os\n"
        "def fill(path):\n"
        "    written = 0\n"
        "    try:\n"
        "        with open(path, 'wb') as out:\n"
        "            while written < 2**30:\n"  # stops itself at 1 GiB
        "                out.write(b'\\0' * 2**20)\n"
        "                out.flush()\n"
        "                written += 2**20\n"
        "    except OSError as e:\n"
        "        return f'{written // 2**20} {e.strerror}'\n"
        "    finally:\n"
        "        if os.path.exists(path):\n"
        "            os.remove(path)\n"
        "    return f'{written // 2**20} filled'\n"
        "print(fill('/tmp/big'))\n"
        "print(fill('/dev/shm/big'))\n"
        "print(fill('/dev/big'))\n"
    )
    result = sandbox.execute(key("tmpfs"), code)
    tmp, shm, dev = result.logs.splitlines()
    assert tmp.endswith("No space left on device") and int(tmp.split()[0]) <= 256, tmp
    assert shm.endswith("No space left on device") and int(shm.split()[0]) <= 64, shm
    assert dev == "0 Read-only file system"
