"""boto3, ``aws s3api`` and ``@aws-sdk/client-s3`` run the same §9 operations, each on a bucket of
its own, and must see the same results: the same outputs, the same error codes, and (boto3 and
the JS SDK, which report it) the same statuses."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from conftest import DEFAULT_KEY
from kms_clients import ok
from s3_clients import config, key_arn, unique_bucket

UNKNOWN_KEY = "00000000-0000-4000-8000-000000000000"
PLACEHOLDER = "{bucket}"

CLI_OPERATIONS = {
    "CreateBucket": "create-bucket",
    "HeadBucket": "head-bucket",
    "DeleteBucket": "delete-bucket",
    "ListBuckets": "list-buckets",
    "GetBucketEncryption": "get-bucket-encryption",
    "PutBucketEncryption": "put-bucket-encryption",
    "DeleteBucketEncryption": "delete-bucket-encryption",
}
SNAKE = {
    "CreateBucket": "create_bucket",
    "HeadBucket": "head_bucket",
    "DeleteBucket": "delete_bucket",
    "ListBuckets": "list_buckets",
    "GetBucketEncryption": "get_bucket_encryption",
    "PutBucketEncryption": "put_bucket_encryption",
    "DeleteBucketEncryption": "delete_bucket_encryption",
}


def scenario(key_id: str, disabled_key: str) -> list[tuple[str, dict]]:
    """The operations, with ``{bucket}`` for each client's own bucket."""
    bucket = {"Bucket": PLACEHOLDER}

    def put(configuration: dict) -> tuple[str, dict]:
        return ("PutBucketEncryption",
                {**bucket, "ServerSideEncryptionConfiguration": configuration})

    return [
        ("CreateBucket", bucket),
        ("HeadBucket", bucket),
        ("GetBucketEncryption", bucket),
        put(config("aws:kms", key_arn(key_id), bucket_key=True)),
        ("GetBucketEncryption", bucket),
        put(config("AES256", key_id)),
        put(config("aws:kms", UNKNOWN_KEY)),
        put(config("aws:kms", disabled_key)),
        ("GetBucketEncryption", bucket),
        put(config("aws:kms")),
        ("GetBucketEncryption", bucket),
        put(config("AES256", bucket_key=False)),
        ("GetBucketEncryption", bucket),
        ("DeleteBucketEncryption", bucket),
        ("DeleteBucketEncryption", bucket),
        ("GetBucketEncryption", bucket),
        ("ListBuckets", {}),
        ("CreateBucket", {"Bucket": "rustfs"}),
        ("DeleteBucket", bucket),
        ("HeadBucket", bucket),
        ("GetBucketEncryption", bucket),
        ("DeleteBucket", bucket),
    ]


def fill(value: Any, name: str) -> Any:
    return json.loads(json.dumps(value).replace(PLACEHOLDER, name))


def normalise(op: str, output: Any, name: str) -> Any:
    """An operation's output with the client's bucket name replaced by ``{bucket}``; a listing
    reduced to the owner and whether the bucket is in it (other tests' buckets come and go)."""
    output = output or {}
    if op == "ListBuckets":
        names = [b["Name"] for b in output.get("Buckets", [])]
        return {"Owner": output.get("Owner"), "listed": name in names}
    output = {k: v for k, v in output.items() if k != "BucketRegion" or v is not None}
    return json.loads(json.dumps(output, default=str).replace(name, PLACEHOLDER))


def outcome(op: str, error_code: str | None, status: int | None) -> str:
    # HEAD errors have no body: each SDK names them by the status alone.
    if op == "HeadBucket":
        return f"HTTP {status}" if status else f"HTTP {error_code}"
    return error_code


def run_boto3(s3, ops, name):
    results = []
    for op, params in ops:
        try:
            answer = getattr(s3, SNAKE[op])(**fill(params, name))
        except ClientError as err:
            status = err.response["ResponseMetadata"]["HTTPStatusCode"]
            results.append(("error", outcome(op, err.response["Error"]["Code"], status), status))
            continue
        status = answer.pop("ResponseMetadata")["HTTPStatusCode"]
        results.append(("ok", normalise(op, answer, name), status))
    return results


def run_cli(cli, ops, name):
    results = []
    for op, params in ops:
        params = fill(params, name)
        args = []
        if "Bucket" in params:
            args += ["--bucket", params["Bucket"]]
        if "ServerSideEncryptionConfiguration" in params:
            args += ["--server-side-encryption-configuration",
                     json.dumps(params["ServerSideEncryptionConfiguration"])]
        done = cli.s3api(CLI_OPERATIONS[op], *args)
        if done.returncode == 0:
            results.append(("ok", normalise(op, done.output, name), None))
        else:
            assert done.error_code, f"the CLI failed without an S3 error: {done}"
            results.append(("error", outcome(op, done.error_code, None), None))
    return results


def run_js(js, ops, name):
    answers = js.run([{"op": op, "input": fill(params, name)} for op, params in ops])
    results = []
    for (op, _), answer in zip(ops, answers):
        if answer["ok"]:
            results.append(("ok", normalise(op, answer["output"], name), answer["status"]))
        else:
            results.append(("error", outcome(op, answer["code"], answer["status"]),
                            answer["status"]))
    return results


def test_boto3_the_cli_and_the_js_sdk_agree(s3_client, aws_cli, js_s3, admin, new_key):
    key_id = new_key("agree")
    disabled = new_key("agree-disabled")
    ok(admin.post("/kms/keys/disable", {"key_id": disabled}))
    ops = scenario(key_id, disabled)
    names = {client: unique_bucket(f"agree-{client}") for client in ("boto3", "cli", "js")}
    try:
        seen = {
            "boto3": run_boto3(s3_client, ops, names["boto3"]),
            "cli": run_cli(aws_cli(), ops, names["cli"]),
            "js": run_js(js_s3(), ops, names["js"]),
        }
    finally:
        for name in names.values():
            try:
                s3_client.delete_bucket(Bucket=name)
            except ClientError:
                pass

    without_status = {client: [r[:2] for r in results] for client, results in seen.items()}
    for index, (op, params) in enumerate(ops):
        row = {client: without_status[client][index] for client in seen}
        assert row["boto3"] == row["cli"] == row["js"], (
            f"step {index} {op} {params}: the clients disagree: {row}")
        statuses = (seen["boto3"][index][2], seen["js"][index][2])
        assert statuses[0] == statuses[1], f"step {index} {op}: statuses {statuses}"

    # And what they agree on is §9.
    results = seen["boto3"]
    kms = config("aws:kms", key_id, bucket_key=True)
    expected = [
        ("ok", {"Location": f"/{PLACEHOLDER}"}, 200),
        ("ok", {}, 200),
        ("error", "ServerSideEncryptionConfigurationNotFoundError", 404),
        ("ok", {}, 200),
        ("ok", {"ServerSideEncryptionConfiguration": kms}, 200),
        ("error", "InvalidArgument", 400),
        ("error", "KMSKeyNotFound", 400),
        ("error", "KMS.KMSInvalidStateException", 400),
        ("ok", {"ServerSideEncryptionConfiguration": kms}, 200),
        ("ok", {}, 200),
        ("ok", {"ServerSideEncryptionConfiguration": config("aws:kms", DEFAULT_KEY)}, 200),
        ("ok", {}, 200),
        ("ok", {"ServerSideEncryptionConfiguration": config("AES256", bucket_key=False)}, 200),
        ("ok", {}, 204),
        ("ok", {}, 204),
        ("error", "ServerSideEncryptionConfigurationNotFoundError", 404),
        ("ok", {"Owner": s3_client.list_buckets()["Owner"], "listed": True}, 200),
        ("error", "InvalidBucketName", 400),
        ("ok", {}, 204),
        ("error", "HTTP 404", 404),
        ("error", "NoSuchBucket", 404),
        ("error", "NoSuchBucket", 404),
    ]
    for index, (got, want) in enumerate(zip(results, expected)):
        assert got == want, f"step {index} {ops[index][0]}: expected {want}, got {got}"
