"""The object routes (API.md §2, §3, §10) against a hostile client and against crashes.

Malformed input on every object route, on a server of this module's own: lying or unparsable
``Content-Length``, ``aws-chunked`` bodies with bad sizes, signatures, framing, trailers and
``x-amz-decoded-content-length``, garbage ``Range`` headers, upload ids that try to leave the
uploads directory, part numbers out of range, CompleteMultipartUpload and Delete documents that
are malformed, huge, deeply nested or repetitive, copy sources that are malformed, missing,
contain ``..`` or odd percent-encoding, object keys at 1024/1025 bytes and keys made of ``..``,
NUL, ``//`` and unicode. Every refusal is the documented S3 error (a 4xx XML error document
with ``x-amz-request-id``; requests the HTTP parser itself refuses get a bare 400, as the
README's limitations say), never a 5xx, never a hang, and leaves nothing behind: the listing,
the uploads and their parts, and every file under ``<data-dir>/objects`` and ``uploads`` are as
before (polled with a deadline, since a refused body may be discarded after the answer).

Crashes (servers of the tests' own): ``kill -9`` while a large PutObject, an UploadPart, a
CompleteMultipartUpload and a CopyObject are in flight. After the restart an acknowledged write
is there; an unacknowledged one is either absent (the old object, byte-identical) or whole;
no segment file is left that no record names; an upload in progress is still completable.

Concurrency: 16 clients overwrite one key while others read it; a read that started before an
overwrite or a delete. Secrets: SSE-C keys and the objects' data keys are in no log line and no
file of the data directory. A body that stops midway is ``RequestTimeout`` (20 s, tested once);
a connection reset midway leaves no segment behind.

Six bugs these tests found are fixed; their tests guard against their return.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import re
import socket
import struct
import threading
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from at_rest import Own, files_containing, marked
from conftest import KmsServer
from hardening import (
    CONNECTION_ERRORS,
    as_response,
    connect,
    forms,
    head_bytes,
    kill9,
    read_response,
    wait_until,
)
from kms_clients import Response, ok, send_http
from s3_clients import (
    COPY_SOURCE_SSE_C,
    EMPTY_SHA256,
    KIB,
    MIB,
    MIN_PART,
    PACKAGE,
    STREAMING_SIGNED,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    Signed,
    Sse,
    body_of,
    boto_error,
    checksum_crc32,
    content_md5,
    customer_key,
    expect_s3_error,
    object_target,
    parse_error_document,
    status_of,
    unique_bucket,
    upload_multipart,
)

STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
# How long a refused request may take to remove what it wrote; and a hang guard.
SETTLE = 10.0
CUSTOMER = customer_key("hostile")
OTHER_CUSTOMER = customer_key("hostile, someone else")
FIVE_GIB = 5 * 1024 * MIB


# ---- plumbing ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own(tools, tmp_path_factory, root_credentials) -> Iterator[Own]:
    """This module's server for the malformed-input tests (nothing else talks to it, so every
    file under its data directory is this module's doing)."""
    server = KmsServer(tools.server_bin, tmp_path_factory.mktemp("hostile"), "hostile",
                       credentials=root_credentials)
    server.start()
    yield Own.of(server)
    server.stop()


@pytest.fixture
def bucket(own) -> str:
    name = unique_bucket("hostile")
    own.s3.create_bucket(Bucket=name)
    return name


def host(server: Any) -> str:
    return f"127.0.0.1:{server.port}"


def stored_files(data_dir: Path) -> dict[str, int]:
    """Every file under ``objects/`` and ``uploads/`` with its size (taken again when a file or
    directory vanishes under the walk)."""
    for _ in range(100):
        try:
            return {str(path.relative_to(data_dir)): path.stat().st_size
                    for sub in ("objects", "uploads") for path in (data_dir / sub).rglob("*")
                    if path.is_file()}
        except FileNotFoundError:
            continue
    raise AssertionError(f"{data_dir} keeps changing under the walk")


def api_state(own: Own, bucket: str) -> dict:
    """What the API shows of a bucket: its listing, its uploads and their parts."""
    listing = own.s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    uploads = own.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    parts = {}
    for upload in uploads:
        listed = own.s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        parts[upload["UploadId"]] = [(p["PartNumber"], p["ETag"], p["Size"])
                                     for p in listed.get("Parts", [])]
    return {
        "objects": [(o["Key"], o["ETag"], o["Size"]) for o in listing],
        "uploads": [(u["Key"], u["UploadId"]) for u in uploads],
        "parts": parts,
    }


@contextlib.contextmanager
def leaves_nothing(own: Own, bucket: str) -> Iterator[None]:
    """The block must leave the bucket's listing, its uploads and parts, and every file under
    ``objects/`` and ``uploads/`` as they were (polled until ``SETTLE``)."""
    before = (api_state(own, bucket), stored_files(own.data_dir))
    yield
    seen: list = []

    def unchanged() -> bool:
        seen[:] = [(api_state(own, bucket), stored_files(own.data_dir))]
        return seen[0] == before

    if not wait_until(unchanged, timeout=SETTLE, step=0.1):
        (api_b, files_b), (api_a, files_a) = before, seen[0]
        added = sorted(set(files_a) - set(files_b))
        removed = sorted(set(files_b) - set(files_a))
        changed = sorted(k for k in set(files_a) & set(files_b) if files_a[k] != files_b[k])
        raise AssertionError(
            f"the request left something behind after {SETTLE}s:\n"
            f"api before {api_b}\napi after  {api_a}\n"
            f"files added {added}\nfiles removed {removed}\nfiles changed {changed}")


def error_code(resp: Response) -> str | None:
    if resp.method == "HEAD" or not resp.body:
        return None
    return parse_error_document(resp).get("Code")


def refused(resp: Response, *allowed: tuple[int, str]) -> dict:
    """A 4xx S3 error document (§9) whose status and code are one of ``allowed``."""
    assert resp.status is not None and 400 <= resp.status < 500, (
        f"expected a 4xx S3 error {allowed}, got: {resp}")
    if resp.method == "HEAD":
        assert resp.status in {s for s, _ in allowed}, f"expected {allowed}: {resp}"
        return expect_s3_error(resp, resp.status, "")
    code = error_code(resp)
    assert (resp.status, code) in allowed, f"expected one of {allowed}, got: {resp}"
    return expect_s3_error(resp, resp.status, code)


def bare_refusal(resp: Response) -> None:
    """A request the HTTP parser refuses: a 400 (README: without the XML document)."""
    assert resp.status == 400, f"expected the HTTP parser's 400, got: {resp}"


def exchange(server: Any, method: str, target: str, headers: dict | list, body: bytes = b"", *,
             half_close: bool = False, timeout: float = 60) -> Response:
    """Sends a request head and body as given on a raw socket (``half_close``: then shuts the
    sending side, so the server sees the body end) and reads the answer."""
    sock = connect(server, timeout=timeout)
    try:
        try:
            sock.sendall(head_bytes(method, target, headers, host(server)) + body)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before reading it all; read its answer
        return as_response("socket", method, target, read_response(sock, method))
    finally:
        sock.close()


def files_outside(data_dir: Path, bucket: str) -> dict[str, bytes]:
    """Every file of the data directory but the bucket's objects and the audit log, with its
    bytes: what a request about objects of ``bucket`` must never change."""
    skip = data_dir / "objects" / bucket
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*"))
            if p.is_file() and not p.is_relative_to(skip) and p.name != "audit.log"}


def alive(own: Own) -> None:
    """The server still serves a signed request."""
    assert ok(own.admin.get("/kms/status"))["healthy"] is True


def signed(own: Own, method: str, path: str, query: str = "", headers: dict | None = None,
           payload_hash: str = UNSIGNED_PAYLOAD) -> Signed:
    return own.raw.sign(method, path, query, b"", headers or {}, payload_hash=payload_hash)


def quoted(value: str) -> str:
    """A query value encoded the way AWS signs it."""
    return urllib.parse.quote(value, safe="-_.~")


def create_upload(own: Own, bucket: str, key: str, sse: Sse = Sse.none()) -> str:
    return own.s3.create_multipart_upload(Bucket=bucket, Key=key, **sse.put_args())["UploadId"]


def upload_part(own: Own, bucket: str, key: str, upload_id: str, number: int, body: bytes,
                sse: Sse = Sse.none()) -> dict:
    etag = own.s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                              Body=body, **sse.read_args())["ETag"]
    return {"PartNumber": number, "ETag": etag}


def parts_of(own: Own, bucket: str, key: str, upload_id: str) -> list[dict]:
    listed = own.s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", [])
    return [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in listed]


def read_object(own: Own, bucket: str, key: str, sse: Sse = Sse.none()) -> bytes:
    answer = own.s3.get_object(Bucket=bucket, Key=key, **sse.read_args())
    return answer["Body"].read()


def complete_xml(parts: list[dict]) -> bytes:
    inner = "".join(f"<Part><PartNumber>{p['PartNumber']}</PartNumber><ETag>{p['ETag']}</ETag>"
                    f"</Part>" for p in parts)
    return f"<CompleteMultipartUpload>{inner}</CompleteMultipartUpload>".encode()


@dataclass(frozen=True)
class Route:
    """An object route that takes a body: method, path, query, and the most bytes it reads."""

    method: str
    path: str
    query: str
    limit: int

    @property
    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")


# The routes whose body is streamed (PutObject, UploadPart), and those read whole within 1 MiB
# (CompleteMultipartUpload, DeleteObjects).
STREAMED_ROUTES = ("put-object", "upload-part")
BODY_ROUTES = STREAMED_ROUTES + ("complete", "delete-objects")


@pytest.fixture
def body_route(request, own, bucket) -> Route:
    """A fresh target of the route named by the parameter, in ``bucket``."""
    if request.param == "put-object":
        return Route("PUT", f"/{bucket}/target.bin", "", FIVE_GIB)
    if request.param == "delete-objects":
        return Route("POST", f"/{bucket}", "delete", MIB)
    upload_id = create_upload(own, bucket, "target.bin")
    if request.param == "complete":
        upload_part(own, bucket, "target.bin", upload_id, 1, b"a part")
        return Route("POST", f"/{bucket}/target.bin", f"uploadId={upload_id}", MIB)
    return Route("PUT", f"/{bucket}/target.bin", f"partNumber=1&uploadId={upload_id}",
                 FIVE_GIB)


# ---- Content-Length ---------------------------------------------------------------------------

# Values the HTTP parser itself refuses (a bare 400, README limitations).
UNPARSABLE_LENGTHS = {
    "negative": [("Content-Length", "-1")],
    "not-a-number": [("Content-Length", "abc")],
    "hex": [("Content-Length", "0x10")],
    "exponent": [("Content-Length", "1e3")],
    "overflow": [("Content-Length", "99999999999999999999999")],
    "two-that-differ": [("Content-Length", "5"), ("Content-Length", "6")],
    "with-chunked-coding": [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
}


@pytest.mark.parametrize("body_route", BODY_ROUTES, indirect=True)
@pytest.mark.parametrize("lengths", UNPARSABLE_LENGTHS.values(), ids=UNPARSABLE_LENGTHS.keys())
def test_an_unparsable_content_length_is_refused(own, bucket, body_route, lengths):
    route = body_route
    with leaves_nothing(own, bucket):
        head = signed(own, route.method, route.path, route.query).headers
        resp = exchange(own.server, route.method, route.target, list(head.items()) + lengths,
                        b"5\r\nxxxxx\r\n0\r\n\r\n", half_close=True)
        bare_refusal(resp)
    alive(own)


@pytest.mark.parametrize("body_route", BODY_ROUTES, indirect=True)
@pytest.mark.parametrize("payload", ["unsigned", "signed-hash"])
def test_a_body_shorter_than_its_content_length_is_incomplete_body(own, bucket, body_route,
                                                                   payload):
    route = body_route
    promised = body_of(3 * PACKAGE + 5, "promised")
    sent = promised[:PACKAGE + 7]
    payload_hash = (UNSIGNED_PAYLOAD if payload == "unsigned"
                    else hashlib.sha256(promised).hexdigest())
    with leaves_nothing(own, bucket):
        head = signed(own, route.method, route.path, route.query,
                      {"Content-Length": str(len(promised))}, payload_hash).headers
        resp = exchange(own.server, route.method, route.target, head, sent, half_close=True)
        refused(resp, (400, "IncompleteBody"))


@pytest.mark.parametrize("body_route", BODY_ROUTES, indirect=True)
def test_a_body_longer_than_its_content_length_is_not_the_signed_body(own, bucket, body_route):
    # The server reads Content-Length bytes; the signed hash covers the longer body.
    route = body_route
    whole = body_of(2 * PACKAGE, "longer")
    with leaves_nothing(own, bucket):
        head = signed(own, route.method, route.path, route.query,
                      {"Content-Length": str(PACKAGE)}, hashlib.sha256(whole).hexdigest()).headers
        resp = exchange(own.server, route.method, route.target, head, whole, half_close=True)
        refused(resp, (400, "XAmzContentSHA256Mismatch"))


@pytest.mark.parametrize("body_route", BODY_ROUTES, indirect=True)
def test_a_content_length_over_the_limit_is_entity_too_large_before_the_body(own, bucket,
                                                                             body_route):
    # 5 GiB for streamed bodies (S3's largest PUT or part), 1 MiB for documents read whole.
    route = body_route
    with leaves_nothing(own, bucket):
        head = signed(own, route.method, route.path, route.query,
                      {"Content-Length": str(route.limit + 1)}).headers
        # Only a few bytes are sent, and the sending side stays open: the answer must not wait
        # for the body.
        sock = connect(own.server, timeout=SETTLE)
        try:
            sock.sendall(head_bytes(route.method, route.target, head, host(own.server))
                         + b"0123456789")
            resp = as_response("socket", route.method, route.path,
                               read_response(sock, route.method))
        finally:
            sock.close()
        refused(resp, (413, "EntityTooLarge"))


# ---- aws-chunked bodies -----------------------------------------------------------------------

CHUNKED_DATA = body_of(3 * PACKAGE // 2 + 11, "aws-chunked")


@dataclass
class Frame:
    """One ``aws-chunked`` chunk as sent: its size field, signature (None: no extension) and data,
    and what ends its data."""

    size: str
    signature: str | None
    data: bytes
    end: bytes = b"\r\n"

    def wire(self) -> bytes:
        head = self.size
        if self.signature is not None:
            head += f";chunk-signature={self.signature}"
        return head.encode() + b"\r\n" + self.data + (self.end if self.data else b"")


@dataclass
class Chunked:
    """A signed ``aws-chunked`` request, its chunks (correctly signed) and what follows the last
    chunk (trailers and the final CRLF)."""

    request: Signed
    frames: list[Frame]
    tail: bytes = b"\r\n"

    def body(self) -> bytes:
        return b"".join(f.wire() for f in self.frames) + self.tail

    def trailer_signature(self, trailers: dict[str, str]) -> str:
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(trailers.items()))
        string_to_sign = "\n".join([
            "AWS4-HMAC-SHA256-TRAILER", self.request.timestamp, self.request.scope,
            self.frames[-1].signature, hashlib.sha256(canonical.encode()).hexdigest()])
        return self.request.signer.signature(string_to_sign, self.request.request)


def chunked_request(own: Own, path: str, query: str, data: bytes = CHUNKED_DATA, *,
                    payload: str = STREAMING_SIGNED, headers: dict | None = None,
                    chunk: int = PACKAGE) -> Chunked:
    """Signs an ``aws-chunked`` PUT (``x-amz-decoded-content-length`` the data's length unless
    ``headers`` says otherwise; None removes a header) and signs its chunks as AWS describes."""
    base = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))}
    merged = {k: v for k, v in {**base, **(headers or {})}.items() if v is not None}
    request = own.raw.sign("PUT", path, query, b"", merged, payload_hash=payload)
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    frames = []
    previous = request.signature
    for piece in pieces:
        signature = None
        if payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER):
            string_to_sign = "\n".join([
                "AWS4-HMAC-SHA256-PAYLOAD", request.timestamp, request.scope, previous,
                EMPTY_SHA256, hashlib.sha256(piece).hexdigest()])
            signature = previous = request.signer.signature(string_to_sign, request.request)
        frames.append(Frame(f"{len(piece):x}", signature, piece))
    return Chunked(request, frames)


def send_chunked(own: Own, chunked: Chunked) -> Response:
    return send_http("aws-chunked", own.server.port, "PUT", chunked.request.target,
                     chunked.body(), chunked.request.headers)


FRAMING = {(400, code) for code in ("AuthorizationHeaderMalformed", "IncompleteBody",
                                    "InvalidRequest", "InvalidArgument")}
SIGNATURE = {(403, "SignatureDoesNotMatch")}
TRUNCATED = {(400, "IncompleteBody")}


def flip(signature: str) -> str:
    return ("0" if signature[0] != "0" else "1") + signature[1:]


def set_size(index: int, size: str) -> Callable[[Chunked], None]:
    def change(c: Chunked) -> None:
        c.frames[index].size = size
    return change


def drop_final(tail: bytes) -> Callable[[Chunked], None]:
    def change(c: Chunked) -> None:
        c.frames.pop()
        c.tail = tail
    return change


def set_tail(tail: bytes) -> Callable[[Chunked], None]:
    def change(c: Chunked) -> None:
        c.tail = tail
    return change


def change_frame(index: int, **fields) -> Callable[[Chunked], None]:
    def change(c: Chunked) -> None:
        for name, value in fields.items():
            setattr(c.frames[index], name, value(getattr(c.frames[index], name))
                    if callable(value) else value)
    return change


# name: (headers for chunked_request, change of the wire form, refusals allowed)
CHUNKED_CASES: dict[str, tuple[dict, Callable[[Chunked], None] | None, set]] = {
    "size-not-hex": ({}, set_size(0, "zz"), FRAMING),
    "size-negative": ({}, set_size(0, "-10"), FRAMING),
    "size-over-64-bits": ({}, set_size(0, "f" * 20), FRAMING),
    "size-2^60": ({}, set_size(0, "f" * 15), FRAMING | SIGNATURE | TRUNCATED),
    "size-bigger-than-data": ({}, set_size(0, f"{PACKAGE + 10:x}"), FRAMING | SIGNATURE),
    "size-smaller-than-data": ({}, set_size(0, f"{PACKAGE - 10:x}"), FRAMING | SIGNATURE),
    "size-line-of-5000-bytes": ({}, set_size(0, "0" * 4999 + "1"), FRAMING),
    "bad-first-signature": ({}, change_frame(0, signature=flip), SIGNATURE),
    "bad-final-signature": ({}, change_frame(-1, signature=flip), SIGNATURE),
    "signature-missing": ({}, change_frame(1, signature=None), FRAMING | SIGNATURE),
    "signature-not-hex": ({}, change_frame(0, signature="zz" * 32), SIGNATURE | FRAMING),
    "no-crlf-after-data": ({}, change_frame(0, end=b"XX"), FRAMING),
    "lf-only-after-data": ({}, change_frame(0, end=b"\n"), FRAMING),
    "final-chunk-missing": ({}, drop_final(b""), TRUNCATED),
    "final-chunk-missing-crlf-instead": ({}, drop_final(b"\r\n"), FRAMING | TRUNCATED),
    "trailer-without-trailer-mode": ({}, set_tail(b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n"),
                                     FRAMING),
    "garbage-after-the-body": ({}, set_tail(b"\r\nGET / HTTP/1.1\r\n\r\n"), FRAMING),
    "decoded-length-smaller": ({"x-amz-decoded-content-length": str(len(CHUNKED_DATA) - 1)},
                               None, FRAMING),
    "decoded-length-larger": ({"x-amz-decoded-content-length": str(len(CHUNKED_DATA) + 1)},
                              None, TRUNCATED),
    "decoded-length-not-a-number": ({"x-amz-decoded-content-length": "lots"}, None,
                                    {(400, "InvalidRequest")}),
    "decoded-length-negative": ({"x-amz-decoded-content-length": "-1"}, None,
                                {(400, "InvalidRequest")}),
    "decoded-length-over-5-gib": ({"x-amz-decoded-content-length": str(FIVE_GIB + 1)}, None,
                                  {(413, "EntityTooLarge")}),
}


@pytest.mark.parametrize("body_route", STREAMED_ROUTES, indirect=True)
@pytest.mark.parametrize("case", CHUNKED_CASES.values(), ids=CHUNKED_CASES.keys())
def test_a_malformed_aws_chunked_body_is_refused_and_stores_nothing(own, bucket, body_route,
                                                                    case):
    headers, change, allowed = case
    path, query = body_route.path, body_route.query
    with leaves_nothing(own, bucket):
        chunked = chunked_request(own, path, query, headers=headers)
        if change is not None:
            change(chunked)
        refused(send_chunked(own, chunked), *allowed)


@pytest.mark.parametrize("body_route", STREAMED_ROUTES, indirect=True)
def test_the_chunk_helpers_write_bodies_the_server_accepts(own, bucket, body_route):
    # The control for the cases above: unchanged, the same requests are stored.
    path, query = body_route.path, body_route.query
    resp = send_chunked(own, chunked_request(own, path, query))
    assert resp.status == 200, resp
    trailers = {"x-amz-checksum-crc32": checksum_crc32(CHUNKED_DATA)}
    chunked = chunked_request(own, path, query, payload=STREAMING_SIGNED_TRAILER,
                              headers={"x-amz-trailer": "x-amz-checksum-crc32"})
    chunked.tail = (f"x-amz-checksum-crc32:{trailers['x-amz-checksum-crc32']}\r\n"
                    f"x-amz-trailer-signature:{chunked.trailer_signature(trailers)}\r\n\r\n"
                    ).encode()
    resp = send_chunked(own, chunked)
    assert resp.status == 200, resp
    if not query:
        assert read_object(own, bucket, "target.bin") == CHUNKED_DATA


CRC = checksum_crc32(CHUNKED_DATA)
# name: (x-amz-trailer, what follows the last chunk, refusals allowed)
TRAILER_CASES = {
    "value-not-base64": ("x-amz-checksum-crc32", b"x-amz-checksum-crc32:!!!!\r\n\r\n",
                         {(400, "BadDigest")}),
    "value-wrong": ("x-amz-checksum-crc32", b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n",
                    {(400, "BadDigest")}),
    "announced-missing": ("x-amz-checksum-crc32", b"\r\n", {(400, "InvalidRequest")}),
    "not-announced": (None, f"x-amz-checksum-crc32:{CRC}\r\n\r\n".encode(),
                      {(400, "InvalidRequest")} | FRAMING),
    "unknown-algorithm": ("x-amz-checksum-md7", b"x-amz-checksum-md7:AAAA\r\n\r\n",
                          {(400, "InvalidRequest")}),
    "no-colon": ("x-amz-checksum-crc32", b"x-amz-checksum-crc32 " + CRC.encode() + b"\r\n\r\n",
                 FRAMING),
    "repeated-and-different": ("x-amz-checksum-crc32",
                               f"x-amz-checksum-crc32:{CRC}\r\nx-amz-checksum-crc32:AAAAAA==\r\n"
                               "\r\n".encode(), {(400, "BadDigest")}),
    "trailers-over-16-kib": ("x-amz-checksum-crc32",
                             b"".join(f"x-amz-meta-{i}:{'v' * 1000}\r\n".encode()
                                      for i in range(20)) + b"\r\n", FRAMING),
    "unterminated": ("x-amz-checksum-crc32", f"x-amz-checksum-crc32:{CRC}".encode(),
                     TRUNCATED | FRAMING),
}


@pytest.mark.parametrize("body_route", STREAMED_ROUTES, indirect=True)
@pytest.mark.parametrize("case", TRAILER_CASES.values(), ids=TRAILER_CASES.keys())
def test_garbage_trailers_are_refused_and_store_nothing(own, bucket, body_route, case):
    announced, tail, allowed = case
    path, query = body_route.path, body_route.query
    with leaves_nothing(own, bucket):
        chunked = chunked_request(own, path, query, payload=STREAMING_UNSIGNED_TRAILER,
                                  headers={"x-amz-trailer": announced})
        chunked.tail = tail
        refused(send_chunked(own, chunked), *allowed)


@pytest.mark.parametrize("body_route", STREAMED_ROUTES, indirect=True)
def test_a_bad_trailer_signature_is_refused(own, bucket, body_route):
    path, query = body_route.path, body_route.query
    trailers = {"x-amz-checksum-crc32": CRC}
    with leaves_nothing(own, bucket):
        chunked = chunked_request(own, path, query, payload=STREAMING_SIGNED_TRAILER,
                                  headers={"x-amz-trailer": "x-amz-checksum-crc32"})
        chunked.tail = (f"x-amz-checksum-crc32:{CRC}\r\nx-amz-trailer-signature:"
                        f"{flip(chunked.trailer_signature(trailers))}\r\n\r\n").encode()
        refused(send_chunked(own, chunked), *SIGNATURE)
        chunked.tail = f"x-amz-checksum-crc32:{CRC}\r\n\r\n".encode()  # no signature at all
        refused(send_chunked(own, chunked), *(SIGNATURE | FRAMING))


# ---- Range ------------------------------------------------------------------------------------

RANGED = 3 * PACKAGE + 100
# Ranges RFC 9110 lets a server ignore (and S3 does): the whole object, 200.
IGNORED_RANGES = [
    "bytes=0-1,3-4", "bytes=0-1,", "bytes=5-3", "bytes=abc", "bytes=-", "bytes=--1",
    "bytes=1-2-3", "items=0-1", "bytes 0-1", "bytes=", "=0-1", "bytes=0x10-20", "bytes=1-a",
    "bytes=99999999999999999999999-", "bytes=0-99999999999999999999999",
    "bytes=-99999999999999999999", "bytes=" + "1" * 10000 + "-",
]


def range_unsatisfiable(size: int) -> list[str]:
    return ["bytes=-0", f"bytes={size}-", f"bytes={size + 5}-{size + 10}"] + (
        ["bytes=0-0", "bytes=0-"] if size == 0 else [])


@pytest.mark.parametrize("mode", ["none", "sse-c"])
@pytest.mark.parametrize("size", [0, RANGED])
def test_garbage_ranges_read_the_whole_object_and_never_5xx(own, bucket, mode, size):
    sse = Sse.none() if mode == "none" else Sse.c(CUSTOMER)
    data = body_of(size, "ranges")
    own.s3.put_object(Bucket=bucket, Key="r.bin", Body=data, **sse.put_args())
    target = object_target(bucket, "r.bin")
    for header in IGNORED_RANGES:
        got = own.raw.fetch("GET", target, {"Range": header, **sse.read_headers()})
        resp = got.response
        assert resp.status == 200 and got.complete, f"Range {header[:40]!r}: {resp}"
        assert "content-range" not in resp.headers and resp.body == data, f"Range {header[:40]!r}"
        head = own.raw.request("HEAD", target, headers={"Range": header, **sse.read_headers()})
        assert head.status == 200 and head.headers["content-length"] == str(size), head
    for header in range_unsatisfiable(size):
        resp = own.raw.request("GET", target, headers={"Range": header, **sse.read_headers()})
        refused(resp, (416, "InvalidRange"))
        head = own.raw.request("HEAD", target, headers={"Range": header, **sse.read_headers()})
        refused(head, (416, ""))


RESPONSE_OVERRIDES = {
    "crlf-in-content-type": "response-content-type=text%2Fplain%0D%0AX-Injected%3A%20yes",
    "lf-in-content-language": "response-content-language=en%0A",
    "nul-in-content-disposition": "response-content-disposition=attachment%00",
    "del-in-cache-control": "response-cache-control=no-cache%7F",
}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("query", RESPONSE_OVERRIDES.values(), ids=RESPONSE_OVERRIDES.keys())
def test_a_response_override_with_control_characters_is_refused(own, bucket, method, query):
    own.s3.put_object(Bucket=bucket, Key="o.bin", Body=b"override me")
    resp = own.raw.request(method, f"/{bucket}/o.bin", query)
    assert "x-injected" not in resp.headers, f"a header was injected: {resp.headers}"
    refused(resp, (400, "InvalidArgument"), (400, "InvalidRequest"))


# ---- upload ids and part numbers --------------------------------------------------------------


def test_upload_ids_that_are_not_ours_are_no_such_upload_and_touch_nothing(own, bucket):
    upload_id = create_upload(own, bucket, "k")
    part = upload_part(own, bucket, "k", upload_id, 1, b"first part")
    own.s3.put_object(Bucket=bucket, Key="copy-source", Body=b"source")
    other = unique_bucket("hostile-other")
    own.s3.create_bucket(Bucket=other)
    outside = files_outside(own.data_dir, bucket)
    bad_ids = [
        "../buckets", "../../buckets", "..", ".", "", "%00", "/", "\\", "0" * 32,
        upload_id.upper(), upload_id + "/../" + upload_id, "../uploads/" + upload_id,
        upload_id + "\x00", upload_id[:31], upload_id + "0", "x" * 5000,
        f"../objects/{bucket}", "../../../../../../etc",
    ]
    routes = [
        ("PUT", "k", "partNumber=2&uploadId={}", b"a part", {}),
        ("PUT", "k", "partNumber=2&uploadId={}", b"",
         {"x-amz-copy-source": f"/{bucket}/copy-source"}),
        ("POST", "k", "uploadId={}", complete_xml([part]), {}),
        ("GET", "k", "uploadId={}", b"", {}),
        ("DELETE", "k", "uploadId={}", b"", {}),
    ]
    with leaves_nothing(own, bucket):
        for bad in bad_ids:
            for method, key, query, body, headers in routes:
                resp = own.raw.request(method, f"/{bucket}/{key}", query.format(quoted(bad)),
                                       body, headers)
                refused(resp, (404, "NoSuchUpload"))
        # The real id, but for another key or bucket: not that upload (and not aborted).
        for method, key, query, body, headers in routes:
            for path in (f"/{bucket}/other-key", f"/{other}/k"):
                resp = own.raw.request(method, path, query.format(upload_id), body, headers)
                refused(resp, (404, "NoSuchUpload"))
    assert files_outside(own.data_dir, bucket) == outside
    for name in (bucket, other):
        assert status_of(own.s3.head_bucket(Bucket=name)) == 200
    own.s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id,
                                     MultipartUpload={"Parts": [part]})
    assert read_object(own, bucket, "k") == b"first part"


BAD_PART_NUMBERS = ["0", "-1", "10001", "4294967296", "4294967297", "99999999999999999999",
                    "1.5", "abc", "", " 1", "1 ", "1e3", "0x1", "１", "1%00"]


def test_part_numbers_out_of_range_are_invalid_argument(own, bucket):
    upload_id = create_upload(own, bucket, "k")
    first = upload_part(own, bucket, "k", upload_id, 1, b"first")
    own.s3.put_object(Bucket=bucket, Key="copy-source", Body=b"source")
    with leaves_nothing(own, bucket):
        for number in BAD_PART_NUMBERS:
            query = f"partNumber={quoted(number)}&uploadId={upload_id}"
            resp = own.raw.request("PUT", f"/{bucket}/k", query, b"a part")
            refused(resp, (400, "InvalidArgument"))
            resp = own.raw.request("PUT", f"/{bucket}/k", query, b"",
                                   {"x-amz-copy-source": f"/{bucket}/copy-source"})
            refused(resp, (400, "InvalidArgument"))
        resp = own.raw.request("PUT", f"/{bucket}/k", f"uploadId={upload_id}", b"no number")
        refused(resp, (400, "InvalidArgument"))
    assert parts_of(own, bucket, "k", upload_id) == [first]
    last = upload_part(own, bucket, "k", upload_id, 10000, b"last")
    own.s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id,
                                     MultipartUpload={"Parts": [last]})
    assert read_object(own, bucket, "k") == b"last"


BAD_COPY_RANGES = ["bytes=5-3", "bytes=0-6", "bytes=7-7", "bytes=abc", "bytes=-1", "bytes=0-",
                   "bytes=0-1,2-3", "items=0-1", "bytes=99999999999999999999-0", ""]


def copy_part_with_range(own: Own, bucket: str, upload_id: str, value: str) -> Response:
    return own.raw.request("PUT", f"/{bucket}/k", f"partNumber=1&uploadId={upload_id}",
                           headers={"x-amz-copy-source": f"/{bucket}/src",
                                    "x-amz-copy-source-range": value})


def test_bad_copy_source_ranges_are_invalid_argument(own, bucket):
    own.s3.put_object(Bucket=bucket, Key="src", Body=b"012345")
    upload_id = create_upload(own, bucket, "k")
    for value in BAD_COPY_RANGES:
        refused(copy_part_with_range(own, bucket, upload_id, value), (400, "InvalidArgument"))
    assert parts_of(own, bucket, "k", upload_id) == []
    resp = copy_part_with_range(own, bucket, upload_id, "bytes=1-4")
    assert resp.status == 200, resp
    own.s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts_of(own, bucket, "k",
                                                                        upload_id)})
    assert read_object(own, bucket, "k") == b"1234"


def test_bad_copy_source_ranges_leave_nothing_behind(own, bucket):
    own.s3.put_object(Bucket=bucket, Key="src", Body=b"012345")
    upload_id = create_upload(own, bucket, "k")
    with leaves_nothing(own, bucket):
        for value in BAD_COPY_RANGES:
            refused(copy_part_with_range(own, bucket, upload_id, value), (400, "InvalidArgument"))


# ---- CompleteMultipartUpload documents --------------------------------------------------------


def part_xml(number: Any, etag: str) -> str:
    return f"<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"


def complete_documents(one: dict, two: dict, foreign: dict) -> dict[str, tuple[bytes, set]]:
    p1, p2 = part_xml(1, one["ETag"]), part_xml(2, two["ETag"])
    root = "CompleteMultipartUpload"
    wrap = lambda inner: f"<{root}>{inner}</{root}>".encode()  # noqa: E731
    malformed = {(400, "MalformedXML")}
    return {
        "empty": (b"", malformed),
        "not-xml": (b"complete it, please", malformed),
        "unclosed": (f"<{root}>{p1}{p2}".encode(), malformed),
        "no-parts": (wrap(""), malformed),
        "self-closing": (f"<{root}/>".encode(), malformed),
        "part-named-twice": (wrap(p1 + p1 + p2), {(400, "InvalidPartOrder")}),
        "part-named-twice-other-etag": (wrap(p1 + part_xml(1, two["ETag"]) + p2),
                                        {(400, "InvalidPartOrder")}),
        "descending": (wrap(p2 + p1), {(400, "InvalidPartOrder")}),
        "part-not-uploaded": (wrap(p1 + p2 + part_xml(3, two["ETag"])), {(400, "InvalidPart")}),
        "etag-of-another-upload": (wrap(p1 + part_xml(2, foreign["ETag"])),
                                   {(400, "InvalidPart")}),
        "nested-10k": (wrap("<a>" * 10000 + "</a>" * 10000), malformed),
        "nested-300k-unclosed": (b"<a>" * 300000, malformed),
        "10001-parts": (wrap("".join(part_xml(n, one["ETag"]) for n in range(1, 10002))),
                        malformed),
        "over-1-mib": (wrap(p1 * 20000 + p2), {(413, "EntityTooLarge")}),
        "entity-expansion": (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            + wrap(part_xml(1, "&c;")), malformed | {(400, "InvalidPart")}),
        "external-entity": (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + wrap(part_xml(1, "&x;")), malformed | {(400, "InvalidPart")}),
        "part-number-0": (wrap(part_xml(0, one["ETag"])), malformed),
        "part-number-negative": (wrap(part_xml(-1, one["ETag"])), malformed),
        "part-number-huge": (wrap(part_xml(99999999999999999999, one["ETag"])), malformed),
        "part-number-text": (wrap(part_xml("one", one["ETag"])), malformed),
        "wrong-root": (f"<Delete>{p1}</Delete>".encode(), malformed),
        "not-utf8": (f"<{root}>".encode() + b"\xff\xfe" + f"</{root}>".encode(), malformed),
        "attribute": (f'<{root} foo="bar">{p1}</{root}>'.encode(), malformed),
        "two-etags": (wrap(f"<Part><PartNumber>1</PartNumber><ETag>{one['ETag']}</ETag>"
                           f"<ETag>{one['ETag']}</ETag></Part>"), malformed),
        "no-etag": (wrap("<Part><PartNumber>1</PartNumber></Part>"), malformed),
        "unknown-element": (wrap(p1 + "<Surprise/>"), malformed),
        "second-root": (wrap(p1) + f"<{root}/>".encode(), malformed),
    }


def test_malformed_complete_documents_are_refused_and_the_upload_survives(own, bucket):
    one_body, two_body = body_of(MIN_PART, "part one"), body_of(100, "part two")
    upload_id = create_upload(own, bucket, "k", Sse.s3())
    one = upload_part(own, bucket, "k", upload_id, 1, one_body)
    two = upload_part(own, bucket, "k", upload_id, 2, two_body)
    other_id = create_upload(own, bucket, "k")
    foreign = upload_part(own, bucket, "k", other_id, 2, body_of(200, "elsewhere"))
    with leaves_nothing(own, bucket):
        for name, (document, allowed) in complete_documents(one, two, foreign).items():
            resp = own.raw.request("POST", f"/{bucket}/k", f"uploadId={upload_id}", document)
            assert resp.status is not None, name
            refused(resp, *allowed)
    own.s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id,
                                     MultipartUpload={"Parts": [one, two]})
    assert read_object(own, bucket, "k") == one_body + two_body


@pytest.mark.parametrize("header", ["Content-MD5", "x-amz-checksum-crc32"])
def test_a_complete_document_that_does_not_match_its_digest_is_bad_digest(own, bucket, header):
    upload_id = create_upload(own, bucket, "k")
    part = upload_part(own, bucket, "k", upload_id, 1, b"the only part")
    document = complete_xml([part])
    digest = {"Content-MD5": content_md5, "x-amz-checksum-crc32": checksum_crc32}[header]
    with leaves_nothing(own, bucket):
        resp = own.raw.request("POST", f"/{bucket}/k", f"uploadId={upload_id}", document,
                               {header: digest(document + b" ")},
                               payload_hash=UNSIGNED_PAYLOAD)
        refused(resp, (400, "BadDigest"))


# ---- DeleteObjects documents ------------------------------------------------------------------


def test_malformed_delete_documents_delete_nothing(own, bucket):
    kept = ["a", "b/c", "../d"]
    for key in kept:
        own.s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    objects = lambda keys: "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)  # noqa: E731
    over = ["k%d" % i for i in range(1001 - len(kept))] + kept
    malformed = {(400, "MalformedXML")}
    documents = {
        "1001-keys": (f"<Delete>{objects(over)}</Delete>".encode(), malformed),
        "no-objects": (b"<Delete></Delete>", malformed),
        "quiet-only": (b"<Delete><Quiet>true</Quiet></Delete>", malformed),
        "quiet-not-boolean": (f"<Delete><Quiet>yes</Quiet>{objects(kept)}</Delete>".encode(),
                              malformed),
        "object-without-key": (b"<Delete><Object><VersionId>1</VersionId></Object></Delete>",
                               malformed),
        "two-keys-in-an-object": (f"<Delete><Object><Key>a</Key><Key>b/c</Key></Object>"
                                  f"</Delete>".encode(), malformed),
        "nested": (b"<Delete>" + b"<Object>" * 1000 + b"</Object>" * 1000 + b"</Delete>",
                   malformed),
        "unclosed": (f"<Delete>{objects(kept)}".encode(), malformed),
        "not-xml": (b"delete everything", malformed),
        "entity-expansion": (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "a">]>'
                             b"<Delete><Object><Key>&a;</Key></Object></Delete>", malformed),
        "wrong-root": (f"<CompleteMultipartUpload>{objects(kept)}</CompleteMultipartUpload>"
                       .encode(), malformed),
        "over-1-mib": (f"<Delete>{objects(['x' * 1100] * 1001)}</Delete>".encode(),
                       {(413, "EntityTooLarge")}),
    }
    with leaves_nothing(own, bucket):
        for name, (document, allowed) in documents.items():
            resp = own.raw.request("POST", f"/{bucket}", "delete", document,
                                   {"Content-MD5": content_md5(document)})
            refused(resp, *allowed)
        good = f"<Delete>{objects(kept)}</Delete>".encode()
        refused(own.raw.request("POST", f"/{bucket}", "delete", good),
                (400, "InvalidRequest"))
        refused(own.raw.request("POST", f"/{bucket}", "delete", good,
                                {"Content-MD5": content_md5(good + b" ")}), (400, "BadDigest"))
    for key in kept:
        assert read_object(own, bucket, key) == key.encode()


def test_delete_of_keys_that_look_like_paths_touches_only_objects(own, bucket):
    own.s3.put_object(Bucket=bucket, Key="kept", Body=b"kept")
    outside = files_outside(own.data_dir, bucket)
    keys = [f"../../buckets/{bucket}.json", "../../kms-config.json", "..", ".", "../kept",
            "/kept", "kept/"]
    document = ("<Delete>" + "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
                + "</Delete>").encode()
    with leaves_nothing(own, bucket):
        resp = own.raw.request("POST", f"/{bucket}", "delete", document,
                               {"Content-MD5": content_md5(document)})
        assert resp.status == 200, resp
    assert files_outside(own.data_dir, bucket) == outside
    assert read_object(own, bucket, "kept") == b"kept"


# ---- copy sources -----------------------------------------------------------------------------


def copy_source_cases(bucket: str) -> dict[str, tuple[str, Any]]:
    """name: (x-amz-copy-source, refusals allowed, or the key whose bytes the copy must hold)."""
    invalid = {(400, "InvalidArgument")}
    bad_bucket = {(400, "InvalidBucketName")}
    missing_key = {(404, "NoSuchKey")}
    return {
        "empty": ("", invalid),
        "slash": ("/", invalid),
        "bucket-only": (bucket, invalid),
        "bucket-and-slash": (f"/{bucket}/", invalid),
        "query-only": (f"?{bucket}/src", invalid),
        "missing-bucket": (f"{unique_bucket('nobody')}/src", {(404, "NoSuchBucket")}),
        "dot-dot-bucket": (f"/../{bucket}/src", bad_bucket),
        "dot-dot-into-buckets-dir": (f"../buckets/{bucket}.json", bad_bucket),
        "upper-case-bucket": (f"{bucket.upper()}/src", bad_bucket),
        "reserved-bucket": ("rustfs/src", bad_bucket),
        "arn": (f"arn:aws:s3:::{bucket}/src", bad_bucket),
        "long-bucket": ("b" * 64 + "/src", bad_bucket),
        "dot-dot-key-is-not-resolved": (f"{bucket}/x/../src", "x/../src"),
        "dot-dot-key-missing": (f"{bucket}/../{bucket}/src", missing_key),
        "encoded-dot-dot": (f"{bucket}/%2e%2e/src", missing_key),
        "key-of-1025-bytes": (f"{bucket}/" + "k" * 1025, missing_key | {(400, "KeyTooLongError")}),
        "nul": (f"{bucket}/src%00", missing_key),
        "bad-percent": (f"{bucket}/src%zz", missing_key),
        "lone-percent": (f"{bucket}/src%", missing_key),
        "invalid-utf8": (f"{bucket}/src%FF", missing_key),
        "double-slash-key": (f"{bucket}//src", missing_key),
        "encoded-separator": (f"{bucket}%2Fsrc", "src"),
        "encoded-bucket-letter": (f"%{ord(bucket[0]):02x}{bucket[1:]}/src", "src"),
        "leading-double-slash": (f"//{bucket}/src", "src"),
        "version-id-ignored": (f"{bucket}/src?versionId=null", "src"),
    }


def test_bad_copy_sources_are_refused_and_copy_nothing(own, bucket):
    own.s3.put_object(Bucket=bucket, Key="src", Body=b"the source")
    own.s3.put_object(Bucket=bucket, Key="x/../src", Body=b"the dot-dot source")
    upload_id = create_upload(own, bucket, "part-dst")
    for name, (source, expected) in copy_source_cases(bucket).items():
        headers = {"x-amz-copy-source": source}
        if isinstance(expected, set):
            with leaves_nothing(own, bucket):
                refused(own.raw.request("PUT", f"/{bucket}/dst", headers=headers), *expected)
                refused(own.raw.request("PUT", f"/{bucket}/part-dst",
                                        f"partNumber=1&uploadId={upload_id}", headers=headers),
                        *expected)
            continue
        resp = own.raw.request("PUT", f"/{bucket}/dst", headers=headers)
        assert resp.status == 200, f"{name}: {resp}"
        assert read_object(own, bucket, "dst") == read_object(own, bucket, expected), name
        own.s3.delete_object(Bucket=bucket, Key="dst")


# ---- object keys ------------------------------------------------------------------------------

LONGEST = "k" * 1022 + "é"   # 1024 bytes
TOO_LONG = "k" * 1023 + "é"  # 1025 bytes


def key_routes(bucket: str, key: str, upload_id: str) -> list[tuple[str, str, str, bytes, dict]]:
    """Every object route on one key: (method, target, query, body, headers)."""
    target = object_target(bucket, key)
    return [
        ("PUT", target, "", b"body", {}),
        ("PUT", target, "", b"", {"x-amz-copy-source": f"/{bucket}/src"}),
        ("GET", target, "", b"", {}),
        ("HEAD", target, "", b"", {}),
        ("DELETE", target, "", b"", {}),
        ("POST", target, "uploads", b"", {}),
        ("PUT", target, f"partNumber=1&uploadId={upload_id}", b"part", {}),
        ("GET", target, f"uploadId={upload_id}", b"", {}),
        ("POST", target, f"uploadId={upload_id}", complete_xml([{"PartNumber": 1,
                                                                   "ETag": '"x"'}]), {}),
        ("DELETE", target, f"uploadId={upload_id}", b"", {}),
    ]


def test_a_key_of_1025_bytes_is_key_too_long_on_every_route(own, bucket):
    assert len(LONGEST.encode()) == 1024 and len(TOO_LONG.encode()) == 1025
    own.s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    upload_id = create_upload(own, bucket, "src")
    with leaves_nothing(own, bucket):
        for method, target, query, body, headers in key_routes(bucket, TOO_LONG, upload_id):
            resp = own.raw.request(method, target, query, body, headers)
            refused(resp, (400, "KeyTooLongError"))
    # 1024 bytes is a key like any other on every route.
    own.s3.put_object(Bucket=bucket, Key=LONGEST, Body=b"longest")
    assert read_object(own, bucket, LONGEST) == b"longest"
    own.s3.copy_object(Bucket=bucket, Key=LONGEST, CopySource={"Bucket": bucket, "Key": "src"})
    assert read_object(own, bucket, LONGEST) == b"source"
    upload_multipart(own.s3, bucket, LONGEST, [b"multipart"], Sse.none())
    assert read_object(own, bucket, LONGEST) == b"multipart"
    assert [o["Key"] for o in own.s3.list_objects_v2(Bucket=bucket)["Contents"]] == [
        LONGEST, "src"]
    assert status_of(own.s3.delete_object(Bucket=bucket, Key=LONGEST)) == 204


def path_keys(bucket: str) -> list[str]:
    return [
        "..", ".", "../x", "./.", "../../buckets/" + bucket + ".json", "../../kms-config.json",
        "../../../../../../tmp/escape", "a/../../b", "\x00", "a\x00b", "..\\..\\x", "//", "a//b//",
        "é/../é", "%2e%2e", "%00", " .. ", "日本/../語", "\u202e..txt", "\ufeff",
    ]


def test_keys_made_of_dot_segments_nul_and_slashes_are_plain_object_names(own, bucket):
    outside = files_outside(own.data_dir, bucket)
    keys = path_keys(bucket)
    bodies = {key: f"body of {key!r}".encode() for key in keys}
    with leaves_nothing(own, bucket):
        for key, data in bodies.items():
            resp = own.raw.request("PUT", object_target(bucket, key), body=data,
                                   headers=Sse.c(CUSTOMER).put_headers())
            assert resp.status == 200, f"{key!r}: {resp}"
        for key, data in bodies.items():
            assert read_object(own, bucket, key, Sse.c(CUSTOMER)) == data, f"{key!r}"
        listed = [o["Key"] for o in own.s3.list_objects_v2(Bucket=bucket)["Contents"]]
        assert listed == sorted(keys, key=lambda k: k.encode()), listed
        # Files only in the bucket's directory, none anywhere else.
        assert files_outside(own.data_dir, bucket) == outside
        # The same names written another way on the wire are the same objects: ``%2e%2e`` is
        # ``..`` (the signature is over the decoded name, as S3 does).
        for wire, key in ((f"/{bucket}/%2e%2e", ".."), (f"/{bucket}/%2E", "."),
                          (f"/{bucket}/a%2F%2E%2E%2F%2E%2E%2Fb", "a/../../b")):
            request = own.raw.sign("GET", object_target(bucket, key), "", b"",
                                   Sse.c(CUSTOMER).read_headers())
            resp = send_http("wire", own.server.port, "GET", wire, None, request.headers)
            assert resp.status == 200 and resp.body == bodies[key], f"{wire}: {resp}"
        for key in keys:
            assert status_of(own.s3.delete_object(Bucket=bucket, Key=key)) == 204
    assert files_outside(own.data_dir, bucket) == outside


@pytest.mark.parametrize("wire", ["a%FFb", "a%", "a%zz", "%E9t%E9"])
def test_a_key_that_is_not_utf8_or_not_percent_encoding_stores_nothing(own, bucket, wire):
    # A client signing what it sends cannot address such a name; whatever the answer, it is a
    # 4xx and nothing is stored.
    with leaves_nothing(own, bucket):
        resp = own.raw.request("PUT", f"/{bucket}/{wire}", body=b"never stored")
        refused(resp, (403, "SignatureDoesNotMatch"), (400, "InvalidURI"),
                (400, "InvalidArgument"), (400, "InvalidRequest"))


BAD_LISTINGS = {
    "max-keys-negative": "list-type=2&max-keys=-1",
    "max-keys-text": "list-type=2&max-keys=ten",
    "max-keys-overflow": "list-type=2&max-keys=99999999999999999999999",
    "list-type-3": "list-type=3",
    "encoding-type-xml": "list-type=2&encoding-type=xml",
    "token-not-base64": "list-type=2&continuation-token=%25%25%25",
    "token-not-utf8": "list-type=2&continuation-token=" + base64.urlsafe_b64encode(
        b"\xff\xfe").decode().rstrip("="),
}


@pytest.mark.parametrize("query", BAD_LISTINGS.values(), ids=BAD_LISTINGS.keys())
def test_bad_listing_parameters_are_invalid_argument(own, bucket, query):
    own.s3.put_object(Bucket=bucket, Key="k", Body=b"k")
    refused(own.raw.request("GET", f"/{bucket}", query), (400, "InvalidArgument"))


def test_odd_listing_parameters_never_5xx(own, bucket):
    # Control characters are only valid XML URL-encoded (encoding-type=url), as on S3.
    own.s3.put_object(Bucket=bucket, Key="a/b", Body=b"k")
    own.s3.put_object(Bucket=bucket, Key="\x01/\x00", Body=b"k")
    for query in ["list-type=2&max-keys=0", "list-type=2&max-keys=1000000",
                  "list-type=2&prefix=" + "p" * 5000,
                  "encoding-type=url&list-type=2&delimiter=%00&prefix=%01&start-after=%02",
                  "encoding-type=url&delimiter=%01&marker=%00",
                  "list-type=2&start-after=" + "%F0%9F%98%80" * 100, "marker=..%2F..",
                  "list-type=2&delimiter=%2F%2F&prefix=a%2F", "prefix=%FF",
                  "list-type=2&fetch-owner=maybe", "list-type=2&delimiter=" + "d" * 5000]:
        resp = own.raw.request("GET", f"/{bucket}", query)
        assert resp.status is not None and resp.status < 500, f"{query[:60]}: {resp}"
        if resp.status == 200:
            if "encoding-type=url" in query:
                ET.fromstring(resp.body)
        else:
            refused(resp, (400, "InvalidArgument"), (403, "SignatureDoesNotMatch"))


# ---- kill -9 while object writes are in flight ------------------------------------------------

SEGMENT_NAME = re.compile(rb"[0-9a-f]{32}\.seg")


def orphan_segments(data_dir: Path) -> list[Path]:
    """Segment files that no record in their own directory names (object records sit beside
    their segments in ``objects/<bucket>/``, part records in ``uploads/<id>/``)."""
    orphans = []
    for folder in {p.parent for p in data_dir.rglob("*.seg")}:
        named: set[bytes] = set()
        for record in folder.glob("*.json"):
            named |= set(SEGMENT_NAME.findall(record.read_bytes()))
        orphans += [p for p in folder.glob("*.seg") if p.name.encode() not in named]
    return sorted(orphans)


def leftover_temporaries(data_dir: Path) -> list[Path]:
    return sorted(p for sub in ("objects", "uploads") for p in (data_dir / sub).rglob(".*.tmp"))


class InFlight:
    """A request sent on a raw socket a piece at a time; the answer, if any, is read later."""

    def __init__(self, server: Any, method: str, target: str, headers: dict):
        self.sock = connect(server, timeout=60)
        self.sock.sendall(head_bytes(method, target, headers, host(server)))
        self.method = method
        self.status: int | None = None

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def acknowledged(self) -> int:
        """Waits for the answer of a live server."""
        self.status, _, body = read_response(self.sock, self.method)
        assert self.status == 200, f"{self.status}: {body[:300]!r}"
        return self.status

    def answer(self) -> int | None:
        """The status the server sent before it died, or None."""
        if self.status is not None:
            return self.status
        try:
            self.sock.settimeout(10)
            status, _, _ = read_response(self.sock, self.method)
            return status
        except CONNECTION_ERRORS:
            return None
        finally:
            self.sock.close()


def new_segment(folder: Path, known: set[Path], at_least: int) -> Path | None:
    for path in folder.glob("*.seg") if folder.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            if path not in known and path.stat().st_size >= at_least:
                return path
    return None


def wait_for_segment(folder: Path, known: set[Path], at_least: int) -> None:
    assert wait_until(lambda: new_segment(folder, known, at_least) is not None, timeout=60,
                      step=0.002), f"no new segment of {at_least} bytes in {folder}"


def restart_after_kill(server: Any) -> None:
    kill9(server)
    server.start()
    assert not orphan_segments(server.data_dir), orphan_segments(server.data_dir)
    assert not leftover_temporaries(server.data_dir), leftover_temporaries(server.data_dir)


def crash_server(spawn_server, name: str) -> Own:
    return Own.of(spawn_server(name, args=("--maintenance-interval", "3600")))


CRASH_MODES = {"sse-kms": lambda key: Sse.kms(key), "sse-c": lambda key: Sse.c(CUSTOMER)}


@pytest.mark.parametrize("mode", CRASH_MODES, ids=CRASH_MODES.keys())
def test_kill_9_during_a_large_put_leaves_the_old_object_or_the_new_one_whole(spawn_server,
                                                                              mode):
    own = crash_server(spawn_server, f"crash-put-{mode}")
    sse = CRASH_MODES[mode](own.new_key("crash put"))
    own.s3.create_bucket(Bucket="crash")
    folder = own.data_dir / "objects" / "crash"
    old = body_of(3 * PACKAGE + 1, "old version")
    own.s3.put_object(Bucket="crash", Key="big", Body=old, **sse.put_args())
    versions = {"old": old}
    current = "old"
    outcomes = []
    # Rounds: mid-body; whole body written, unacknowledged; acknowledged; mid-body again.
    for round_no in range(4):
        new = body_of(16 * MIB + round_no, f"new version {round_no}")
        versions[f"new-{round_no}"] = new
        known = set(folder.glob("*.seg"))
        head = signed(own, "PUT", object_target("crash", "big"), "",
                      {"Content-Length": str(len(new)), **sse.put_headers()},
                      hashlib.sha256(new).hexdigest()).headers
        flight = InFlight(own.server, "PUT", object_target("crash", "big"), head)
        half = len(new) // 2
        flight.send(new[:half])
        if round_no % 3 == 0:
            # Mid-body: the server has written part of the new segment, and cannot have
            # committed anything (half of the body was never sent).
            wait_for_segment(folder, known, MIB)
        else:
            # The whole body is sent and written: the kill falls before, during or after the
            # commit; or after the answer.
            flight.send(new[half:])
            wait_for_segment(folder, known, len(new))
            if round_no == 2:
                flight.acknowledged()
        restart_after_kill(own.server)
        status = flight.answer()
        got = read_object(own, "crash", "big", sse)
        found = next((name for name, body in versions.items() if body == got), None)
        if round_no % 3 == 0:
            assert status is None and found == current, (
                f"round {round_no}: a PUT killed mid-body; got {found} (status {status}), "
                f"expected {current}")
        else:
            assert found in (current, f"new-{round_no}"), (
                f"round {round_no}: got {found or f'{len(got)} unknown bytes'}")
            if status == 200:
                assert found == f"new-{round_no}", "an acknowledged PUT is lost"
            current = found
        outcomes.append((status, found))
        keys = [o["Key"] for o in own.s3.list_objects_v2(Bucket="crash")["Contents"]]
        assert keys == ["big"], keys
    print(f"put crash outcomes (status, version): {outcomes}")
    # A PUT of a new key killed mid-body leaves no object.
    known = set(folder.glob("*.seg"))
    new = body_of(8 * MIB, "never")
    head = signed(own, "PUT", object_target("crash", "never"), "",
                  {"Content-Length": str(len(new)), **sse.put_headers()}).headers
    flight = InFlight(own.server, "PUT", object_target("crash", "never"), head)
    flight.send(new[:len(new) // 2])
    wait_for_segment(folder, known, MIB)
    restart_after_kill(own.server)
    assert flight.answer() is None
    boto_error(lambda: own.s3.head_object(Bucket="crash", Key="never", **sse.read_args()), 404,
               "404")


def test_kill_9_during_upload_part_leaves_the_upload_completable(spawn_server):
    own = crash_server(spawn_server, "crash-part")
    sse = Sse.kms(own.new_key("crash part"))
    own.s3.create_bucket(Bucket="crash")
    upload_id = create_upload(own, "crash", "mp", sse)
    folder = own.data_dir / "uploads" / upload_id
    one = body_of(MIN_PART, "part one")
    first = upload_part(own, "crash", "mp", upload_id, 1, one, sse)

    def stream_part(number: int, body: bytes, whole: bool, ack: bool = False) -> InFlight:
        query = f"partNumber={number}&uploadId={upload_id}"
        known = set(folder.glob("*.seg"))
        head = signed(own, "PUT", "/crash/mp", query,
                      {"Content-Length": str(len(body)), **sse.read_headers()}).headers
        flight = InFlight(own.server, "PUT", f"/crash/mp?{query}", head)
        flight.send(body[:len(body) // 2])
        if whole:
            flight.send(body[len(body) // 2:])
            wait_for_segment(folder, known, len(body))
            if ack:
                flight.acknowledged()
        else:
            wait_for_segment(folder, known, MIB)
        return flight

    # A new part killed mid-body: not there; the upload is as it was.
    two = body_of(MIN_PART + 3, "part two")
    flight = stream_part(2, two, whole=False)
    restart_after_kill(own.server)
    assert flight.answer() is None
    assert parts_of(own, "crash", "mp", upload_id) == [first]

    # Part 1 uploaded again, killed mid-body: the first upload of part 1 stays.
    flight = stream_part(1, body_of(MIN_PART, "part one again"), whole=False)
    restart_after_kill(own.server)
    assert flight.answer() is None
    assert parts_of(own, "crash", "mp", upload_id) == [first]

    # Part 2 whole, killed around its commit: there or not, and if acknowledged, there.
    flight = stream_part(2, two, whole=True)
    restart_after_kill(own.server)
    status = flight.answer()
    parts = parts_of(own, "crash", "mp", upload_id)
    assert [p["PartNumber"] for p in parts] in ([1], [1, 2]), parts
    if status == 200:
        assert len(parts) == 2, "an acknowledged part is lost"
    if len(parts) == 1:
        parts.append(upload_part(own, "crash", "mp", upload_id, 2, two, sse))
    # Part 3 acknowledged, then the kill: it is there.
    three = body_of(PACKAGE + 1, "part three")
    flight = stream_part(3, three, whole=True, ack=True)
    restart_after_kill(own.server)
    assert flight.answer() == 200
    parts = parts_of(own, "crash", "mp", upload_id)
    assert [p["PartNumber"] for p in parts] == [1, 2, 3], parts
    own.s3.complete_multipart_upload(Bucket="crash", Key="mp", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    assert read_object(own, "crash", "mp", sse) == one + two + three
    assert not orphan_segments(own.data_dir)


def test_kill_9_during_complete_leaves_the_object_whole_or_the_upload_completable(
        spawn_server):
    own = crash_server(spawn_server, "crash-complete")
    sse = Sse.c(CUSTOMER)
    own.s3.create_bucket(Bucket="crash")
    folder = own.data_dir / "objects" / "crash"
    old = body_of(PACKAGE + 5, "old")
    own.s3.put_object(Bucket="crash", Key="mp", Body=old, **sse.put_args())
    outcomes = []
    # Rounds: killed as the parts are linked into the bucket (twice), and once acknowledged.
    for round_no in range(3):
        bodies = [body_of(MIN_PART, f"one {round_no}"), body_of(MIN_PART, f"two {round_no}"),
                  body_of(PACKAGE + round_no, f"three {round_no}")]
        upload_id = create_upload(own, "crash", "mp", sse)
        parts = [upload_part(own, "crash", "mp", upload_id, n, body, sse)
                 for n, body in enumerate(bodies, start=1)]
        known = set(folder.glob("*.seg"))
        document = complete_xml(parts)
        head = signed(own, "POST", "/crash/mp", f"uploadId={upload_id}",
                      {"Content-Length": str(len(document))},
                      hashlib.sha256(document).hexdigest()).headers
        flight = InFlight(own.server, "POST", f"/crash/mp?uploadId={upload_id}", head)
        flight.send(document)
        # The completion links the parts into the bucket before its record: kill then (or
        # later, if it was quicker than this poll).
        if round_no == 2:
            flight.acknowledged()
        else:
            wait_until(lambda: new_segment(folder, known, 0) is not None, timeout=30,
                       step=0.001)
        restart_after_kill(own.server)
        status = flight.answer()
        got = read_object(own, "crash", "mp", sse)
        uploads = [u["UploadId"] for u in
                   own.s3.list_multipart_uploads(Bucket="crash").get("Uploads", [])]
        whole = b"".join(bodies)
        assert got in (old, whole), f"round {round_no}: {len(got)} bytes, neither version"
        if status == 200:
            assert got == whole, "an acknowledged completion is lost"
        if got == old:
            # Not completed: the upload is there, whole, and completes now.
            assert upload_id in uploads, f"round {round_no}: neither object nor upload"
            assert parts_of(own, "crash", "mp", upload_id) == parts
            own.s3.complete_multipart_upload(Bucket="crash", Key="mp", UploadId=upload_id,
                                             MultipartUpload={"Parts": parts})
            assert read_object(own, "crash", "mp", sse) == whole
        elif upload_id in uploads:
            # Completed, but the upload was not yet removed: it must still be coherent (its
            # parts listed), and aborting it must not hurt the object.
            assert parts_of(own, "crash", "mp", upload_id) == parts
            own.s3.abort_multipart_upload(Bucket="crash", Key="mp", UploadId=upload_id)
            assert read_object(own, "crash", "mp", sse) == whole
        outcomes.append((status, got == whole, upload_id in uploads))
        old = whole
        assert not orphan_segments(own.data_dir)
    print(f"complete crash outcomes (status, completed, upload left): {outcomes}")


def test_kill_9_during_copy_leaves_the_old_destination_or_the_copy_whole(spawn_server):
    own = crash_server(spawn_server, "crash-copy")
    key_id = own.new_key("crash copy")
    own.s3.create_bucket(Bucket="crash")
    folder = own.data_dir / "objects" / "crash"
    source = body_of(24 * MIB, "copy source")
    own.s3.put_object(Bucket="crash", Key="src", Body=source, **Sse.kms(key_id).put_args())
    old = body_of(100, "old destination")
    own.s3.put_object(Bucket="crash", Key="dst", Body=old, **Sse.c(CUSTOMER).put_args())
    outcomes = []
    for round_no in range(3):
        known = set(folder.glob("*.seg"))
        headers = {"x-amz-copy-source": "/crash/src", **Sse.c(CUSTOMER).put_headers()}
        head = signed(own, "PUT", "/crash/dst", "", headers, EMPTY_SHA256).headers
        flight = InFlight(own.server, "PUT", "/crash/dst", head)
        # Kill once the copy has started writing (twice), or once it is acknowledged.
        if round_no < 2:
            wait_until(lambda: new_segment(folder, known, 1) is not None, timeout=60,
                       step=0.001)
        else:
            flight.acknowledged()
        restart_after_kill(own.server)
        status = flight.answer()
        got = read_object(own, "crash", "dst", Sse.c(CUSTOMER))
        assert got in (old, source), f"round {round_no}: {len(got)} bytes, neither version"
        if status == 200:
            assert got == source, "an acknowledged copy is lost"
        outcomes.append((status, got == source))
        assert read_object(own, "crash", "src", Sse.none()) == source
        if got == source:
            own.s3.put_object(Bucket="crash", Key="dst", Body=old, **Sse.c(CUSTOMER).put_args())
    print(f"copy crash outcomes (status, copied): {outcomes}")


# ---- concurrency --------------------------------------------------------------------------------

WRITERS = 16
READERS = 8
WRITES_EACH = 20


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    reads: int = 0
    writes: int = 0
    problems: list = field(default_factory=list)

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


def test_16_clients_overwriting_one_key_while_others_read_it(spawn_server):
    own = Own.of(spawn_server("hostile-overwrite"))
    key_id = own.kms_bucket("hot")
    bodies = [body_of(PACKAGE * (1 + i % 4) + 97 * i, f"writer {i}") for i in range(WRITERS)]
    digests = {hashlib.sha256(b).hexdigest(): i for i, b in enumerate(bodies)}
    own.s3.put_object(Bucket="hot", Key="k", Body=bodies[0])
    tally = Tally()
    done = threading.Event()

    def writer(index: int) -> None:
        raw = own.raw
        for _ in range(WRITES_EACH):
            try:
                resp = raw.request("PUT", "/hot/k", body=bodies[index])
            except CONNECTION_ERRORS as err:
                tally.problem(f"writer {index}: {err!r}")
                continue
            if resp.status != 200:
                tally.problem(f"writer {index}: {resp}")
            with tally.lock:
                tally.writes += 1

    def reader() -> None:
        while not done.is_set():
            try:
                got = own.raw.fetch("GET", "/hot/k")
            except CONNECTION_ERRORS as err:
                tally.problem(f"reader: {err!r}")
                continue
            digest = hashlib.sha256(got.response.body).hexdigest()
            if got.response.status != 200 or not got.complete or digest not in digests:
                tally.problem(f"reader: status {got.response.status}, complete "
                              f"{got.complete}, {len(got.response.body)} bytes "
                              f"{got.response.body[:100]!r}")
            with tally.lock:
                tally.reads += 1

    writers = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(WRITERS)]
    readers = [threading.Thread(target=reader, daemon=True) for _ in range(READERS)]
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join(timeout=600)
        assert not thread.is_alive(), "a writer hangs"
    done.set()
    for thread in readers:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a reader hangs"
    assert tally.writes == WRITERS * WRITES_EACH
    assert tally.reads > 0
    assert not tally.problems, (f"{len(tally.problems)} bad answers of {tally.reads} reads and "
                                f"{tally.writes} writes:\n" + "\n".join(tally.problems[:10]))
    final = read_object(own, "hot", "k")
    assert hashlib.sha256(final).hexdigest() in digests
    assert wait_until(lambda: len(list((own.data_dir / "objects" / "hot").glob("*.seg"))) == 1,
                      timeout=SETTLE), "overwritten segments are left"


class SlowReader:
    """A GET whose client reads a little and then stops, with a small receive buffer, so that
    the server is still inside the first part of the object when the client pauses."""

    def __init__(self, own: Own, target: str, headers: dict | None = None):
        request = own.raw.sign("GET", target, "", b"", headers or {})
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * KIB)
        self.sock.settimeout(60)
        self.sock.connect(("127.0.0.1", own.server.port))
        self.sock.sendall(head_bytes("GET", target, request.headers, host(own.server)))
        self.answer = http.client.HTTPResponse(self.sock, method="GET")
        self.answer.begin()
        self.length = int(self.answer.getheader("content-length"))

    def read(self, size: int) -> bytes:
        return self.answer.read(size)

    def rest(self) -> bytes:
        got = bytearray()
        try:
            while chunk := self.answer.read(MIB):
                got += chunk
        except (http.client.IncompleteRead, OSError) as err:
            got += getattr(err, "partial", b"")
        finally:
            self.sock.close()
        return bytes(got)


@pytest.mark.parametrize("change", ["overwrite", "delete"])
def test_a_get_that_started_before_an_overwrite_or_delete_returns_the_whole_old_object(
        spawn_server, change):
    own = Own.of(spawn_server(f"hostile-read-{change}"))
    own.s3.create_bucket(Bucket="read")
    parts = [body_of(12 * MIB, "part one"), body_of(MIB + 5, "part two")]
    sse = Sse.kms(own.new_key("read"))
    upload_multipart(own.s3, "read", "mp", parts, sse)
    whole = b"".join(parts)
    reader = SlowReader(own, "/read/mp")
    assert reader.answer.status == 200 and reader.length == len(whole)
    got = reader.read(PACKAGE)
    if change == "overwrite":
        own.s3.put_object(Bucket="read", Key="mp", Body=b"the new version")
    else:
        assert status_of(own.s3.delete_object(Bucket="read", Key="mp")) == 204
    got += reader.rest()
    assert len(got) == len(whole), (
        f"the GET was cut after {len(got)} of {len(whole)} bytes (status 200)")
    assert got == whole


# ---- secrets ------------------------------------------------------------------------------------


def data_keys_of(own: Own) -> list[bytes]:
    """The data keys of every KMS-encrypted object and upload on disk: each record's sealed key,
    unsealed through the admin API with the object's encryption context (its ARN and the
    caller's pairs)."""
    keys = []
    records = list((own.data_dir / "objects").rglob("*.json"))
    records += list((own.data_dir / "uploads").rglob("upload.json"))
    for path in records:
        record = json.loads(path.read_bytes())
        encryption = record.get("encryption", {})
        if encryption.get("kind") != "kms":
            continue
        bucket = record.get("bucket") or path.parent.name
        context = {"aws:s3:arn": f"arn:aws:s3:::{bucket}/{record['key']}",
                   **encryption.get("context", {})}
        blob = base64.b64encode(bytes.fromhex(encryption["wrapped_key"])).decode()
        answer = ok(own.admin.post("/kms/decrypt", {"ciphertext_blob": blob,
                                                    "encryption_context": context}))
        keys.append(base64.b64decode(answer["plaintext"]))
    return keys


def test_sse_c_keys_and_object_data_keys_are_in_no_log_and_no_file(spawn_server):
    own = Own.of(spawn_server("hostile-secrets", args=("--log-level", "trace")))
    s3, raw = own.s3, own.raw
    key_id = own.new_key("secrets")
    s3.create_bucket(Bucket="secrets")
    c1, c2 = Sse.c(CUSTOMER), Sse.c(OTHER_CUSTOMER)
    kms = Sse.kms(key_id, context={"department": "finance"})
    data = body_of(2 * PACKAGE + 3, "secret object")
    errors: list[Response] = []

    # SSE-C: every route that takes the key, right and wrong.
    s3.put_object(Bucket="secrets", Key="c1", Body=data, **c1.put_args())
    assert raw.request("PUT", "/secrets/c1-raw", body=data, headers=c1.put_headers()).status == 200
    assert read_object(own, "secrets", "c1", c1) == data
    s3.head_object(Bucket="secrets", Key="c1", **c1.read_args())
    s3.get_object(Bucket="secrets", Key="c1", Range="bytes=5-70000", **c1.read_args())
    errors.append(raw.request("GET", "/secrets/c1", headers=c2.read_headers()))
    bad_md5 = {**c1.read_headers(), "x-amz-server-side-encryption-customer-key-MD5": c2.key_md5}
    errors.append(raw.request("GET", "/secrets/c1", headers=bad_md5))
    short = base64.b64encode(CUSTOMER[:31]).decode()
    errors.append(raw.request("PUT", "/secrets/short", body=b"x", headers={
        **c1.put_headers(), "x-amz-server-side-encryption-customer-key": short}))
    errors.append(raw.request("PUT", "/secrets/mixed", body=b"x", headers={
        **c1.put_headers(), "x-amz-server-side-encryption": "aws:kms"}))
    s3.copy_object(Bucket="secrets", Key="c1-to-c2", CopySource={"Bucket": "secrets", "Key": "c1"},
                   **c1.copy_source_args(), **c2.put_args())
    s3.copy_object(Bucket="secrets", Key="c1-to-kms", CopySource={"Bucket": "secrets", "Key": "c1"},
                   **c1.copy_source_args(), **kms.put_args())
    errors.append(raw.request("PUT", "/secrets/wrong-copy", headers={
        "x-amz-copy-source": "/secrets/c1", **c2.read_headers(prefix=COPY_SOURCE_SSE_C)}))
    upload_multipart(s3, "secrets", "c2-multipart", [body_of(MIN_PART, "mp"), data], c2)
    open_c = create_upload(own, "secrets", "c2-open", c2)
    upload_part(own, "secrets", "c2-open", open_c, 1, data, c2)
    s3.upload_part_copy(Bucket="secrets", Key="c2-open", UploadId=open_c, PartNumber=2,
                        CopySource={"Bucket": "secrets", "Key": "c1"}, **c1.copy_source_args(),
                        **c2.read_args())
    errors.append(raw.request("PUT", "/secrets/c2-open", f"partNumber=3&uploadId={open_c}",
                              body=b"x", headers=c1.read_headers()))
    chunked = chunked_request(own, "/secrets/c1-chunked", "", data,
                              headers=c1.put_headers())
    assert send_chunked(own, chunked).status == 200

    # KMS: SSE-KMS with a context, SSE-S3, multipart, an upload left open, a copy.
    s3.put_object(Bucket="secrets", Key="kms", Body=data, **kms.put_args())
    s3.put_object(Bucket="secrets", Key="s3", Body=data, **Sse.s3().put_args())
    upload_multipart(s3, "secrets", "kms-multipart", [body_of(MIN_PART, "kmp"), data], kms)
    open_kms = create_upload(own, "secrets", "kms-open", Sse.s3())
    upload_part(own, "secrets", "kms-open", open_kms, 1, data)
    s3.copy_object(Bucket="secrets", Key="kms-to-s3", CopySource={"Bucket": "secrets",
                                                                  "Key": "kms"},
                   **Sse.s3().put_args())
    # A control: an unencrypted object's marker is found by the same scan.
    marker = b"hostile-secrets-control-" + uuid.uuid4().hex.encode()
    s3.put_object(Bucket="secrets", Key="plain", Body=marked(marker, 3 * PACKAGE))

    own.server.restart()
    for key, sse in (("c1", c1), ("c1-to-c2", c2), ("c2-multipart", c2), ("kms", kms),
                     ("kms-multipart", kms), ("c1-chunked", c1)):
        read_object(own, "secrets", key, sse)

    for resp in errors:
        assert 400 <= resp.status < 500, resp
    data_keys = data_keys_of(own)
    assert len(data_keys) >= 6, f"only {len(data_keys)} data keys found in the records"
    secrets = {"SSE-C key one": CUSTOMER, "SSE-C key two": OTHER_CUSTOMER,
               **{f"data key {i}": k for i, k in enumerate(data_keys)}}
    places = {f"server log {own.server.log_path.name}": own.server.log_path.read_bytes()}
    for path in sorted(p for p in own.data_dir.rglob("*") if p.is_file()):
        places[str(path.relative_to(own.data_dir))] = path.read_bytes()
    found = []
    for label, secret in secrets.items():
        for form in forms(secret):
            found += [f"{label} ({form[:10]!r}...) in {place}"
                      for place, content in places.items() if form in content]
            found += [f"{label} ({form[:10]!r}...) in the answer {resp}"
                      for resp in errors if form in resp.body]
    # Not even the SSE-C keys' MD5s are stored (docs/security.md).
    for sse in (c1, c2):
        found += [f"the MD5 of an SSE-C key in {place}" for place, content in places.items()
                  if not place.startswith("server log") and sse.key_md5.encode() in content]
    assert not found, "\n".join(found[:20])
    assert files_containing(own.data_dir / "objects", marker), "the scan finds nothing at all"
    print(f"scanned {len(places)} files and the log for {len(secrets)} keys "
          f"({len(data_keys)} data keys); answers of {len(errors)} refused requests")


# ---- slow and vanishing clients -----------------------------------------------------------------


def stall(server: Any, method: str, target: str, headers: dict, sent: bytes,
          result: dict, name: str) -> None:
    """Sends a head and part of the body, then nothing; records the answer (or the error)."""
    try:
        sock = connect(server, timeout=120)
        try:
            sock.sendall(head_bytes(method, target, headers, host(server)) + sent)
            result[name] = as_response(name, method, target, read_response(sock, method))
        finally:
            sock.close()
    except Exception as err:  # noqa: BLE001 - judged by the test
        result[name] = err


def test_a_body_that_stops_midway_is_request_timeout_and_stores_nothing(own, bucket):
    upload_id = create_upload(own, bucket, "part")
    declared = 4 * MIB
    plain = signed(own, "PUT", f"/{bucket}/put", "", {"Content-Length": str(declared)}).headers
    part_query = f"partNumber=1&uploadId={upload_id}"
    part = signed(own, "PUT", f"/{bucket}/part", part_query,
                  {"Content-Length": str(declared)}).headers
    chunked = chunked_request(own, f"/{bucket}/chunked", "", body_of(declared, "stalled"))
    body = chunked.body()
    chunked_head = {**chunked.request.headers, "Content-Length": str(len(body))}
    result: dict = {}
    with leaves_nothing(own, bucket):
        threads = [
            threading.Thread(target=stall, args=(own.server, "PUT", f"/{bucket}/put", plain,
                                                 b"p" * 300 * KIB, result, "put")),
            threading.Thread(target=stall, args=(own.server, "PUT",
                                                 f"/{bucket}/part?{part_query}", part,
                                                 b"q" * 300 * KIB, result, "part")),
            threading.Thread(target=stall, args=(own.server, "PUT", f"/{bucket}/chunked",
                                                 chunked_head, body[:PACKAGE // 2], result,
                                                 "chunked")),
        ]
        for thread in threads:
            thread.start()
        # Others are served meanwhile.
        own.s3.put_object(Bucket=bucket, Key="served", Body=b"served")
        assert read_object(own, bucket, "served") == b"served"
        own.s3.delete_object(Bucket=bucket, Key="served")
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), "a stalled request was neither answered nor closed"
        for name in ("put", "part", "chunked"):
            resp = result[name]
            assert isinstance(resp, Response), f"{name}: no answer ({resp!r})"
            # S3 answers 400 RequestTimeout; the README speaks of 408.
            refused(resp, (400, "RequestTimeout"), (408, "RequestTimeout"))


def test_a_connection_reset_mid_body_leaves_no_segment_behind(spawn_server):
    own = Own.of(spawn_server("hostile-reset"))
    own.s3.create_bucket(Bucket="reset")
    upload_id = create_upload(own, "reset", "part")
    before = stored_files(own.data_dir)
    declared = 8 * MIB
    for target, path, query, folder in (
            ("/reset/put", "/reset/put", "", own.data_dir / "objects" / "reset"),
            (f"/reset/part?partNumber=1&uploadId={upload_id}", "/reset/part",
             f"partNumber=1&uploadId={upload_id}", own.data_dir / "uploads" / upload_id)):
        known = set(folder.glob("*.seg")) if folder.is_dir() else set()
        sse = {} if query else Sse.s3().put_headers()  # an upload part names no encryption
        head = signed(own, "PUT", path, query, {"Content-Length": str(declared), **sse}).headers
        sock = connect(own.server, timeout=60)
        sock.sendall(head_bytes("PUT", target, head, host(own.server)) + b"r" * MIB)
        # The server has begun writing the segment when the client goes away.
        wait_for_segment(folder, known, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    alive(own)
    boto_error(lambda: own.s3.head_object(Bucket="reset", Key="put"), 404, "404")
    assert own.s3.list_parts(Bucket="reset", Key="part", UploadId=upload_id).get("Parts",
                                                                                  []) == []
    left: list = []

    def settled() -> bool:
        left[:] = sorted(set(stored_files(own.data_dir)) - set(before))
        return not left

    assert wait_until(settled, timeout=SETTLE), f"left behind after {SETTLE}s: {left}"
