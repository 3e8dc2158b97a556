"""The three real clients the end-to-end suite drives, and the checks every answer gets.

- ``curl``: ``curl --aws-sigv4 "aws:amz:us-east-1:execute-api" --user AK:SK``, one process per call.
- ``botocore``: botocore's ``SigV4Auth`` (service ``execute-api``) signs, ``http.client`` sends,
  one connection per call.
- ``js``: the integration guide's ``createSignedRequest``/``callKMSAPI`` in Node
  (``js/kms_client.mjs``), kept running for the whole session and fed one command per line.

All three answer with a :class:`Response`, whose ``str()`` names the client, the request and the
answer, so that a failed assertion says precisely what was sent and what came back.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import queue
import re
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

ADMIN_PREFIX = "/rustfs/admin/v3"
REGION = "us-east-1"
SERVICE = "execute-api"
TIMEOUT_SECONDS = 30

# Sentinel for "send no body at all" (as opposed to the JSON value null).
NO_BODY = object()


@dataclass(frozen=True)
class Credentials:
    """An access key and its secret, as the server's identities know them."""

    access_key: str
    secret_key: str


@dataclass
class Response:
    """One HTTP exchange as a client saw it."""

    client: str
    method: str
    target: str
    request_body: bytes | None
    status: int | None
    headers: dict[str, str]
    body: bytes
    # JS only: what the guide's callKMSAPI threw (it throws on every non-2xx answer).
    thrown: str | None = None
    # JS only: what callKMSAPI returned.
    data: Any = None
    # JS only: the URL fetch was given and the headers it sent.
    url: str | None = None
    sent_headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"answer is not JSON: {self}") from None

    def __str__(self) -> str:
        sent = ""
        if self.request_body is not None:
            shown = self.request_body[:300].decode("utf-8", "replace")
            more = f"... ({len(self.request_body)} bytes)" if len(self.request_body) > 300 else ""
            sent = f" {shown}{more}"
        answer = self.text[:600]
        thrown = f" (callKMSAPI threw: {self.thrown})" if self.thrown else ""
        request = f"[{self.client}] {self.method} {self.target}{sent}"
        return f"{request} -> {self.status} {answer}{thrown}"

    __repr__ = __str__


# ---- checks every test uses -------------------------------------------------------------------


def ok(resp: Response) -> Any:
    """Asserts a 200 JSON answer with an ``x-request-id`` and returns the parsed body."""
    assert resp.status == 200, f"expected 200, got: {resp}"
    assert resp.headers.get("content-type", "").startswith("application/json"), (
        f"expected a JSON content type, got {resp.headers.get('content-type')!r}: {resp}"
    )
    assert resp.headers.get("x-request-id"), f"no x-request-id header: {resp}"
    body = resp.json()
    if resp.client == "js":
        # The guide's callKMSAPI returned what the server sent, unchanged.
        assert resp.thrown is None, f"callKMSAPI threw on a 200: {resp}"
        assert resp.data == body, f"callKMSAPI returned {resp.data!r}: {resp}"
    return body


def expect_error(resp: Response, status: int, code: str) -> dict:
    """Asserts an API.md §3 error: real status, ``{"error": {code, message, request_id}}``, and
    ``x-request-id`` equal to the body's ``request_id``. Returns the ``error`` object."""
    assert resp.status == status, f"expected {status} {code}, got: {resp}"
    assert resp.headers.get("content-type", "").startswith("application/json"), (
        f"expected a JSON content type, got {resp.headers.get('content-type')!r}: {resp}"
    )
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), (
        f"expected {{'error': {{...}}}}, got: {resp}"
    )
    error = body["error"]
    assert error.get("code") == code, f"expected code {code}, got: {resp}"
    assert isinstance(error.get("message"), str) and error["message"], f"no message: {resp}"
    request_id = error.get("request_id")
    assert isinstance(request_id, str) and request_id, f"no request_id: {resp}"
    assert resp.headers.get("x-request-id") == request_id, (
        f"x-request-id {resp.headers.get('x-request-id')!r} != request_id {request_id!r}: {resp}"
    )
    if resp.client == "js":
        # The guide's function throws with the server's message.
        assert resp.thrown == f"KMS API Error: {error['message']}", f"thrown: {resp}"
    return error


TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def parse_timestamp(value: Any) -> dt.datetime:
    """Asserts an RFC 3339 UTC timestamp ending in ``Z`` and returns it."""
    assert isinstance(value, str) and TIMESTAMP.match(value), f"not an RFC 3339 UTC time: {value!r}"
    whole, _, fraction = value[:-1].partition(".")
    parsed = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.timezone.utc)
    return parsed + dt.timedelta(microseconds=int((fraction or "0")[:6].ljust(6, "0")))


KEY_METADATA_FIELDS = {
    "key_id", "description", "enabled", "key_usage", "key_state", "creation_date",
    "rotation_enabled", "deletion_date", "current_version", "tags",
}
LIST_ENTRY_FIELDS = {"key_id", "description", "tags", "enabled", "key_state", "creation_date"}
KEY_STATES = {"Enabled", "Disabled", "PendingDeletion"}


def check_metadata(meta: Any, **expected: Any) -> dict:
    """Asserts a complete, self-consistent ``key_metadata`` (API.md §5) with ``expected``
    values, and returns it."""
    assert isinstance(meta, dict), f"key_metadata is not an object: {meta!r}"
    missing = KEY_METADATA_FIELDS - set(meta)
    assert not missing, f"key_metadata lacks {sorted(missing)}: {meta}"
    assert meta["key_state"] in KEY_STATES, f"key_state: {meta}"
    assert meta["enabled"] is (meta["key_state"] == "Enabled"), f"enabled vs key_state: {meta}"
    parse_timestamp(meta["creation_date"])
    pending = meta["key_state"] == "PendingDeletion"
    assert (meta["deletion_date"] is not None) is pending, f"deletion_date vs state: {meta}"
    if pending:
        parse_timestamp(meta["deletion_date"])
    assert isinstance(meta["tags"], dict), f"tags is not an object: {meta}"
    assert type(meta["current_version"]) is int and meta["current_version"] >= 1, meta
    assert type(meta["rotation_enabled"]) is bool, meta
    assert isinstance(meta["description"], str), f"description: {meta}"
    for name, value in expected.items():
        assert meta[name] == value, f"key_metadata.{name}: expected {value!r}, got {meta}"
    return meta


def list_all_keys(client: "Client") -> list[dict]:
    """Every list entry, following ``next_marker`` with the largest page size."""
    entries, query = [], {"limit": "1000"}
    for _ in range(100):
        page = ok(client.get("/kms/keys", query=query))
        entries += page["keys"]
        if not page["truncated"]:
            return entries
        query = {"limit": "1000", "marker": page["next_marker"]}
    raise AssertionError("GET /kms/keys did not stop paginating")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def local_config(key_directory: Path, **overrides: Any) -> dict:
    """The guide's local-backend configuration (``localConfig``), in a directory of the test's."""
    return {
        "backend_type": "local",
        "key_directory": str(key_directory),
        "default_key_id": "default-master-key",
        "enable_cache": True,
        "cache_ttl_seconds": 600,
        **overrides,
    }


# ---- the clients ------------------------------------------------------------------------------


class Client:
    """A signed admin-API client bound to a server and an identity."""

    name = "?"

    def __init__(self, server: Any, credentials: Credentials, region: str = REGION):
        self.server = server
        self.credentials = credentials
        self.region = region

    def with_credentials(self, credentials: Credentials) -> "Client":
        return type(self)(**{**self._state(), "credentials": credentials})

    def with_region(self, region: str) -> "Client":
        return type(self)(**{**self._state(), "region": region})

    def _state(self) -> dict:
        return {"server": self.server, "credentials": self.credentials, "region": self.region}

    def target(self, path: str, query: dict | None, absolute: bool) -> str:
        full = path if absolute else ADMIN_PREFIX + path
        if query:
            # Sorted, so that every client's canonical query string is the same.
            # quote, not quote_plus: a '+' in a query is a literal plus to AWS and to the server,
            # so a space must travel as %20 for the signature to match.
            full += "?" + urllib.parse.urlencode(sorted(query.items()),
                                                 quote_via=urllib.parse.quote, safe="-_.~")
        return full

    def encode(self, body: Any) -> bytes:
        """The bytes this client sends for the JSON value ``body``."""
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def call(
        self,
        method: str,
        path: str,
        body: Any = NO_BODY,
        *,
        query: dict | None = None,
        raw: bytes | None = None,
        absolute: bool = False,
    ) -> Response:
        """Sends ``method path`` (relative to the admin prefix unless ``absolute``), with ``body``
        as JSON or ``raw`` bytes as they are."""
        raise NotImplementedError

    # Shorthands for the common routes' verbs.
    def get(self, path: str, **kwargs) -> Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = NO_BODY, **kwargs) -> Response:
        return self.call("POST", path, body, **kwargs)

    def delete(self, path: str, body: Any = NO_BODY, **kwargs) -> Response:
        return self.call("DELETE", path, body, **kwargs)


def encode_body(body: Any, raw: bytes | None) -> bytes | None:
    if raw is not None:
        return raw
    if body is NO_BODY:
        return None
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def js_stringify(body: Any) -> bytes:
    """What ``JSON.stringify`` makes of a JSON value: no spaces after separators."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class CurlClient(Client):
    """``curl --aws-sigv4``; with ``sign=False``, curl with hand-made headers instead."""

    name = "curl"

    def __init__(self, server, credentials, region=REGION, *, curl: str, workdir: Path):
        super().__init__(server, credentials, region)
        self.curl = curl
        self.workdir = workdir

    def _state(self) -> dict:
        return {**super()._state(), "curl": self.curl, "workdir": self.workdir}

    def call(self, method, path, body=NO_BODY, *, query=None, raw=None, absolute=False,
             sign=True, headers=None) -> Response:
        target = self.target(path, query, absolute)
        payload = encode_body(body, raw)
        self.workdir.mkdir(parents=True, exist_ok=True)
        head_file, out_file, in_file = (self.workdir / n for n in ("head", "out", "in"))
        for stale in (head_file, out_file):
            stale.unlink(missing_ok=True)
        command = [
            self.curl, "--silent", "--show-error", "--globoff", "--path-as-is",
            "--max-time", str(TIMEOUT_SECONDS), "--request", method,
            "--header", "Content-Type: application/json",
            "--dump-header", str(head_file), "--output", str(out_file),
            "--write-out", "%{http_code}",
        ]
        if sign:
            command += [
                "--aws-sigv4", f"aws:amz:{self.region}:{SERVICE}",
                "--user", f"{self.credentials.access_key}:{self.credentials.secret_key}",
            ]
        for name, value in (headers or {}).items():
            command += ["--header", f"{name}: {value}"]
        if payload is not None:
            in_file.write_bytes(payload)
            command += ["--data-binary", f"@{in_file}"]
        command.append(self.server.url + target)
        done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_SECONDS + 10)
        if done.returncode != 0:
            raise AssertionError(
                f"[curl] {method} {target}: curl exited {done.returncode}: {done.stderr.decode()}"
            )
        status, response_headers = parse_header_dump(head_file.read_bytes())
        return Response(self.name, method, target, payload, status, response_headers,
                        out_file.read_bytes() if out_file.exists() else b"")


def parse_header_dump(dump: bytes) -> tuple[int, dict[str, str]]:
    """The status and headers of the final response in a ``curl --dump-header`` file (which also
    holds any ``100 Continue`` interim response)."""
    blocks = [b for b in dump.decode("latin-1").split("\r\n\r\n") if b.startswith("HTTP/")]
    assert blocks, f"no HTTP response in curl's header dump: {dump!r}"
    lines = blocks[-1].split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return status, headers


class BotocoreClient(Client):
    """botocore ``SigV4Auth`` over ``http.client``; hooks let tests skew the clock or tamper with
    the request after it was signed."""

    name = "botocore"
    # Tests may set another service name on an instance to sign for the wrong service.
    service = SERVICE

    def call(self, method, path, body=NO_BODY, *, query=None, raw=None, absolute=False,
             headers=None, clock: dt.datetime | None = None,
             tamper: Callable[[dict, bytes | None], bytes | None] | None = None,
             wire_target: str | None = None) -> Response:
        """``clock`` signs at another time; ``tamper(headers, body) -> body`` edits the signed
        request; ``wire_target`` sends it to another path than the one signed."""
        target = self.target(path, query, absolute)
        payload = encode_body(body, raw)
        request = AWSRequest(
            method=method,
            url=self.server.url + target,
            data=payload or b"",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        signer = SigV4Auth(
            BotoCredentials(self.credentials.access_key, self.credentials.secret_key),
            self.service,
            self.region,
        )
        if clock is None:
            signer.add_auth(request)
        else:
            with mock.patch.object(botocore.auth, "get_current_datetime", return_value=clock):
                signer.add_auth(request)
        prepared = request.prepare()
        sent_headers = dict(prepared.headers.items())
        if tamper is not None:
            payload = tamper(sent_headers, payload)
        return send_http(self.name, self.server.port, method, wire_target or target, payload,
                         sent_headers)


def send_http(client: str, port: int, method: str, target: str, payload: bytes | None,
              headers: dict) -> Response:
    """Sends one request on a fresh connection and closes it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_SECONDS)
    try:
        try:
            connection.request(method, target, body=payload, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            # A server may answer (413) and close before reading a large body; read the answer.
            # When the socket is gone there is no answer to read: the connection failed.
            if connection.sock is None:
                raise
        answer = connection.getresponse()
        body = answer.read()
        response_headers: dict[str, str] = {}
        for name, value in answer.getheaders():
            key = name.lower()
            response_headers[key] = (
                f"{response_headers[key]}, {value}" if key in response_headers else value
            )
        return Response(client, method, target, payload, answer.status, response_headers, body)
    finally:
        connection.close()


class JsRunner:
    """One Node process running ``js/kms_client.mjs`` for the whole session."""

    def __init__(self, node: str, js_dir: Path, log_path: Path):
        self.node = node
        self.js_dir = js_dir
        self.log_path = log_path
        self._start()

    def _start(self) -> None:
        env = {**os.environ, "AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE": "1"}
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.node, "kms_client.mjs"], cwd=self.js_dir, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.process, self._lines), daemon=True).start()

    @staticmethod
    def _pump(process: subprocess.Popen, lines: queue.Queue) -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put("")

    def request(self, command: dict) -> dict:
        if self.process.poll() is not None:
            self._start()
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        try:
            line = self._lines.get(timeout=TIMEOUT_SECONDS + 10)
        except queue.Empty:
            self.close()
            waited = TIMEOUT_SECONDS + 10
            raise AssertionError(f"[js] no answer within {waited}s to {command['op']}")
        if not line:
            raise AssertionError(f"[js] node exited; see {self.log_path}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class JsClient(Client):
    """The guide's ``callKMSAPI`` in Node. It can only send what the guide's function sends: a
    JSON body made with ``JSON.stringify`` (or none), ``Content-Type: application/json``."""

    name = "js"

    def __init__(self, server, credentials, region=REGION, *, runner: JsRunner):
        super().__init__(server, credentials, region)
        self.runner = runner

    def _state(self) -> dict:
        return {**super()._state(), "runner": self.runner}

    def encode(self, body: Any) -> bytes:
        return js_stringify(body)

    def _command(self, op: str, **fields) -> dict:
        return {
            "op": op,
            "endpoint": self.server.url,
            "accessKeyId": self.credentials.access_key,
            "secretAccessKey": self.credentials.secret_key,
            "region": self.region,
            **fields,
        }

    def call(self, method, path, body=NO_BODY, *, query=None, raw=None, absolute=False) -> Response:
        if raw is not None or absolute:
            raise ValueError("the guide's callKMSAPI sends only JSON bodies under the admin prefix")
        relative = self.target(path, query, absolute=True)
        reply = self.runner.request(
            self._command("call", method=method, path=relative,
                          body=None if body is NO_BODY else body)
        )
        payload = None if body is NO_BODY else js_stringify(body)
        return self._response(method, ADMIN_PREFIX + relative, payload, reply)

    def list_all(self, limit: str) -> tuple[dict, list[Response]]:
        """Runs the guide's pagination loop; returns its reply and every page's exchange."""
        reply = self.runner.request(self._command("list_all", limit=limit))
        pages = [self._exchange("GET", ex["url"], None, ex, reply) for ex in reply["exchanges"]]
        return reply, pages

    def _response(self, method: str, target: str, payload: bytes | None, reply: dict) -> Response:
        exchanges = reply.get("exchanges") or []
        if not exchanges:
            raise AssertionError(f"[js] {method} {target}: fetch was never called: {reply}")
        return self._exchange(method, target, payload, exchanges[-1], reply)

    def _exchange(self, method, target, payload, exchange: dict, reply: dict) -> Response:
        return Response(
            client=self.name,
            method=method,
            target=target,
            request_body=payload,
            status=exchange.get("status"),
            headers={k.lower(): v for k, v in (exchange.get("response_headers") or {}).items()},
            body=(exchange.get("text") or "").encode("utf-8"),
            thrown=None if reply["ok"] else reply.get("thrown"),
            data=reply.get("data"),
            url=exchange.get("url"),
            sent_headers=exchange.get("request_headers") or {},
        )
