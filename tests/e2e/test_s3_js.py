"""API.md §9 through ``@aws-sdk/client-s3`` in Node: the integration guide's
``BucketEncryptionManager`` (js/bucket_manager.mjs, the class copied verbatim) on a server of its
own, and the SDK's commands one by one (js/s3_ops.mjs) on the session server."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import DEFAULT_KEY
from kms_clients import check_metadata, ok
from s3_clients import (
    boto3_client,
    config,
    encryption_of,
    js_error,
    js_ok,
    key_arn,
    kms_stopped,
    unique_bucket,
)

GUIDE_BUCKETS = ["sensitive-data-bucket", "public-assets", "user-uploads", "backup-data",
                 "kms-default-bucket", "unencrypted-logs"]
DISABLED = {"encryptionStatus": "Disabled", "encryptionType": None, "encryptionAlgorithm": None,
            "kmsKeyId": None, "kmsKeyName": None}
SSE_S3 = {"encryptionStatus": "Enabled", "encryptionType": "SSE-S3",
          "encryptionAlgorithm": "AES-256 (S3)", "kmsKeyId": None, "kmsKeyName": None}


def sse_kms(key_id: str, key_name: str) -> dict:
    return {"encryptionStatus": "Enabled", "encryptionType": "SSE-KMS",
            "encryptionAlgorithm": "AES-256 (KMS)", "kmsKeyId": key_id, "kmsKeyName": key_name}


def run_bucket_manager(tools, server) -> dict:
    settings = {"endpoint": server.url, "accessKeyId": server.credentials.access_key,
                "secretAccessKey": server.credentials.secret_key}
    done = subprocess.run(
        [tools.node, "bucket_manager.mjs", json.dumps(settings)], cwd=tools.js_dir,
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE": "1"},
    )
    assert done.returncode == 0, f"bucket_manager.mjs exited {done.returncode}: {done.stderr}"
    report = json.loads(done.stdout)
    assert report["ok"], f"the guide's example failed: {report.get('error')}\n{done.stderr}"
    return report


def by_name(entries: list[dict]) -> dict[str, dict]:
    return {entry["name"]: entry for entry in entries}


def encryption_fields(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("name", "creationDate")}


def test_the_guides_bucket_encryption_manager(tools, spawn_server, clients):
    server = spawn_server("bucket-manager")
    report = run_bucket_manager(tools, server)
    admin = clients.make("botocore", server)
    s3 = boto3_client(server, server.credentials)

    assert report["created"] == [{"name": n, "status": 200} for n in GUIDE_BUCKETS]
    assert report["initialize"] == {"success": True}
    assert report["initialKeyIds"] == [DEFAULT_KEY]

    # initialize(): every bucket, none encrypted (the 404 of §9 read as "Disabled").
    initial = by_name(report["initialBuckets"])
    assert sorted(initial) == sorted(GUIDE_BUCKETS)
    listed = {b["Name"]: b["CreationDate"] for b in s3.list_buckets()["Buckets"]}
    for name, entry in initial.items():
        assert encryption_fields(entry) == DISABLED, entry
        assert entry["creationDate"] == listed[name].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert report["initialStats"] == {"total": 6, "encrypted": 0, "unencrypted": 6, "sseS3": 0,
                                      "sseKMS": 0, "encryptionRate": "0.0%"}

    # setupDedicatedEncryption: a key created with the guide's tags, and SSE-KMS under it.
    dedicated = report["dedicated"]
    key_id = dedicated["keyId"]
    assert dedicated == {"success": True, "keyId": key_id, "keyName": "sensitive-data-key"}
    meta = check_metadata(ok(admin.get(f"/kms/keys/{key_id}"))["key_metadata"],
                          key_id=key_id, key_state="Enabled",
                          description="Encryption key for sensitive data bucket")
    tags = meta["tags"]
    assert {k: tags[k] for k in ("name", "bucket", "purpose", "created_by")} == {
        "name": "sensitive-data-key", "bucket": "sensitive-data-bucket",
        "purpose": "bucket-encryption", "created_by": "bucket-manager"}, tags
    # Right after the Put, the manager's key list predates the key: the guide's fallback name.
    assert encryption_fields(report["afterDedicated"]) == sse_kms(key_id, key_id[:8] + "...")

    assert report["batch"] == [{"bucketName": n, "success": True}
                               for n in ("public-assets", "user-uploads", "backup-data")]
    assert report["kmsDefault"] == {"success": True}
    # A missing bucket and an unknown key: the SDK threw the server's messages.
    failing = report["failingBatch"]
    assert [(f["bucketName"], f["success"]) for f in failing] == [
        ("no-such-bucket", False), ("backup-data", False)], failing
    assert all(f["error"] for f in failing), failing

    # loadBuckets() again: the key name now comes from the key's tags.name.
    default_name = ok(admin.get(f"/kms/keys/{DEFAULT_KEY}"))["key_metadata"]["description"]
    expected = {
        "sensitive-data-bucket": sse_kms(key_id, "sensitive-data-key"),
        "public-assets": SSE_S3,
        "user-uploads": SSE_S3,
        "backup-data": SSE_S3,  # the refused SSE-KMS changed nothing
        "kms-default-bucket": sse_kms(DEFAULT_KEY, default_name or DEFAULT_KEY[:8] + "..."),
        "unencrypted-logs": DISABLED,
    }
    assert {n: encryption_fields(e) for n, e in by_name(report["reloaded"]).items()} == expected
    assert report["unencrypted"] == ["unencrypted-logs"]
    assert sorted(report["kmsBuckets"]) == ["kms-default-bucket", "sensitive-data-bucket"]
    assert report["stats"] == {"total": 6, "encrypted": 5, "unencrypted": 1, "sseS3": 3,
                               "sseKMS": 2, "encryptionRate": "83.3%"}
    options = {o["value"]: o for o in report["keyOptions"]}
    assert options[key_id]["label"] == "sensitive-data-key" and options[key_id]["enabled"], options

    # removeBucketEncryption
    assert report["removed"] == {"success": True}
    assert encryption_fields(report["afterRemoval"]) == DISABLED
    assert report["finalStats"] == {"total": 6, "encrypted": 4, "unencrypted": 2, "sseS3": 2,
                                    "sseKMS": 2, "encryptionRate": "66.7%"}

    # What the server holds agrees with what the guide's class showed.
    assert encryption_of(s3, "sensitive-data-bucket") == config("aws:kms", key_id)
    assert encryption_of(s3, "kms-default-bucket") == config("aws:kms", DEFAULT_KEY)
    assert encryption_of(s3, "backup-data") == config("AES256")
    assert encryption_of(s3, "public-assets") is None
    scheduled = ok(admin.delete("/kms/keys/delete", {"key_id": key_id}))
    assert scheduled["buckets_using_key"] == ["sensitive-data-bucket"], scheduled


def test_the_sdk_commands_and_their_errors(js_s3, s3_client, make_bucket, new_key, admin):
    js = js_s3()
    name = make_bucket("js")
    key_id = new_key("js")
    missing = unique_bucket("js-missing")
    results = js.run([
        {"op": "GetBucketEncryption", "input": {"Bucket": name}},
        {"op": "PutBucketEncryption", "input": {
            "Bucket": name,
            "ServerSideEncryptionConfiguration": config("aws:kms", key_arn(key_id), True)}},
        {"op": "GetBucketEncryption", "input": {"Bucket": name}},
        {"op": "PutBucketEncryption", "input": {
            "Bucket": name, "ServerSideEncryptionConfiguration": config("AES256", key_id)}},
        {"op": "PutBucketEncryption", "input": {
            "Bucket": name,
            "ServerSideEncryptionConfiguration": config("aws:kms", "no-such-key")}},
        {"op": "GetBucketEncryption", "input": {"Bucket": missing}},
        {"op": "CreateBucket", "input": {"Bucket": "rustfs"}},
        {"op": "DeleteBucketEncryption", "input": {"Bucket": name}},
        {"op": "DeleteBucketEncryption", "input": {"Bucket": name}},
        {"op": "HeadBucket", "input": {"Bucket": name}},
        {"op": "ListBuckets", "input": {}},
    ])
    js_error(results[0], 404, "ServerSideEncryptionConfigurationNotFoundError")
    assert results[1]["status"] == 200 and results[1]["ok"], results[1]
    assert js_ok(results[2]) == {"ServerSideEncryptionConfiguration": config(
        "aws:kms", key_id, True)}
    js_error(results[3], 400, "InvalidArgument")
    js_error(results[4], 400, "KMSKeyNotFound")
    js_error(results[5], 404, "NoSuchBucket")
    js_error(results[6], 400, "InvalidBucketName")
    assert [r["status"] for r in results[7:9]] == [204, 204], results[7:9]
    assert results[9]["status"] == 200 and results[9]["ok"], results[9]
    listing = js_ok(results[10])
    assert name in [b["Name"] for b in listing["Buckets"]]
    assert listing["Owner"] == s3_client.list_buckets()["Owner"]
    for failed in (results[0], results[5]):
        # The XML error's RequestId and the x-amz-request-id header are the same.
        assert failed["errorRequestId"] == failed["requestId"], failed
        assert failed["resource"] in (f"/{name}", f"/{missing}"), failed
    assert encryption_of(s3_client, name) is None

    with kms_stopped(admin):
        stopped = js.one("PutBucketEncryption", Bucket=name,
                         ServerSideEncryptionConfiguration=config("AES256"))
        js_error(stopped, 503, "ServiceUnavailable")
    assert encryption_of(s3_client, name) is None
