"""The JSON mirrors of the bucket-encryption calls under ``/rustfs/admin/v3/api/v1`` (API.md §9),
through the three admin clients (curl, botocore, the guide's JavaScript): the same answers as the
S3 calls, §3 JSON errors with the S3 codes, and the ``s3:*`` actions of the identity file."""

from __future__ import annotations

import pytest

from conftest import ACTIONS, DEFAULT_KEY
from kms_clients import Credentials, expect_error, ok, parse_timestamp
from s3_clients import config, encryption_of, key_arn, kms_stopped, rule, unique_bucket

UNKNOWN_KEY = "00000000-0000-4000-8000-000000000000"


def path_of(bucket: str) -> str:
    return f"/api/v1/bucket-encryption/{bucket}"


def get_mirror(client, bucket: str):
    return client.get(path_of(bucket))


def put_mirror(client, bucket: str, body):
    return client.call("PUT", path_of(bucket), body)


def wrapped(configuration: dict) -> dict:
    return {"ServerSideEncryptionConfiguration": configuration}


def succeeded(resp) -> None:
    assert ok(resp) == {"success": True}, resp


@pytest.fixture
def stored_bucket(s3_client, make_bucket, new_key):
    """A bucket with SSE-KMS under its own key (set through S3), and what Get shows for it."""
    key_id = new_key("mirror")
    name = make_bucket("mirror")
    s3_client.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=config(
        "aws:kms", key_id, bucket_key=True))
    return name, config("aws:kms", key_id, bucket_key=True)


# ---- GET /buckets ------------------------------------------------------------------------------


def test_the_bucket_list_carries_encryption_summaries(client, s3_client, make_bucket, new_key):
    key_id = new_key("listed")
    kms, sse_s3, plain = make_bucket("list-kms"), make_bucket("list-s3"), make_bucket("list-none")
    s3_client.put_bucket_encryption(Bucket=kms, ServerSideEncryptionConfiguration=config(
        "aws:kms", key_arn(key_id), bucket_key=True))
    s3_client.put_bucket_encryption(Bucket=sse_s3, ServerSideEncryptionConfiguration=config(
        "AES256"))

    body = ok(client.get("/api/v1/buckets"))
    assert set(body) == {"Buckets", "Owner"}, body
    s3_listing = s3_client.list_buckets()
    assert body["Owner"] == s3_listing["Owner"], body["Owner"]
    entries = {entry["Name"]: entry for entry in body["Buckets"]}
    assert [e["Name"] for e in body["Buckets"]] == [b["Name"] for b in s3_listing["Buckets"]]
    for bucket in s3_listing["Buckets"]:
        entry = entries[bucket["Name"]]
        assert set(entry) == {"Name", "CreationDate", "encryption"}, entry
        assert parse_timestamp(entry["CreationDate"]).timestamp() == pytest.approx(
            bucket["CreationDate"].timestamp(), abs=0.001), (entry, bucket)
    assert entries[kms]["encryption"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id}
    assert entries[sse_s3]["encryption"] in (
        {"SSEAlgorithm": "AES256"}, {"SSEAlgorithm": "AES256", "KMSMasterKeyID": None})
    assert entries[plain]["encryption"] is None


# ---- GET|PUT|DELETE /bucket-encryption/{bucket} ------------------------------------------------


def test_get_mirrors_get_bucket_encryption(client, stored_bucket):
    name, stored = stored_bucket
    assert ok(get_mirror(client, name)) == wrapped(stored)


@pytest.mark.parametrize("form", ["wrapped", "bare-rules"])
def test_put_takes_both_body_forms(client, s3_client, make_bucket, new_key, form):
    name = make_bucket("mirror-put")
    key_id = new_key("put")
    shape = wrapped if form == "wrapped" else (lambda c: c)

    succeeded(put_mirror(client, name, shape(config("AES256"))))
    assert encryption_of(s3_client, name) == config("AES256")
    assert ok(get_mirror(client, name)) == wrapped(config("AES256"))

    succeeded(put_mirror(client, name, shape(config("aws:kms", key_arn(key_id), False))))
    assert encryption_of(s3_client, name) == config("aws:kms", key_id, False)
    assert ok(get_mirror(client, name)) == wrapped(config("aws:kms", key_id, False))

    succeeded(put_mirror(client, name, shape(config("aws:kms"))))
    assert encryption_of(s3_client, name) == config("aws:kms", DEFAULT_KEY)


def test_delete_answers_success_also_when_repeated(client, s3_client, stored_bucket):
    name, _ = stored_bucket
    succeeded(client.delete(path_of(name)))
    assert encryption_of(s3_client, name) is None
    succeeded(client.delete(path_of(name)))
    expect_error(get_mirror(client, name), 404, "ServerSideEncryptionConfigurationNotFoundError")


# ---- errors: the §3 JSON document with the S3 codes --------------------------------------------


def test_a_missing_configuration_or_bucket(client, make_bucket):
    name = make_bucket("mirror-none")
    expect_error(get_mirror(client, name), 404, "ServerSideEncryptionConfigurationNotFoundError")
    missing = unique_bucket("mirror-missing")
    expect_error(get_mirror(client, missing), 404, "NoSuchBucket")
    expect_error(put_mirror(client, missing, config("AES256")), 404, "NoSuchBucket")
    expect_error(client.delete(path_of(missing)), 404, "NoSuchBucket")


def test_invalid_bucket_names(client):
    for name in ("rustfs", "ab", "Upper"):
        expect_error(get_mirror(client, name), 400, "InvalidBucketName")
        expect_error(put_mirror(client, name, config("AES256")), 400, "InvalidBucketName")


def test_refused_configurations_store_nothing(client, admin, s3_client, stored_bucket, new_key):
    name, stored = stored_bucket
    disabled = new_key("mirror-disabled")
    ok(admin.post("/kms/keys/disable", {"key_id": disabled}))
    refusals = [
        (400, "InvalidArgument", config("AES256", DEFAULT_KEY)),
        (400, "KMSKeyNotFound", config("aws:kms", UNKNOWN_KEY)),
        (400, "KMSKeyNotFound", wrapped(config("aws:kms", key_arn(UNKNOWN_KEY)))),
        (400, "KMS.KMSInvalidStateException", config("aws:kms", disabled)),
        (400, "MalformedXML", {"Rules": []}),
        (400, "MalformedXML", {"Rules": [rule("AES256"), rule("aws:kms")]}),
        (400, "MalformedXML", {"Rules": [{"BucketKeyEnabled": True}]}),
        (400, "MalformedXML", config("DES")),
    ]
    for status, code, body in refusals:
        expect_error(put_mirror(client, name, body), status, code)
        assert ok(get_mirror(client, name)) == wrapped(stored), body
    # Neither form, or both at once: §9 names no code; a 400 either way, and nothing stored.
    for body in ({}, {**wrapped(config("AES256")), **config("AES256")}):
        resp = put_mirror(client, name, body)
        assert resp.status == 400, resp
        expect_error(resp, 400, resp.json()["error"]["code"])
        assert resp.json()["error"]["code"] in ("MalformedXML", "InvalidRequest"), resp
        assert ok(get_mirror(client, name)) == wrapped(stored), body
    assert encryption_of(s3_client, name) == stored


@pytest.mark.parametrize("body", [
    {"Rules": [rule("AES256")], "Colour": "red"},
    {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "X": 1}}]},
    {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": 256}}]},
    {"Rules": [rule("AES256")], "ServerSideEncryptionConfiguration": None, "x": None},
    ["Rules"],
], ids=["unknown-field", "unknown-nested-field", "wrong-type", "unknown-null-field", "array"])
def test_a_body_that_is_not_the_schema_is_an_invalid_request(client, s3_client, stored_bucket,
                                                             body):
    name, stored = stored_bucket
    expect_error(put_mirror(client, name, body), 400, "InvalidRequest")
    assert encryption_of(s3_client, name) == stored


def test_malformed_json_is_an_invalid_request(raw_client, s3_client, stored_bucket):
    name, stored = stored_bucket
    resp = raw_client.call("PUT", path_of(name), raw=b'{"Rules": [')
    expect_error(resp, 400, "InvalidRequest")
    assert encryption_of(s3_client, name) == stored


def test_put_needs_a_running_kms_but_get_and_delete_do_not(client, admin, s3_client,
                                                           stored_bucket):
    name, stored = stored_bucket
    with kms_stopped(admin):
        expect_error(put_mirror(client, name, config("AES256")), 503, "ServiceUnavailable")
        expect_error(put_mirror(client, name, config("aws:kms")), 503, "ServiceUnavailable")
        assert ok(get_mirror(client, name)) == wrapped(stored)
        succeeded(client.delete(path_of(name)))
    assert encryption_of(s3_client, name) is None


def test_unauthenticated_calls_are_401(client, server, s3_client, stored_bucket):
    name, stored = stored_bucket
    wrong_secret = client.with_credentials(Credentials(server.credentials.access_key,
                                                       server.credentials.secret_key + "x"))
    other_region = client.with_region("eu-west-1")
    for caller in (wrong_secret, other_region):
        expect_error(caller.get("/api/v1/buckets"), 401, "AccessDenied")
        expect_error(get_mirror(caller, name), 401, "AccessDenied")
        expect_error(put_mirror(caller, name, config("AES256")), 401, "AccessDenied")
        expect_error(caller.delete(path_of(name)), 401, "AccessDenied")
    assert encryption_of(s3_client, name) == stored


def test_wrong_methods_on_the_mirrors(client):
    expect_error(client.post("/api/v1/buckets", {}), 405, "MethodNotAllowed")
    expect_error(client.post(path_of("some-bucket"), config("AES256")), 405, "MethodNotAllowed")


# ---- the s3 actions ----------------------------------------------------------------------------


def test_identities_without_s3_actions_are_denied(kind, clients, server, users, s3_client,
                                                  stored_bucket):
    name, stored = stored_bucket
    for action in ACTIONS:
        client = clients.make(kind, server, users[action])
        expect_error(client.get("/api/v1/buckets"), 403, "AccessDenied")
        expect_error(get_mirror(client, name), 403, "AccessDenied")
        expect_error(put_mirror(client, name, config("AES256")), 403, "AccessDenied")
        expect_error(client.delete(path_of(name)), 403, "AccessDenied")
    assert encryption_of(s3_client, name) == stored


def test_an_encryption_reader_reads_but_cannot_write(kind, clients, server, s3_users, s3_client,
                                                     stored_bucket):
    name, stored = stored_bucket
    reader = clients.make(kind, server, s3_users["s3:GetEncryptionConfiguration"])
    assert ok(get_mirror(reader, name)) == wrapped(stored)
    # Authorization before validation (§3's order): a bad body still gets 403.
    expect_error(put_mirror(reader, name, {"Rules": "nonsense"}), 403, "AccessDenied")
    expect_error(put_mirror(reader, name, config("AES256")), 403, "AccessDenied")
    expect_error(reader.delete(path_of(name)), 403, "AccessDenied")
    expect_error(reader.get("/api/v1/buckets"), 403, "AccessDenied")
    assert encryption_of(s3_client, name) == stored


def test_an_s3_user_uses_the_mirrors(kind, clients, server, s3_users, s3_client, make_bucket):
    name = make_bucket("mirror-s3user")
    user = clients.make(kind, server, s3_users["s3:*"])
    assert name in [b["Name"] for b in ok(user.get("/api/v1/buckets"))["Buckets"]]
    succeeded(put_mirror(user, name, config("aws:kms", bucket_key=True)))
    assert ok(get_mirror(user, name)) == wrapped(config("aws:kms", DEFAULT_KEY, True))
    succeeded(user.delete(path_of(name)))
    assert encryption_of(s3_client, name) is None
    expect_error(user.get("/kms/keys"), 403, "AccessDenied")
