"""Memory stays flat while a large object streams through the server (API.md §10; the issue asks
it of a 1 GiB object): a 1 GiB SSE-KMS object is uploaded from a generator and downloaded into
a hash, neither this process nor the server ever holding it whole, while the server's resident
memory is watched: VmRSS sampled from ``/proc/<pid>/status`` during both transfers, and the
kernel's high-water mark VmHWM, reset before them.

The suite's only big test (marked ``big``): it runs in the normal run; ``-m "not big"`` leaves it
out.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Iterator

import pytest

from at_rest import Own
from s3_clients import MIB, Sse, body_of, check_sse, object_target, sse_fields

SIZE = 1024 * MIB
CHUNK = MIB
ALLOWED_GROWTH = 100 * MIB
BLOCK = body_of(CHUNK, "memory")


def status_bytes(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            value, unit = line.split()[1:3]
            assert unit == "kB", line
            return int(value) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_high_water_mark(pid: int) -> bool:
    """Resets VmHWM to the current VmRSS (``clear_refs`` 5); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssWatch:
    """Samples a process's VmRSS in a thread for the duration of a ``with`` block."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = status_bytes(pid, "VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, status_bytes(self.pid, "VmRSS"))

    def __enter__(self) -> "RssWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_bytes(self.pid, "VmRSS"))


def chunk(index: int) -> bytes:
    """Chunk ``index`` of the object: the shared block, stamped with its index."""
    return index.to_bytes(8, "big") + BLOCK[8:]


def chunks(digest: "hashlib._Hash") -> Iterator[bytes]:
    for index in range(SIZE // CHUNK):
        piece = chunk(index)
        digest.update(piece)
        yield piece


def expected(first: int, last: int) -> bytes:
    pieces = b"".join(chunk(i) for i in range(first // CHUNK, last // CHUNK + 1))
    start = first - (first // CHUNK) * CHUNK
    return pieces[start:start + last - first + 1]


@pytest.mark.big
def test_a_1_gib_object_streams_through_flat_memory(spawn_server):
    own = Own.of(spawn_server("objects-memory"))
    key_id = own.kms_bucket("big")
    target = object_target("big", "large.bin")
    pid = own.server.process.pid

    # Both paths once with a small object, so that pools and caches exist before "idle".
    warm = body_of(4 * MIB, "warm up")
    assert own.raw.put_stream(target, len(warm), [warm]).status == 200
    assert own.s3.get_object(Bucket="big", Key="large.bin")["Body"].read() == warm
    high_water = reset_high_water_mark(pid)
    idle = status_bytes(pid, "VmRSS")

    sent = hashlib.sha256()
    with RssWatch(pid) as upload:
        resp = own.raw.put_stream(target, SIZE, chunks(sent))
    assert resp.status == 200, resp
    check_sse(sse_fields(resp.headers), Sse.kms(key_id))

    received = hashlib.sha256()
    length = 0

    def consume(piece: bytes) -> None:
        nonlocal length
        received.update(piece)
        length += len(piece)

    with RssWatch(pid) as download:
        resp = own.raw.get_stream(target, consume)
    assert resp.status == 200, resp
    assert length == SIZE and received.hexdigest() == sent.hexdigest(), (
        f"{length} bytes back of {SIZE}, or other bytes")

    peaks = {"upload": upload.peak, "download": download.peak}
    if high_water:
        peaks["VmHWM"] = status_bytes(pid, "VmHWM")
    growth = {name: (peak - idle) // MIB for name, peak in peaks.items()}
    assert max(peaks.values()) - idle < ALLOWED_GROWTH, (
        f"server memory grew by {growth} MiB over {idle // MIB} MiB idle")

    for first, last in [(SIZE // 2 - 10, SIZE // 2 + 10), (SIZE - 100, SIZE - 1)]:
        got = own.s3.get_object(Bucket="big", Key="large.bin", Range=f"bytes={first}-{last}")
        assert got["Body"].read() == expected(first, last), f"bytes {first}-{last}"
