"""`python -m devhost`: serve function_app locally, starting Azurite (tables and queues) when the
settings point at the local emulator and nothing listens there yet.

python -m devhost [--host 127.0.0.1] [--port $PORT or 7071] [--no-azurite] [--app MODULE[:ATTR]]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from devhost import FunctionsHost, load_settings, route_prefix

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin"
LOOPBACK = "127.0.0.1"
# The emulator's well-known ports, which UseDevelopmentStorage=true points at.
AZURITE_SERVICES = {"table": 10002, "queue": 10001, "blob": 10000}
_EMULATOR_MARKERS = ("usedevelopmentstorage=true", "127.0.0.1:1000", "localhost:1000")


def _listening(address: tuple[str, int]) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(address) == 0


def _start_azurite(service: str, port: int) -> subprocess.Popen[bytes]:
    program = AZURITE / f"azurite-{service}"
    if not program.exists():
        sys.exit(f"devhost: {program} is missing; run `npm ci` (make serve does) first.")
    data = ROOT / ".azurite"
    data.mkdir(exist_ok=True)
    log = data / f"azurite-{service}.log"
    process = subprocess.Popen(
        [
            str(program),
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--location",
            str(data),
            f"--{service}Host",
            LOOPBACK,
            f"--{service}Port",
            str(port),
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not _listening((LOOPBACK, port)):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"devhost: Azurite's {service} service did not start; see {log}.")
        time.sleep(0.1)
    logging.info("started Azurite (%s) on %s:%d", service, LOOPBACK, port)
    return process


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7071")))
    parser.add_argument("--no-azurite", action="store_true", help="never start Azurite")
    parser.add_argument(
        "--app",
        default="function_app:app",
        metavar="MODULE[:ATTR]",
        help="the FunctionApp to serve (default function_app:app; ATTR defaults to app)",
    )
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Ctrl-C and SIGTERM both end the server and what it started, even where SIGINT was
    # inherited as ignored (as it is for background jobs of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    os.environ.update(load_settings(ROOT))
    sys.path.insert(0, str(ROOT))

    started: list[subprocess.Popen[bytes]] = []
    storage = os.environ.get("ASSISTANTS_STORAGE_CONNECTION_STRING", "").lower()
    try:
        if not args.no_azurite and any(marker in storage for marker in _EMULATOR_MARKERS):
            for service, port in AZURITE_SERVICES.items():
                if not _listening((LOOPBACK, port)):
                    started.append(_start_azurite(service, port))
        module, _, attribute = args.app.partition(":")
        try:
            app = getattr(importlib.import_module(module), attribute or "app")
        except Exception as exc:  # e.g. ConfigurationError: say why, not a traceback
            sys.exit(f"devhost: cannot load {args.app}: {exc}")
        host = FunctionsHost(app, ROOT, os.environ)
        logging.info("serving %s on http://%s:%d/%s", args.app, args.host, args.port, route_prefix(ROOT))
        asyncio.run(host.serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    finally:
        for process in started:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
