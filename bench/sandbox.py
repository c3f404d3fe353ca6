"""`make bench`, the code sandbox: the first output of a trivial cell in a new session (cold) and in
a live one (warm), against the floor of the same code in a bare local kernel (the same venv and
client, no bubblewrap, no user switch); what a live session costs in memory; how many one
instance holds.

    .venv/bin/python -m bench.sandbox [--repeat 5] [--warm 50] [--sessions 8]

Cold is `execute` on a session that does not exist yet: start the kernel (under bwrap), wait for
it, run `print(1)`. Warm is the same cell again in that session. Memory is the proportional set
size (PSS: shared pages split among the processes sharing them) of all of a session's processes,
from /proc, after a trivial cell and after importing numpy, pandas and matplotlib; the sessions
one instance holds is the machine's available memory over that, and `--sessions` kernels are
started side by side to check they all answer.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable

from assistants_core.sandbox import session_key
from assistants_core.sandbox.local import LocalSandbox
from assistants_core.settings import SandboxSettings

IMPORTS = "import numpy, pandas, matplotlib.pyplot as plt, scipy"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def pss_mb(pid: int) -> float:
    total = 0
    for process in descendants(pid):
        try:
            with open(f"/proc/{process}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def session_pid(box: LocalSandbox, key: str) -> int:
    process = box._sessions[key].process
    assert process is not None
    return process.pid


def latency(box: LocalSandbox, label: str, repeat: int, warm: int) -> tuple[float, float]:
    cold: list[float] = []
    hot: list[float] = []
    for i in range(repeat):
        key = session_key(b"bench", f"{label}-{i}-{time.time_ns()}")
        run = functools.partial(box.execute, key, "print(1)")
        cold.append(timed(run))
        hot.extend(timed(run) for _ in range(warm))
        box.end(key)
    return statistics.median(cold), statistics.median(hot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="cold starts per sandbox")
    parser.add_argument("--warm", type=int, default=50, help="warm cells per session")
    parser.add_argument("--sessions", type=int, default=8, help="sessions started side by side")
    args = parser.parse_args()

    sandboxed = LocalSandbox(SandboxSettings(max_sessions=args.sessions))
    bare = LocalSandbox(SandboxSettings(max_sessions=args.sessions, unsafe_local=True))
    if sandboxed.unavailable:
        raise SystemExit(f"the local sandbox cannot run here: {sandboxed.unavailable}")
    try:
        # Interleaved (A/B, then B/A) so that the machine's other load falls on both alike.
        floor_cold, floor_warm = latency(bare, "bare", args.repeat, args.warm)
        cold, warm = latency(sandboxed, "bwrap", args.repeat, args.warm)
        cold2, warm2 = latency(sandboxed, "bwrap", args.repeat, args.warm)
        floor_cold2, floor_warm2 = latency(bare, "bare", args.repeat, args.warm)
        cold, warm = (cold + cold2) / 2, (warm + warm2) / 2
        floor_cold, floor_warm = (floor_cold + floor_cold2) / 2, (floor_warm + floor_warm2) / 2
        print("\nCode sandbox: first output of print(1), median ms")
        print(f"{'':28} {'sandbox':>8} {'floor':>8} {'over':>8}")
        print(f"{'cold (new session)':28} {ms(cold)} {ms(floor_cold)} {ms(cold - floor_cold)}")
        print(f"{'warm (live session)':28} {ms(warm)} {ms(floor_warm)} {ms(warm - floor_warm)}")

        key = session_key(b"bench", "memory")
        sandboxed.execute(key, "print(1)")
        trivial = pss_mb(session_pid(sandboxed, key))
        imported = timed(lambda: sandboxed.execute(key, IMPORTS))
        loaded = pss_mb(session_pid(sandboxed, key))
        plot = timed(lambda: sandboxed.execute(key, "plt.plot([1, 2, 3]); plt.show()"))
        sandboxed.end(key)

        keys = [session_key(b"bench", f"many-{i}") for i in range(args.sessions)]
        started = time.perf_counter()
        for each in keys:
            sandboxed.execute(each, "print(1)")
        spread = time.perf_counter() - started
        answered = sum(sandboxed.execute(each, "print(2)").logs == "2\n" for each in keys)
        together = sum(pss_mb(session_pid(sandboxed, each)) for each in keys)
        with open("/proc/meminfo") as meminfo:
            available = next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable"))
        print("\nCode sandbox: a live session")
        print(f"{'memory after print(1)':40} {trivial:8.1f} MiB (PSS, all its processes)")
        print(f"{'memory after numpy+pandas+mpl+scipy':40} {loaded:8.1f} MiB")
        print(f"{'importing them (first time)':40} {imported * 1000:8.1f} ms")
        print(f"{'first plot (font cache built)':40} {plot * 1000:8.1f} ms")
        print(
            f"{f'{args.sessions} sessions side by side':40} {together / args.sessions:8.1f} MiB each, "
            f"{answered}/{args.sessions} answer, started in {spread:.1f} s"
        )
        print(
            f"{'sessions this machine holds':40} {available / 1024 / trivial:8.0f} idle, "
            f"{available / 1024 / loaded:.0f} with the data packages loaded "
            f"({available / 1024:.0f} MiB available)"
        )
    finally:
        sandboxed.close()
        bare.close()


if __name__ == "__main__":
    main()
