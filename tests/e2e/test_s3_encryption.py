"""Bucket default encryption through boto3 and raw signed requests (API.md §9, and the S3 side of
§2): Put/Get/DeleteBucketEncryption for SSE-S3 and SSE-KMS, every refusal (and that nothing
invalid is ever stored), the KMS being stopped, the XML and integrity rules, presigned URLs,
signature errors, aws-chunked bodies and the S3 actions of the identity file."""

from __future__ import annotations

import datetime as dt
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from conftest import ACTIONS, DEFAULT_KEY
from kms_clients import Credentials, Response, expect_error, ok
from s3_clients import (
    S3_NS,
    UNSIGNED_PAYLOAD,
    boto3_client,
    boto_error,
    checksum_crc32,
    client_error,
    checksum_sha256,
    config,
    config_xml,
    content_md5,
    encryption_of,
    expect_s3_error,
    key_arn,
    kms_stopped,
    parse_encryption_xml,
    status_of,
    unique_bucket,
    unsigned_request,
)

UNKNOWN_KEY = "00000000-0000-4000-8000-000000000000"


def put(s3, bucket: str, configuration: dict) -> dict:
    return s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=configuration)


def put_ok(s3, bucket: str, configuration: dict) -> None:
    """A successful Put: 200 and no body (§9)."""
    answer = put(s3, bucket, configuration)
    assert status_of(answer) == 200, answer
    assert answer["ResponseMetadata"]["HTTPHeaders"].get("content-length", "0") == "0", answer


@pytest.fixture
def kms_bucket(s3_client, make_bucket, new_key):
    """A bucket whose default encryption is SSE-KMS under a key of its own, and that key."""
    key_id = new_key("bucket key")
    name = make_bucket("enc")
    put_ok(s3_client, name, config("aws:kms", key_id, bucket_key=True))
    return name, key_id


# ---- what is stored and returned ---------------------------------------------------------------


def test_sse_s3_is_stored_and_returned(s3_client, make_bucket):
    name = make_bucket("sse-s3")
    put_ok(s3_client, name, config("AES256"))
    got = s3_client.get_bucket_encryption(Bucket=name)
    assert status_of(got) == 200
    assert got["ServerSideEncryptionConfiguration"] == config("AES256")


def test_sse_kms_with_a_key_created_through_the_admin_api(s3_client, make_bucket, admin):
    key_id = ok(admin.post("/kms/keys", {"Description": "bucket", "Tags": {"name": "b"}}))["key_id"]
    name = make_bucket("sse-kms")
    put_ok(s3_client, name, config("aws:kms", key_id))
    assert encryption_of(s3_client, name) == config("aws:kms", key_id)


@pytest.mark.parametrize("region, account", [("us-east-1", "000000000000"),
                                             ("eu-west-1", "123456789012")])
def test_a_key_arn_is_stored_and_returned_as_the_bare_id(s3_client, make_bucket, new_key,
                                                         region, account):
    key_id = new_key("arn")
    name = make_bucket("arn")
    arn = f"arn:aws:kms:{region}:{account}:key/{key_id}"
    put_ok(s3_client, name, config("aws:kms", arn))
    assert encryption_of(s3_client, name) == config("aws:kms", key_id)


def test_aws_kms_without_a_key_id_gets_the_default_key(s3_client, make_bucket):
    name = make_bucket("default")
    put_ok(s3_client, name, config("aws:kms"))
    assert encryption_of(s3_client, name) == config("aws:kms", DEFAULT_KEY)


@pytest.mark.parametrize("bucket_key", [True, False, None], ids=["true", "false", "absent"])
@pytest.mark.parametrize("algorithm", ["AES256", "aws:kms"])
def test_bucket_key_enabled_is_echoed(s3_client, make_bucket, new_key, algorithm, bucket_key):
    name = make_bucket("bke")
    key_id = new_key() if algorithm == "aws:kms" else None
    put_ok(s3_client, name, config(algorithm, key_id, bucket_key))
    assert encryption_of(s3_client, name) == config(algorithm, key_id, bucket_key)


def test_a_put_replaces_the_previous_configuration(s3_client, kms_bucket):
    name, _ = kms_bucket
    put_ok(s3_client, name, config("AES256"))
    assert encryption_of(s3_client, name) == config("AES256")
    put_ok(s3_client, name, config("aws:kms"))
    assert encryption_of(s3_client, name) == config("aws:kms", DEFAULT_KEY)


def test_get_without_a_configuration_is_not_found(s3_client, s3_raw, make_bucket):
    name = make_bucket("none")
    boto_error(lambda: s3_client.get_bucket_encryption(Bucket=name), 404,
               "ServerSideEncryptionConfigurationNotFoundError")
    expect_s3_error(s3_raw.request("GET", f"/{name}", "encryption"), 404,
                    "ServerSideEncryptionConfigurationNotFoundError", f"/{name}")


def test_delete_is_204_also_when_repeated(s3_client, kms_bucket):
    name, _ = kms_bucket
    for _ in range(3):
        answer = s3_client.delete_bucket_encryption(Bucket=name)
        assert status_of(answer) == 204, answer
        assert encryption_of(s3_client, name) is None


def test_a_missing_bucket_is_no_such_bucket_for_every_encryption_call(s3_client, s3_raw):
    name = unique_bucket("missing")
    boto_error(lambda: put(s3_client, name, config("AES256")), 404, "NoSuchBucket")
    boto_error(lambda: s3_client.get_bucket_encryption(Bucket=name), 404, "NoSuchBucket")
    boto_error(lambda: s3_client.delete_bucket_encryption(Bucket=name), 404, "NoSuchBucket")
    for method in ("GET", "DELETE"):
        expect_s3_error(s3_raw.request(method, f"/{name}", "encryption"), 404, "NoSuchBucket",
                        f"/{name}")
    expect_s3_error(s3_raw.put_encryption(name, config_xml("AES256")), 404, "NoSuchBucket",
                    f"/{name}")
    assert name not in [b["Name"] for b in s3_client.list_buckets()["Buckets"]]


def test_the_key_is_listed_as_used_by_the_bucket(admin, kms_bucket):
    # §5: scheduling deletion names the buckets whose default encryption names the key.
    name, key_id = kms_bucket
    scheduled = ok(admin.delete("/kms/keys/delete", {"key_id": key_id}))
    try:
        assert scheduled["buckets_using_key"] == [name], scheduled
    finally:
        ok(admin.post("/kms/keys/cancel-deletion", {"key_id": key_id}))


# ---- refusals: nothing invalid is ever stored --------------------------------------------------


def test_a_kms_key_id_with_aes256_is_invalid_argument(s3_client, kms_bucket, new_key):
    name, key_id = kms_bucket
    boto_error(lambda: put(s3_client, name, config("AES256", new_key())), 400, "InvalidArgument")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


@pytest.mark.parametrize("reference", [UNKNOWN_KEY, key_arn(UNKNOWN_KEY), "no-such-key"],
                         ids=["uuid", "arn", "name"])
def test_an_unknown_key_is_kms_key_not_found(s3_client, kms_bucket, reference):
    name, key_id = kms_bucket
    boto_error(lambda: put(s3_client, name, config("aws:kms", reference)), 400, "KMSKeyNotFound")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


def test_a_disabled_key_is_refused_until_enabled(s3_client, admin, kms_bucket, new_key):
    name, key_id = kms_bucket
    other = new_key("disabled")
    ok(admin.post("/kms/keys/disable", {"key_id": other}))
    for reference in (other, key_arn(other)):
        boto_error(lambda: put(s3_client, name, config("aws:kms", reference)), 400,
                   "KMS.KMSInvalidStateException")
        assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)
    ok(admin.post("/kms/keys/enable", {"key_id": other}))
    put_ok(s3_client, name, config("aws:kms", other))
    assert encryption_of(s3_client, name) == config("aws:kms", other)


def test_a_key_pending_deletion_is_refused_until_cancelled(s3_client, admin, kms_bucket, new_key):
    name, key_id = kms_bucket
    other = new_key("pending")
    ok(admin.delete("/kms/keys/delete", {"key_id": other, "pending_window_in_days": 7}))
    try:
        boto_error(lambda: put(s3_client, name, config("aws:kms", other)), 400,
                   "KMS.KMSInvalidStateException")
        assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)
    finally:
        ok(admin.post("/kms/keys/cancel-deletion", {"key_id": other}))
    put_ok(s3_client, name, config("aws:kms", other))
    assert encryption_of(s3_client, name) == config("aws:kms", other)


def test_a_refused_put_on_a_bucket_without_configuration_stores_nothing(s3_client, make_bucket):
    name = make_bucket("clean")
    boto_error(lambda: put(s3_client, name, config("aws:kms", UNKNOWN_KEY)), 400,
               "KMSKeyNotFound")
    boto_error(lambda: put(s3_client, name, config("AES256", DEFAULT_KEY)), 400,
               "InvalidArgument")
    assert encryption_of(s3_client, name) is None


# ---- the KMS stopped ---------------------------------------------------------------------------


def test_put_needs_a_running_kms_but_get_and_delete_do_not(s3_client, s3_raw, admin, kms_bucket,
                                                           make_bucket):
    name, key_id = kms_bucket
    stored = config("aws:kms", key_id, bucket_key=True)
    other = make_bucket("stopped")
    with kms_stopped(admin):
        for attempt in (config("AES256"), config("aws:kms", key_id), config("aws:kms")):
            boto_error(lambda: put(s3_client, name, attempt), 503, "ServiceUnavailable")
            assert encryption_of(s3_client, name) == stored
            boto_error(lambda: put(s3_client, other, attempt), 503, "ServiceUnavailable")
            assert encryption_of(s3_client, other) is None
        expect_s3_error(s3_raw.put_encryption(name, config_xml("AES256")), 503,
                        "ServiceUnavailable", f"/{name}")
        # Get and Delete never need the KMS.
        assert encryption_of(s3_client, name) == stored
        assert status_of(s3_client.delete_bucket_encryption(Bucket=name)) == 204
        assert encryption_of(s3_client, name) is None
        assert status_of(s3_client.delete_bucket_encryption(Bucket=name)) == 204
    put_ok(s3_client, name, config("AES256"))
    assert encryption_of(s3_client, name) == config("AES256")


# ---- the XML document and its integrity --------------------------------------------------------

RULE_KMS = ("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm>"
            "</ApplyServerSideEncryptionByDefault></Rule>")
RULE_S3 = ("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>"
           "</ApplyServerSideEncryptionByDefault></Rule>")


def document(inner: str) -> bytes:
    return (f'<ServerSideEncryptionConfiguration xmlns="{S3_NS}">{inner}'
            "</ServerSideEncryptionConfiguration>").encode()


MALFORMED = {
    "empty": b"",
    "not-xml": b"this is not xml",
    "truncated": document(RULE_S3)[:-10],
    "wrong-root": f'<EncryptionConfiguration xmlns="{S3_NS}">{RULE_S3}</EncryptionConfiguration>'
                  .encode(),
    "no-rule": document(""),
    "two-rules": document(RULE_S3 + RULE_KMS),
    "rule-without-default": document("<Rule></Rule>"),
    "no-algorithm": document("<Rule><ApplyServerSideEncryptionByDefault>"
                             "</ApplyServerSideEncryptionByDefault></Rule>"),
    "unknown-algorithm": config_xml("aws:kms:dsse"),
    "lower-case-algorithm": config_xml("aes256"),
    "unknown-element": document("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256"
                                "</SSEAlgorithm><Colour>red</Colour>"
                                "</ApplyServerSideEncryptionByDefault></Rule>"),
    "bucket-key-not-boolean": config_xml("AES256", bucket_key="yes"),
    "wrong-namespace": config_xml("AES256", namespace="http://example.com/other/"),
    "trailing-element": document(RULE_S3) + b"<Extra/>",
    "two-algorithms": document("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256"
                               "</SSEAlgorithm><SSEAlgorithm>aws:kms</SSEAlgorithm>"
                               "</ApplyServerSideEncryptionByDefault></Rule>"),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_document_is_malformed_xml_and_stores_nothing(s3_client, s3_raw, kms_bucket,
                                                                  body):
    name, key_id = kms_bucket
    expect_s3_error(s3_raw.put_encryption(name, body), 400, "MalformedXML", f"/{name}")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


def test_a_document_as_the_aws_docs_write_it_is_accepted(s3_client, s3_raw, make_bucket, new_key):
    key_id = new_key()
    name = make_bucket("pretty")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ServerSideEncryptionConfiguration xmlns="{S3_NS}">\n'
        "  <Rule>\n    <ApplyServerSideEncryptionByDefault>\n"
        "      <SSEAlgorithm>aws:kms</SSEAlgorithm>\n"
        f"      <KMSMasterKeyID>{key_arn(key_id)}</KMSMasterKeyID>\n"
        "    </ApplyServerSideEncryptionByDefault>\n"
        "    <BucketKeyEnabled>true</BucketKeyEnabled>\n  </Rule>\n"
        "</ServerSideEncryptionConfiguration>\n"
    ).encode()
    resp = s3_raw.put_encryption(name, body)
    assert resp.status == 200 and resp.body == b"", resp
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


def test_the_get_document_is_the_s3_xml(s3_raw, kms_bucket):
    name, key_id = kms_bucket
    resp = s3_raw.request("GET", f"/{name}", "encryption")
    assert resp.status == 200, resp
    assert resp.headers.get("content-type", "").startswith("application/xml"), resp
    assert parse_encryption_xml(resp.body) == config("aws:kms", key_id, bucket_key=True)


def test_a_wrong_content_md5_is_bad_digest(s3_client, s3_raw, kms_bucket):
    name, key_id = kms_bucket
    body = config_xml("AES256")
    resp = s3_raw.put_encryption(name, body, md5=False,
                                 headers={"Content-MD5": content_md5(body + b" ")})
    expect_s3_error(resp, 400, "BadDigest", f"/{name}")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


def test_no_integrity_header_is_an_invalid_request(s3_client, s3_raw, kms_bucket):
    name, key_id = kms_bucket
    resp = s3_raw.put_encryption(name, config_xml("AES256"), md5=False)
    expect_s3_error(resp, 400, "InvalidRequest", f"/{name}")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


@pytest.mark.parametrize("header, digest", [("x-amz-checksum-crc32", checksum_crc32),
                                            ("x-amz-checksum-sha256", checksum_sha256)],
                         ids=["crc32", "sha256"])
def test_a_right_checksum_header_is_enough_and_a_wrong_one_is_bad_digest(
        s3_client, s3_raw, kms_bucket, header, digest):
    name, key_id = kms_bucket
    wrong = config_xml("aws:kms")
    body = config_xml("AES256", bucket_key=False)
    resp = s3_raw.put_encryption(name, body, md5=False, headers={header: digest(wrong)})
    expect_s3_error(resp, 400, "BadDigest", f"/{name}")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)
    resp = s3_raw.put_encryption(name, body, md5=False, headers={header: digest(body)})
    assert resp.status == 200 and resp.body == b"", resp
    assert encryption_of(s3_client, name) == config("AES256", bucket_key=False)


def test_a_body_that_does_not_match_its_signed_hash_is_refused(s3_client, s3_raw, kms_bucket):
    name, key_id = kms_bucket
    signed_for = config_xml("AES256")
    sent = config_xml("aws:kms")

    def swap(headers, body):
        headers["Content-MD5"] = content_md5(sent)
        return sent

    resp = s3_raw.put_encryption(name, signed_for, tamper=swap)
    # §2: "A signed body hash is checked"; S3's code for it is XAmzContentSHA256Mismatch.
    expect_s3_error(resp, 400, "XAmzContentSHA256Mismatch", f"/{name}")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


def test_an_unsigned_payload_is_accepted_with_a_content_md5(s3_client, s3_raw, make_bucket):
    name = make_bucket("unsigned")
    resp = s3_raw.put_encryption(name, config_xml("AES256"), payload_hash=UNSIGNED_PAYLOAD)
    assert resp.status == 200, resp
    assert encryption_of(s3_client, name) == config("AES256")


# ---- aws-chunked bodies ------------------------------------------------------------------------


def chunked_put(s3_raw, name: str, body: bytes, **kwargs):
    return s3_raw.chunked("PUT", f"/{name}", "encryption", body,
                          {"Content-MD5": content_md5(body)}, chunk_size=64, **kwargs)


def test_a_streaming_signed_body_is_accepted(s3_client, s3_raw, make_bucket, new_key):
    key_id = new_key("chunked")
    name = make_bucket("chunked")
    body = config_xml("aws:kms", key_arn(key_id), bucket_key=True)
    assert len(body) > 3 * 64, "the body should span several chunks"
    resp = chunked_put(s3_raw, name, body)
    assert resp.status == 200, resp
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


@pytest.mark.parametrize("chunk", [0, 2, -1], ids=["first", "middle", "final-empty"])
def test_a_tampered_chunk_signature_is_refused(s3_client, s3_raw, kms_bucket, chunk):
    name, key_id = kms_bucket
    body = config_xml("AES256", bucket_key=False)
    count = (len(body) + 63) // 64 + 1
    target = chunk % count

    def tamper(index, signature):
        if index != target:
            return signature
        return ("0" if signature[0] != "0" else "1") + signature[1:]

    resp = chunked_put(s3_raw, name, body, tamper_chunk=tamper)
    expect_s3_error(resp, 403, "SignatureDoesNotMatch", f"/{name}")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


def test_a_chunk_signature_from_another_chain_is_refused(s3_client, s3_raw, kms_bucket):
    # Signatures of a first request's chunks, replayed under a second request's seed.
    name, key_id = kms_bucket
    body = config_xml("AES256")
    first: list[str] = []
    chunked_put(s3_raw, name, body, tamper_chunk=lambda i, s: first.append(s) or s)
    assert encryption_of(s3_client, name) == config("AES256")
    put_ok(s3_client, name, config("aws:kms", key_id, bucket_key=True))
    time.sleep(1.1)  # another X-Amz-Date, so another seed signature
    resp = chunked_put(s3_raw, name, body, tamper_chunk=lambda i, s: first[i])
    expect_s3_error(resp, 403, "SignatureDoesNotMatch", f"/{name}")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


def test_an_unsigned_trailer_body_with_its_checksum_is_accepted(s3_client, s3_raw, kms_bucket):
    name, key_id = kms_bucket
    body = config_xml("AES256", bucket_key=True)
    wrong = s3_raw.unsigned_trailer("PUT", f"/{name}", "encryption", body,
                                    {"x-amz-checksum-crc32": checksum_crc32(body + b"x")})
    expect_s3_error(wrong, 400, "BadDigest", f"/{name}")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)
    right = s3_raw.unsigned_trailer("PUT", f"/{name}", "encryption", body,
                                    {"x-amz-checksum-crc32": checksum_crc32(body)})
    assert right.status == 200, right
    assert encryption_of(s3_client, name) == config("AES256", bucket_key=True)


# ---- presigned URLs ----------------------------------------------------------------------------


def presigner(server, credentials: Credentials, region: str = "us-east-1"):
    # SigV4 query signing (§2); boto3's default presigner for S3 is still SigV2.
    return boto3_client(server, credentials, region, signature_version="s3v4")


def fetch(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def fetched_error(url: str, status: int, code: str) -> dict:
    got_status, headers, body = fetch(url)
    resp = Response("presigned", "GET", url, None, got_status, headers, body)
    return expect_s3_error(resp, status, code)


def test_a_presigned_get_of_the_encryption_works_until_it_expires(server, kms_bucket):
    name, key_id = kms_bucket
    s3 = presigner(server, server.credentials)
    url = s3.generate_presigned_url("get_bucket_encryption", Params={"Bucket": name},
                                    ExpiresIn=300)
    assert "X-Amz-Signature=" in url and "Authorization" not in url, url
    status, headers, body = fetch(url)
    assert status == 200, body
    assert headers.get("x-amz-request-id")
    assert parse_encryption_xml(body) == config("aws:kms", key_id, bucket_key=True)

    short = s3.generate_presigned_url("get_bucket_encryption", Params={"Bucket": name},
                                      ExpiresIn=1)
    time.sleep(2)
    fetched_error(short, 403, "AccessDenied")


def test_a_tampered_presigned_url_is_refused(server, kms_bucket):
    name, _ = kms_bucket
    s3 = presigner(server, server.credentials)
    url = s3.generate_presigned_url("get_bucket_encryption", Params={"Bucket": name},
                                    ExpiresIn=300)
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    longer = [(k, "600" if k == "X-Amz-Expires" else v) for k, v in query]
    tampered = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(longer)))
    fetched_error(tampered, 403, "SignatureDoesNotMatch")
    other = unique_bucket("other")
    fetched_error(url.replace(f"/{name}?", f"/{other}?"), 403, "SignatureDoesNotMatch")


def test_a_presigned_url_of_an_unknown_access_key_is_refused(server, kms_bucket):
    name, _ = kms_bucket
    stranger = Credentials(f"stranger-{uuid.uuid4().hex[:8]}", "not-a-secret-of-the-server")
    url = presigner(server, stranger).generate_presigned_url(
        "get_bucket_encryption", Params={"Bucket": name}, ExpiresIn=300)
    fetched_error(url, 403, "InvalidAccessKeyId")


# ---- signatures --------------------------------------------------------------------------------


def test_a_request_signed_for_another_region_is_authorization_header_malformed(
        s3_raw, kms_bucket, s3_client):
    name, key_id = kms_bucket
    for method, query, body, headers in [
        ("GET", "encryption", b"", {}),
        ("PUT", "encryption", config_xml("AES256"), {"Content-MD5": content_md5(
            config_xml("AES256"))}),
        ("GET", "", b"", {}),
    ]:
        path = "/" if not query else f"/{name}"
        resp = s3_raw.request(method, path, query, body, headers, region="eu-west-1")
        expect_s3_error(resp, 400, "AuthorizationHeaderMalformed")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


def test_a_wrong_secret_is_signature_does_not_match(server, s3_raw, kms_bucket, s3_client):
    name, key_id = kms_bucket
    wrong = Credentials(server.credentials.access_key, server.credentials.secret_key + "x")
    expect_s3_error(s3_raw.request("GET", f"/{name}", "encryption", credentials=wrong), 403,
                    "SignatureDoesNotMatch", f"/{name}")
    expect_s3_error(s3_raw.put_encryption(name, config_xml("AES256"), credentials=wrong), 403,
                    "SignatureDoesNotMatch", f"/{name}")
    boto_error(lambda: boto3_client(server, wrong).list_buckets(), 403, "SignatureDoesNotMatch")
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)


def test_an_unknown_access_key_is_invalid_access_key_id(server, s3_raw, kms_bucket):
    name, _ = kms_bucket
    stranger = Credentials(f"stranger-{uuid.uuid4().hex[:8]}", "not-a-secret-of-the-server")
    expect_s3_error(s3_raw.request("GET", f"/{name}", "encryption", credentials=stranger), 403,
                    "InvalidAccessKeyId", f"/{name}")
    boto_error(lambda: boto3_client(server, stranger).get_bucket_encryption(Bucket=name), 403,
               "InvalidAccessKeyId")


def test_an_unsigned_request_is_access_denied(server, kms_bucket):
    name, _ = kms_bucket
    expect_s3_error(unsigned_request(server, "GET", f"/{name}?encryption"), 403, "AccessDenied",
                    f"/{name}")
    expect_s3_error(unsigned_request(server, "GET", "/"), 403, "AccessDenied")


def test_a_request_from_more_than_15_minutes_ago_is_refused(s3_raw, kms_bucket):
    name, _ = kms_bucket
    clock = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=16)
    expect_s3_error(s3_raw.request("GET", f"/{name}", "encryption", clock=clock), 403,
                    "RequestTimeTooSkewed", f"/{name}")
    near = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=14)
    assert s3_raw.request("GET", f"/{name}", "encryption", clock=near).status == 200


def test_every_s3_answer_has_its_own_request_id(s3_raw, kms_bucket):
    name, _ = kms_bucket
    answers = [
        s3_raw.request("GET", "/"),
        s3_raw.request("GET", f"/{name}", "encryption"),
        s3_raw.request("GET", f"/{unique_bucket('nope')}", "encryption"),
        s3_raw.put_encryption(name, b"<nope/>"),
        s3_raw.request("HEAD", f"/{name}"),
    ]
    ids = [a.headers.get("x-amz-request-id") for a in answers]
    assert all(ids) and len(set(ids)) == len(ids), ids
    expect_s3_error(answers[2], 404, "NoSuchBucket")
    expect_s3_error(answers[3], 400, "MalformedXML")


# ---- the S3 actions of the identity file (§2) --------------------------------------------------


def test_identities_without_s3_actions_are_denied_every_s3_call(server, users, s3_client,
                                                                kms_bucket):
    name, key_id = kms_bucket
    stored = config("aws:kms", key_id, bucket_key=True)
    before = s3_client.list_buckets()["Buckets"]
    fresh = unique_bucket("denied")
    for action in ACTIONS:
        s3 = boto3_client(server, users[action])
        boto_error(lambda: s3.list_buckets(), 403, "AccessDenied")
        boto_error(lambda: s3.create_bucket(Bucket=fresh), 403, "AccessDenied")
        boto_error(lambda: s3.head_bucket(Bucket=name), 403, "403")
        boto_error(lambda: s3.get_bucket_encryption(Bucket=name), 403, "AccessDenied")
        boto_error(lambda: put(s3, name, config("AES256")), 403, "AccessDenied")
        boto_error(lambda: s3.delete_bucket_encryption(Bucket=name), 403, "AccessDenied")
        boto_error(lambda: s3.delete_bucket(Bucket=name), 403, "AccessDenied")
    assert s3_client.list_buckets()["Buckets"] == before
    assert encryption_of(s3_client, name) == stored


def test_an_encryption_reader_reads_and_changes_nothing(server, s3_users, s3_client, kms_bucket):
    name, key_id = kms_bucket
    stored = config("aws:kms", key_id, bucket_key=True)
    reader = boto3_client(server, s3_users["s3:GetEncryptionConfiguration"])
    assert encryption_of(reader, name) == stored
    # Authorization comes before validation and the KMS (§3's order).
    boto_error(lambda: put(reader, name, config("AES256")), 403, "AccessDenied")
    boto_error(lambda: put(reader, name, config("aws:kms", UNKNOWN_KEY)), 403, "AccessDenied")
    boto_error(lambda: reader.delete_bucket_encryption(Bucket=name), 403, "AccessDenied")
    boto_error(lambda: reader.list_buckets(), 403, "AccessDenied")
    boto_error(lambda: reader.create_bucket(Bucket=unique_bucket("reader")), 403, "AccessDenied")
    assert encryption_of(s3_client, name) == stored


def test_an_s3_user_manages_buckets_but_not_keys(server, s3_users, clients, new_key):
    credentials = s3_users["s3:*"]
    s3 = boto3_client(server, credentials)
    name = unique_bucket("s3user")
    key_id = new_key("for the s3 user")
    assert status_of(s3.create_bucket(Bucket=name)) == 200
    try:
        put_ok(s3, name, config("aws:kms", key_arn(key_id)))
        assert encryption_of(s3, name) == config("aws:kms", key_id)
        assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert status_of(s3.delete_bucket_encryption(Bucket=name)) == 204
    finally:
        assert status_of(s3.delete_bucket(Bucket=name)) == 204
    admin_as_user = clients.make("botocore", server, credentials)
    expect_error(admin_as_user.post("/kms/keys", {}), 403, "AccessDenied")
    expect_error(admin_as_user.get("/kms/keys"), 403, "AccessDenied")


# ---- more of "nothing invalid is stored" and "Get and Delete never need the KMS" ----------------


@pytest.mark.parametrize("reference", [
    "alias/my-key",
    "arn:aws:kms:us-east-1:000000000000:alias/my-key",
    "k" * 257,
], ids=["alias", "alias-arn", "257-bytes"])
def test_a_key_reference_that_names_no_key_is_refused_with_a_section_9_code(s3_client,
                                                                           kms_bucket, reference):
    # §9: with aws:kms the key id, bare or `arn:…:key/<id>`, "must name an existing key: else 400
    # KMSKeyNotFound"; "anything else malformed → 400 MalformedXML". InvalidArgument is §9's code
    # for KMSMasterKeyID with AES256 only.
    name, key_id = kms_bucket
    response = client_error(lambda: put(s3_client, name, config("aws:kms", reference)))
    assert status_of(response) == 400, response
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)
    assert response["Error"]["Code"] in ("KMSKeyNotFound", "MalformedXML"), response["Error"]


def test_get_still_shows_a_configuration_whose_key_was_disabled(s3_client, admin, kms_bucket):
    name, key_id = kms_bucket
    ok(admin.post("/kms/keys/disable", {"key_id": key_id}))
    try:
        assert encryption_of(s3_client, name) == config("aws:kms", key_id, bucket_key=True)
    finally:
        ok(admin.post("/kms/keys/enable", {"key_id": key_id}))


def test_a_server_whose_kms_is_not_configured_serves_buckets_but_refuses_puts(spawn_server):
    server = spawn_server("s3-unconfigured", args=("--no-auto-configure",))
    s3 = boto3_client(server, server.credentials)
    assert status_of(s3.create_bucket(Bucket="plain-bucket")) == 200
    for attempt in (config("AES256"), config("aws:kms"), config("aws:kms", "some-key")):
        boto_error(lambda: put(s3, "plain-bucket", attempt), 503, "ServiceUnavailable")
        assert encryption_of(s3, "plain-bucket") is None
    assert status_of(s3.delete_bucket_encryption(Bucket="plain-bucket")) == 204
    assert "plain-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert status_of(s3.delete_bucket(Bucket="plain-bucket")) == 204
