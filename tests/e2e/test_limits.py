"""Limits (issue 7; API.md §3, §5, §9): what a hostile or broken client sends must be refused
cheaply, and must not stop the server from serving everyone else.

- a body over 1 MiB is 413 ``RequestTooLarge`` also when no ``Content-Length`` announces it
  (chunked transfer coding), and the server stops reading early;
- thousands of tags, a 10,000-character description, 100k nested brackets: 400, nothing stored;
- a 64 KiB header and a 64 KiB URL are refused with a 4xx (431/414/400);
- a client trickling a request one byte per 2 s (in its head or in its body) is cut off within
  30 s (408 or closed), while other clients are served during the trickle;
- 500 idle keep-alive connections do not stop a new client from being served.

Every test runs on its own server (``spawn_server``) so that a server hurt by one cannot break
the rest of the suite.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from hardening import (
    admin,
    admin_target,
    as_response,
    chunked,
    connect,
    head_bytes,
    read_response,
    s3raw,
    sign,
    stream_until_answered,
)
from kms_clients import check_metadata, expect_error, list_all_keys, ok
from s3_clients import expect_s3_error, parse_error_document

ONE_MIB = 1024 * 1024
TRICKLE_INTERVAL = 2.0
TRICKLE_LIMIT = 30.0   # the request timeout a server may take before cutting a trickle off


def alive(server) -> None:
    """The server still answers a signed request quickly."""
    started = time.monotonic()
    assert ok(admin(server).get("/kms/status"))["healthy"] is True
    assert time.monotonic() - started < 5, "the server answered, but slowly"


def host(server) -> str:
    return f"127.0.0.1:{server.port}"


# ---- bodies over 1 MiB without an honest Content-Length ----------------------------------------


def test_a_chunked_body_over_1_mib_is_request_too_large(spawn_server):
    server = spawn_server("limits-chunked")
    before = len(list_all_keys(admin(server)))
    body = json.dumps({"Description": "a" * (2 * ONE_MIB)}).encode()
    target = admin_target("/kms/keys")
    headers = {**sign(server, "POST", target, body), "Transfer-Encoding": "chunked"}
    answer, sent, failure = stream_until_answered(
        server, head_bytes("POST", target, headers, host(server)), chunked(body))
    assert answer is not None, f"no answer to a 2 MiB chunked body ({failure})"
    expect_error(as_response("raw", "POST", target, answer), 413, "RequestTooLarge")
    assert len(list_all_keys(admin(server))) == before
    alive(server)


def test_an_endless_chunked_body_is_refused_without_reading_it_all(spawn_server):
    server = spawn_server("limits-endless")
    target = admin_target("/kms/keys")
    # Signed for an empty body; the body never ends (64 MiB at most, then the test gives up).
    headers = {**sign(server, "POST", target, b"{}"), "Transfer-Encoding": "chunked"}
    endless = (f"{64 * 1024:x}\r\n".encode() + b"a" * (64 * 1024) + b"\r\n" for _ in range(1024))
    answer, sent, failure = stream_until_answered(
        server, head_bytes("POST", target, headers, host(server)), endless)
    assert answer is not None, f"no answer after {sent} bytes of an endless body ({failure})"
    expect_error(as_response("raw", "POST", target, answer), 413, "RequestTooLarge")
    assert sent < 16 * ONE_MIB, f"the server read {sent} bytes before refusing"
    alive(server)


def test_a_content_length_that_lies_next_to_chunked_coding_is_refused(spawn_server):
    # RFC 9112 §6.1: with both, chunked wins or the request is an error; either way the 2 MiB
    # must not get through, and what follows must not be read as another request (smuggling).
    server = spawn_server("limits-lying")
    before = len(list_all_keys(admin(server)))
    body = json.dumps({"Description": "a" * (2 * ONE_MIB)}).encode()
    target = admin_target("/kms/keys")
    headers = {**sign(server, "POST", target, body), "Transfer-Encoding": "chunked",
               "Content-Length": "10"}
    answer, _, failure = stream_until_answered(
        server, head_bytes("POST", target, headers, host(server)), chunked(body))
    assert answer is not None, f"no answer ({failure})"
    status, _, _ = answer
    assert status in (400, 413), f"expected 400 or 413, got {answer[:2]}"
    if status == 413:
        expect_error(as_response("raw", "POST", target, answer), 413, "RequestTooLarge")
    assert len(list_all_keys(admin(server))) == before
    alive(server)


def test_a_chunked_s3_body_over_1_mib_is_entity_too_large(spawn_server):
    server = spawn_server("limits-s3")
    s3 = s3raw(server)
    assert s3.request("PUT", "/big-bodies").status == 200
    body = b"<ServerSideEncryptionConfiguration>" + b" " * (2 * ONE_MIB) + b"</x>"
    signed = s3.sign("PUT", "/big-bodies", "encryption", body)
    headers = {**signed.headers, "Transfer-Encoding": "chunked"}
    answer, _, failure = stream_until_answered(
        server, head_bytes("PUT", "/big-bodies?encryption", headers, host(server)),
        chunked(body))
    assert answer is not None, f"no answer ({failure})"
    expect_s3_error(as_response("raw", "PUT", "/big-bodies?encryption", answer), 413,
                    "EntityTooLarge")
    alive(server)


# ---- values over their limits ------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    {"Description": "many tags", "Tags": {f"t{i}": "v" for i in range(5000)}},
    {"Description": "d" * 10_000},
    {"Description": "多" * 10_000},
], ids=["5000-tags", "10000-char-description", "10000-cjk-description"])
def test_oversized_values_are_refused_and_store_nothing(spawn_server, body):
    server = spawn_server("limits-values")
    client = admin(server)
    before = list_all_keys(client)
    expect_error(client.post("/kms/keys", body), 400, "InvalidRequest")
    expect_error(client.post("/kms/create-key", body), 400, "InvalidRequest")
    assert list_all_keys(client) == before
    alive(server)


DEPTH = 100_000


def nested_bodies() -> dict[str, bytes]:
    arrays = b"[" * DEPTH + b"]" * DEPTH
    objects = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
    return {
        "arrays": arrays,
        "objects": objects,
        "in-a-field": b'{"Description":' + arrays + b"}",
        "in-the-context": b'{"encryption_context":{"k":' + objects + b"}}",
        "unclosed": b"[" * DEPTH,
    }


@pytest.mark.parametrize("shape", list(nested_bodies()))
def test_100k_nested_brackets_are_an_invalid_request(spawn_server, shape):
    server = spawn_server("limits-nested")
    client = admin(server)
    body = nested_bodies()[shape]
    assert len(body) < ONE_MIB
    before = list_all_keys(client)
    for route in ("/kms/keys", "/kms/generate-data-key", "/kms/decrypt", "/kms/keys/enable",
                  "/kms/configure"):
        expect_error(client.post(route, raw=body), 400, "InvalidRequest")
    assert list_all_keys(client) == before
    alive(server)


def test_nested_json_and_xml_on_the_bucket_routes_are_refused(spawn_server):
    server = spawn_server("limits-nested-s3")
    client, s3 = admin(server), s3raw(server)
    assert s3.request("PUT", "/nested-bucket").status == 200
    arrays = b'{"Rules":' + b"[" * DEPTH + b"]" * DEPTH + b"}"
    resp = client.call("PUT", "/api/v1/bucket-encryption/nested-bucket", raw=arrays)
    assert resp.status == 400, resp
    assert resp.json()["error"]["code"] in ("InvalidRequest", "MalformedXML"), resp
    xml = (b'<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
           + b"<Rule>" + b"<a>" * DEPTH + b"</a>" * DEPTH + b"</Rule>"
           + b"</ServerSideEncryptionConfiguration>")
    assert len(xml) < ONE_MIB
    expect_s3_error(s3.put_encryption("nested-bucket", xml), 400, "MalformedXML")
    resp = s3.request("GET", "/nested-bucket", "encryption")
    assert parse_error_document(resp)["Code"] == "ServerSideEncryptionConfigurationNotFoundError"
    alive(server)


# ---- heads and URLs ----------------------------------------------------------------------------


def exchange(server, request: bytes, timeout: float = 10):
    sock = connect(server, timeout=timeout)
    try:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(sock)
    finally:
        sock.close()


@pytest.mark.parametrize("where", ["health", "admin"])
def test_a_64_kib_header_is_refused_and_the_server_keeps_serving(spawn_server, where):
    server = spawn_server("limits-header")
    if where == "health":
        target, headers = "/health", {}
    else:
        target = admin_target("/kms/keys")
        headers = sign(server, "GET", target)
    headers["X-Filler"] = "a" * (64 * 1024)
    status, _, _ = exchange(server, head_bytes("GET", target, headers, host(server)))
    assert status in (400, 431), f"a 64 KiB header on {target} was answered {status}"
    alive(server)


@pytest.mark.parametrize("where", ["health", "admin", "s3"])
def test_a_64_kib_url_is_refused_and_the_server_keeps_serving(spawn_server, where):
    server = spawn_server("limits-url")
    path = {"health": "/health", "admin": admin_target("/kms/keys"), "s3": "/bucket"}[where]
    target = path + "?marker=" + "a" * (64 * 1024 - len(path) - 8)
    assert len(target) == 64 * 1024
    status, _, _ = exchange(server, head_bytes("GET", target, {}, host(server)))
    assert status in (400, 414, 431), f"a 64 KiB URL on {path} was answered {status}"
    alive(server)


# ---- slow and idle clients ---------------------------------------------------------------------


class Trickle(threading.Thread):
    """Sends ``head`` then ``body`` one byte per ``TRICKLE_INTERVAL``; records when the server
    answered or closed the connection."""

    def __init__(self, server, head: bytes, body: bytes, byte_by_byte_head: bool):
        super().__init__(daemon=True)
        self.server = server
        self.head = head
        self.body = body
        self.byte_by_byte_head = byte_by_byte_head
        self.outcome: str | None = None
        self.after: float | None = None

    def run(self):
        sock = connect(self.server, timeout=TRICKLE_LIMIT + 5)
        started = time.monotonic()
        answer: list = []

        def reader():
            try:
                answer.append(read_response(sock))
            except Exception as err:  # noqa: BLE001 - closed, reset, timed out
                answer.append(err)

        try:
            if not self.byte_by_byte_head:
                sock.sendall(self.head)
            threading.Thread(target=reader, daemon=True).start()
            pieces = (list(self.head) if self.byte_by_byte_head else []) + list(self.body)
            for byte in pieces:
                if answer or time.monotonic() - started > TRICKLE_LIMIT + 2:
                    break
                try:
                    sock.send(bytes([byte]))
                except OSError as err:
                    answer.append(err)
                    break
                deadline = time.monotonic() + TRICKLE_INTERVAL
                while not answer and time.monotonic() < deadline:
                    time.sleep(0.05)
            while not answer and time.monotonic() - started < TRICKLE_LIMIT + 2:
                time.sleep(0.05)
        finally:
            self.after = time.monotonic() - started
            if answer and isinstance(answer[0], tuple):
                self.outcome = f"answered {answer[0][0]}"
            elif answer:
                self.outcome = f"closed ({answer[0]!r})"
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_a_client_trickling_one_byte_per_2_seconds_is_cut_off_while_others_are_served(
        spawn_server):
    server = spawn_server("limits-trickle")
    target = admin_target("/kms/keys")
    body = json.dumps({"Description": "trickled in", "Tags": {"name": "slow"}}).encode()
    signed = {**sign(server, "POST", target, body), "Content-Length": str(len(body))}
    head = head_bytes("POST", target, signed, host(server))
    in_head = Trickle(server, head, b"", byte_by_byte_head=True)
    in_body = Trickle(server, head, body, byte_by_byte_head=False)
    in_head.start()
    in_body.start()

    # Others are served, promptly, during the trickle.
    client = admin(server)
    served, slowest = 0, 0.0
    while in_head.is_alive() or in_body.is_alive():
        started = time.monotonic()
        assert ok(client.get("/kms/status"))["healthy"] is True
        check_metadata(ok(client.post("/kms/keys", {"Description": "served"}))["key_metadata"])
        slowest = max(slowest, time.monotonic() - started)
        served += 1
        time.sleep(0.5)
    in_head.join()
    in_body.join()
    assert served >= 3 and slowest < 5, f"{served} requests served, slowest {slowest:.1f}s"

    for name, trickle in (("head", in_head), ("body", in_body)):
        assert trickle.outcome is not None and trickle.after <= TRICKLE_LIMIT + 1, (
            f"a request trickled in its {name} (one byte per {TRICKLE_INTERVAL}s) was neither "
            f"answered nor closed within {TRICKLE_LIMIT}s")
        assert trickle.outcome.startswith("closed") or trickle.outcome == "answered 408", (
            f"trickle in the {name}: {trickle.outcome} after {trickle.after:.1f}s")
    descriptions = {e["description"] for e in list_all_keys(client)}
    assert "trickled in" not in descriptions


def test_500_idle_keep_alive_connections_do_not_stop_a_new_client(spawn_server):
    server = spawn_server("limits-idle")
    idle: list[socket.socket] = []
    try:
        for index in range(500):
            sock = connect(server, timeout=10)
            idle.append(sock)
            if index % 2 == 0:
                # A finished request on a kept-alive connection, then silence.
                sock.sendall(head_bytes("GET", "/health", {}, host(server)))
                status, headers, _ = read_response(sock)
                assert status == 200 and headers.get("connection") != "close", (status, headers)
            # Odd ones: connected, never a byte sent.
        started = time.monotonic()
        client = admin(server)
        assert ok(client.get("/kms/status"))["healthy"] is True
        key_id = ok(client.post("/kms/keys", {"Description": "beside 500 idle"}))["key_id"]
        data_key = ok(client.post("/kms/generate-data-key", {"key_id": key_id}))
        assert ok(client.post("/kms/decrypt", {"ciphertext_blob": data_key["ciphertext_blob"]}))[
            "plaintext"] == data_key["plaintext_key"]
        assert s3raw(server).request("GET", "/").status == 200
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"a new client took {elapsed:.1f}s beside 500 idle connections"
    finally:
        for sock in idle:
            sock.close()
    alive(server)
