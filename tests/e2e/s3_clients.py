"""The S3 side of the end-to-end suite (API.md §9, §10): the clients that speak S3 to the server,
the checks every S3 answer gets, and the ways of encrypting an object (:class:`Sse`).

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
import http.client
import json
import os
import random
import re
import subprocess
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
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


# ---- objects (API.md §10) ---------------------------------------------------------------------

KIB = 1024
MIB = 1024 * KIB
# Plaintext bytes in one encrypted package: sizes and ranges around its multiples cross packages.
PACKAGE = 64 * KIB
# The smallest part S3 accepts but for the last one.
MIN_PART = 5 * MIB

SSE = "x-amz-server-side-encryption"
SSE_KMS_KEY_ID = "x-amz-server-side-encryption-aws-kms-key-id"
SSE_CONTEXT = "x-amz-server-side-encryption-context"
SSE_BUCKET_KEY = "x-amz-server-side-encryption-bucket-key-enabled"
SSE_C = "x-amz-server-side-encryption-customer"
COPY_SOURCE_SSE_C = "x-amz-copy-source-server-side-encryption-customer"

# The answer fields (boto3, the AWS CLI and the JS SDK name them alike) and their headers.
SSE_FIELDS = {
    "ServerSideEncryption": SSE,
    "SSEKMSKeyId": SSE_KMS_KEY_ID,
    "BucketKeyEnabled": SSE_BUCKET_KEY,
    "SSECustomerAlgorithm": f"{SSE_C}-algorithm",
    "SSECustomerKeyMD5": f"{SSE_C}-key-md5",
}


def body_of(size: int, seed: str = "") -> bytes:
    """``size`` pseudo-random bytes, always the same for the same size and seed. No two packages
    are alike, so a swapped or repeated package shows in a comparison."""
    return random.Random(f"{seed}/{size}").randbytes(size)


def md5_hex(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()


def unquoted(etag: str) -> str:
    """An ETag without its quotes; asserts it had them."""
    assert len(etag) > 2 and etag[0] == etag[-1] == '"', f"the ETag is not quoted: {etag!r}"
    return etag[1:-1]


def multipart_etag(parts: list[bytes]) -> str:
    """S3's ETag of an unencrypted multipart object: the MD5 of the parts' MD5s, then a dash and
    the number of parts."""
    digests = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def object_target(bucket: str, key: str) -> str:
    """The path of an object as the SDKs send it: the key URI-encoded by the S3 rules, ``/``
    kept (so ``a//b`` stays ``a//b``)."""
    return f"/{bucket}/" + urllib.parse.quote(key, safe="/~")


def customer_key(seed: str) -> bytes:
    """A 256-bit SSE-C key, the same for the same seed."""
    return hashlib.sha256(f"e2e customer key {seed}".encode()).digest()


def encode_context(context: dict) -> str:
    """An ``x-amz-server-side-encryption-context`` value: base64 of the JSON object."""
    return base64.b64encode(json.dumps(context).encode()).decode()


@dataclass(frozen=True)
class Sse:
    """One way of encrypting an object (API.md §10): what a writer sends, what a reader must send,
    and (:func:`check_sse`) what every answer about the object reports.

    ``algorithm`` is the ``x-amz-server-side-encryption`` value (None: unencrypted or SSE-C);
    ``key_id`` the aws:kms key as sent (bare id or ARN; None: the default key) or, in an
    expectation, the bare id the answers name; ``customer_key`` the 32 bytes of an SSE-C key;
    ``context`` an SSE-KMS encryption context."""

    name: str
    algorithm: str | None = None
    key_id: str | None = None
    customer_key: bytes | None = None
    context: dict | None = None

    @classmethod
    def none(cls) -> "Sse":
        return cls("none")

    @classmethod
    def s3(cls) -> "Sse":
        return cls("sse-s3", "AES256")

    @classmethod
    def kms(cls, key_id: str | None = None, context: dict | None = None) -> "Sse":
        return cls("sse-kms", "aws:kms", key_id, context=context)

    @classmethod
    def c(cls, key: bytes) -> "Sse":
        return cls("sse-c", customer_key=key)

    @property
    def encrypted(self) -> bool:
        return self.algorithm is not None or self.customer_key is not None

    @property
    def key_md5(self) -> str:
        """The SSE-C key's ``-customer-key-MD5``."""
        return base64.b64encode(hashlib.md5(self.customer_key).digest()).decode()

    def put_args(self) -> dict:
        """boto3 arguments of PutObject, CreateMultipartUpload and a CopyObject destination."""
        args: dict[str, Any] = {}
        if self.algorithm is not None:
            args["ServerSideEncryption"] = self.algorithm
        if self.key_id is not None:
            args["SSEKMSKeyId"] = self.key_id
        if self.context is not None:
            args["SSEKMSEncryptionContext"] = encode_context(self.context)
        return {**args, **self.read_args()}

    def read_args(self) -> dict:
        """boto3 arguments that GetObject, HeadObject and UploadPart need: the SSE-C key, which
        boto3 base64-encodes and hashes itself."""
        if self.customer_key is None:
            return {}
        return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": self.customer_key}

    def copy_source_args(self) -> dict:
        """boto3 arguments of a CopyObject whose source is encrypted this way."""
        if self.customer_key is None:
            return {}
        return {"CopySourceSSECustomerAlgorithm": "AES256",
                "CopySourceSSECustomerKey": self.customer_key}

    def put_headers(self) -> dict[str, str]:
        """The request headers of :meth:`put_args`."""
        headers = {}
        if self.algorithm is not None:
            headers[SSE] = self.algorithm
        if self.key_id is not None:
            headers[SSE_KMS_KEY_ID] = self.key_id
        if self.context is not None:
            headers[SSE_CONTEXT] = encode_context(self.context)
        return {**headers, **self.read_headers()}

    def read_headers(self, prefix: str = SSE_C) -> dict[str, str]:
        """The SSE-C request headers; with ``prefix=COPY_SOURCE_SSE_C``, a copy source's."""
        if self.customer_key is None:
            return {}
        return {
            f"{prefix}-algorithm": "AES256",
            f"{prefix}-key": base64.b64encode(self.customer_key).decode(),
            f"{prefix}-key-MD5": self.key_md5,
        }


def sse_fields(headers: dict[str, str]) -> dict:
    """The SSE headers of a raw answer as the fields boto3 gives (absent ones left out)."""
    fields: dict[str, Any] = {}
    for field, header in SSE_FIELDS.items():
        if header in headers:
            value = headers[header]
            fields[field] = value == "true" if field == "BucketKeyEnabled" else value
    return fields


def check_sse(answer: dict, expected: Sse, *, bucket_key: bool = False) -> None:
    """Asserts that an answer (boto3 output, the AWS CLI's or JS SDK's output, or
    :func:`sse_fields` of raw headers) reports exactly the encryption ``expected``, with the
    bucket key flag when ``bucket_key``."""
    reported = {f: answer[f] for f in SSE_FIELDS if answer.get(f) is not None}
    if reported.get("BucketKeyEnabled") is False:
        del reported["BucketKeyEnabled"]  # "false" says no more than no header
    want: dict[str, Any] = {}
    if expected.algorithm is not None:
        want["ServerSideEncryption"] = expected.algorithm
    if expected.algorithm == "aws:kms":
        assert expected.key_id, "an aws:kms expectation names the bare key id"
        want["SSEKMSKeyId"] = expected.key_id
    if expected.customer_key is not None:
        want["SSECustomerAlgorithm"] = "AES256"
        want["SSECustomerKeyMD5"] = expected.key_md5
    if bucket_key:
        want["BucketKeyEnabled"] = True
    assert reported == want, f"the answer reports {reported}, expected {want} ({expected.name})"


def check_etag(etag: str, body: bytes, applied: Sse) -> None:
    """The ETag of a single-part object: quoted; the body's MD5 exactly when unencrypted."""
    value = unquoted(etag)
    if applied.encrypted:
        assert value != md5_hex(body), f"an encrypted object's ETag is its plaintext MD5: {etag}"
    else:
        assert value == md5_hex(body), f"an unencrypted object's ETag is not its MD5: {etag}"


def upload_multipart(s3: Any, bucket: str, key: str, parts: list[bytes], sse: Sse,
                     **create: Any) -> tuple[dict, dict]:
    """CreateMultipartUpload (with ``sse`` and ``create`` arguments), UploadPart for each part
    (with the SSE-C key each time), CompleteMultipartUpload in order. Returns the create and the
    complete answers."""
    created = s3.create_multipart_upload(Bucket=bucket, Key=key, **sse.put_args(), **create)
    upload_id = created["UploadId"]
    done = []
    for number, part in enumerate(parts, start=1):
        answer = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                Body=part, **sse.read_args())
        done.append({"PartNumber": number, "ETag": answer["ETag"]})
    completed = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                             MultipartUpload={"Parts": done})
    return created, completed


def empty_bucket(s3: Any, bucket: str) -> None:
    """Deletes every object of a bucket, a listing page at a time."""
    for _ in range(1000):
        page = s3.list_objects_v2(Bucket=bucket)
        keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
        if not keys:
            return
        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    raise AssertionError(f"bucket {bucket} does not become empty")


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

    def fetch(self, method: str, target: str, headers: dict | None = None) -> "Fetched":
        """Signs and sends a bodiless request and reads the answer as far as the server sends
        it: a body cut short (the connection ends before ``Content-Length`` bytes, or a chunked
        body without its last chunk) is returned as received, marked incomplete."""
        signed = self.sign(method, target, "", b"", headers)
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port,
                                                timeout=TIMEOUT_SECONDS)
        try:
            connection.request(method, target, headers=signed.headers)
            answer = connection.getresponse()
            received = {k.lower(): v for k, v in answer.getheaders()}
            body = bytearray()
            complete = True
            try:
                while chunk := answer.read(PACKAGE):
                    body += chunk
            except (http.client.IncompleteRead, OSError) as err:
                body += getattr(err, "partial", b"")
                complete = False
            length = received.get("content-length")
            if method != "HEAD" and length is not None and len(body) != int(length):
                complete = False
            response = Response(self.name, method, target, None, answer.status, received,
                                bytes(body))
            return Fetched(response, complete)
        finally:
            connection.close()

    def put_stream(self, target: str, size: int, chunks: Iterable[bytes],
                   headers: dict | None = None, timeout: float = 600) -> Response:
        """PUT of a body of ``size`` bytes sent from ``chunks`` as they come (``UNSIGNED-PAYLOAD``,
        ``Content-Length``), so that no copy of the whole body exists in this process."""
        signed = self.sign("PUT", target, "", b"", {**(headers or {}), "Content-Length": str(size)},
                           payload_hash=UNSIGNED_PAYLOAD)
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=timeout)
        try:
            connection.request("PUT", target, body=iter(chunks), headers=signed.headers)
            answer = connection.getresponse()
            body = answer.read()
            received = {k.lower(): v for k, v in answer.getheaders()}
            return Response(self.name, "PUT", target, None, answer.status, received, body)
        finally:
            connection.close()

    def get_stream(self, target: str, consume: Callable[[bytes], None],
                   headers: dict | None = None, timeout: float = 600) -> Response:
        """GET whose body, when the answer is a 2xx, goes piece by piece to ``consume`` instead
        of into the returned :class:`Response` (whose body is then empty)."""
        signed = self.sign("GET", target, "", b"", headers)
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=timeout)
        try:
            connection.request("GET", target, headers=signed.headers)
            answer = connection.getresponse()
            received = {k.lower(): v for k, v in answer.getheaders()}
            if not 200 <= answer.status < 300:
                return Response(self.name, "GET", target, None, answer.status, received,
                                answer.read())
            while chunk := answer.read(MIB):
                consume(chunk)
            return Response(self.name, "GET", target, None, answer.status, received, b"")
        finally:
            connection.close()

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


@dataclass
class Fetched:
    """An answer read as far as the server sent it (:meth:`S3Raw.fetch`)."""

    response: Response
    complete: bool


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

    def run(self, args: list[str], timeout: float = TIMEOUT_SECONDS) -> CliResult:
        command = [str(self.executable), "--endpoint-url", self.server.url, *args]
        done = subprocess.run(command, capture_output=True, text=True, env=self.environment(),
                              timeout=timeout, stdin=subprocess.DEVNULL)
        return CliResult(command[1:], done.returncode, done.stdout, done.stderr)

    def s3api(self, operation: str, *args: str) -> CliResult:
        return self.run(["--output", "json", "s3api", operation, *args])

    def s3(self, command: str, *args: str, timeout: float = TIMEOUT_SECONDS) -> CliResult:
        """``aws s3 COMMAND ...``: the high-level commands (``cp``, ``ls``, ``rm``), which use
        multipart uploads and ranged downloads for large files."""
        return self.run(["s3", command, *args], timeout)

    def s3_ok(self, command: str, *args: str, timeout: float = TIMEOUT_SECONDS) -> str:
        """Runs ``aws s3 ...``, asserts it succeeded and returns what it printed."""
        result = self.s3(command, *args, timeout=timeout)
        assert result.returncode == 0, f"aws s3 {command} failed: {result}"
        return result.stdout

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
    "message", "requestId", "resource"}``. Bytes cross as base64: an input's ``BodyBase64`` (or
    ``BodyFile``, a path) becomes its ``Body``, and an output's ``Body`` is read whole and
    answered as ``{"base64", "length", "sha256"}`` (:func:`js_body`)."""

    def __init__(self, node: str, js_dir: Path, server: Any, credentials: Credentials,
                 region: str = REGION):
        self.node = node
        self.js_dir = js_dir
        self.server = server
        self.credentials = credentials
        self.region = region

    def run(self, ops: list[dict], timeout: float = TIMEOUT_SECONDS) -> list[dict]:
        command = {
            "endpoint": self.server.url,
            "region": self.region,
            "accessKeyId": self.credentials.access_key,
            "secretAccessKey": self.credentials.secret_key,
            "ops": ops,
        }
        done = subprocess.run(
            [self.node, "s3_ops.mjs"], cwd=self.js_dir, input=json.dumps(command),
            capture_output=True, text=True, timeout=timeout,
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


def js_body(output: dict) -> bytes:
    """The bytes of a JS SDK output's ``Body``, checked against its length and SHA-256."""
    body = base64.b64decode(output["Body"]["base64"])
    assert len(body) == output["Body"]["length"], output["Body"]
    assert hashlib.sha256(body).hexdigest() == output["Body"]["sha256"], output["Body"]
    return body


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
