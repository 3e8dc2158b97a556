"""Objects (API.md §10) through ``@aws-sdk/client-s3`` in Node (js/s3_ops.mjs), as a Node
application uses them: put, get (whole and by Range), head, list, copy and delete under SSE-KMS,
SSE-C and no encryption, and multipart uploads made of the SDK's commands. The SDK adds CRC32
checksums to uploads and asks for checksums on every GetObject, which it then verifies."""

from __future__ import annotations

import base64

import pytest

from s3_clients import (
    KIB,
    MIN_PART,
    PACKAGE,
    Sse,
    body_of,
    check_sse,
    customer_key,
    js_body,
    js_error,
    js_ok,
)

CUSTOMER_KEY = customer_key("js")
OTHER_CUSTOMER_KEY = customer_key("js, someone else")
PART = MIN_PART + 1000
TIMEOUT = 300


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def js_args(sse: Sse) -> dict:
    """The SDK's input fields for ``sse``: an SSE-C key goes as base64 (the SDK adds its MD5)."""
    args = {k: v for k, v in sse.put_args().items() if not k.startswith("SSECustomer")}
    if sse.customer_key is not None:
        args |= {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": b64(sse.customer_key)}
    return args


def js_read_args(sse: Sse) -> dict:
    return {k: v for k, v in js_args(sse).items() if k.startswith("SSECustomer")}


def test_put_get_head_list_copy_and_delete(js_s3, s3_client, make_bucket, new_key):
    js = js_s3()
    bucket = make_bucket("js-obj")
    kms, sse_c = Sse.kms(new_key("js objects")), Sse.c(CUSTOMER_KEY)
    data = body_of(2 * PACKAGE + 5, "js")
    in_bucket = {"Bucket": bucket}
    first, last = PACKAGE - 2, PACKAGE + 2

    results = js.run([
        {"op": "PutObject", "input": {**in_bucket, "Key": "dir/kms.bin", "BodyBase64": b64(data),
                                      "ContentType": "application/x-e2e",
                                      "Metadata": {"origin": "js"}, **js_args(kms)}},
        {"op": "PutObject", "input": {**in_bucket, "Key": "c.bin", "BodyBase64": b64(data),
                                      **js_args(sse_c)}},
        {"op": "PutObject", "input": {**in_bucket, "Key": "plain.txt",
                                      "BodyBase64": b64(b"plain")}},
        {"op": "GetObject", "input": {**in_bucket, "Key": "dir/kms.bin"}},
        {"op": "GetObject", "input": {**in_bucket, "Key": "dir/kms.bin",
                                      "Range": f"bytes={first}-{last}"}},
        {"op": "HeadObject", "input": {**in_bucket, "Key": "dir/kms.bin"}},
        {"op": "GetObject", "input": {**in_bucket, "Key": "c.bin", **js_read_args(sse_c)}},
        {"op": "GetObject", "input": {**in_bucket, "Key": "c.bin"}},
        {"op": "GetObject", "input": {**in_bucket, "Key": "c.bin",
                                      **js_read_args(Sse.c(OTHER_CUSTOMER_KEY))}},
        {"op": "ListObjectsV2", "input": {**in_bucket, "Delimiter": "/"}},
        {"op": "CopyObject", "input": {**in_bucket, "Key": "copy.bin",
                                       "CopySource": f"{bucket}/c.bin",
                                       "CopySourceSSECustomerAlgorithm": "AES256",
                                       "CopySourceSSECustomerKey": b64(CUSTOMER_KEY),
                                       "ServerSideEncryption": "AES256"}},
        {"op": "GetObject", "input": {**in_bucket, "Key": "copy.bin"}},
        {"op": "DeleteObject", "input": {**in_bucket, "Key": "plain.txt"}},
        {"op": "DeleteObjects", "input": {**in_bucket, "Delete": {"Objects": [
            {"Key": "dir/kms.bin"}, {"Key": "copy.bin"}]}}},
        {"op": "ListObjectsV2", "input": in_bucket},
        {"op": "GetObject", "input": {**in_bucket, "Key": "plain.txt"}},
    ])

    put_kms, put_c, put_plain = (js_ok(r) for r in results[:3])
    check_sse(put_kms, kms)
    check_sse(put_c, sse_c)
    check_sse(put_plain, Sse.none())

    got = js_ok(results[3])
    assert js_body(got) == data
    check_sse(got, kms)
    assert (got["ContentType"], got["Metadata"]) == ("application/x-e2e", {"origin": "js"}), got
    assert got["ETag"] == put_kms["ETag"], got

    ranged = results[4]
    assert ranged["ok"] and ranged["status"] == 206, ranged
    assert ranged["output"]["ContentRange"] == f"bytes {first}-{last}/{len(data)}", ranged
    assert js_body(ranged["output"]) == data[first:last + 1]

    head = js_ok(results[5])
    assert (head["ContentLength"], head["ETag"]) == (len(data), put_kms["ETag"]), head
    check_sse(head, kms)

    assert js_body(js_ok(results[6])) == data
    js_error(results[7], 400, "InvalidRequest")
    js_error(results[8], 403, "AccessDenied")

    listing = js_ok(results[9])
    assert [e["Key"] for e in listing["Contents"]] == ["c.bin", "plain.txt"], listing
    assert [p["Prefix"] for p in listing["CommonPrefixes"]] == ["dir/"], listing

    check_sse(js_ok(results[10]), Sse.s3())
    copied = js_ok(results[11])
    assert js_body(copied) == data
    check_sse(copied, Sse.s3())

    assert results[12]["status"] == 204, results[12]
    deleted = js_ok(results[13])
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["copy.bin", "dir/kms.bin"], deleted
    assert [e["Key"] for e in js_ok(results[14])["Contents"]] == ["c.bin"], results[14]
    js_error(results[15], 404, "NoSuchKey")
    assert [e["Key"] for e in s3_client.list_objects_v2(Bucket=bucket)["Contents"]] == ["c.bin"]


@pytest.mark.parametrize("mode", ["sse-kms", "sse-c"])
def test_a_multipart_upload_of_sdk_commands(js_s3, make_bucket, new_key, tmp_path, mode):
    js = js_s3()
    bucket = make_bucket("js-mp")
    sse = Sse.kms(new_key("js multipart")) if mode == "sse-kms" else Sse.c(CUSTOMER_KEY)
    parts = [body_of(PART, "js 1"), body_of(PART, "js 2"), body_of(70 * KIB + 1, "js 3")]
    data = b"".join(parts)
    ids = {"Bucket": bucket, "Key": "dir/multipart.bin"}

    created = js_ok(js.one("CreateMultipartUpload", **ids, **js_args(sse)))
    check_sse(created, sse)
    upload = {**ids, "UploadId": created["UploadId"]}
    files = []
    for number, part in enumerate(parts, start=1):
        files.append(tmp_path / f"part-{number}")
        files[-1].write_bytes(part)
    uploaded = js.run([
        {"op": "UploadPart", "input": {**upload, "PartNumber": number, "BodyFile": str(path),
                                       **js_read_args(sse)}}
        for number, path in enumerate(files, start=1)
    ], timeout=TIMEOUT)
    etags = [js_ok(r)["ETag"] for r in uploaded]

    first, last = PART - PACKAGE, 2 * PART + 10
    results = js.run([
        {"op": "ListParts", "input": upload},
        {"op": "CompleteMultipartUpload", "input": {**upload, "MultipartUpload": {"Parts": [
            {"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]}}},
        {"op": "HeadObject", "input": {**ids, **js_read_args(sse)}},
        {"op": "GetObject", "input": {**ids, **js_read_args(sse)}},
        {"op": "GetObject", "input": {**ids, "Range": f"bytes={first}-{last}",
                                      **js_read_args(sse)}},
        {"op": "ListParts", "input": upload},
    ], timeout=TIMEOUT)

    listed = js_ok(results[0])
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == [
        (n, e, len(p)) for n, (e, p) in enumerate(zip(etags, parts), start=1)], listed
    completed = js_ok(results[1])
    assert completed["ETag"].endswith('-3"'), completed
    head = js_ok(results[2])
    assert (head["ContentLength"], head["ETag"]) == (len(data), completed["ETag"]), head
    check_sse(head, sse)
    assert js_body(js_ok(results[3])) == data
    ranged = results[4]
    assert ranged["ok"] and ranged["status"] == 206, ranged
    assert js_body(ranged["output"]) == data[first:last + 1]
    js_error(results[5], 404, "NoSuchUpload")


def test_an_aborted_upload_is_gone(js_s3, make_bucket):
    js = js_s3()
    bucket = make_bucket("js-abort")
    ids = {"Bucket": bucket, "Key": "aborted.bin"}
    upload_id = js_ok(js.one("CreateMultipartUpload", **ids, ServerSideEncryption="AES256"))[
        "UploadId"]
    upload = {**ids, "UploadId": upload_id}
    results = js.run([
        {"op": "UploadPart", "input": {**upload, "PartNumber": 1, "BodyBase64": b64(b"part")}},
        {"op": "AbortMultipartUpload", "input": upload},
        {"op": "ListParts", "input": upload},
        {"op": "HeadObject", "input": ids},
    ])
    js_ok(results[0])
    assert results[1]["ok"] and results[1]["status"] == 204, results[1]
    js_error(results[2], 404, "NoSuchUpload")
    assert not results[3]["ok"] and results[3]["status"] == 404, results[3]


def test_part_copies_upload_listings_part_reads_and_v1_listings(js_s3, make_bucket, new_key):
    """What a console's copy and download managers use besides the basic commands:
    UploadPartCopy, ListMultipartUploads, GetObject by PartNumber and ListObjects (v1)."""
    js = js_s3()
    bucket = make_bucket("js-more")
    source = body_of(PART + PACKAGE, "js part copy source")
    js_ok(js.one("PutObject", Bucket=bucket, Key="source.bin", BodyBase64=b64(source),
                 ServerSideEncryption="AES256"))
    sse = Sse.kms(new_key("js part copy"))
    ids = {"Bucket": bucket, "Key": "copied.bin"}
    upload = {**ids, "UploadId": js_ok(js.one("CreateMultipartUpload", **ids,
                                               **js_args(sse)))["UploadId"]}
    results = js.run([
        {"op": "ListMultipartUploads", "input": {"Bucket": bucket}},
        {"op": "UploadPartCopy", "input": {**upload, "PartNumber": 1,
                                           "CopySource": f"{bucket}/source.bin",
                                           "CopySourceRange": f"bytes=0-{PART - 1}"}},
        {"op": "UploadPartCopy", "input": {**upload, "PartNumber": 2,
                                           "CopySource": f"{bucket}/source.bin",
                                           "CopySourceRange": f"bytes={PART}-{len(source) - 1}"}},
    ], timeout=TIMEOUT)
    listed = js_ok(results[0])
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [
        ("copied.bin", upload["UploadId"])], listed
    etags = [js_ok(r)["CopyPartResult"]["ETag"] for r in results[1:]]
    results = js.run([
        {"op": "CompleteMultipartUpload", "input": {**upload, "MultipartUpload": {"Parts": [
            {"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]}}},
        {"op": "GetObject", "input": {**ids, "PartNumber": 2}},
        {"op": "ListMultipartUploads", "input": {"Bucket": bucket}},
        {"op": "ListObjects", "input": {"Bucket": bucket, "MaxKeys": 1}},
        {"op": "ListObjects", "input": {"Bucket": bucket, "Marker": "copied.bin"}},
    ], timeout=TIMEOUT)
    js_ok(results[0])
    part = results[1]
    assert part["ok"] and part["status"] == 206, part
    assert part["output"]["PartsCount"] == 2, part
    assert js_body(part["output"]) == source[PART:]
    check_sse(part["output"], sse)
    assert not js_ok(results[2]).get("Uploads"), results[2]
    first_page = js_ok(results[3])
    assert [e["Key"] for e in first_page["Contents"]] == ["copied.bin"], first_page
    assert first_page["IsTruncated"] is True, first_page
    assert [e["Key"] for e in js_ok(results[4])["Contents"]] == ["source.bin"], results[4]
