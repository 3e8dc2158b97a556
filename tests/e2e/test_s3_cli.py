"""API.md §9 through the AWS CLI of the venv (``aws --endpoint-url URL s3api ...``), reading no
user configuration (see ``s3_clients.AwsCli``): the same answers as boto3 gives."""

from __future__ import annotations

import datetime as dt
import json

from conftest import DEFAULT_KEY
from kms_clients import Credentials, now_utc
from s3_clients import config, encryption_of, key_arn, kms_stopped, unique_bucket


def put_args(bucket: str, configuration: dict) -> list[str]:
    return ["--bucket", bucket, "--server-side-encryption-configuration",
            json.dumps(configuration)]


def test_the_cli_creates_lists_and_deletes_buckets(aws_cli, s3_client):
    cli = aws_cli()
    name = unique_bucket("cli")
    before = now_utc()
    created = cli.ok("create-bucket", "--bucket", name)
    assert created == {"Location": f"/{name}"}, created
    listing = cli.ok("list-buckets")
    entry = next(b for b in listing["Buckets"] if b["Name"] == name)
    created_at = dt.datetime.fromisoformat(entry["CreationDate"].replace("Z", "+00:00"))
    assert abs(created_at - before) < dt.timedelta(seconds=5), entry
    assert listing["Owner"] == s3_client.list_buckets()["Owner"], listing
    assert cli.ok("head-bucket", "--bucket", name) is None
    assert cli.ok("delete-bucket", "--bucket", name) is None
    assert name not in [b["Name"] for b in cli.ok("list-buckets")["Buckets"]]
    cli.error("NoSuchBucket", "delete-bucket", "--bucket", name)
    cli.error("NoSuchBucket", "get-bucket-encryption", "--bucket", name)


def test_the_cli_refuses_invalid_and_reserved_bucket_names(aws_cli):
    cli = aws_cli()
    for name in ("rustfs", "ab", "Upper-Case", "a..b"):
        cli.error("InvalidBucketName", "create-bucket", "--bucket", name)


def test_the_cli_configures_sse_s3_and_sse_kms(aws_cli, s3_client, make_bucket, new_key):
    cli = aws_cli()
    name = make_bucket("cli-enc")
    key_id = new_key("cli")

    cli.error("ServerSideEncryptionConfigurationNotFoundError", "get-bucket-encryption",
              "--bucket", name)
    assert cli.ok("put-bucket-encryption", *put_args(name, config("AES256"))) is None
    assert cli.ok("get-bucket-encryption", "--bucket", name) == {
        "ServerSideEncryptionConfiguration": config("AES256")}

    assert cli.ok("put-bucket-encryption", *put_args(
        name, config("aws:kms", key_arn(key_id), bucket_key=True))) is None
    expected = config("aws:kms", key_id, bucket_key=True)
    assert cli.ok("get-bucket-encryption", "--bucket", name) == {
        "ServerSideEncryptionConfiguration": expected}
    assert encryption_of(s3_client, name) == expected

    assert cli.ok("put-bucket-encryption", *put_args(name, config("aws:kms"))) is None
    assert cli.ok("get-bucket-encryption", "--bucket", name) == {
        "ServerSideEncryptionConfiguration": config("aws:kms", DEFAULT_KEY)}

    assert cli.ok("delete-bucket-encryption", "--bucket", name) is None
    assert cli.ok("delete-bucket-encryption", "--bucket", name) is None
    cli.error("ServerSideEncryptionConfigurationNotFoundError", "get-bucket-encryption",
              "--bucket", name)
    assert encryption_of(s3_client, name) is None


def test_the_cli_sees_every_refusal_and_nothing_is_stored(aws_cli, s3_client, admin, make_bucket,
                                                          new_key):
    cli = aws_cli()
    name = make_bucket("cli-refused")
    key_id = new_key("stored")
    stored = config("aws:kms", key_id, bucket_key=False)
    cli.ok("put-bucket-encryption", *put_args(name, stored))

    disabled = new_key("disabled")
    admin.post("/kms/keys/disable", {"key_id": disabled})
    refusals = [
        ("InvalidArgument", config("AES256", key_id)),
        ("KMSKeyNotFound", config("aws:kms", "00000000-0000-4000-8000-000000000000")),
        ("KMSKeyNotFound", config("aws:kms", key_arn("no-such-key"))),
        ("KMS.KMSInvalidStateException", config("aws:kms", disabled)),
    ]
    for code, attempt in refusals:
        cli.error(code, "put-bucket-encryption", *put_args(name, attempt))
        assert cli.ok("get-bucket-encryption", "--bucket", name) == {
            "ServerSideEncryptionConfiguration": stored}
    missing = unique_bucket("cli-missing")
    cli.error("NoSuchBucket", "put-bucket-encryption", *put_args(missing, config("AES256")))
    cli.error("NoSuchBucket", "delete-bucket-encryption", "--bucket", missing)

    with kms_stopped(admin):
        cli.error("ServiceUnavailable", "put-bucket-encryption", *put_args(name, config("AES256")))
        assert cli.ok("get-bucket-encryption", "--bucket", name) == {
            "ServerSideEncryptionConfiguration": stored}
    assert encryption_of(s3_client, name) == stored


def test_the_cli_with_wrong_credentials_or_region(aws_cli, server, make_bucket):
    name = make_bucket("cli-auth")
    wrong = Credentials(server.credentials.access_key, server.credentials.secret_key + "x")
    aws_cli(credentials=wrong).error("SignatureDoesNotMatch", "get-bucket-encryption",
                                     "--bucket", name)
    stranger = Credentials("cli-stranger", "not-a-secret-of-the-server")
    aws_cli(credentials=stranger).error("InvalidAccessKeyId", "list-buckets")
    other_region = aws_cli()
    other_region.region = "eu-west-1"
    other_region.error("AuthorizationHeaderMalformed", "get-bucket-encryption", "--bucket", name)
