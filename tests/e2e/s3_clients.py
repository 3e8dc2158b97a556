"""The S3 side of the end-to-end suite (API.md §9): the clients that speak S3 to the server, and
the checks every S3 answer gets.

- ``boto3``: the ``s3_client`` fixture (and :func:`boto3_client` for other servers and
  identities), path-style.
- ``raw``: :class:`S3Raw`, botocore's ``S3SigV4Auth`` signing any bytes and headers we choose,
  sent by ``http.client``; it also writes ``aws-chunked`` bodies with per-chunk signatures
  (:meth:`S3Raw.chunked`), following the AWS "Signature Calculations for the Authorization Header:
  Transferring Payload in Multiple Chunks" rules, with botocore's signing key derivation.
- ``aws``: the AWS CLI of the venv (:class:`AwsCli`), isolated from any user configuration.
- ``js``: ``@aws-sdk/client-s3`` in Node (``js/s3_ops.mjs``), one process per batch of operations.

Every S3 error is the XML error document of §9: ``Code``, ``Message``, ``Resource``,
``RequestId``, the last equal to the ``x-amz-request-id`` header (:func:`expect_s3_error`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import uuid
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from unittest import mock

import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from kms_clients import REGION, Credentials, Response, ok, send_http

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
TIMEOUT_SECONDS = 60


def key_arn(key_id: str, region: str = REGION) -> str:
    """The ARN form of a key id, as AWS consoles and SDK users write it."""
    return f"arn:aws:kms:{region}:000000000000:key/{key_id}"


def unique_bucket(prefix: str = "e2e") -> str:
    """A fresh bucket name that follows the S3 rules."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


# ---- encryption configurations ----------------------------------------------------------------


def rule(algorithm: str, key_id: str | None = None, bucket_key: bool | None = None) -> dict:
    """One rule in the S3 (and boto3, and JS SDK) shape."""
    default: dict[str, Any] = {"SSEAlgorithm": algorithm}
    if key_id is not None:
        default["KMSMasterKeyID"] = key_id
    result: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": default}
    if bucket_key is not None:
        result["BucketKeyEnabled"] = bucket_key
    return result


def config(algorithm: str, key_id: str | None = None, bucket_key: bool | None = None) -> dict:
    """A ``ServerSideEncryptionConfiguration`` of one rule."""
    return {"Rules": [rule(algorithm, key_id, bucket_key)]}


def config_xml(algorithm: str, key_id: str | None = None, bucket_key: bool | None = None,
               namespace: str | None = S3_NS) -> bytes:
    """The XML document an SDK sends for :func:`config`."""
    key = f"<KMSMasterKeyID>{key_id}</KMSMasterKeyID>" if key_id is not None else ""
    bucket = ("" if bucket_key is None
              else f"<BucketKeyEnabled>{str(bucket_key).lower()}</BucketKeyEnabled>")
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    return (
        f"<ServerSideEncryptionConfiguration{xmlns}><Rule><ApplyServerSideEncryptionByDefault>"
        f"<SSEAlgorithm>{algorithm}</SSEAlgorithm>{key}</ApplyServerSideEncryptionByDefault>"
        f"{bucket}</Rule></ServerSideEncryptionConfiguration>"
    ).encode()


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def checksum_crc32(body: bytes) -> str:
    return base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()


def checksum_sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


# ---- boto3 ------------------------------------------------------------------------------------


def boto3_client(server: Any, credentials: Credentials, region: str = REGION, **config: Any):
    """A boto3 S3 client like the ``s3_client`` fixture, for any server, identity or region."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name=region,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


def client_error(call: Callable[[], Any]) -> dict:
    """Runs a boto3 call that must fail; returns ``ClientError.response``."""
    try:
        result = call()
    except ClientError as err:
        return err.response
    raise AssertionError(f"expected an error, the call succeeded: {result}")


def boto_error(call: Callable[[], Any], status: int, code: str) -> dict:
    """Runs a boto3 call that must fail with ``status`` and the S3 ``code``; checks the error has
    a message and a request id equal to ``x-amz-request-id``. Returns ``ClientError.response``."""
    try:
        result = call()
    except ClientError as err:
        response = err.response
    else:
        raise AssertionError(f"expected {status} {code}, the call succeeded: {result}")
    meta = response["ResponseMetadata"]
    error = response.get("Error", {})
    assert (meta["HTTPStatusCode"], error.get("Code")) == (status, code), (
        f"expected {status} {code}, got: {response}"
    )
    header_id = meta["HTTPHeaders"].get("x-amz-request-id")
    assert header_id and meta.get("RequestId") == header_id, f"request id: {response}"
    if not code.isdigit():  # botocore names a bodiless (HEAD) error by its status
        assert error.get("Message"), f"no Message: {response}"
    return response


def encryption_of(s3: Any, bucket: str) -> dict | None:
    """The bucket's ``ServerSideEncryptionConfiguration`` as boto3 reads it, or None on 404
    ``ServerSideEncryptionConfigurationNotFoundError``."""
    try:
        return s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    except ClientError as err:
        if err.response["Error"].get("Code") == "ServerSideEncryptionConfigurationNotFoundError":
            assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404, err.response
            return None
        raise


def status_of(response: dict) -> int:
    return response["ResponseMetadata"]["HTTPStatusCode"]


# ---- the XML error document -------------------------------------------------------------------


def parse_error_document(resp: Response) -> dict[str, str]:
    """The children of an S3 ``<Error>`` document, by tag."""
    assert resp.headers.get("content-type", "").startswith("application/xml"), (
        f"expected an XML error, got content type {resp.headers.get('content-type')!r}: {resp}"
    )
    try:
        root = ET.fromstring(resp.body)
    except ET.ParseError as err:
        raise AssertionError(f"the error body is not XML ({err}): {resp}") from None
    assert root.tag == "Error", f"root element {root.tag!r}, not Error: {resp}"
    return {child.tag: child.text or "" for child in root}


def expect_s3_error(resp: Response, status: int, code: str, resource: str | None = None) -> dict:
    """Asserts an S3 error of §9: real status, XML ``<Error>`` with ``Code``, ``Message``,
    ``Resource`` and ``RequestId``, the last equal to ``x-amz-request-id``. HEAD answers carry no
    body, only the status and the header. Returns the document's fields."""
    assert resp.status == status, f"expected {status} {code}, got: {resp}"
    request_id = resp.headers.get("x-amz-request-id")
    assert request_id, f"no x-amz-request-id header: {resp}"
    if resp.method == "HEAD":
        assert resp.body == b"", f"a HEAD answer with a body: {resp}"
        return {}
    fields = parse_error_document(resp)
    assert fields.get("Code") == code, f"expected code {code}, got: {resp}"
    for name in ("Message", "Resource", "RequestId"):
        assert fields.get(name), f"the error document has no {name}: {resp}"
    assert fields["RequestId"] == request_id, (
        f"RequestId {fields['RequestId']!r} != x-amz-request-id {request_id!r}: {resp}"
    )
    if resource is not None:
        assert fields["Resource"] == resource, f"Resource: expected {resource!r}: {resp}"
    return fields


def xml_text(resp: Response) -> ET.Element:
    """The parsed XML body of a 200 answer."""
    assert resp.status == 200, f"expected 200, got: {resp}"
    assert resp.headers.get("x-amz-request-id"), f"no x-amz-request-id: {resp}"
    return ET.fromstring(resp.body)


def parse_encryption_xml(body: bytes) -> dict:
    """A GetBucketEncryption document as the boto3 shape (``{"Rules": [...]}``)."""
    root = ET.fromstring(body)
    assert root.tag == f"{{{S3_NS}}}ServerSideEncryptionConfiguration", root.tag
    rules = []
    for element in root.findall(f"{{{S3_NS}}}Rule"):
        default = element.find(f"{{{S3_NS}}}ApplyServerSideEncryptionByDefault")
        parsed: dict[str, Any] = {
            "ApplyServerSideEncryptionByDefault": {c.tag.split("}")[1]: c.text for c in default}
        }
        bucket_key = element.find(f"{{{S3_NS}}}BucketKeyEnabled")
        if bucket_key is not None:
            parsed["BucketKeyEnabled"] = {"true": True, "false": False}[bucket_key.text]
        rules.append(parsed)
    return {"Rules": rules}


# ---- raw signed requests ----------------------------------------------------------------------


class _S3Signer(S3SigV4Auth):
    """botocore's S3 signer with a chosen ``x-amz-content-sha256`` (``None``: the body's hash)."""

    def __init__(self, credentials, region, payload_hash: str | None):
        super().__init__(credentials, "s3", region)
        self._payload_hash = payload_hash

    def payload(self, request):
        if self._payload_hash is not None:
            return self._payload_hash
        return super().payload(request)


@dataclass
class Signed:
    """A signed request before sending: headers as signed, the signer and its request (for the
    chunk signatures, which chain from the request's signature)."""

    method: str
    target: str
    headers: dict[str, str]
    signer: _S3Signer
    request: AWSRequest

    @property
    def signature(self) -> str:
        return re.search(r"Signature=([0-9a-f]{64})", self.headers["Authorization"]).group(1)

    @property
    def timestamp(self) -> str:
        return self.request.context["timestamp"]

    @property
    def scope(self) -> str:
        return f"{self.timestamp[:8]}/{self.signer._region_name}/s3/aws4_request"


class S3Raw:
    """SigV4-signed S3 requests of any shape, for what SDKs will not send."""

    name = "s3-raw"

    def __init__(self, server: Any, credentials: Credentials, region: str = REGION):
        self.server = server
        self.credentials = credentials
        self.region = region

    def sign(self, method: str, path: str, query: str = "", body: bytes = b"",
             headers: dict | None = None, *, payload_hash: str | None = None,
             clock: dt.datetime | None = None, credentials: Credentials | None = None,
             region: str | None = None) -> Signed:
        target = path + (f"?{query}" if query else "")
        creds = credentials or self.credentials
        request = AWSRequest(method=method, url=self.server.url + target, data=body,
                             headers=dict(headers or {}))
        signer = _S3Signer(BotoCredentials(creds.access_key, creds.secret_key),
                           region or self.region, payload_hash)
        if clock is None:
            signer.add_auth(request)
        else:
            with mock.patch.object(botocore.auth, "get_current_datetime", return_value=clock):
                signer.add_auth(request)
        sent = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        return Signed(method, target, sent, signer, request)

    def send(self, signed: Signed, body: bytes | None) -> Response:
        return send_http(self.name, self.server.port, signed.method, signed.target,
                         body if body else None, signed.headers)

    def request(self, method: str, path: str, query: str = "", body: bytes = b"",
                headers: dict | None = None, *,
                tamper: Callable[[dict, bytes], bytes] | None = None, **sign: Any) -> Response:
        """Signs and sends; ``tamper(headers, body) -> body`` edits the request after signing."""
        signed = self.sign(method, path, query, body, headers, **sign)
        if tamper is not None:
            body = tamper(signed.headers, body)
        return self.send(signed, body)

    def put_encryption(self, bucket: str, body: bytes, *, md5: bool = True,
                       headers: dict | None = None, **kwargs: Any) -> Response:
        """PutBucketEncryption with this exact body, with a right ``Content-MD5`` unless
        ``md5=False``."""
        extra = {"Content-MD5": content_md5(body)} if md5 else {}
        return self.request("PUT", f"/{bucket}", "encryption", body,
                            {**extra, **(headers or {})}, **kwargs)

    def chunked(self, method: str, path: str, query: str, data: bytes, headers: dict,
                chunk_size: int, *,
                tamper_chunk: Callable[[int, str], str] | None = None) -> Response:
        """Sends ``data`` as an ``aws-chunked`` body with ``x-amz-content-sha256:
        STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: the seed signature is the request's, each chunk's
        string to sign is ``AWS4-HMAC-SHA256-PAYLOAD``, the time, the scope, the previous
        signature, the hash of nothing and the hash of the chunk. ``tamper_chunk(index,
        signature) -> signature`` may change what is sent for a chunk."""
        chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
        signed = self.sign(method, path, query, b"", {
            **headers,
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
        }, payload_hash=STREAMING_SIGNED)
        previous = signed.signature
        body = b""
        for index, chunk in enumerate(chunks):
            string_to_sign = "\n".join([
                "AWS4-HMAC-SHA256-PAYLOAD", signed.timestamp, signed.scope, previous,
                EMPTY_SHA256, hashlib.sha256(chunk).hexdigest(),
            ])
            signature = signed.signer.signature(string_to_sign, signed.request)
            previous = signature
            if tamper_chunk is not None:
                signature = tamper_chunk(index, signature)
            body += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + chunk + b"\r\n"
        return self.send(signed, body)

    def unsigned_trailer(self, method: str, path: str, query: str, data: bytes,
                         trailers: dict[str, str], headers: dict | None = None) -> Response:
        """Sends ``data`` as one ``aws-chunked`` chunk with ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``
        and the given trailers, as current SDKs send bodies with a trailing checksum."""
        trailer_lines = "".join(f"{k}:{v}\r\n" for k, v in trailers.items())
        body = (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n"
                + trailer_lines.encode() + b"\r\n")
        signed = self.sign(method, path, query, b"", {
            **(headers or {}),
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": ",".join(trailers),
        }, payload_hash=STREAMING_UNSIGNED_TRAILER)
        return self.send(signed, body)


def unsigned_request(server: Any, method: str, target: str, headers: dict | None = None,
                     body: bytes | None = None) -> Response:
    """A request with no signature at all."""
    return send_http("unsigned", server.port, method, target, body, dict(headers or {}))


# ---- the AWS CLI ------------------------------------------------------------------------------


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> Any:
        """The JSON the CLI printed (None when it printed nothing, as for 204 answers)."""
        assert self.returncode == 0, f"aws failed: {self}"
        return json.loads(self.stdout) if self.stdout.strip() else None

    @property
    def error_code(self) -> str | None:
        match = re.search(r"An error occurred \(([^)]+)\) when calling", self.stderr)
        return match.group(1) if match else None

    def __str__(self) -> str:
        return (f"aws {' '.join(self.args)} -> exit {self.returncode}\n"
                f"stdout: {self.stdout[:800]}\nstderr: {self.stderr[:800]}")

    __repr__ = __str__


class AwsCli:
    """``aws --endpoint-url URL s3api ...`` from the venv, reading no user configuration: the
    credentials and region come from the environment, config and credential files are
    /dev/null, the instance metadata service is disabled, and the home is a scratch directory.
    (AWS CLI v1, which the venv pins, has no pager and no ``--no-cli-pager`` option.)"""

    def __init__(self, executable: Path, server: Any, credentials: Credentials, home: Path,
                 region: str = REGION):
        self.executable = executable
        self.server = server
        self.credentials = credentials
        self.home = home
        self.region = region

    def environment(self) -> dict[str, str]:
        self.home.mkdir(parents=True, exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "AWS_ACCESS_KEY_ID": self.credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
            "AWS_PAGER": "",
        }

    def s3api(self, operation: str, *args: str) -> CliResult:
        command = [str(self.executable), "--endpoint-url", self.server.url, "--output", "json",
                   "s3api", operation, *args]
        done = subprocess.run(command, capture_output=True, text=True, env=self.environment(),
                              timeout=TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
        return CliResult(command[1:], done.returncode, done.stdout, done.stderr)

    def ok(self, operation: str, *args: str) -> Any:
        result = self.s3api(operation, *args)
        assert result.returncode == 0, f"aws s3api {operation} failed: {result}"
        return result.output

    def error(self, code: str, operation: str, *args: str) -> CliResult:
        result = self.s3api(operation, *args)
        assert result.returncode != 0 and result.error_code == code, (
            f"expected aws s3api {operation} to fail with {code}: {result}"
        )
        return result


# ---- @aws-sdk/client-s3 -----------------------------------------------------------------------


class JsS3:
    """``js/s3_ops.mjs``: runs a list of ``{"op": "GetBucketEncryption", "input": {...}}`` with
    ``@aws-sdk/client-s3`` (``forcePathStyle: true``, one attempt) and answers one result per
    operation: ``{"ok": true, "status", "output"}`` or ``{"ok": false, "status", "name", "code",
    "message", "requestId", "resource"}``."""

    def __init__(self, node: str, js_dir: Path, server: Any, credentials: Credentials,
                 region: str = REGION):
        self.node = node
        self.js_dir = js_dir
        self.server = server
        self.credentials = credentials
        self.region = region

    def run(self, ops: list[dict]) -> list[dict]:
        command = {
            "endpoint": self.server.url,
            "region": self.region,
            "accessKeyId": self.credentials.access_key,
            "secretAccessKey": self.credentials.secret_key,
            "ops": ops,
        }
        done = subprocess.run(
            [self.node, "s3_ops.mjs"], cwd=self.js_dir, input=json.dumps(command),
            capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
            env={**os.environ, "AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE": "1"},
        )
        assert done.returncode == 0, f"node s3_ops.mjs exited {done.returncode}: {done.stderr}"
        results = json.loads(done.stdout)
        assert len(results) == len(ops), results
        return results

    def one(self, op: str, **input: Any) -> dict:
        return self.run([{"op": op, "input": input}])[0]


def js_ok(result: dict) -> Any:
    assert result["ok"] and result["status"] in (200, 204), f"the JS SDK call failed: {result}"
    return result["output"]


def js_error(result: dict, status: int, code: str) -> dict:
    assert not result["ok"], f"expected {status} {code}, the JS SDK call succeeded: {result}"
    assert (result["status"], result["code"]) == (status, code), (
        f"expected {status} {code}: {result}")
    assert result["message"] and result["requestId"], f"no message or request id: {result}"
    return result


# ---- the KMS service state --------------------------------------------------------------------


@contextlib.contextmanager
def kms_stopped(admin: Any) -> Iterator[None]:
    """Stops the KMS of a (shared) server for the block and starts it again afterwards, whatever
    happens in the block; asserts it is ``Running`` again."""
    assert ok(admin.post("/kms/stop"))["status"] == "Stopped"
    try:
        yield
    finally:
        assert ok(admin.post("/kms/start"))["status"] == "Running"
        assert ok(admin.get("/kms/service-status"))["status"] == "Running"
