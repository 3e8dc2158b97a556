"""What the server keeps on disk for objects (API.md §10), for the tests that look at it: which
object files a request wrote, plaintext that must be in none of them, and tampering with them.

Objects live under ``<data-dir>/objects/``: their data in ``*.seg`` files of encrypted packages,
their metadata in ``*.json`` files. The tests rely on no more of the layout than that: the data
files of an object are the ``.seg`` files that appeared while it was written.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from hardening import admin as admin_client
from hardening import files_under, s3raw
from kms_clients import BotocoreClient, ok
from s3_clients import MIB, Fetched, S3Raw, boto3_client, config, expect_s3_error


@dataclass
class Own:
    """A server of a test's own and root clients for it: boto3, the admin API, raw S3."""

    server: Any
    s3: Any
    admin: BotocoreClient
    raw: S3Raw

    @classmethod
    def of(cls, server: Any) -> "Own":
        return cls(server, boto3_client(server, server.credentials), admin_client(server),
                   s3raw(server))

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def new_key(self, description: str = "e2e at rest") -> str:
        return ok(self.admin.post("/kms/keys", {"Description": description}))["key_id"]

    def kms_bucket(self, bucket: str) -> str:
        """Creates ``bucket`` with default SSE-KMS under a new key of its own; returns the key."""
        key_id = self.new_key(bucket)
        self.s3.create_bucket(Bucket=bucket)
        self.s3.put_bucket_encryption(
            Bucket=bucket, ServerSideEncryptionConfiguration=config("aws:kms", key_id))
        return key_id


def marked(marker: bytes, size: int) -> bytes:
    """``size`` bytes that are the marker over and over (with a separator)."""
    unit = marker + b"|"
    return (unit * (size // len(unit) + 1))[:size]


def objects_dir(data_dir: Path) -> Path:
    return data_dir / "objects"


def seg_files(data_dir: Path) -> set[Path]:
    return set(objects_dir(data_dir).rglob("*.seg"))


@contextlib.contextmanager
def new_seg_files(data_dir: Path) -> Iterator[list[Path]]:
    """The ``.seg`` files that appear during the block, sorted by path (filled in at its end)."""
    before = seg_files(data_dir)
    written: list[Path] = []
    yield written
    written.extend(sorted(seg_files(data_dir) - before))
    assert written, f"no new .seg file under {objects_dir(data_dir)}"


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under ``root`` holding ``needle``; files are read a window at a time, the
    windows overlapping so that no occurrence falls between two."""
    found = []
    for path in files_under(root):
        with open(path, "rb") as file:
            tail = b""
            while window := file.read(4 * MIB):
                if needle in tail + window:
                    found.append(path)
                    break
                tail = window[-(len(needle) - 1):] if len(needle) > 1 else b""
    return found


def flip_byte(path: Path, offset: int) -> None:
    """Inverts one byte of a file; a negative offset counts from the end."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as file:
        file.truncate(size)


def swap_contents(first: Path, second: Path) -> None:
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)


def swap_ranges(path: Path, start_a: int, start_b: int, length: int) -> None:
    """Swaps two non-overlapping byte ranges of equal length within a file."""
    assert start_a + length <= start_b, (start_a, start_b, length)
    data = bytearray(path.read_bytes())
    a, b = data[start_a:start_a + length], data[start_b:start_b + length]
    data[start_a:start_a + length], data[start_b:start_b + length] = b, a
    path.write_bytes(bytes(data))


def repeated_blocks(data: bytes, other: bytes | None = None, width: int = 64) -> int:
    """How many ``width``-byte blocks of ``data`` (at multiples of ``width``) also occur at any
    other offset of ``data``, or anywhere in ``other`` when given. Blocks of one repeated byte
    (padding) are not counted. Ciphertext under fresh keys and nonces has none."""
    haystack = data if other is None else other
    seen: dict[bytes, list[int]] = {}
    for offset in range(len(haystack) - width + 1):
        seen.setdefault(haystack[offset:offset + width], []).append(offset)
    count = 0
    for offset in range(0, len(data) - width + 1, width):
        block = data[offset:offset + width]
        if block.count(block[:1]) == width:
            continue
        places = seen.get(block, [])
        if (other is not None and places) or any(p != offset for p in places):
            count += 1
    return count


def check_refused(fetched: Fetched, plaintext: bytes) -> None:
    """A GET of tampered object data must not pass for the object: either a 500 ``InternalError``
    document (carrying none of the object), or an answer cut short before its ``Content-Length``
    whose bytes are a true prefix of the plaintext (packages before the damage). Never the whole
    plaintext, never altered bytes."""
    resp = fetched.response
    if resp.status == 500:
        expect_s3_error(resp, 500, "InternalError")
        assert plaintext[:32] not in resp.body, f"the error carries object bytes: {resp}"
        return
    assert resp.status in (200, 206), f"expected 500 InternalError or a cut body, got: {resp}"
    assert not fetched.complete, (
        f"tampered data was served whole ({len(resp.body)} bytes, status {resp.status})")
    assert len(resp.body) < len(plaintext), "the cut answer is as long as the object"
    assert resp.body == plaintext[:len(resp.body)], (
        f"the answer carries altered bytes (first difference at "
        f"{next(i for i, (a, b) in enumerate(zip(resp.body, plaintext)) if a != b)})")
