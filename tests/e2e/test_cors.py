"""CORS for browser consoles (API.md §1): with ``--cors-allowed-origins``, unauthenticated
``OPTIONS`` preflights from a listed origin are answered, from any other origin they are not, and
signed answers to a listed origin can be read by the page (request ids included)."""

from __future__ import annotations

import pytest

from kms_clients import ok
from s3_clients import S3Raw, boto3_client, config, unsigned_request

CONSOLE = "http://console.example"
OTHER_CONSOLE = "http://ops.console.example:8080"
STRANGER = "http://evil.example"

# What a browser sends before the guide's callKMSAPI (POST with a JSON body, signed headers) and
# before @aws-sdk/client-s3's PutBucketEncryption.
PREFLIGHTS = {
    "admin-post": ("/rustfs/admin/v3/kms/keys", "POST", "authorization,content-type,x-amz-date"),
    "admin-get": ("/rustfs/admin/v3/api/v1/buckets", "GET", "authorization,x-amz-date"),
    "s3-put-encryption": ("/console-bucket?encryption", "PUT",
                          "amz-sdk-invocation-id,authorization,content-type,x-amz-checksum-crc32,"
                          "x-amz-content-sha256,x-amz-date,x-amz-sdk-checksum-algorithm"),
    "s3-list-buckets": ("/", "GET", "authorization,x-amz-content-sha256,x-amz-date"),
}


def preflight(server, target: str, origin: str, method: str, headers: str):
    return unsigned_request(server, "OPTIONS", target, {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    })


def allowed_tokens(value: str | None) -> set[str]:
    return {token.strip().lower() for token in (value or "").split(",") if token.strip()}


@pytest.fixture
def cors_server(spawn_server):
    return spawn_server("cors", args=("--cors-allowed-origins", f"{CONSOLE},{OTHER_CONSOLE}"))


@pytest.mark.parametrize("target, method, headers", PREFLIGHTS.values(), ids=PREFLIGHTS.keys())
def test_a_preflight_from_a_listed_origin_is_answered(cors_server, target, method, headers):
    for origin in (CONSOLE, OTHER_CONSOLE):
        resp = preflight(cors_server, target, origin, method, headers)
        assert resp.status in (200, 204), resp
        assert resp.headers.get("access-control-allow-origin") == origin, resp.headers
        assert method.lower() in allowed_tokens(resp.headers.get("access-control-allow-methods")), (
            resp.headers)
        allowed = allowed_tokens(resp.headers.get("access-control-allow-headers"))
        assert allowed == {"*"} or set(headers.split(",")) <= allowed, resp.headers


@pytest.mark.parametrize("target, method, headers", PREFLIGHTS.values(), ids=PREFLIGHTS.keys())
def test_a_preflight_from_another_origin_is_not_allowed(cors_server, target, method, headers):
    for origin in (STRANGER, CONSOLE + ":8443", "https://console.example", "null"):
        resp = preflight(cors_server, target, origin, method, headers)
        assert "access-control-allow-origin" not in resp.headers, (origin, resp.headers)
        assert resp.status != 500, resp


def test_signed_answers_to_a_listed_origin_expose_the_request_id(cors_server, clients):
    admin = clients.make("botocore", cors_server)
    resp = admin.get("/kms/service-status", headers={"Origin": CONSOLE})
    assert ok(resp)["status"] == "Running"
    assert resp.headers.get("access-control-allow-origin") == CONSOLE, resp.headers
    assert "x-request-id" in allowed_tokens(resp.headers.get("access-control-expose-headers"))

    s3 = boto3_client(cors_server, cors_server.credentials)
    s3.create_bucket(Bucket="console-bucket")
    s3.put_bucket_encryption(Bucket="console-bucket",
                             ServerSideEncryptionConfiguration=config("AES256"))
    raw = S3Raw(cors_server, cors_server.credentials)
    got = raw.request("GET", "/console-bucket", "encryption", headers={"Origin": CONSOLE})
    assert got.status == 200, got
    assert got.headers.get("access-control-allow-origin") == CONSOLE, got.headers
    assert "x-amz-request-id" in allowed_tokens(got.headers.get("access-control-expose-headers"))

    other = raw.request("GET", "/console-bucket", "encryption", headers={"Origin": STRANGER})
    assert "access-control-allow-origin" not in other.headers, other.headers


def test_without_the_flag_no_origin_is_allowed(server):
    for target, method, headers in PREFLIGHTS.values():
        resp = preflight(server, target, CONSOLE, method, headers)
        assert "access-control-allow-origin" not in resp.headers, (target, resp.headers)
