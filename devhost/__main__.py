"""`python -m devhost`: serve function_app locally, starting Azurite when the settings point at it.

python -m devhost [--host 127.0.0.1] [--port $PORT or 7071] [--no-azurite]
"""

from __future__ import annotations

import argparse
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

from devhost import load_settings, make_server, route_prefix

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-table"
AZURITE_ADDRESS = ("127.0.0.1", 10002)
_EMULATOR_MARKERS = ("usedevelopmentstorage=true", "127.0.0.1:10002", "localhost:10002")


def _listening(address: tuple[str, int]) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(address) == 0


def _start_azurite() -> subprocess.Popen[bytes]:
    if not AZURITE.exists():
        sys.exit(f"devhost: {AZURITE} is missing; run `npm ci` (make serve does) first.")
    data = ROOT / ".azurite"
    data.mkdir(exist_ok=True)
    process = subprocess.Popen(
        [
            str(AZURITE),
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--location",
            str(data),
            "--tableHost",
            AZURITE_ADDRESS[0],
            "--tablePort",
            str(AZURITE_ADDRESS[1]),
        ],
        stdout=(data / "azurite.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not _listening(AZURITE_ADDRESS):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"devhost: Azurite did not start; see {data / 'azurite.log'}.")
        time.sleep(0.1)
    return process


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7071")))
    parser.add_argument("--no-azurite", action="store_true", help="never start Azurite")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Ctrl-C and SIGTERM both end the server and what it started, even where SIGINT was
    # inherited as ignored (as it is for background jobs of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    os.environ.update(load_settings(ROOT))
    sys.path.insert(0, str(ROOT))

    azurite = None
    storage = os.environ.get("ASSISTANTS_STORAGE_CONNECTION_STRING", "").lower()
    if (
        not args.no_azurite
        and any(marker in storage for marker in _EMULATOR_MARKERS)
        and not _listening(AZURITE_ADDRESS)
    ):
        azurite = _start_azurite()
        logging.info("started Azurite (tables) on %s:%d", *AZURITE_ADDRESS)
    try:
        try:
            function_app = importlib.import_module("function_app")
        except Exception as exc:  # e.g. ConfigurationError: say why, not a traceback
            sys.exit(f"devhost: cannot load function_app: {exc}")
        server = make_server(function_app.app, route_prefix(ROOT), args.host, args.port)
        logging.info("serving function_app on http://%s:%d/%s", args.host, args.port, route_prefix(ROOT))
        try:
            server.serve_forever()
        finally:
            server.server_close()
    except KeyboardInterrupt:
        pass
    finally:
        if azurite is not None:
            azurite.terminate()
            azurite.wait(timeout=10)


if __name__ == "__main__":
    main()
