"""Objects through the AWS CLI of the venv (API.md §10).

The issue's measure of done: ``aws s3 cp`` of a large file into a bucket whose default encryption
is SSE-KMS (the CLI uploads it in 8 MiB parts and downloads it by ranges) stores no plaintext on
disk, reads back byte-identical, whole and by ``aws s3api get-object --range``, and survives a
restart. Then ``aws s3 ls``, ``aws s3 rm``, ``aws s3api put-object`` with SSE-KMS, ``aws s3 cp``
between buckets with ``--sse AES256``, and SSE-C through ``--sse-c``.
"""

from __future__ import annotations

import json
import re
import uuid

from at_rest import Own, files_containing
from s3_clients import (
    KIB,
    MIB,
    PACKAGE,
    Sse,
    body_of,
    boto_error,
    check_sse,
    config,
    customer_key,
    unquoted,
)

LARGE = 40 * MIB + 12345
CLI_PART = 8 * MIB  # the CLI's default multipart chunk size
TRANSFER_TIMEOUT = 600
CUSTOMER_KEY = customer_key("cli")


def large_body(marker: bytes) -> bytes:
    """Pseudo-random bytes with the marker at the start of every 4 KiB."""
    data = bytearray(body_of(LARGE, "cli large"))
    for offset in range(0, LARGE - len(marker), 4 * KIB):
        data[offset:offset + len(marker)] = marker
    return bytes(data)


def ranged(cli, bucket: str, key: str, first: int, last: int, out) -> bytes:
    answer = cli.ok("get-object", "--bucket", bucket, "--key", key,
                    "--range", f"bytes={first}-{last}", str(out))
    assert answer["ContentRange"] == f"bytes {first}-{last}/{LARGE}", answer
    assert answer["ContentLength"] == last - first + 1, answer
    return out.read_bytes()


def test_a_large_cp_into_an_sse_kms_bucket_is_encrypted_whole_and_durable(aws_cli, spawn_server,
                                                                         tmp_path):
    server = spawn_server("cli-large")
    own = Own.of(server)
    key_id = own.new_key("cli large")
    cli = aws_cli(on=server)
    cli.ok("create-bucket", "--bucket", "vault")
    cli.ok("put-bucket-encryption", "--bucket", "vault", "--server-side-encryption-configuration",
           json.dumps(config("aws:kms", key_id)))
    marker = f"e2e-cli-marker-{uuid.uuid4().hex}".encode()
    data = large_body(marker)
    source = tmp_path / "large.bin"
    source.write_bytes(data)

    cli.s3_ok("cp", str(source), "s3://vault/dir/large.bin", "--no-progress",
              timeout=TRANSFER_TIMEOUT)
    head = cli.ok("head-object", "--bucket", "vault", "--key", "dir/large.bin")
    check_sse(head, Sse.kms(key_id))
    assert head["ContentLength"] == LARGE, head
    parts = -(-LARGE // CLI_PART)
    assert re.fullmatch(rf"[0-9a-f]+-{parts}", unquoted(head["ETag"])), head
    assert files_containing(server.data_dir, marker) == [], "plaintext on disk"

    boundaries = [(0, 99), (3 * PACKAGE - 1, 3 * PACKAGE), (CLI_PART - 10, CLI_PART + 10),
                  (2 * CLI_PART - PACKAGE, 3 * CLI_PART + PACKAGE), (LARGE - 100, LARGE - 1)]

    def reads_back(label: str) -> None:
        back = tmp_path / f"back-{label}.bin"
        cli.s3_ok("cp", "s3://vault/dir/large.bin", str(back), "--no-progress",
                  timeout=TRANSFER_TIMEOUT)
        assert back.read_bytes() == data, f"{label}: the download differs"
        for first, last in boundaries:
            got = ranged(cli, "vault", "dir/large.bin", first, last, tmp_path / "range.bin")
            assert got == data[first:last + 1], f"{label}: bytes {first}-{last} differ"

    reads_back("first")
    server.restart()
    assert cli.ok("head-object", "--bucket", "vault", "--key", "dir/large.bin") == head
    reads_back("after-restart")
    assert files_containing(server.data_dir, marker) == [], "plaintext on disk after restart"


def ls_entries(output: str) -> list[tuple[str, str]]:
    """``aws s3 ls`` lines as ``("PRE", prefix)`` or ``(size, name)``."""
    entries = []
    for line in output.splitlines():
        fields = line.split()
        entries.append(("PRE", fields[1]) if fields[0] == "PRE" else (fields[2], fields[3]))
    return entries


def test_put_object_ls_get_object_and_rm(aws_cli, s3_client, make_bucket, new_key, tmp_path):
    cli = aws_cli()
    bucket = make_bucket("cli-obj")
    key_id = new_key("cli put-object")
    data = body_of(PACKAGE + 5, "cli object")
    body = tmp_path / "body.bin"
    body.write_bytes(data)

    put = cli.ok("put-object", "--bucket", bucket, "--key", "dir/kms.bin", "--body", str(body),
                 "--server-side-encryption", "aws:kms", "--ssekms-key-id", key_id)
    check_sse(put, Sse.kms(key_id))
    cli.s3_ok("cp", str(body), f"s3://{bucket}/dir/sub/cp.bin", "--sse", "aws:kms",
              "--sse-kms-key-id", key_id)
    check_sse(cli.ok("head-object", "--bucket", bucket, "--key", "dir/sub/cp.bin"),
              Sse.kms(key_id))
    cli.s3_ok("cp", str(body), f"s3://{bucket}/top.bin")
    check_sse(cli.ok("head-object", "--bucket", bucket, "--key", "top.bin"), Sse.none())

    size = str(len(data))
    assert ls_entries(cli.s3_ok("ls", f"s3://{bucket}/")) == [("PRE", "dir/"), (size, "top.bin")]
    assert ls_entries(cli.s3_ok("ls", f"s3://{bucket}/dir/")) == [("PRE", "sub/"),
                                                                  (size, "kms.bin")]
    assert ls_entries(cli.s3_ok("ls", f"s3://{bucket}/", "--recursive")) == [
        (size, "dir/kms.bin"), (size, "dir/sub/cp.bin"), (size, "top.bin")]
    assert bucket in cli.s3_ok("ls").split()

    out = tmp_path / "out.bin"
    got = cli.ok("get-object", "--bucket", bucket, "--key", "dir/kms.bin", str(out))
    check_sse(got, Sse.kms(key_id))
    assert out.read_bytes() == data
    got = cli.ok("get-object", "--bucket", bucket, "--key", "dir/kms.bin",
                 "--range", f"bytes={PACKAGE - 6}-{PACKAGE + 3}", str(out))
    assert got["ContentRange"] == f"bytes {PACKAGE - 6}-{PACKAGE + 3}/{len(data)}", got
    assert out.read_bytes() == data[PACKAGE - 6:PACKAGE + 4]

    removed = cli.s3_ok("rm", f"s3://{bucket}/top.bin")
    assert removed.strip() == f"delete: s3://{bucket}/top.bin", removed
    boto_error(lambda: s3_client.head_object(Bucket=bucket, Key="top.bin"), 404, "404")
    removed = cli.s3_ok("rm", f"s3://{bucket}/", "--recursive")
    assert sorted(removed.split()) == sorted(
        ["delete:", "delete:", f"s3://{bucket}/dir/kms.bin", f"s3://{bucket}/dir/sub/cp.bin"])
    assert s3_client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert cli.s3_ok("ls", f"s3://{bucket}/") == ""


def test_cp_between_buckets_re_encrypts_with_sse_aes256(aws_cli, s3_client, make_bucket,
                                                        new_key, tmp_path):
    cli = aws_cli()
    source, target = make_bucket("cli-src"), make_bucket("cli-dst")
    key_id = new_key("cli copy")
    s3_client.put_bucket_encryption(Bucket=source,
                                    ServerSideEncryptionConfiguration=config("aws:kms", key_id))
    data = body_of(3 * PACKAGE + 1, "cli copy")
    s3_client.put_object(Bucket=source, Key="report 2024.csv", Body=data)

    cli.s3_ok("cp", f"s3://{source}/report 2024.csv", f"s3://{target}/copied.csv",
              "--sse", "AES256")
    check_sse(cli.ok("head-object", "--bucket", target, "--key", "copied.csv"), Sse.s3())
    check_sse(cli.ok("head-object", "--bucket", source, "--key", "report 2024.csv"),
              Sse.kms(key_id))
    assert s3_client.get_object(Bucket=target, Key="copied.csv")["Body"].read() == data


def test_sse_c_through_cp(aws_cli, s3_client, make_bucket, tmp_path):
    cli = aws_cli()
    bucket = make_bucket("cli-ssec")
    key_file = tmp_path / "customer.key"
    key_file.write_bytes(CUSTOMER_KEY)
    data = body_of(2 * PACKAGE + 3, "cli sse-c")
    source, back = tmp_path / "plain.bin", tmp_path / "back.bin"
    source.write_bytes(data)
    sse_c = ["--sse-c", "AES256", "--sse-c-key", f"fileb://{key_file}"]

    cli.s3_ok("cp", str(source), f"s3://{bucket}/c.bin", *sse_c)
    head = s3_client.head_object(Bucket=bucket, Key="c.bin", **Sse.c(CUSTOMER_KEY).read_args())
    check_sse(head, Sse.c(CUSTOMER_KEY))
    cli.s3_ok("cp", f"s3://{bucket}/c.bin", str(back), *sse_c)
    assert back.read_bytes() == data

    refused = cli.s3("cp", f"s3://{bucket}/c.bin", str(tmp_path / "refused.bin"))
    assert refused.returncode != 0 and "(400)" in refused.stderr, refused
    assert not (tmp_path / "refused.bin").exists()
