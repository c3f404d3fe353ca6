"""`make bench`, files: upload and download throughput against the floor, storage requests per
upload, and the dev host's peak memory through the largest single-request upload and a large
upload through the Uploads API.

    .venv/bin/python -m bench.files [--megabytes 64] [--upload-megabytes 300] [--repeat 3]

Starts its own in-memory Azurite and dev host. The floor is the same bytes put to (as 4 MiB
blocks and a block list, what the service does) and read from the same Azurite directly with
azure-storage-blob, timed interleaved with the service (A/B, then B/A). Storage requests are
counted in process on the same storage, with the storage clients' response hook. Peak memory is
the dev host's VmHWM (peak resident set), which can only grow: read after warm-up, after the
largest upload one request takes, and after the Uploads API upload.
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from azure.storage.blob import BlobBlock, ContainerClient

from assistants_core.files import MAX_REQUEST_BYTES, Files
from assistants_core.settings import Settings
from assistants_core.storage import Store
from assistants_core.storage.blobs import BLOCK_BYTES
from bench.bench import peak_rss_mb
from tests.support import API_KEYS, Azurite, StorageMeter, free_port, running_devhost

MiB = 1024 * 1024
BOUNDARY = "benchboundary"


def multipart(size: int, block: bytes, filename: str = "bench.bin", field: str = "file") -> Iterator[bytes]:
    """A `POST /files` body of `size` file bytes (or, with `field="data"`, an Upload part's, as
    the Python SDK sends it), generated as it is sent: the client holds one block."""
    purpose = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
    yield (
        (purpose if field == "file" else "")
        + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        sent += len(piece)
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def envelope(filename: str) -> int:
    return sum(len(p) for p in multipart(0, b"", filename))


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def mb_per_s(size: int, seconds: float) -> str:
    return f"{size / MiB / seconds:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=64, help="size of the file timed for throughput")
    parser.add_argument("--upload-megabytes", type=int, default=300, help="size of the Uploads API file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    azurite = Azurite(free_port())
    azurite.start()
    try:
        with running_devhost(azurite.connection_string) as host:
            run(azurite, host, args.megabytes * MiB, args.upload_megabytes * MiB, args.repeat)
    finally:
        azurite.stop()


def run(azurite: Azurite, host: Any, size: int, upload_size: int, repeat: int) -> None:
    block = os.urandom(BLOCK_BYTES)
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    http = httpx.Client(base_url=host.api_url, headers={"api-key": API_KEYS[0]}, timeout=600)
    floor = ContainerClient.from_connection_string(azurite.connection_string, "benchfloor")
    floor.create_container()

    def upload(file_size: int, name: str = "bench.bin") -> dict[str, Any]:
        response = http.post("/files", content=multipart(file_size, block, name), headers=headers)
        response.raise_for_status()
        return dict(response.json())

    def floor_put(file_size: int) -> str:
        blob = floor.get_blob_client(secrets.token_hex(8))
        ids = []
        for n, start in enumerate(range(0, file_size, BLOCK_BYTES)):
            piece = block[: min(BLOCK_BYTES, file_size - start)]
            ids.append(f"{n:08d}")
            blob.stage_block(ids[-1], piece, length=len(piece))
        blob.commit_block_list([BlobBlock(i) for i in ids])
        return str(blob.blob_name)

    def download(file_id: str) -> int:
        got = 0
        with http.stream("GET", f"/files/{file_id}/content") as response:
            for chunk in response.iter_bytes(MiB):
                got += len(chunk)
        return got

    def floor_get(name: str) -> int:
        return sum(len(c) for c in floor.get_blob_client(name).download_blob(max_concurrency=1).chunks())

    upload(1024)  # warm-up: the container, the table, the connections

    service_up, floor_up, service_down, floor_down = [], [], [], []
    for n in range(repeat):
        order = (0, 1) if n % 2 == 0 else (1, 0)
        for which in order:
            if which == 0:
                started = time.perf_counter()
                file_id = upload(size)["id"]
                service_up.append(time.perf_counter() - started)
                service_down.append(timed(functools.partial(download, file_id)))
                http.delete(f"/files/{file_id}")
            else:
                started = time.perf_counter()
                name = floor_put(size)
                floor_up.append(time.perf_counter() - started)
                floor_down.append(timed(functools.partial(floor_get, name)))
                floor.delete_blob(name)
    warm = peak_rss_mb(host.pid)
    best = min
    print(f"## Files ({size // MiB} MiB file, best of {repeat}, MB/s)")
    print("| measure | service | floor (azure-storage-blob direct) | service / floor |")
    print("|---|---|---|---|")
    up_ratio = best(floor_up) / best(service_up)
    down_ratio = best(floor_down) / best(service_down)
    print(
        f"| upload `POST /files` | {mb_per_s(size, best(service_up))} "
        f"| {mb_per_s(size, best(floor_up))} | {up_ratio:.2f} |"
    )
    print(
        f"| download `GET /files/{{id}}/content` | {mb_per_s(size, best(service_down))} "
        f"| {mb_per_s(size, best(floor_down))} | {down_ratio:.2f} |"
    )

    # Storage requests per upload, counted in process on the same storage.
    meter = StorageMeter()
    settings = Settings.from_environ(
        {
            "ASSISTANTS_API_KEYS": "k",
            "ASSISTANTS_STORAGE_CONNECTION_STRING": azurite.connection_string,
            "ASSISTANTS_TABLE_PREFIX": host.table_prefix,
        }
    )
    files = Files(Store(settings, observe=meter))
    print()
    print("| upload | storage requests (the floor: blocks + block list + one row) |")
    print("|---|---|")
    for file_size in (1024, BLOCK_BYTES, 10 * MiB):
        files.create(f"multipart/form-data; boundary={BOUNDARY}", multipart(file_size, block))  # warm
        meter.reset()
        files.create(f"multipart/form-data; boundary={BOUNDARY}", multipart(file_size, block))
        blocks = -(-file_size // BLOCK_BYTES)
        floor_requests = 1 + 1 if blocks == 1 else blocks + 1 + 1
        print(f"| {file_size:,} bytes | {meter.requests} ({floor_requests}) |")

    # Memory: the largest single request, then a large file through the Uploads API.
    largest = MAX_REQUEST_BYTES - envelope("largest.bin")
    started = time.perf_counter()
    single = upload(largest, "largest.bin")
    single_seconds = time.perf_counter() - started
    assert single["bytes"] == largest
    after_single = peak_rss_mb(host.pid)

    started = time.perf_counter()
    created = http.post(
        "/uploads",
        json={
            "filename": "big.bin",
            "purpose": "assistants",
            "bytes": upload_size,
            "mime_type": "application/octet-stream",
        },
    ).json()
    part_size = 64 * MiB
    part_ids = []
    for start in range(0, upload_size, part_size):
        length = min(part_size, upload_size - start)
        part = http.post(
            f"/uploads/{created['id']}/parts",
            content=multipart(length, block, "upload", "data"),
            headers=headers,
        )
        part.raise_for_status()
        part_ids.append(part.json()["id"])
    done = http.post(f"/uploads/{created['id']}/complete", json={"part_ids": part_ids})
    done.raise_for_status()
    upload_seconds = time.perf_counter() - started
    assert done.json()["file"]["bytes"] == upload_size
    after_upload = peak_rss_mb(host.pid)
    print()
    print("| dev host peak RSS (VmHWM) | MiB |")
    print("|---|---|")
    print(f"| after warm-up and the throughput runs ({size // MiB} MiB files) | {warm:.0f} |")
    print(
        f"| after the largest single request ({largest:,} bytes, {mb_per_s(largest, single_seconds)} MB/s) "
        f"| {after_single:.0f} |"
    )
    print(
        f"| after {upload_size // MiB} MiB through the Uploads API ({len(part_ids)} parts, "
        f"{mb_per_s(upload_size, upload_seconds)} MB/s) | {after_upload:.0f} |"
    )
    http.close()


if __name__ == "__main__":
    main()
