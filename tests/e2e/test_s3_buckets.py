"""Buckets through boto3 and raw signed requests (API.md §9): ListBuckets, CreateBucket,
HeadBucket, DeleteBucket, the bucket name rules, persistence, and the S3 request rules of §2
(trailing slash, ``?encryption=``, ignored ``x-id``)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from kms_clients import now_utc, ok
from s3_clients import (
    S3_NS,
    boto3_client,
    boto_error,
    config,
    encryption_of,
    expect_s3_error,
    parse_encryption_xml,
    status_of,
    unique_bucket,
    xml_text,
)

# Names that break a rule of §9, each with the rule; botocore's own client-side check lets every
# one of these through, so the server is what refuses them.
INVALID_NAMES = {
    "too-short": "ab",
    "too-long": "a" * 64,
    "upper-case": "My-Bucket",
    "underscore": "my_bucket",
    "leading-dash": "-bucket",
    "trailing-dash": "bucket-",
    "leading-dot": ".bucket",
    "double-dot": "my..bucket",
    "ip-address": "192.168.1.1",
    "reserved-rustfs": "rustfs",
}


def listed(s3, name: str) -> dict | None:
    return next((b for b in s3.list_buckets()["Buckets"] if b["Name"] == name), None)


# ---- ListBuckets, CreateBucket, HeadBucket, DeleteBucket ---------------------------------------


def test_create_list_head_and_delete_a_bucket(s3_client):
    name = unique_bucket("life")
    before = now_utc()
    created = s3_client.create_bucket(Bucket=name)
    after = now_utc()
    assert status_of(created) == 200, created

    listing = s3_client.list_buckets()
    assert status_of(listing) == 200
    entry = listed(s3_client, name)
    assert entry is not None, listing
    # botocore parses CreationDate; it is the creation time (S3 lists it to the millisecond).
    created_at = entry["CreationDate"].astimezone(dt.timezone.utc)
    assert before - dt.timedelta(seconds=1) <= created_at <= after + dt.timedelta(seconds=1), (
        f"CreationDate {created_at} is not between {before} and {after}"
    )
    assert status_of(s3_client.head_bucket(Bucket=name)) == 200

    deleted = s3_client.delete_bucket(Bucket=name)
    assert status_of(deleted) == 204, deleted
    assert listed(s3_client, name) is None
    boto_error(lambda: s3_client.head_bucket(Bucket=name), 404, "404")
    boto_error(lambda: s3_client.get_bucket_encryption(Bucket=name), 404, "NoSuchBucket")
    boto_error(lambda: s3_client.delete_bucket(Bucket=name), 404, "NoSuchBucket")


def test_list_buckets_names_the_owner_and_lists_in_name_order(s3_client, make_bucket):
    names = [make_bucket("order") for _ in range(3)]
    listing = s3_client.list_buckets()
    owner = listing["Owner"]
    assert isinstance(owner.get("ID"), str) and owner["ID"], listing
    assert isinstance(owner.get("DisplayName"), str) and owner["DisplayName"], listing
    all_names = [b["Name"] for b in listing["Buckets"]]
    assert all_names == sorted(all_names), f"ListBuckets is not in name order: {all_names}"
    assert set(names) <= set(all_names)
    for bucket in listing["Buckets"]:
        assert set(bucket) >= {"Name", "CreationDate"}, bucket


def test_list_buckets_xml_is_the_s3_document(s3_raw, make_bucket):
    name = make_bucket("xml")
    root = xml_text(s3_raw.request("GET", "/"))
    assert root.tag == f"{{{S3_NS}}}ListAllMyBucketsResult", root.tag
    owner = root.find(f"{{{S3_NS}}}Owner")
    assert owner.find(f"{{{S3_NS}}}ID").text and owner.find(f"{{{S3_NS}}}DisplayName").text
    dates = {
        b.find(f"{{{S3_NS}}}Name").text: b.find(f"{{{S3_NS}}}CreationDate").text
        for b in root.iter(f"{{{S3_NS}}}Bucket")
    }
    # ISO 8601 UTC with milliseconds, as S3 writes it (and as the guide shows it).
    assert name in dates, dates
    parsed = dt.datetime.strptime(dates[name], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(parsed.replace(tzinfo=dt.timezone.utc) - now_utc()) < dt.timedelta(minutes=5)


def test_creating_an_existing_bucket_keeps_it_as_it_was(s3_client, s3_raw, make_bucket, new_key):
    name = make_bucket("again")
    key_id = new_key("kept")
    s3_client.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=config(
        "aws:kms", key_id))
    before = listed(s3_client, name)
    resp = s3_raw.request("PUT", f"/{name}")
    # §9 is silent: AWS answers 200 in us-east-1 for a bucket the caller owns and 409
    # BucketAlreadyOwnedByYou elsewhere; either way the bucket must stay as it was.
    if resp.status != 200:
        expect_s3_error(resp, 409, "BucketAlreadyOwnedByYou", f"/{name}")
    assert listed(s3_client, name) == before
    assert encryption_of(s3_client, name) == config("aws:kms", key_id)


def test_head_bucket_answers_with_no_body_and_a_request_id(s3_raw, make_bucket):
    name = make_bucket("head")
    found = s3_raw.request("HEAD", f"/{name}")
    assert found.status == 200 and found.body == b"", found
    assert found.headers.get("x-amz-request-id"), found
    expect_s3_error(s3_raw.request("HEAD", f"/{unique_bucket('gone')}"), 404, "NoSuchBucket")


def test_a_deleted_bucket_comes_back_without_its_encryption(s3_client, make_bucket):
    name = make_bucket("reborn")
    s3_client.put_bucket_encryption(Bucket=name,
                                    ServerSideEncryptionConfiguration=config("AES256"))
    assert status_of(s3_client.delete_bucket(Bucket=name)) == 204
    s3_client.create_bucket(Bucket=name)
    assert encryption_of(s3_client, name) is None


def test_delete_bucket_errors_are_the_s3_documents(s3_raw):
    name = unique_bucket("none")
    expect_s3_error(s3_raw.request("DELETE", f"/{name}"), 404, "NoSuchBucket", f"/{name}")


# ---- bucket names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", INVALID_NAMES.values(), ids=INVALID_NAMES.keys())
def test_an_invalid_bucket_name_is_refused(s3_client, s3_raw, name):
    boto_error(lambda: s3_client.create_bucket(Bucket=name), 400, "InvalidBucketName")
    expect_s3_error(s3_raw.request("PUT", f"/{name}"), 400, "InvalidBucketName")
    assert listed(s3_client, name) is None
    # Every bucket route refuses the name the same way, before looking for the bucket.
    boto_error(lambda: s3_client.get_bucket_encryption(Bucket=name), 400, "InvalidBucketName")
    expect_s3_error(s3_raw.request("HEAD", f"/{name}"), 400, "InvalidBucketName")


@pytest.mark.parametrize("name", ["a%21b", "a%20b", "caf%C3%A9"],
                         ids=["bang", "space", "non-ascii"])
def test_names_botocore_would_not_send_are_refused_too(s3_raw, name):
    # (Sent percent-encoded, as every SDK writes a path; botocore signs the path as sent.)
    expect_s3_error(s3_raw.request("PUT", f"/{name}"), 400, "InvalidBucketName")


def test_the_rustfs_name_is_refused_as_reserved(s3_client):
    fields = boto_error(lambda: s3_client.create_bucket(Bucket="rustfs"), 400,
                        "InvalidBucketName")["Error"]
    assert "reserved" in fields["Message"], fields


@pytest.mark.parametrize("length", [3, 63])
def test_names_at_the_length_limits_are_valid(s3_client, length):
    name = ("b" + uuid.uuid4().hex * 2)[:length]
    assert len(name) == length
    assert status_of(s3_client.create_bucket(Bucket=name)) == 200
    try:
        assert status_of(s3_client.head_bucket(Bucket=name)) == 200
    finally:
        assert status_of(s3_client.delete_bucket(Bucket=name)) == 204


def test_dots_and_dashes_inside_a_name_are_valid(s3_client):
    name = f"my.bucket-{uuid.uuid4().hex[:8]}.data"
    s3_client.create_bucket(Bucket=name)
    try:
        assert listed(s3_client, name) is not None
    finally:
        s3_client.delete_bucket(Bucket=name)


# ---- S3 request rules of §2 --------------------------------------------------------------------


def test_a_trailing_slash_and_an_empty_encryption_value_name_the_same_resource(
        s3_client, s3_raw, make_bucket):
    name = make_bucket("forms")
    s3_client.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=config(
        "AES256", bucket_key=True))
    expected = config("AES256", bucket_key=True)
    for path, query in [(f"/{name}", "encryption"), (f"/{name}/", "encryption"),
                        (f"/{name}", "encryption="), (f"/{name}/", "encryption="),
                        (f"/{name}", "encryption&x-id=GetBucketEncryption")]:
        resp = s3_raw.request("GET", path, query)
        assert resp.status == 200, resp
        assert parse_encryption_xml(resp.body) == expected, resp
    deleted = s3_raw.request("DELETE", f"/{name}/", "encryption=")
    assert deleted.status == 204, deleted
    assert encryption_of(s3_client, name) is None


def test_head_and_delete_accept_a_trailing_slash(s3_client, s3_raw):
    name = unique_bucket("slash")
    s3_client.create_bucket(Bucket=name)
    assert s3_raw.request("HEAD", f"/{name}/").status == 200
    assert s3_raw.request("DELETE", f"/{name}/").status == 204
    assert listed(s3_client, name) is None


# ---- persistence -------------------------------------------------------------------------------


def test_buckets_and_their_encryption_survive_a_restart(spawn_server, clients):
    server = spawn_server("s3-restart")
    s3 = boto3_client(server, server.credentials)
    admin = clients.make("botocore", server)
    key_id = ok(admin.post("/kms/keys", {"Description": "persisted"}))["key_id"]
    s3.create_bucket(Bucket="kept-kms")
    s3.create_bucket(Bucket="kept-s3")
    s3.create_bucket(Bucket="kept-plain")
    s3.put_bucket_encryption(Bucket="kept-kms", ServerSideEncryptionConfiguration=config(
        "aws:kms", key_id, bucket_key=True))
    s3.put_bucket_encryption(Bucket="kept-s3", ServerSideEncryptionConfiguration=config("AES256"))
    before = s3.list_buckets()

    server.restart()
    s3 = boto3_client(server, server.credentials)
    after = s3.list_buckets()
    assert after["Buckets"] == before["Buckets"]
    assert after["Owner"] == before["Owner"]
    assert encryption_of(s3, "kept-kms") == config("aws:kms", key_id, bucket_key=True)
    assert encryption_of(s3, "kept-s3") == config("AES256")
    assert encryption_of(s3, "kept-plain") is None
