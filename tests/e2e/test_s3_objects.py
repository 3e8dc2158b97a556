"""Objects (API.md §10) through boto3 and raw signed requests on the session server: PutObject,
GetObject (Range, If-Match, If-None-Match), HeadObject, DeleteObject, DeleteObjects,
ListObjectsV2 and ListObjects, CopyObject and multipart uploads, each unencrypted and under
SSE-S3, SSE-KMS and SSE-C, chosen by the request headers or the bucket default; checksums,
aws-chunked and unsigned bodies; and the object actions of the identity file (on a server of this
module's own).

Sizes sit around the 64 KiB package (``PACKAGE``) and parts are 5 MiB plus a little, so that
objects and ranges cross package and part boundaries. What lies on disk, tampering, restarts and
the KMS being down are in ``test_s3_objects_at_rest.py``.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from conftest import DEFAULT_KEY, KmsServer, random_credentials
from hardening import grants, write_identities
from kms_clients import ok
from s3_clients import (
    COPY_SOURCE_SSE_C,
    KIB,
    MIN_PART,
    PACKAGE,
    S3_NS,
    SSE,
    SSE_C,
    SSE_CONTEXT,
    SSE_KMS_KEY_ID,
    UNSIGNED_PAYLOAD,
    Sse,
    body_of,
    boto3_client,
    boto_error,
    check_etag,
    check_sse,
    checksum_crc32,
    checksum_sha256,
    client_error,
    config,
    content_md5,
    customer_key,
    expect_s3_error,
    key_arn,
    multipart_etag,
    object_target,
    sse_fields,
    status_of,
    unique_bucket,
    unquoted,
    upload_multipart,
)

UNKNOWN_KEY = "00000000-0000-4000-8000-000000000000"
MODES = ("none", "sse-s3", "sse-kms", "sse-c")
ENCRYPTED = MODES[1:]
SIZES = (0, 1, PACKAGE - 1, PACKAGE, PACKAGE + 1, 200 * KIB)
CUSTOMER_KEY = customer_key("objects")
OTHER_CUSTOMER_KEY = customer_key("someone else")

# A 200 KiB object: three full packages and a short one. (header, first byte, last byte)
RANGED_SIZE = 200 * KIB
RANGES = [
    ("bytes=0-0", 0, 0),
    ("bytes=0-99", 0, 99),
    (f"bytes={PACKAGE - 1}-{PACKAGE}", PACKAGE - 1, PACKAGE),
    (f"bytes={PACKAGE}-{2 * PACKAGE - 1}", PACKAGE, 2 * PACKAGE - 1),
    (f"bytes={PACKAGE - 10}-{2 * PACKAGE + 10}", PACKAGE - 10, 2 * PACKAGE + 10),
    ("bytes=1000-", 1000, RANGED_SIZE - 1),
    (f"bytes={3 * PACKAGE}-", 3 * PACKAGE, RANGED_SIZE - 1),
    ("bytes=-1", RANGED_SIZE - 1, RANGED_SIZE - 1),
    (f"bytes=-{PACKAGE + 1}", RANGED_SIZE - PACKAGE - 1, RANGED_SIZE - 1),
    (f"bytes=0-{RANGED_SIZE - 1}", 0, RANGED_SIZE - 1),
    # An end past the object is the object's end; a suffix longer than it is all of it.
    (f"bytes=100-{RANGED_SIZE + 1000}", 100, RANGED_SIZE - 1),
    (f"bytes=-{RANGED_SIZE + 1000}", 0, RANGED_SIZE - 1),
]

# Two parts of 5 MiB and a little (so part and package boundaries differ), and a short tail.
PART = MIN_PART + 1000
TAIL = 100 * KIB + 7


def multipart_ranges(total: int) -> list[tuple[int, int]]:
    return [
        (PART - 1, PART),                              # parts 1 and 2 meet
        (PART - PACKAGE - 3, PART + PACKAGE + 3),      # packages on both sides of it
        (80 * PACKAGE - 1, 80 * PACKAGE),              # a package boundary inside part 1
        (PART, 2 * PART - 1),                          # exactly part 2
        (2 * PART - 5, 2 * PART + 5),                  # parts 2 and 3 meet
        (PART - 10, 2 * PART + 10),                    # all three parts
        (total - TAIL - 1, total - 1),                 # the tail and the byte before it
        (0, total - 1),
    ]


# Keys as S3 allows them: slashes (also doubled, leading and trailing), spaces, unicode, and the
# characters that URI encoding and form decoding treat specially.
ODD_KEYS = [
    "plain.txt",
    "dir/sub/file.bin",
    "a//b",
    "/leading-slash",
    "trailing-slash/",
    "with space/and  two",
    "ünïcødé/日本語 файл.txt",
    "plus+and=equals&amp;semi;colon:",
    "percent%2Fnot-a-slash %41",
    "tilde~star*quote'paren()bang!at@dollar$comma,",
    "question?hash#bracket[]",
]


def sse_for(mode: str, key_id: str) -> Sse:
    return {
        "none": Sse.none(),
        "sse-s3": Sse.s3(),
        "sse-kms": Sse.kms(key_id),
        "sse-c": Sse.c(CUSTOMER_KEY),
    }[mode]


@pytest.fixture(scope="module")
def module_key(admin) -> str:
    """An SSE-KMS key for this module's objects (tests that change a key's state make their own)."""
    return ok(admin.post("/kms/keys", {"Description": "e2e objects"}))["key_id"]


@pytest.fixture(params=MODES)
def sse(request, module_key) -> Sse:
    """Each way of writing an object, with what its answers then report."""
    return sse_for(request.param, module_key)


@pytest.fixture(params=ENCRYPTED)
def encrypted(request, module_key) -> Sse:
    return sse_for(request.param, module_key)


def put(s3, bucket: str, key: str, body: bytes, sse: Sse, **extra) -> dict:
    answer = s3.put_object(Bucket=bucket, Key=key, Body=body, **sse.put_args(), **extra)
    assert status_of(answer) == 200, answer
    return answer


def get(s3, bucket: str, key: str, sse: Sse, **extra) -> tuple[dict, bytes]:
    answer = s3.get_object(Bucket=bucket, Key=key, **sse.read_args(), **extra)
    return answer, answer["Body"].read()


def read(s3, bucket: str, key: str, sse: Sse) -> bytes:
    answer, body = get(s3, bucket, key, sse)
    assert status_of(answer) == 200, answer
    assert answer["ContentLength"] == len(body), answer
    return body


def absent(s3, bucket: str, key: str) -> None:
    boto_error(lambda: s3.head_object(Bucket=bucket, Key=key), 404, "404")


def check_range(s3, bucket: str, key: str, sse: Sse, data: bytes, header: str, first: int,
                last: int) -> dict:
    answer, body = get(s3, bucket, key, sse, Range=header)
    assert status_of(answer) == 206, (header, answer)
    assert answer["ContentRange"] == f"bytes {first}-{last}/{len(data)}", (header, answer)
    assert answer["ContentLength"] == last - first + 1, (header, answer)
    assert body == data[first:last + 1], f"{header}: the bytes differ from the source"
    return answer


# ---- PutObject, GetObject, HeadObject ---------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_an_object_reads_back_byte_for_byte(s3_client, make_bucket, sse, size):
    bucket = make_bucket("obj")
    data = body_of(size, sse.name)
    written = put(s3_client, bucket, "object.bin", data, sse)
    check_sse(written, sse)
    check_etag(written["ETag"], data, sse)

    answer, body = get(s3_client, bucket, "object.bin", sse)
    assert status_of(answer) == 200 and body == data, f"{len(body)} bytes back of {size}"
    assert answer["ContentLength"] == size and answer["ETag"] == written["ETag"], answer
    check_sse(answer, sse)

    head = s3_client.head_object(Bucket=bucket, Key="object.bin", **sse.read_args())
    assert head["ContentLength"] == size and head["ETag"] == written["ETag"], head
    check_sse(head, sse)


def test_the_raw_answers_carry_the_sse_headers(s3_raw, make_bucket, sse):
    # The exact header names of §10, which botocore would map however they were spelled.
    bucket = make_bucket("rawhdr")
    data = body_of(3 * PACKAGE + 5, "raw")
    target = object_target(bucket, "raw.bin")
    written = s3_raw.request("PUT", target, body=data, headers=sse.put_headers())
    assert written.status == 200, written
    check_sse(sse_fields(written.headers), sse)
    check_etag(written.headers["etag"], data, sse)
    for method in ("GET", "HEAD"):
        answer = s3_raw.request(method, target, headers=sse.read_headers())
        assert answer.status == 200, answer
        assert answer.body == (data if method == "GET" else b""), answer
        assert answer.headers["content-length"] == str(len(data)), answer
        assert answer.headers["etag"] == written.headers["etag"], answer
        check_sse(sse_fields(answer.headers), sse)
    if sse.customer_key is not None:
        # The customer key itself never comes back.
        secret = base64.b64encode(sse.customer_key).decode()
        assert all(secret not in value for value in written.headers.values()), written


def test_ranges_read_exactly_the_bytes_asked_for(s3_client, make_bucket, sse):
    bucket = make_bucket("range")
    data = body_of(RANGED_SIZE, "ranges")
    put(s3_client, bucket, "ranged.bin", data, sse)
    for header, first, last in RANGES:
        answer = check_range(s3_client, bucket, "ranged.bin", sse, data, header, first, last)
        check_sse(answer, sse)


def test_an_unsatisfiable_range_is_invalid_range(s3_client, make_bucket, sse):
    bucket = make_bucket("norange")
    data = body_of(RANGED_SIZE, "unsatisfiable")
    put(s3_client, bucket, "short.bin", data, sse)
    for header in (f"bytes={RANGED_SIZE}-", f"bytes={RANGED_SIZE + 10}-{RANGED_SIZE + 20}"):
        boto_error(lambda: get(s3_client, bucket, "short.bin", sse, Range=header), 416,
                   "InvalidRange")


def test_if_match_and_if_none_match(s3_client, make_bucket, sse):
    bucket = make_bucket("cond")
    data = body_of(PACKAGE + 1, "conditional")
    etag = put(s3_client, bucket, "cond.bin", data, sse)["ETag"]
    other = '"0123456789abcdef0123456789abcdef"'

    answer, body = get(s3_client, bucket, "cond.bin", sse, IfMatch=etag)
    assert status_of(answer) == 200 and body == data
    boto_error(lambda: get(s3_client, bucket, "cond.bin", sse, IfMatch=other), 412,
               "PreconditionFailed")
    boto_error(lambda: get(s3_client, bucket, "cond.bin", sse, IfNoneMatch=etag), 304, "304")
    answer, body = get(s3_client, bucket, "cond.bin", sse, IfNoneMatch=other)
    assert status_of(answer) == 200 and body == data

    head = sse.read_args()
    boto_error(lambda: s3_client.head_object(Bucket=bucket, Key="cond.bin", IfMatch=other,
                                             **head), 412, "412")
    boto_error(lambda: s3_client.head_object(Bucket=bucket, Key="cond.bin", IfNoneMatch=etag,
                                             **head), 304, "304")


def test_metadata_and_content_type_round_trip(s3_client, make_bucket, sse):
    bucket = make_bucket("meta")
    metadata = {"colour": "blue", "multi-word": "a b c"}
    put(s3_client, bucket, "meta.txt", b"hello", sse, Metadata=metadata,
        ContentType="text/plain; charset=utf-8")
    answer, _ = get(s3_client, bucket, "meta.txt", sse)
    head = s3_client.head_object(Bucket=bucket, Key="meta.txt", **sse.read_args())
    for reported in (answer, head):
        assert reported["Metadata"] == metadata, reported
        assert reported["ContentType"] == "text/plain; charset=utf-8", reported


def test_a_later_put_replaces_the_object_and_its_encryption(s3_client, make_bucket, module_key):
    bucket = make_bucket("replace")
    versions = [Sse.kms(module_key), Sse.none(), Sse.c(CUSTOMER_KEY), Sse.s3()]
    for number, sse in enumerate(versions):
        data = body_of(PACKAGE + number, f"version {number}")
        put(s3_client, bucket, "replaced.bin", data, sse)
        answer, body = get(s3_client, bucket, "replaced.bin", sse)
        assert body == data, f"version {number} ({sse.name}) does not read back"
        check_sse(answer, sse)
    listing = s3_client.list_objects_v2(Bucket=bucket)
    assert [entry["Key"] for entry in listing["Contents"]] == ["replaced.bin"], listing


@pytest.mark.parametrize("mode", ["none", "sse-kms"])
def test_keys_with_slashes_spaces_and_unicode(s3_client, s3_raw, make_bucket, module_key, mode):
    sse = sse_for(mode, module_key)
    bucket = make_bucket("keys")
    bodies = {key: body_of(100 + i, key) for i, key in enumerate(ODD_KEYS)}
    for key, data in bodies.items():
        put(s3_client, bucket, key, data, sse)
    for key, data in bodies.items():
        assert read(s3_client, bucket, key, sse) == data, f"{key!r} does not read back"
        raw = s3_raw.request("GET", object_target(bucket, key))
        assert raw.status == 200 and raw.body == data, raw

    # S3 lists in UTF-8 byte order; boto3 asks for url-encoded keys and decodes them.
    in_order = sorted(ODD_KEYS, key=lambda k: k.encode())
    listing = s3_client.list_objects_v2(Bucket=bucket)
    assert [entry["Key"] for entry in listing["Contents"]] == in_order, listing
    root = ET.fromstring(s3_raw.request("GET", f"/{bucket}", "list-type=2").body)
    raw_keys = [element.text for element in root.iter(f"{{{S3_NS}}}Key")]
    assert raw_keys == in_order, raw_keys

    for key in ODD_KEYS:
        assert status_of(s3_client.delete_object(Bucket=bucket, Key=key)) == 204
        absent(s3_client, bucket, key)


def test_a_key_over_1024_bytes_is_key_too_long(s3_client, make_bucket):
    bucket = make_bucket("longkey")
    put(s3_client, bucket, "k" * 1024, b"longest", Sse.none())
    boto_error(lambda: put(s3_client, bucket, "k" * 1025, b"too long", Sse.none()), 400,
               "KeyTooLongError")
    boto_error(lambda: put(s3_client, bucket, "é" * 513, b"too long", Sse.none()), 400,
               "KeyTooLongError")
    assert [e["Key"] for e in s3_client.list_objects_v2(Bucket=bucket)["Contents"]] == [
        "k" * 1024]


def test_a_missing_object_or_bucket_is_not_found(s3_client, s3_raw, make_bucket):
    bucket = make_bucket("missing")
    boto_error(lambda: s3_client.get_object(Bucket=bucket, Key="nope"), 404, "NoSuchKey")
    expect_s3_error(s3_raw.request("GET", f"/{bucket}/nope"), 404, "NoSuchKey",
                    f"/{bucket}/nope")
    absent(s3_client, bucket, "nope")
    gone = unique_bucket("gone")
    boto_error(lambda: s3_client.get_object(Bucket=gone, Key="k"), 404, "NoSuchBucket")
    boto_error(lambda: s3_client.head_object(Bucket=gone, Key="k"), 404, "404")
    boto_error(lambda: put(s3_client, gone, "k", b"x", Sse.none()), 404, "NoSuchBucket")
    boto_error(lambda: s3_client.delete_object(Bucket=gone, Key="k"), 404, "NoSuchBucket")
    boto_error(lambda: s3_client.list_objects_v2(Bucket=gone), 404, "NoSuchBucket")
    boto_error(lambda: s3_client.create_multipart_upload(Bucket=gone, Key="k"), 404,
               "NoSuchBucket")
    assert gone not in [b["Name"] for b in s3_client.list_buckets()["Buckets"]]


# ---- choosing the encryption -------------------------------------------------------------------

BUCKET_DEFAULTS = {
    "aes256": (lambda key: config("AES256"), lambda key: Sse.s3(), False),
    "kms-key": (lambda key: config("aws:kms", key), lambda key: Sse.kms(key), False),
    "kms-default-key": (lambda key: config("aws:kms"), lambda key: Sse.kms(DEFAULT_KEY), False),
    "kms-bucket-key": (lambda key: config("aws:kms", key_arn(key), bucket_key=True),
                       lambda key: Sse.kms(key), True),
}


@pytest.mark.parametrize("default", BUCKET_DEFAULTS.values(), ids=BUCKET_DEFAULTS.keys())
def test_the_bucket_default_applies_when_the_request_names_none(s3_client, make_bucket,
                                                                module_key, default):
    configuration, expected_of, bucket_key = default
    expected = expected_of(module_key)
    bucket = make_bucket("default")
    s3_client.put_bucket_encryption(Bucket=bucket,
                                    ServerSideEncryptionConfiguration=configuration(module_key))
    data = body_of(2 * PACKAGE + 3, "bucket default")
    written = put(s3_client, bucket, "by-default.bin", data, Sse.none())
    check_sse(written, expected, bucket_key=bucket_key)
    check_etag(written["ETag"], data, expected)
    answer, body = get(s3_client, bucket, "by-default.bin", Sse.none())
    assert body == data
    check_sse(answer, expected, bucket_key=bucket_key)
    check_sse(s3_client.head_object(Bucket=bucket, Key="by-default.bin"), expected,
              bucket_key=bucket_key)

    parts = [body_of(PART, "default part 1"), body_of(TAIL, "default part 2")]
    created, _ = upload_multipart(s3_client, bucket, "multipart.bin", parts, Sse.none())
    check_sse(created, expected, bucket_key=bucket_key)
    check_sse(s3_client.head_object(Bucket=bucket, Key="multipart.bin"), expected,
              bucket_key=bucket_key)
    assert read(s3_client, bucket, "multipart.bin", Sse.none()) == b"".join(parts)


def test_the_request_headers_override_the_bucket_default(s3_client, make_bucket, module_key,
                                                         new_key):
    bucket = make_bucket("override")
    s3_client.put_bucket_encryption(Bucket=bucket,
                                    ServerSideEncryptionConfiguration=config("aws:kms", module_key))
    other_key = new_key("override")
    for number, sse in enumerate([Sse.s3(), Sse.kms(other_key), Sse.c(CUSTOMER_KEY)]):
        data = body_of(PACKAGE + 1, f"override {number}")
        check_sse(put(s3_client, bucket, f"o{number}", data, sse), sse)
        answer, body = get(s3_client, bucket, f"o{number}", sse)
        assert body == data
        check_sse(answer, sse)


@pytest.mark.parametrize("form", ["absent", "arn"])
def test_aws_kms_names_the_bare_key_id(s3_client, make_bucket, module_key, form):
    bucket = make_bucket("kmsid")
    sent, expected = {
        "absent": (Sse.kms(), Sse.kms(DEFAULT_KEY)),
        "arn": (Sse.kms(key_arn(module_key)), Sse.kms(module_key)),
    }[form]
    data = body_of(PACKAGE + 7, form)
    check_sse(put(s3_client, bucket, "k.bin", data, sent), expected)
    answer, body = get(s3_client, bucket, "k.bin", Sse.none())
    assert body == data
    check_sse(answer, expected)


@pytest.mark.parametrize("reference", [UNKNOWN_KEY, key_arn(UNKNOWN_KEY), "no-such-key"],
                         ids=["uuid", "arn", "name"])
def test_an_unknown_kms_key_is_refused_and_creates_nothing(s3_client, make_bucket, reference):
    bucket = make_bucket("unknown")
    put(s3_client, bucket, "kept.bin", b"the first version", Sse.none())
    for key in ("new.bin", "kept.bin"):
        boto_error(lambda: put(s3_client, bucket, key, b"refused", Sse.kms(reference)), 400,
                   "KMSKeyNotFound")
    absent(s3_client, bucket, "new.bin")
    assert read(s3_client, bucket, "kept.bin", Sse.none()) == b"the first version"
    boto_error(lambda: s3_client.create_multipart_upload(Bucket=bucket, Key="mp.bin",
                                                         **Sse.kms(reference).put_args()),
               400, "KMSKeyNotFound")


@pytest.mark.parametrize("state", ["disabled", "pending-deletion"])
def test_a_disabled_or_pending_key_is_refused_for_writes(s3_client, admin, make_bucket, new_key,
                                                         state):
    bucket = make_bucket("keystate")
    key_id = new_key(state)
    default_bucket = make_bucket("keystate-default")
    s3_client.put_bucket_encryption(Bucket=default_bucket,
                                    ServerSideEncryptionConfiguration=config("aws:kms", key_id))
    if state == "disabled":
        ok(admin.post("/kms/keys/disable", {"key_id": key_id}))
    else:
        ok(admin.delete("/kms/keys/delete", {"key_id": key_id, "pending_window_in_days": 7}))
    try:
        boto_error(lambda: put(s3_client, bucket, "k.bin", b"x", Sse.kms(key_id)), 400,
                   "KMS.KMSInvalidStateException")
        absent(s3_client, bucket, "k.bin")
        boto_error(lambda: put(s3_client, default_bucket, "k.bin", b"x", Sse.none()), 400,
                   "KMS.KMSInvalidStateException")
        absent(s3_client, default_bucket, "k.bin")
        boto_error(lambda: s3_client.create_multipart_upload(Bucket=bucket, Key="mp.bin",
                                                             **Sse.kms(key_id).put_args()),
                   400, "KMS.KMSInvalidStateException")
    finally:
        if state == "disabled":
            ok(admin.post("/kms/keys/enable", {"key_id": key_id}))
        else:
            ok(admin.post("/kms/keys/cancel-deletion", {"key_id": key_id}))
    put(s3_client, bucket, "k.bin", b"now it works", Sse.kms(key_id))
    assert read(s3_client, bucket, "k.bin", Sse.none()) == b"now it works"


def test_an_encryption_context_is_accepted(s3_client, make_bucket, module_key):
    bucket = make_bucket("context")
    sse = Sse.kms(module_key, context={"department": "e2e", "purpose": "a test", "empty": ""})
    data = body_of(PACKAGE + 2, "context")
    check_sse(put(s3_client, bucket, "ctx.bin", data, sse), Sse.kms(module_key))
    answer, body = get(s3_client, bucket, "ctx.bin", Sse.none())
    assert body == data
    check_sse(answer, Sse.kms(module_key))


BAD_CONTEXTS = {
    "not-base64": "this is not base64!",
    "not-json": base64.b64encode(b"department=e2e").decode(),
    "json-array": base64.b64encode(json.dumps(["e2e"]).encode()).decode(),
    "nested-object": base64.b64encode(json.dumps({"a": {"b": "c"}}).encode()).decode(),
}


@pytest.mark.parametrize("value", BAD_CONTEXTS.values(), ids=BAD_CONTEXTS.keys())
def test_a_bad_encryption_context_is_invalid_argument(s3_client, s3_raw, make_bucket, module_key,
                                                      value):
    bucket = make_bucket("badctx")
    headers = {SSE: "aws:kms", SSE_KMS_KEY_ID: module_key, SSE_CONTEXT: value}
    resp = s3_raw.request("PUT", object_target(bucket, "ctx.bin"), body=b"data", headers=headers)
    expect_s3_error(resp, 400, "InvalidArgument")
    absent(s3_client, bucket, "ctx.bin")


SSE_C_HEADERS = Sse.c(CUSTOMER_KEY).read_headers()
BAD_SSE_HEADERS = {
    "unknown-algorithm": {SSE: "AES512"},
    "aes256-with-a-kms-key": {SSE: "AES256", SSE_KMS_KEY_ID: DEFAULT_KEY},
    "sse-c-wrong-md5": {**SSE_C_HEADERS, f"{SSE_C}-key-MD5": Sse.c(OTHER_CUSTOMER_KEY).key_md5},
    "sse-c-16-byte-key": Sse.c(CUSTOMER_KEY[:16]).read_headers(),
    "sse-c-no-md5": {k: v for k, v in SSE_C_HEADERS.items() if not k.endswith("MD5")},
}


@pytest.mark.parametrize("headers", BAD_SSE_HEADERS.values(), ids=BAD_SSE_HEADERS.keys())
def test_malformed_sse_headers_are_invalid_argument(s3_client, s3_raw, make_bucket, headers):
    bucket = make_bucket("badsse")
    resp = s3_raw.request("PUT", object_target(bucket, "bad.bin"), body=b"data", headers=headers)
    expect_s3_error(resp, 400, "InvalidArgument")
    absent(s3_client, bucket, "bad.bin")


# ---- SSE-C -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 2 * PACKAGE + 1])
def test_an_sse_c_object_needs_its_key_to_be_read(s3_client, s3_raw, make_bucket, size):
    bucket = make_bucket("ssec")
    sse, wrong = Sse.c(CUSTOMER_KEY), Sse.c(OTHER_CUSTOMER_KEY)
    data = body_of(size, "customer")
    put(s3_client, bucket, "secret.bin", data, sse)
    calls = {
        "get": lambda s: s3_client.get_object(Bucket=bucket, Key="secret.bin", **s.read_args()),
        "range": lambda s: s3_client.get_object(Bucket=bucket, Key="secret.bin", Range="bytes=0-",
                                                **s.read_args()),
        "copy": lambda s: s3_client.copy_object(
            Bucket=bucket, Key="copy.bin", CopySource={"Bucket": bucket, "Key": "secret.bin"},
            **s.copy_source_args()),
    }
    for name, call in calls.items():
        boto_error(lambda: call(Sse.none()), 400, "InvalidRequest")
        boto_error(lambda: call(wrong), 403, "AccessDenied")
    boto_error(lambda: s3_client.head_object(Bucket=bucket, Key="secret.bin"), 400, "400")
    boto_error(lambda: s3_client.head_object(Bucket=bucket, Key="secret.bin", **wrong.read_args()),
               403, "403")
    target = object_target(bucket, "secret.bin")
    expect_s3_error(s3_raw.request("GET", target), 400, "InvalidRequest")
    expect_s3_error(s3_raw.request("GET", target, headers=wrong.read_headers()), 403,
                    "AccessDenied")
    absent(s3_client, bucket, "copy.bin")
    assert read(s3_client, bucket, "secret.bin", sse) == data


# ---- checksums ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm, digest", [("CRC32", checksum_crc32),
                                               ("SHA256", checksum_sha256)],
                         ids=["crc32", "sha256"])
def test_the_stored_checksum_of_the_plaintext_is_returned(s3_client, make_bucket, sse, algorithm,
                                                          digest):
    bucket = make_bucket("cksum")
    data = body_of(2 * PACKAGE + 11, "checksum")
    put(s3_client, bucket, "sum.bin", data, sse, ChecksumAlgorithm=algorithm)
    answer, body = get(s3_client, bucket, "sum.bin", sse, ChecksumMode="ENABLED")
    assert body == data
    assert answer[f"Checksum{algorithm}"] == digest(data), answer


WRONG_DIGESTS = {
    "content-md5": ("Content-MD5", content_md5),
    "crc32": ("x-amz-checksum-crc32", checksum_crc32),
    "sha256": ("x-amz-checksum-sha256", checksum_sha256),
}


@pytest.mark.parametrize("header, digest", WRONG_DIGESTS.values(), ids=WRONG_DIGESTS.keys())
def test_a_wrong_digest_is_bad_digest_and_stores_nothing(s3_client, s3_raw, make_bucket, sse,
                                                         header, digest):
    bucket = make_bucket("baddigest")
    first = body_of(PACKAGE + 1, "first")
    put(s3_client, bucket, "kept.bin", first, sse)
    data = body_of(PACKAGE + 1, "second")
    for key in ("kept.bin", "new.bin"):
        resp = s3_raw.request("PUT", object_target(bucket, key), body=data,
                              headers={**sse.put_headers(), header: digest(data + b"x")})
        expect_s3_error(resp, 400, "BadDigest")
    absent(s3_client, bucket, "new.bin")
    assert read(s3_client, bucket, "kept.bin", sse) == first
    right = s3_raw.request("PUT", object_target(bucket, "new.bin"), body=data,
                           headers={**sse.put_headers(), header: digest(data)})
    assert right.status == 200, right
    assert read(s3_client, bucket, "new.bin", sse) == data


# ---- bodies in other shapes (API.md §2) --------------------------------------------------------


def test_an_aws_chunked_signed_upload(s3_client, s3_raw, make_bucket, sse):
    bucket = make_bucket("chunked")
    data = body_of(3 * PACKAGE + 100, "chunked")
    resp = s3_raw.chunked("PUT", object_target(bucket, "chunked.bin"), "", data,
                          sse.put_headers(), chunk_size=PACKAGE // 2)
    assert resp.status == 200, resp
    check_sse(sse_fields(resp.headers), sse)
    assert read(s3_client, bucket, "chunked.bin", sse) == data


def test_a_tampered_chunk_signature_stores_nothing(s3_client, s3_raw, make_bucket):
    bucket = make_bucket("chunkbad")
    data = body_of(3 * PACKAGE, "tampered chunks")

    def tamper(index, signature):
        return signature if index != 2 else ("0" if signature[0] != "0" else "1") + signature[1:]

    resp = s3_raw.chunked("PUT", object_target(bucket, "bad.bin"), "", data, {},
                          chunk_size=PACKAGE // 2, tamper_chunk=tamper)
    expect_s3_error(resp, 403, "SignatureDoesNotMatch")
    absent(s3_client, bucket, "bad.bin")


def test_an_unsigned_trailer_upload_is_checked_against_its_trailer(s3_client, s3_raw, make_bucket,
                                                                   sse):
    bucket = make_bucket("trailer")
    data = body_of(2 * PACKAGE + 9, "trailer")
    target = object_target(bucket, "trailer.bin")
    wrong = s3_raw.unsigned_trailer("PUT", target, "", data,
                                    {"x-amz-checksum-crc32": checksum_crc32(data + b"x")},
                                    sse.put_headers())
    expect_s3_error(wrong, 400, "BadDigest")
    absent(s3_client, bucket, "trailer.bin")
    right = s3_raw.unsigned_trailer("PUT", target, "", data,
                                    {"x-amz-checksum-crc32": checksum_crc32(data)},
                                    sse.put_headers())
    assert right.status == 200, right
    assert read(s3_client, bucket, "trailer.bin", sse) == data


def test_an_unsigned_payload_of_several_mib_is_accepted(s3_client, s3_raw, make_bucket, module_key):
    bucket = make_bucket("unsigned")
    data = body_of(3 * 1024 * KIB + 5, "unsigned")
    resp = s3_raw.request("PUT", object_target(bucket, "u.bin"), body=data,
                          headers=Sse.kms(module_key).put_headers(), payload_hash=UNSIGNED_PAYLOAD)
    assert resp.status == 200, resp
    assert read(s3_client, bucket, "u.bin", Sse.none()) == data


@pytest.mark.parametrize("size", [PACKAGE, 3 * 1024 * KIB], ids=["64k", "3m"])
def test_a_body_that_is_not_the_signed_one_stores_nothing(s3_client, s3_raw, make_bucket, size):
    # The signed hash can only be checked at the end of a streamed body: the object must not
    # exist, not even for a moment afterwards.
    bucket = make_bucket("hashbad")
    signed_for = body_of(size, "signed")
    sent = bytearray(signed_for)
    sent[-1] ^= 1

    resp = s3_raw.request("PUT", object_target(bucket, "h.bin"), body=signed_for,
                          headers=Sse.s3().put_headers(), tamper=lambda h, b: bytes(sent))
    expect_s3_error(resp, 400, "XAmzContentSHA256Mismatch")
    absent(s3_client, bucket, "h.bin")
    assert s3_client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# ---- DeleteObject, DeleteObjects, DeleteBucket -------------------------------------------------


def test_delete_object_is_204_also_for_a_missing_key(s3_client, make_bucket, sse):
    bucket = make_bucket("delete")
    put(s3_client, bucket, "doomed.bin", body_of(PACKAGE + 1, "doomed"), sse)
    for _ in range(2):
        assert status_of(s3_client.delete_object(Bucket=bucket, Key="doomed.bin")) == 204
        boto_error(lambda: get(s3_client, bucket, "doomed.bin", sse), 404, "NoSuchKey")
    assert status_of(s3_client.delete_object(Bucket=bucket, Key="never-was")) == 204


def test_delete_objects_reports_every_key(s3_client, make_bucket, module_key):
    bucket = make_bucket("multidel")
    kinds = [Sse.none(), Sse.s3(), Sse.kms(module_key), Sse.c(CUSTOMER_KEY)]
    keys = [f"dir/{sse.name}.bin" for sse in kinds]
    for key, sse in zip(keys, kinds):
        put(s3_client, bucket, key, b"to delete", sse)
    put(s3_client, bucket, "kept.bin", b"kept", Sse.none())

    answer = s3_client.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": k} for k in keys + ["never-was"]], "Quiet": False})
    assert status_of(answer) == 200, answer
    assert sorted(d["Key"] for d in answer["Deleted"]) == sorted(keys + ["never-was"]), answer
    assert not answer.get("Errors"), answer
    for key in keys:
        absent(s3_client, bucket, key)
    assert [e["Key"] for e in s3_client.list_objects_v2(Bucket=bucket)["Contents"]] == [
        "kept.bin"]

    quiet = s3_client.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": "kept.bin"}], "Quiet": True})
    assert not quiet.get("Deleted") and not quiet.get("Errors"), quiet
    assert s3_client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_the_delete_result_is_the_s3_document(s3_raw, s3_client, make_bucket):
    bucket = make_bucket("delxml")
    put(s3_client, bucket, "a b.txt", b"x", Sse.none())
    body = (f'<Delete xmlns="{S3_NS}"><Object><Key>a b.txt</Key></Object>'
            "<Object><Key>missing</Key></Object></Delete>").encode()
    resp = s3_raw.request("POST", f"/{bucket}", "delete", body, {"Content-MD5": content_md5(body)})
    assert resp.status == 200, resp
    root = ET.fromstring(resp.body)
    assert root.tag == f"{{{S3_NS}}}DeleteResult", resp
    deleted = [e.find(f"{{{S3_NS}}}Key").text for e in root.findall(f"{{{S3_NS}}}Deleted")]
    assert sorted(deleted) == ["a b.txt", "missing"], resp
    absent(s3_client, bucket, "a b.txt")


def test_a_bucket_with_objects_is_not_deleted(s3_client, make_bucket, module_key):
    bucket = make_bucket("notempty")
    put(s3_client, bucket, "dir/last.bin", b"still here", Sse.kms(module_key))
    boto_error(lambda: s3_client.delete_bucket(Bucket=bucket), 409, "BucketNotEmpty")
    assert read(s3_client, bucket, "dir/last.bin", Sse.none()) == b"still here"
    assert status_of(s3_client.delete_object(Bucket=bucket, Key="dir/last.bin")) == 204
    assert status_of(s3_client.delete_bucket(Bucket=bucket)) == 204


# ---- ListObjectsV2 and ListObjects -------------------------------------------------------------

LISTED = ["a/1", "a/2", "a/b/3", "a/b/4", "b", "c/5", "c/d/6", "d", "e/"]


@pytest.fixture
def listed_bucket(s3_client, make_bucket, module_key) -> str:
    bucket = make_bucket("list")
    for number, key in enumerate(LISTED):
        sse = [Sse.none(), Sse.kms(module_key), Sse.c(CUSTOMER_KEY)][number % 3]
        put(s3_client, bucket, key, b"x" * number, sse)
    return bucket


def list_v2_pages(s3, bucket: str, **query) -> list[dict]:
    """Every page of a ListObjectsV2, following the continuation token."""
    pages = [s3.list_objects_v2(Bucket=bucket, **query)]
    while pages[-1]["IsTruncated"]:
        assert len(pages) < 50, "ListObjectsV2 does not stop paging"
        token = pages[-1]["NextContinuationToken"]
        pages.append(s3.list_objects_v2(Bucket=bucket, ContinuationToken=token, **query))
    return pages


def names(page: dict) -> tuple[list[str], list[str]]:
    return ([e["Key"] for e in page.get("Contents", [])],
            [p["Prefix"] for p in page.get("CommonPrefixes", [])])


def test_list_v2_reports_every_object_with_its_size_and_etag(s3_client, listed_bucket):
    page = s3_client.list_objects_v2(Bucket=listed_bucket)
    assert names(page) == (LISTED, []), page
    assert page["KeyCount"] == len(LISTED) and page["IsTruncated"] is False, page
    for number, entry in enumerate(page["Contents"]):
        assert entry["Size"] == number, entry
        head = s3_client.head_object(Bucket=listed_bucket, Key=entry["Key"],
                                     **(Sse.c(CUSTOMER_KEY).read_args() if number % 3 == 2
                                        else {}))
        assert entry["ETag"] == head["ETag"], (entry, head)


@pytest.mark.parametrize("prefix, delimiter, contents, prefixes", [
    ("a/", None, ["a/1", "a/2", "a/b/3", "a/b/4"], []),
    ("", "/", ["b", "d"], ["a/", "c/", "e/"]),
    ("a/", "/", ["a/1", "a/2"], ["a/b/"]),
    ("c/", "/", ["c/5"], ["c/d/"]),
    ("e/", "/", ["e/"], []),
    ("zzz", "/", [], []),
    ("a/b", "/", [], ["a/b/"]),
], ids=["prefix", "delimiter", "both", "nested", "folder-marker", "nothing", "partial-prefix"])
def test_list_v2_prefix_and_delimiter(s3_client, listed_bucket, prefix, delimiter, contents,
                                      prefixes):
    query = {"Prefix": prefix} | ({"Delimiter": delimiter} if delimiter else {})
    page = s3_client.list_objects_v2(Bucket=listed_bucket, **query)
    assert names(page) == (contents, prefixes), page
    assert page["KeyCount"] == len(contents) + len(prefixes), page


@pytest.mark.parametrize("delimiter", [None, "/"], ids=["flat", "delimited"])
@pytest.mark.parametrize("max_keys", [1, 2, 4])
def test_list_v2_pages_with_a_continuation_token(s3_client, listed_bucket, max_keys, delimiter):
    query = {"MaxKeys": max_keys} | ({"Delimiter": delimiter} if delimiter else {})
    pages = list_v2_pages(s3_client, listed_bucket, **query)
    everything = names(s3_client.list_objects_v2(Bucket=listed_bucket, **(
        {"Delimiter": delimiter} if delimiter else {})))
    keys = [k for page in pages for k in names(page)[0]]
    prefixes = [p for page in pages for p in names(page)[1]]
    assert (keys, prefixes) == everything, pages
    for page in pages[:-1]:
        assert page["KeyCount"] == max_keys and page["IsTruncated"] is True, page
        assert page["NextContinuationToken"], page
    assert pages[-1]["IsTruncated"] is False and "NextContinuationToken" not in pages[-1]


def test_list_v2_start_after(s3_client, listed_bucket):
    page = s3_client.list_objects_v2(Bucket=listed_bucket, StartAfter="b")
    assert names(page) == (["c/5", "c/d/6", "d", "e/"], []), page
    page = s3_client.list_objects_v2(Bucket=listed_bucket, StartAfter="a/b/3", MaxKeys=2)
    assert names(page)[0] == ["a/b/4", "b"] and page["IsTruncated"] is True, page
    pages = list_v2_pages(s3_client, listed_bucket, StartAfter="c", Delimiter="/", MaxKeys=1)
    assert [names(p) for p in pages] == [([], ["c/"]), (["d"], []), ([], ["e/"])], pages


def test_list_v1_marker_and_next_marker(s3_client, listed_bucket):
    page = s3_client.list_objects(Bucket=listed_bucket, MaxKeys=3)
    assert names(page)[0] == LISTED[:3] and page["IsTruncated"] is True, page
    page = s3_client.list_objects(Bucket=listed_bucket, Marker=LISTED[2], MaxKeys=100)
    assert names(page)[0] == LISTED[3:] and page["IsTruncated"] is False, page

    # With a delimiter, NextMarker says where the next page starts (a key or a prefix).
    seen: list[tuple[list[str], list[str]]] = []
    marker = ""
    for _ in range(20):
        page = s3_client.list_objects(Bucket=listed_bucket, Delimiter="/", MaxKeys=2,
                                      Marker=marker)
        seen.append(names(page))
        if not page["IsTruncated"]:
            break
        marker = page["NextMarker"]
    keys = [k for page_keys, _ in seen for k in page_keys]
    prefixes = [p for _, page_prefixes in seen for p in page_prefixes]
    assert (keys, prefixes) == (["b", "d"], ["a/", "c/", "e/"]), seen


def test_an_empty_bucket_lists_nothing(s3_client, s3_raw, make_bucket):
    bucket = make_bucket("empty")
    page = s3_client.list_objects_v2(Bucket=bucket)
    assert page["KeyCount"] == 0 and "Contents" not in page and page["IsTruncated"] is False
    root = ET.fromstring(s3_raw.request("GET", f"/{bucket}", "list-type=2").body)
    assert root.tag == f"{{{S3_NS}}}ListBucketResult", root.tag
    assert root.find(f"{{{S3_NS}}}Name").text == bucket
    assert root.find(f"{{{S3_NS}}}KeyCount").text == "0"


def test_url_encoded_listing_decodes_to_the_keys(s3_raw, s3_client, make_bucket):
    bucket = make_bucket("enclist")
    keys = ["plus+sign", "space here", "ünï/x", "percent%25"]
    for key in keys:
        put(s3_client, bucket, key, b"x", Sse.none())
    resp = s3_raw.request("GET", f"/{bucket}", "encoding-type=url&list-type=2")
    root = ET.fromstring(resp.body)
    assert root.find(f"{{{S3_NS}}}EncodingType").text == "url", resp
    raw_keys = [element.text for element in root.iter(f"{{{S3_NS}}}Key")]
    assert "plus+sign" not in raw_keys, f"a '+' in a key is not encoded: {raw_keys}"
    decoded = [urllib.parse.unquote_plus(k) for k in raw_keys]
    assert decoded == sorted(keys, key=lambda k: k.encode()), raw_keys


# ---- CopyObject --------------------------------------------------------------------------------


def copy(s3, bucket: str, key: str, source_bucket: str, source_key: str, source: Sse,
         destination: Sse, **extra) -> dict:
    answer = s3.copy_object(Bucket=bucket, Key=key,
                            CopySource={"Bucket": source_bucket, "Key": source_key},
                            **destination.put_args(), **source.copy_source_args(), **extra)
    assert status_of(answer) == 200, answer
    return answer


@pytest.mark.parametrize("target_mode", MODES)
def test_copy_object_reencrypts_for_the_destination(s3_client, make_bucket, module_key, sse,
                                                    target_mode):
    source_bucket, bucket = make_bucket("copysrc"), make_bucket("copydst")
    destination = sse_for(target_mode, module_key)
    if destination.customer_key is not None:
        destination = Sse.c(OTHER_CUSTOMER_KEY)
    data = body_of(2 * PACKAGE + 17, "copy source")
    source_etag = put(s3_client, source_bucket, "dir/src ü.bin", data, sse)["ETag"]

    answer = copy(s3_client, bucket, "dst.bin", source_bucket, "dir/src ü.bin", sse, destination)
    check_sse(answer, destination)
    check_etag(answer["CopyObjectResult"]["ETag"], data, destination)
    got, body = get(s3_client, bucket, "dst.bin", destination)
    assert body == data and got["ETag"] == answer["CopyObjectResult"]["ETag"]
    check_sse(got, destination)

    source, body = get(s3_client, source_bucket, "dir/src ü.bin", sse)
    assert body == data and source["ETag"] == source_etag
    check_sse(source, sse)


def test_copy_metadata_directive(s3_client, make_bucket):
    bucket = make_bucket("copymeta")
    put(s3_client, bucket, "src.txt", b"text", Sse.s3(), Metadata={"origin": "source"},
        ContentType="text/plain")
    copy(s3_client, bucket, "copied.txt", bucket, "src.txt", Sse.none(), Sse.s3())
    head = s3_client.head_object(Bucket=bucket, Key="copied.txt")
    assert (head["Metadata"], head["ContentType"]) == ({"origin": "source"}, "text/plain"), head
    copy(s3_client, bucket, "replaced.txt", bucket, "src.txt", Sse.none(), Sse.s3(),
         MetadataDirective="REPLACE", Metadata={"origin": "replaced"}, ContentType="text/csv")
    head = s3_client.head_object(Bucket=bucket, Key="replaced.txt")
    assert (head["Metadata"], head["ContentType"]) == ({"origin": "replaced"}, "text/csv"), head


def test_copy_takes_the_destination_buckets_default(s3_client, make_bucket, module_key):
    source_bucket, bucket = make_bucket("copyplain"), make_bucket("copykms")
    s3_client.put_bucket_encryption(Bucket=bucket,
                                    ServerSideEncryptionConfiguration=config("aws:kms", module_key))
    data = body_of(PACKAGE, "to the default")
    put(s3_client, source_bucket, "plain.bin", data, Sse.none())
    answer = copy(s3_client, bucket, "now-encrypted.bin", source_bucket, "plain.bin", Sse.none(),
                  Sse.none())
    check_sse(answer, Sse.kms(module_key))
    assert read(s3_client, bucket, "now-encrypted.bin", Sse.none()) == data


def test_copy_onto_itself_without_a_change_is_invalid_request(s3_client, make_bucket):
    bucket = make_bucket("selfcopy")
    data = body_of(PACKAGE + 3, "self")
    etag = put(s3_client, bucket, "self.bin", data, Sse.none(), Metadata={"v": "1"})["ETag"]
    boto_error(lambda: copy(s3_client, bucket, "self.bin", bucket, "self.bin", Sse.none(),
                            Sse.none()), 400, "InvalidRequest")
    head = s3_client.head_object(Bucket=bucket, Key="self.bin")
    assert head["ETag"] == etag and head["Metadata"] == {"v": "1"}, head
    # Replacing the metadata is a change.
    copy(s3_client, bucket, "self.bin", bucket, "self.bin", Sse.none(), Sse.none(),
         MetadataDirective="REPLACE", Metadata={"v": "2"})
    assert s3_client.head_object(Bucket=bucket, Key="self.bin")["Metadata"] == {"v": "2"}
    assert read(s3_client, bucket, "self.bin", Sse.none()) == data


SELF_COPIES = {
    "aes256-to-kms": ("sse-s3", "sse-kms"),
    "none-to-aes256": ("none", "sse-s3"),
    "kms-to-other-kms": ("sse-kms", "other-kms"),
    "kms-to-aes256": ("sse-kms", "sse-s3"),
    "sse-c-to-aes256": ("sse-c", "sse-s3"),
    "aes256-to-sse-c": ("sse-s3", "sse-c"),
    "sse-c-to-other-sse-c": ("sse-c", "other-sse-c"),
}


@pytest.mark.parametrize("change", SELF_COPIES.values(), ids=SELF_COPIES.keys())
def test_copy_onto_itself_with_another_encryption(s3_client, make_bucket, module_key, new_key,
                                                  change):
    before_mode, after_mode = change
    before = sse_for(before_mode, module_key)
    after = {"other-kms": lambda: Sse.kms(new_key("self copy")),
             "other-sse-c": lambda: Sse.c(OTHER_CUSTOMER_KEY)}.get(
        after_mode, lambda: sse_for(after_mode, module_key))()
    bucket = make_bucket("reencrypt")
    data = body_of(3 * PACKAGE + 1, "re-encrypted")
    put(s3_client, bucket, "self.bin", data, before, Metadata={"kept": "yes"})

    answer = copy(s3_client, bucket, "self.bin", bucket, "self.bin", before, after)
    check_sse(answer, after)
    head = s3_client.head_object(Bucket=bucket, Key="self.bin", **after.read_args())
    check_sse(head, after)
    assert head["Metadata"] == {"kept": "yes"}, head
    assert read(s3_client, bucket, "self.bin", after) == data
    if before.customer_key is not None and after.customer_key is not None \
            and after.customer_key != before.customer_key:
        boto_error(lambda: get(s3_client, bucket, "self.bin", before), 403, "AccessDenied")
    elif before.customer_key is not None and after.customer_key is None:
        # As S3: SSE-C parameters for an object that is not SSE-C are not applicable.
        boto_error(lambda: get(s3_client, bucket, "self.bin", before), 400, "InvalidRequest")


def test_a_raw_copy_with_the_copy_source_headers(s3_raw, s3_client, make_bucket):
    bucket = make_bucket("rawcopy")
    source = Sse.c(CUSTOMER_KEY)
    data = body_of(PACKAGE + 9, "raw copy")
    put(s3_client, bucket, "from ü.bin", data, source)
    headers = {"x-amz-copy-source": object_target(bucket, "from ü.bin"),
               **source.read_headers(prefix=COPY_SOURCE_SSE_C), **Sse.s3().put_headers()}
    resp = s3_raw.request("PUT", object_target(bucket, "to.bin"), headers=headers)
    assert resp.status == 200, resp
    root = ET.fromstring(resp.body)
    assert root.tag == f"{{{S3_NS}}}CopyObjectResult", resp
    assert root.find(f"{{{S3_NS}}}ETag").text == s3_client.head_object(
        Bucket=bucket, Key="to.bin")["ETag"], resp
    check_sse(sse_fields(resp.headers), Sse.s3())
    assert read(s3_client, bucket, "to.bin", Sse.none()) == data


def test_copy_of_a_missing_source_is_not_found(s3_client, make_bucket):
    bucket = make_bucket("copymissing")
    boto_error(lambda: copy(s3_client, bucket, "dst", bucket, "nope", Sse.none(), Sse.none()),
               404, "NoSuchKey")
    boto_error(lambda: copy(s3_client, bucket, "dst", unique_bucket("gone"), "k", Sse.none(),
                            Sse.none()), 404, "NoSuchBucket")
    absent(s3_client, bucket, "dst")


def test_copy_of_a_multipart_object(s3_client, make_bucket, module_key):
    bucket = make_bucket("copymp")
    parts = [body_of(PART, "cp1"), body_of(TAIL, "cp2")]
    upload_multipart(s3_client, bucket, "big.bin", parts, Sse.kms(module_key))
    answer = copy(s3_client, bucket, "big copy.bin", bucket, "big.bin", Sse.none(),
                  Sse.c(CUSTOMER_KEY))
    check_sse(answer, Sse.c(CUSTOMER_KEY))
    data = b"".join(parts)
    assert read(s3_client, bucket, "big copy.bin", Sse.c(CUSTOMER_KEY)) == data
    check_range(s3_client, bucket, "big copy.bin", Sse.c(CUSTOMER_KEY), data,
                f"bytes={PART - 5}-{PART + 5}", PART - 5, PART + 5)


# ---- multipart uploads -------------------------------------------------------------------------


def test_a_multipart_object_reads_back_whole_and_by_ranges(s3_client, make_bucket, sse):
    bucket = make_bucket("mp")
    parts = [body_of(PART, "part 1"), body_of(PART, "part 2"), body_of(TAIL, "part 3")]
    data = b"".join(parts)
    created, completed = upload_multipart(s3_client, bucket, "mp/object.bin", parts, sse)
    check_sse(created, sse)
    if sse.customer_key is None:  # S3's CompleteMultipartUpload names no customer key
        check_sse(completed, sse)
    etag = completed["ETag"]
    assert unquoted(etag).endswith("-3") and len(unquoted(etag)) > 2, etag
    if not sse.encrypted:
        assert etag == multipart_etag(parts), etag

    head = s3_client.head_object(Bucket=bucket, Key="mp/object.bin", **sse.read_args())
    assert head["ContentLength"] == len(data) and head["ETag"] == etag, head
    check_sse(head, sse)
    answer, body = get(s3_client, bucket, "mp/object.bin", sse)
    assert body == data, "the multipart object does not read back"
    assert answer["ETag"] == etag
    for first, last in multipart_ranges(len(data)):
        check_range(s3_client, bucket, "mp/object.bin", sse, data, f"bytes={first}-{last}",
                    first, last)
    check_range(s3_client, bucket, "mp/object.bin", sse, data, f"bytes=-{TAIL + 1}",
                len(data) - TAIL - 1, len(data) - 1)
    entry = s3_client.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert (entry["Key"], entry["Size"], entry["ETag"]) == ("mp/object.bin", len(data), etag)


def test_list_parts_and_a_part_uploaded_again(s3_client, make_bucket, encrypted):
    bucket = make_bucket("parts")
    upload_id = s3_client.create_multipart_upload(Bucket=bucket, Key="p.bin",
                                                  **encrypted.put_args())["UploadId"]
    first, replaced, second = body_of(PART, "first"), body_of(PART, "again"), body_of(99, "2")
    args = {"Bucket": bucket, "Key": "p.bin", "UploadId": upload_id, **encrypted.read_args()}
    s3_client.upload_part(PartNumber=1, Body=first, **args)
    etag_1 = s3_client.upload_part(PartNumber=1, Body=replaced, **args)["ETag"]
    etag_2 = s3_client.upload_part(PartNumber=2, Body=second, **args)["ETag"]

    listing = s3_client.list_parts(Bucket=bucket, Key="p.bin", UploadId=upload_id)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listing["Parts"]] == [
        (1, etag_1, PART), (2, etag_2, 99)], listing
    absent(s3_client, bucket, "p.bin")

    s3_client.complete_multipart_upload(Bucket=bucket, Key="p.bin", UploadId=upload_id,
                                        MultipartUpload={"Parts": [
                                            {"PartNumber": 1, "ETag": etag_1},
                                            {"PartNumber": 2, "ETag": etag_2}]})
    assert read(s3_client, bucket, "p.bin", encrypted) == replaced + second
    boto_error(lambda: s3_client.list_parts(Bucket=bucket, Key="p.bin", UploadId=upload_id), 404,
               "NoSuchUpload")


def test_one_small_part_is_a_whole_upload(s3_client, make_bucket, sse):
    bucket = make_bucket("onepart")
    data = body_of(KIB, "single part")
    _, completed = upload_multipart(s3_client, bucket, "one.bin", [data], sse)
    assert unquoted(completed["ETag"]).endswith("-1"), completed
    assert read(s3_client, bucket, "one.bin", sse) == data


class Upload:
    """An upload of two parts in progress, for the refusals of CompleteMultipartUpload."""

    def __init__(self, s3, bucket: str, key: str, sizes: list[int], sse: Sse):
        self.s3, self.bucket, self.key, self.sse = s3, bucket, key, sse
        self.upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key,
                                                    **sse.put_args())["UploadId"]
        self.parts = []
        for number, size in enumerate(sizes, start=1):
            etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=self.upload_id,
                                  PartNumber=number, Body=body_of(size, f"{key} {number}"),
                                  **sse.read_args())["ETag"]
            self.parts.append({"PartNumber": number, "ETag": etag})

    def complete(self, parts: list[dict]) -> dict:
        return self.s3.complete_multipart_upload(Bucket=self.bucket, Key=self.key,
                                                 UploadId=self.upload_id,
                                                 MultipartUpload={"Parts": parts})

    def abort(self) -> dict:
        return self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key,
                                              UploadId=self.upload_id)


def test_a_small_part_before_the_last_is_entity_too_small(s3_client, make_bucket, module_key):
    bucket = make_bucket("toosmall")
    upload = Upload(s3_client, bucket, "small.bin", [MIN_PART - 1, KIB], Sse.kms(module_key))
    boto_error(lambda: upload.complete(upload.parts), 400, "EntityTooSmall")
    absent(s3_client, bucket, "small.bin")
    # The upload is still there and can be aborted.
    listing = s3_client.list_parts(Bucket=bucket, Key="small.bin", UploadId=upload.upload_id)
    assert [p["PartNumber"] for p in listing["Parts"]] == [1, 2], listing
    assert status_of(upload.abort()) == 204


def test_a_wrong_or_missing_part_is_invalid_part_and_disorder_invalid_part_order(s3_client,
                                                                                 make_bucket):
    bucket = make_bucket("badparts")
    upload = Upload(s3_client, bucket, "parts.bin", [MIN_PART, KIB], Sse.s3())
    one, two = upload.parts
    wrong_etag = {"PartNumber": 2, "ETag": '"' + "0" * 32 + '"'}
    boto_error(lambda: upload.complete([one, wrong_etag]), 400, "InvalidPart")
    boto_error(lambda: upload.complete([one, two, {"PartNumber": 3, "ETag": two["ETag"]}]), 400,
               "InvalidPart")
    boto_error(lambda: upload.complete([two, one]), 400, "InvalidPartOrder")
    absent(s3_client, bucket, "parts.bin")
    upload.complete([one, two])
    assert s3_client.head_object(Bucket=bucket, Key="parts.bin")["ContentLength"] == MIN_PART + KIB


def test_abort_ends_the_upload(s3_client, make_bucket, encrypted):
    bucket = make_bucket("abort")
    upload = Upload(s3_client, bucket, "aborted.bin", [MIN_PART, KIB], encrypted)
    assert status_of(upload.abort()) == 204
    upload_id = upload.upload_id
    boto_error(lambda: s3_client.list_parts(Bucket=bucket, Key="aborted.bin", UploadId=upload_id),
               404, "NoSuchUpload")
    boto_error(lambda: s3_client.upload_part(Bucket=bucket, Key="aborted.bin", UploadId=upload_id,
                                             PartNumber=3, Body=b"late", **encrypted.read_args()),
               404, "NoSuchUpload")
    boto_error(lambda: upload.complete(upload.parts), 404, "NoSuchUpload")
    boto_error(upload.abort, 404, "NoSuchUpload")
    absent(s3_client, bucket, "aborted.bin")


def test_an_sse_c_upload_needs_the_key_on_every_part(s3_client, make_bucket):
    bucket = make_bucket("mpssec")
    sse = Sse.c(CUSTOMER_KEY)
    upload = Upload(s3_client, bucket, "c.bin", [MIN_PART], sse)
    args = {"Bucket": bucket, "Key": "c.bin", "UploadId": upload.upload_id, "PartNumber": 2,
            "Body": b"tail"}
    boto_error(lambda: s3_client.upload_part(**args), 400, "InvalidRequest")
    refused = client_error(lambda: s3_client.upload_part(
        **args, **Sse.c(OTHER_CUSTOMER_KEY).read_args()))
    assert status_of(refused) in (400, 403), refused
    listing = s3_client.list_parts(Bucket=bucket, Key="c.bin", UploadId=upload.upload_id)
    assert [p["PartNumber"] for p in listing["Parts"]] == [1], listing

    tail = s3_client.upload_part(**args, **sse.read_args())["ETag"]
    upload.complete(upload.parts + [{"PartNumber": 2, "ETag": tail}])
    data = body_of(MIN_PART, "c.bin 1") + b"tail"
    assert read(s3_client, bucket, "c.bin", sse) == data
    boto_error(lambda: get(s3_client, bucket, "c.bin", Sse.none()), 400, "InvalidRequest")
    boto_error(lambda: get(s3_client, bucket, "c.bin", Sse.c(OTHER_CUSTOMER_KEY)), 403,
               "AccessDenied")
    check_range(s3_client, bucket, "c.bin", sse, data, f"bytes={MIN_PART - 2}-",
                MIN_PART - 2, len(data) - 1)


# ---- the object actions of the identity file (API.md §2) ---------------------------------------

OBJECT_USERS = {
    "put": ("s3:PutObject",),
    "get": ("s3:GetObject",),
    "delete": ("s3:DeleteObject",),
    "list": ("s3:ListBucket",),
    "abort": ("s3:AbortMultipartUpload",),
    "parts": ("s3:ListMultipartUploadParts",),
    "get-and-put": ("s3:GetObject", "s3:PutObject"),
    "s3-all": ("s3:*",),
    "kms-only": ("kms:GenerateDataKey", "kms:Decrypt"),
}


def allowed(user: str, *needed: str) -> bool:
    return all(any(grants(g, action) for g in OBJECT_USERS[user]) for action in needed)


@pytest.fixture(scope="module")
def acl(tools, tmp_path_factory, root_credentials):
    """This module's own server, whose identity file has the users of ``OBJECT_USERS``; answers
    the server, a root boto3 client, a boto3 client per user and a bucket."""
    workdir = tmp_path_factory.mktemp("objects-acl")
    users = {name: (random_credentials(f"obj-{name}"), actions)
             for name, actions in OBJECT_USERS.items()}
    path = write_identities(workdir / "identities.toml", users)
    server = KmsServer(tools.server_bin, workdir, "objects-acl", credentials=root_credentials,
                       args=("--identities", str(path)))
    server.start()
    root = boto3_client(server, root_credentials)
    bucket = "acl-bucket"
    root.create_bucket(Bucket=bucket)
    clients = {name: boto3_client(server, credentials) for name, (credentials, _) in users.items()}
    yield server, root, clients, bucket
    server.stop()


def denied(call) -> None:
    response = client_error(call)
    assert status_of(response) == 403, response
    assert response["Error"]["Code"] in ("AccessDenied", "403"), response


def test_put_object_needs_s3_put_object(acl):
    _, root, clients, bucket = acl
    for user, s3 in clients.items():
        key = f"put-by-{user}"
        call = lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"x",  # noqa: E731
                                     ServerSideEncryption="aws:kms")
        if allowed(user, "s3:PutObject"):
            assert status_of(call()) == 200
            assert read(root, bucket, key, Sse.none()) == b"x"
        else:
            denied(call)
            absent(root, bucket, key)


def test_get_and_head_need_s3_get_object(acl):
    _, root, clients, bucket = acl
    root.put_object(Bucket=bucket, Key="readable", Body=b"readable", ServerSideEncryption="AES256")
    for user, s3 in clients.items():
        if allowed(user, "s3:GetObject"):
            assert read(s3, bucket, "readable", Sse.none()) == b"readable"
            assert s3.head_object(Bucket=bucket, Key="readable")["ContentLength"] == 8
        else:
            denied(lambda: s3.get_object(Bucket=bucket, Key="readable"))
            denied(lambda: s3.head_object(Bucket=bucket, Key="readable"))
            # Authorization comes before the lookup: a missing key is no different.
            denied(lambda: s3.get_object(Bucket=bucket, Key="never-was"))


def test_listing_needs_s3_list_bucket(acl):
    _, root, clients, bucket = acl
    root.put_object(Bucket=bucket, Key="listed", Body=b"x")
    for user, s3 in clients.items():
        if allowed(user, "s3:ListBucket"):
            assert "listed" in names(s3.list_objects_v2(Bucket=bucket))[0]
            assert "listed" in names(s3.list_objects(Bucket=bucket))[0]
        else:
            denied(lambda: s3.list_objects_v2(Bucket=bucket))
            denied(lambda: s3.list_objects(Bucket=bucket))


def test_deleting_needs_s3_delete_object(acl):
    _, root, clients, bucket = acl
    for user, s3 in clients.items():
        single, batch = f"del-{user}", f"batch-del-{user}"
        for key in (single, batch):
            root.put_object(Bucket=bucket, Key=key, Body=b"x")
        if allowed(user, "s3:DeleteObject"):
            assert status_of(s3.delete_object(Bucket=bucket, Key=single)) == 204
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": batch}]})
            assert [d["Key"] for d in answer["Deleted"]] == [batch], answer
            absent(root, bucket, single)
            absent(root, bucket, batch)
            continue
        denied(lambda: s3.delete_object(Bucket=bucket, Key=single))
        # S3 reports a refused key of DeleteObjects inside a 200; a 403 for the whole request
        # is as good. Either way nothing is deleted.
        try:
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": batch}]})
        except ClientError as err:
            assert (status_of(err.response), err.response["Error"]["Code"]) == (
                403, "AccessDenied"), err.response
        else:
            assert not answer.get("Deleted"), answer
            assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [
                (batch, "AccessDenied")], answer
        for key in (single, batch):
            assert read(root, bucket, key, Sse.none()) == b"x"


def test_multipart_calls_need_their_actions(acl):
    _, root, clients, bucket = acl
    part = body_of(KIB, "acl part")
    for user, s3 in clients.items():
        key = f"mp-{user}"
        upload_id = root.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        etag = root.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1,
                                Body=part)["ETag"]
        ids = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
        complete = {"MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": etag}]}}

        if allowed(user, "s3:PutObject"):
            own = s3.create_multipart_upload(Bucket=bucket, Key=f"{key}-own")["UploadId"]
            own_ids = {"Bucket": bucket, "Key": f"{key}-own", "UploadId": own}
            own_etag = s3.upload_part(**own_ids, PartNumber=1, Body=part)["ETag"]
            s3.complete_multipart_upload(**own_ids, MultipartUpload={"Parts": [
                {"PartNumber": 1, "ETag": own_etag}]})
            assert read(root, bucket, f"{key}-own", Sse.none()) == part
        else:
            denied(lambda: s3.create_multipart_upload(Bucket=bucket, Key=f"{key}-own"))
            denied(lambda: s3.upload_part(**ids, PartNumber=2, Body=part))
            denied(lambda: s3.complete_multipart_upload(**ids, **complete))
            absent(root, bucket, key)
            assert [p["PartNumber"] for p in root.list_parts(**ids)["Parts"]] == [1]

        if allowed(user, "s3:ListMultipartUploadParts"):
            assert [p["PartNumber"] for p in s3.list_parts(**ids)["Parts"]] == [1]
        else:
            denied(lambda: s3.list_parts(**ids))

        if allowed(user, "s3:AbortMultipartUpload"):
            assert status_of(s3.abort_multipart_upload(**ids)) == 204
            boto_error(lambda: root.list_parts(**ids), 404, "NoSuchUpload")
        else:
            denied(lambda: s3.abort_multipart_upload(**ids))
            assert [p["PartNumber"] for p in root.list_parts(**ids)["Parts"]] == [1]
            root.abort_multipart_upload(**ids)


def test_copy_needs_get_on_the_source_and_put_on_the_destination(acl):
    _, root, clients, bucket = acl
    root.put_object(Bucket=bucket, Key="copy-source", Body=b"copied",
                    ServerSideEncryption="aws:kms")
    for user, s3 in clients.items():
        key = f"copy-by-{user}"
        call = lambda: s3.copy_object(Bucket=bucket, Key=key,  # noqa: E731
                                      CopySource={"Bucket": bucket, "Key": "copy-source"})
        if allowed(user, "s3:GetObject", "s3:PutObject"):
            assert status_of(call()) == 200
            assert read(root, bucket, key, Sse.none()) == b"copied"
        else:
            denied(call)
            absent(root, bucket, key)


def test_authorization_comes_before_validation(acl):
    _, root, clients, bucket = acl
    reader, writer = clients["get"], clients["put"]
    denied(lambda: reader.put_object(Bucket=bucket, Key="k", Body=b"x",
                                     **Sse.kms(UNKNOWN_KEY).put_args()))
    denied(lambda: reader.put_object(Bucket="no-such-bucket-here", Key="k", Body=b"x"))
    denied(lambda: writer.get_object(Bucket=bucket, Key="never-was", Range="bytes=5-1"))
    absent(root, bucket, "k")


# ---- presigned URLs (how web consoles hand uploads and downloads to a browser) -----------------


def test_presigned_urls_put_and_get_objects_under_the_bucket_default(server, s3_client,
                                                                   make_bucket, module_key):
    import urllib.error
    import urllib.request

    presigner = boto3_client(server, server.credentials, signature_version="s3v4")
    bucket = make_bucket("presigned")
    s3_client.put_bucket_encryption(Bucket=bucket,
                                    ServerSideEncryptionConfiguration=config("aws:kms", module_key))
    data = body_of(2 * PACKAGE + 3, "presigned")
    put_url = presigner.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "up load.bin"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in put_url, put_url
    request = urllib.request.Request(put_url, data=data, method="PUT")
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 200
        assert answer.headers["x-amz-server-side-encryption"] == "aws:kms"
    check_sse(s3_client.head_object(Bucket=bucket, Key="up load.bin"), Sse.kms(module_key))

    get_url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "up load.bin",
                              "ResponseContentType": "text/plain"}, ExpiresIn=300)
    with urllib.request.urlopen(get_url) as answer:
        assert answer.read() == data
        assert answer.headers["content-type"] == "text/plain"
    ranged = urllib.request.Request(get_url, headers={"Range": f"bytes={PACKAGE}-{PACKAGE + 9}"})
    with urllib.request.urlopen(ranged) as answer:
        assert answer.status == 206 and answer.read() == data[PACKAGE:PACKAGE + 10]

    # A URL for another key, or a changed one, is refused.
    tampered = get_url.replace("up%20load.bin", "other.bin")
    try:
        urllib.request.urlopen(tampered)
        raise AssertionError("a tampered presigned URL was accepted")
    except urllib.error.HTTPError as err:
        assert err.code == 403


# ---- UploadPartCopy (how `aws s3 cp s3://… s3://…` copies large objects) -----------------------


def test_upload_part_copy_re_encrypts_ranges_of_another_object(s3_client, make_bucket,
                                                              module_key):
    bucket = make_bucket("partcopy")
    source_sse = Sse.c(CUSTOMER_KEY)
    source = body_of(MIN_PART + 3 * PACKAGE + 5, "part copy source")
    s3_client.put_object(Bucket=bucket, Key="source.bin", Body=source, **source_sse.put_args())
    target_sse = Sse.kms(module_key)
    upload = s3_client.create_multipart_upload(Bucket=bucket, Key="target.bin",
                                               **target_sse.put_args())["UploadId"]
    # Part 1: the first MIN_PART bytes; part 2: a range crossing package boundaries.
    ranges = [(0, MIN_PART - 1), (PACKAGE - 7, 3 * PACKAGE + 2)]
    done = []
    for number, (first, last) in enumerate(ranges, start=1):
        answer = s3_client.upload_part_copy(
            Bucket=bucket, Key="target.bin", UploadId=upload, PartNumber=number,
            CopySource={"Bucket": bucket, "Key": "source.bin"},
            CopySourceRange=f"bytes={first}-{last}", **source_sse.copy_source_args())
        done.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
    # Without the source's SSE-C key the copy is refused.
    boto_error(lambda: s3_client.upload_part_copy(
        Bucket=bucket, Key="target.bin", UploadId=upload, PartNumber=3,
        CopySource={"Bucket": bucket, "Key": "source.bin"}), 400, "InvalidRequest")
    # A range past the source's end is refused.
    boto_error(lambda: s3_client.upload_part_copy(
        Bucket=bucket, Key="target.bin", UploadId=upload, PartNumber=3,
        CopySource={"Bucket": bucket, "Key": "source.bin"},
        CopySourceRange=f"bytes=0-{len(source)}", **source_sse.copy_source_args()),
        400, "InvalidArgument")
    s3_client.complete_multipart_upload(Bucket=bucket, Key="target.bin", UploadId=upload,
                                        MultipartUpload={"Parts": done})
    expected = b"".join(source[first:last + 1] for first, last in ranges)
    got = s3_client.get_object(Bucket=bucket, Key="target.bin")
    check_sse(got, target_sse)
    assert got["Body"].read() == expected


def test_list_multipart_uploads_shows_uploads_until_they_end(s3_client, make_bucket):
    bucket = make_bucket("listuploads")
    ids = {key: s3_client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
           for key in ("b/second", "a first")}
    listed = s3_client.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [
        ("a first", ids["a first"]), ("b/second", ids["b/second"])], listed
    s3_client.abort_multipart_upload(Bucket=bucket, Key="a first", UploadId=ids["a first"])
    part = s3_client.upload_part(Bucket=bucket, Key="b/second", UploadId=ids["b/second"],
                                 PartNumber=1, Body=b"tail")
    s3_client.complete_multipart_upload(
        Bucket=bucket, Key="b/second", UploadId=ids["b/second"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert "Uploads" not in s3_client.list_multipart_uploads(Bucket=bucket)


def test_user_metadata_over_2_kb_is_refused_and_stores_nothing(s3_client, make_bucket):
    bucket = make_bucket("bigmeta")
    # Names and values count, as in S3: "k" + 2047 bytes is exactly 2 KB.
    s3_client.put_object(Bucket=bucket, Key="at-limit", Body=b"x", Metadata={"k": "v" * 2047})
    assert s3_client.head_object(Bucket=bucket, Key="at-limit")["Metadata"] == {"k": "v" * 2047}
    too_much = {"k": "v" * 2048}
    boto_error(lambda: s3_client.put_object(Bucket=bucket, Key="over", Body=b"x",
                                            Metadata=too_much), 400, "MetadataTooLarge")
    boto_error(lambda: s3_client.create_multipart_upload(Bucket=bucket, Key="over",
                                                         Metadata=too_much),
               400, "MetadataTooLarge")
    boto_error(lambda: s3_client.copy_object(
        Bucket=bucket, Key="over", CopySource={"Bucket": bucket, "Key": "at-limit"},
        MetadataDirective="REPLACE", Metadata=too_much), 400, "MetadataTooLarge")
    boto_error(lambda: s3_client.head_object(Bucket=bucket, Key="over"), 404, "404")
    assert "Uploads" not in s3_client.list_multipart_uploads(Bucket=bucket)


def test_get_object_by_part_number_returns_that_part(s3_client, make_bucket, module_key):
    """GetObject?partNumber=N, as multipart downloaders use it: the N-th part with 206 and
    x-amz-mp-parts-count; part 1 of a single-PUT object is all of it."""
    bucket = make_bucket("partnumber")
    parts = [body_of(MIN_PART, "by part 1"), body_of(MIN_PART + 7, "by part 2"),
             body_of(PACKAGE + 3, "by part 3")]
    upload_multipart(s3_client, bucket, "parts.bin", parts, Sse.kms(module_key))
    offset = 0
    for number, part in enumerate(parts, start=1):
        got = s3_client.get_object(Bucket=bucket, Key="parts.bin", PartNumber=number)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["PartsCount"] == 3
        assert got["ContentRange"] == f"bytes {offset}-{offset + len(part) - 1}/" \
                                      f"{sum(map(len, parts))}"
        assert got["Body"].read() == part
        head = s3_client.head_object(Bucket=bucket, Key="parts.bin", PartNumber=number)
        assert head["ContentLength"] == len(part)
        offset += len(part)
    boto_error(lambda: s3_client.get_object(Bucket=bucket, Key="parts.bin", PartNumber=4),
               416, "InvalidPartNumber")
    boto_error(lambda: s3_client.get_object(Bucket=bucket, Key="parts.bin", PartNumber=1,
                                            Range="bytes=0-1"), 400, "InvalidRequest")
    s3_client.put_object(Bucket=bucket, Key="single.bin", Body=parts[2])
    got = s3_client.get_object(Bucket=bucket, Key="single.bin", PartNumber=1)
    assert got["Body"].read() == parts[2]
