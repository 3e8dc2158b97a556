"""Plumbing of the hardening tests (issue 7: ``test_crash``, ``test_concurrency``,
``test_limits``, ``test_auth_edges``, ``test_secrets``): killing a server, raw sockets, signing
requests with botocore that are then sent in unusual shapes, identity files of every action.

Everything here works on servers the tests start themselves (``spawn_server``) on 127.0.0.1.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from conftest import ACTIONS
from kms_clients import ADMIN_PREFIX, REGION, BotocoreClient, Credentials, Response
from s3_clients import S3Raw

# Every action of API.md §2 and README "Identities file": the KMS ones as conftest lists them.
KMS_ACTIONS = ACTIONS
S3_ACTIONS = (
    "s3:ListAllMyBuckets",
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:ListBucket",
    "s3:GetEncryptionConfiguration",
    "s3:PutEncryptionConfiguration",
    "s3:PutObject",
    "s3:GetObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:ListBucketMultipartUploads",
)
ALL_ACTIONS = KMS_ACTIONS + S3_ACTIONS
WILDCARDS = ("*", "kms:*", "admin:*", "s3:*")

# What a client sees when the server process dies under it.
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


def grants(granted: str, action: str) -> bool:
    """Whether an identity-file grant covers an action (README: ``*``, ``kms:*``, ``s3:*``,
    ``admin:*`` are wildcards)."""
    if granted == "*":
        return True
    if granted.endswith(":*"):
        return action.startswith(granted[:-1])
    return granted == action


def write_identities(path: Path, users: dict[str, tuple[Credentials, tuple[str, ...]]]) -> Path:
    """An identities TOML file (README format), mode 0600."""
    entries = []
    for credentials, actions in users.values():
        listed = ", ".join(f'"{a}"' for a in actions)
        entries.append(
            f'[[user]]\naccess_key = "{credentials.access_key}"\n'
            f'secret_key = "{credentials.secret_key}"\nactions = [{listed}]\n'
        )
    path.write_text("\n".join(entries))
    path.chmod(0o600)
    return path


def admin(server: Any, credentials: Credentials | None = None) -> BotocoreClient:
    """botocore's SigV4 signer over ``http.client`` (one connection per call)."""
    return BotocoreClient(server, credentials or server.credentials)


def s3raw(server: Any, credentials: Credentials | None = None) -> S3Raw:
    return S3Raw(server, credentials or server.credentials)


# ---- processes --------------------------------------------------------------------------------


def kill9(server: Any) -> None:
    """``kill -9`` the server process (no chance to flush or clean anything) and reap it."""
    process, server.process = server.process, None
    assert process is not None, f"{server.name} is not running"
    process.kill()
    process.wait(timeout=30)


def leftover_temps(data_dir: Path) -> list[Path]:
    """Temporary files of an interrupted atomic write: ``.*.tmp`` in ``keys/`` and ``buckets/``."""
    found = []
    for sub in ("keys", "buckets"):
        folder = data_dir / sub
        if folder.is_dir():
            found += [p for p in folder.iterdir()
                      if p.name.startswith(".") and p.name.endswith(".tmp")]
    return sorted(found)


# ---- signing requests that are then sent raw ---------------------------------------------------


def sign(server: Any, method: str, target: str, body: bytes = b"", *,
         credentials: Credentials | None = None, service: str = "execute-api",
         region: str = REGION, headers: dict | None = None,
         signer_class: type[SigV4Auth] = SigV4Auth) -> dict[str, str]:
    """The headers botocore's ``SigV4Auth`` adds for this request (``target`` already encoded,
    query included), plus ``Content-Type: application/json`` (signed) when an admin body is
    given. No ``Content-Length``."""
    creds = credentials or server.credentials
    admin_body = body and target.startswith(ADMIN_PREFIX)
    base = {"Content-Type": "application/json"} if admin_body else {}
    request = AWSRequest(method=method, url=server.url + target, data=body,
                         headers={**base, **(headers or {})})
    signer_class(BotoCredentials(creds.access_key, creds.secret_key), service, region).add_auth(
        request)
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}


def admin_target(path: str) -> str:
    return ADMIN_PREFIX + path


# ---- raw sockets ------------------------------------------------------------------------------


def connect(server: Any, timeout: float = 30) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head_bytes(method: str, target: str, headers: dict[str, str] | list[tuple[str, str]],
               host: str) -> bytes:
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in items if name.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def read_response(sock: socket.socket, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Reads one HTTP/1.1 response from the socket."""
    answer = http.client.HTTPResponse(sock, method=method)
    answer.begin()
    body = answer.read()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, body


def as_response(client: str, method: str, target: str, answer) -> Response:
    status, headers, body = answer
    return Response(client, method, target, None, status, headers, body)


def stream_until_answered(server: Any, head: bytes, chunks, *, timeout: float = 30):
    """Sends ``head`` then each item of ``chunks`` (bytes), while a reader thread waits for the
    answer; stops sending as soon as the server answered or closed. Returns ``(answer or None,
    bytes of body sent, error text or None)``."""
    sock = connect(server, timeout=timeout)
    answer: list = []
    failure: list[str] = []
    done = threading.Event()

    def reader():
        try:
            answer.append(read_response(sock))
        except Exception as err:  # noqa: BLE001 - recorded, judged by the caller
            failure.append(repr(err))
        finally:
            done.set()

    sent = 0
    try:
        sock.sendall(head)
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        for chunk in chunks:
            if done.is_set() or time.monotonic() > deadline:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        done.wait(max(0.0, deadline - time.monotonic()))
        return (answer[0] if answer else None), sent, (failure[0] if failure else None)
    finally:
        sock.close()


def chunked(payload: bytes, size: int = 64 * 1024):
    """``payload`` as HTTP/1.1 chunked transfer coding, chunk by chunk, then the last chunk."""
    for start in range(0, len(payload), size):
        piece = payload[start:start + size]
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def forms(secret: bytes | str) -> set[bytes]:
    """The ways a secret could show up in a file: as given, and for binary values base64 (both
    alphabets, padded or not) and hex (both cases)."""
    if isinstance(secret, str):
        return {secret.encode()}
    encoded = base64.b64encode(secret)
    return {
        secret, encoded, encoded.rstrip(b"="), base64.urlsafe_b64encode(secret).rstrip(b"="),
        binascii.hexlify(secret), binascii.hexlify(secret).upper(),
    }


def mode_of(path: Path) -> int:
    return os.stat(path).st_mode & 0o777
