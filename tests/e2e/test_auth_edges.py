"""Authentication edges and per-action authorization (issue 7; API.md §2, §3, §9).

botocore's SigV4 signers are the reference: what botocore signs must verify, and what it signs
for another scope, time or header set must not.

- credential scope naming another region or service: 401 (admin), 400
  ``AuthorizationHeaderMalformed`` (S3);
- ``x-amz-date`` present but not a signed header: refused;
- upper-case header names and runs of spaces in signed header values still verify (HTTP names
  are case-insensitive; SigV4 trims and folds values);
- unsorted and repeated query parameters, and percent-encoded query values (space, ``+``, ``/``,
  ``~``, non-ASCII) verify: an invalid marker is a 400, never a 401;
- clock skew just inside 15 minutes is accepted, just outside refused;
- a duplicated ``Authorization`` header is refused and changes nothing;
- a presigned S3 URL is refused once expired;
- every admin and S3 route refuses, with 403 ``AccessDenied`` and no change, every identity that
  lacks its action (one identity per action, the wildcards, and one with no action at all),
  while the identity holding exactly that action is allowed.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.utils import percent_encode_sequence

from conftest import DEFAULT_KEY, KmsServer, random_credentials
from hardening import (
    ALL_ACTIONS,
    WILDCARDS,
    admin,
    admin_target,
    as_response,
    connect,
    grants,
    head_bytes,
    read_response,
    s3raw,
    sign,
    write_identities,
)
from kms_clients import Credentials, Response, expect_error, list_all_keys, now_utc, ok, send_http
from s3_clients import (
    S3_NS,
    boto3_client,
    config,
    config_xml,
    content_md5,
    expect_s3_error,
    parse_encryption_xml,
)

ENC_XML = config_xml("AES256")


@pytest.fixture(scope="module")
def identities() -> dict[str, tuple[Credentials, tuple[str, ...]]]:
    """One identity per action, one per wildcard, and one that may do nothing."""
    users = {action: (random_credentials(action.replace(":", "-").lower()), (action,))
             for action in ALL_ACTIONS}
    for wildcard in WILDCARDS:
        name = "all" if wildcard == "*" else wildcard.replace(":*", "-all")
        users[wildcard] = (random_credentials(name), (wildcard,))
    users["nothing"] = (random_credentials("nothing"), ())
    return users


@pytest.fixture(scope="module")
def edge_server(tools, tmp_path_factory, root_credentials, identities):
    """This module's own server, with the identities above."""
    workdir = tmp_path_factory.mktemp("auth-edges")
    path = write_identities(workdir / "identities.toml", identities)
    instance = KmsServer(tools.server_bin, workdir, "auth-edges", credentials=root_credentials,
                         args=("--identities", str(path)))
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def bucket(edge_server) -> str:
    name = f"edges-{uuid.uuid4().hex[:12]}"
    s3 = s3raw(edge_server)
    assert s3.request("PUT", f"/{name}").status == 200
    assert s3.put_encryption(name, ENC_XML).status == 200
    return name


def send_signed(server, method: str, target: str, headers, body: bytes | None = None,
                client: str = "raw") -> Response:
    """Sends exactly these headers (a list may repeat a name) on a fresh connection."""
    sock = connect(server, timeout=30)
    try:
        items = list(headers.items()) if isinstance(headers, dict) else list(headers)
        if body:
            items.append(("Content-Length", str(len(body))))
        sock.sendall(head_bytes(method, target, items, f"127.0.0.1:{server.port}") + (body or b""))
        answer = read_response(sock, method)
    finally:
        sock.close()
    resp = as_response(client, method, target, answer)
    resp.request_body = body
    return resp


# ---- credential scope -------------------------------------------------------------------------


@pytest.mark.parametrize("region, service", [
    ("eu-west-1", "execute-api"), ("us-east-1", "s3"), ("us-east-1", "kms"),
    ("us-east-2", "s3"),
], ids=["region", "service-s3", "service-kms", "both"])
def test_an_admin_request_signed_for_another_scope_is_unauthenticated(edge_server, region,
                                                                      service):
    target = admin_target("/kms/keys")
    before = len(list_all_keys(admin(edge_server)))
    for method, body in (("GET", b""), ("POST", b'{"Description": "wrong scope"}')):
        headers = sign(edge_server, method, target, body, region=region, service=service)
        expect_error(send_signed(edge_server, method, target, headers, body), 401, "AccessDenied")
    assert len(list_all_keys(admin(edge_server))) == before


@pytest.mark.parametrize("region, service", [
    ("eu-west-1", "s3"), ("us-east-1", "execute-api"), ("us-east-1", "kms"),
], ids=["region", "service-execute-api", "service-kms"])
def test_an_s3_request_signed_for_another_scope_is_authorization_header_malformed(
        edge_server, bucket, region, service):
    for method, query, body, extra in (
        ("GET", "encryption", b"", {}),
        ("PUT", "encryption", ENC_XML, {"Content-MD5": content_md5(ENC_XML)}),
        ("GET", "", b"", {}),
    ):
        target = f"/{bucket}" + (f"?{query}" if query else "")
        headers = sign(edge_server, method, target, body, region=region, service=service,
                       headers=extra, signer_class=S3SigV4Auth)
        resp = send_signed(edge_server, method, target, headers, body)
        expect_s3_error(resp, 400, "AuthorizationHeaderMalformed")


# ---- which headers are signed ------------------------------------------------------------------


def without_x_amz_date(base):
    class Signer(base):
        def headers_to_sign(self, request):
            headers = super().headers_to_sign(request)
            del headers["x-amz-date"]
            return headers
    return Signer


def test_x_amz_date_must_be_a_signed_header(edge_server, bucket):
    target = admin_target("/kms/keys")
    body = b'{"Description": "date not signed"}'
    before = len(list_all_keys(admin(edge_server)))
    headers = sign(edge_server, "POST", target, body, signer_class=without_x_amz_date(SigV4Auth))
    assert "x-amz-date" not in headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    expect_error(send_signed(edge_server, "POST", target, headers, body), 401, "AccessDenied")
    assert len(list_all_keys(admin(edge_server))) == before

    # S3: refused too. API.md names no code for it: AWS answers 403 AccessDenied ("There were
    # headers present in the request which were not signed"); 400 AuthorizationHeaderMalformed
    # is as clear a refusal.
    s3_target = f"/{bucket}?encryption"
    headers = sign(edge_server, "GET", s3_target, service="s3",
                   signer_class=without_x_amz_date(S3SigV4Auth))
    resp = send_signed(edge_server, "GET", s3_target, headers)
    assert resp.status in (400, 403), resp
    expect_s3_error(resp, resp.status,
                    "AccessDenied" if resp.status == 403 else "AuthorizationHeaderMalformed")


def test_upper_case_header_names_still_verify(edge_server, bucket):
    host = f"127.0.0.1:{edge_server.port}"

    def upper_case_names(headers: dict, body):
        items = list(headers.items()) + [("Host", host)]
        headers.clear()
        headers.update({name.upper(): value for name, value in items})
        assert "AUTHORIZATION" in headers and "X-AMZ-DATE" in headers, headers
        return body

    client = admin(edge_server)
    resp = client.post("/kms/keys", {"Description": "upper"}, headers={"X-Custom-Header": "v"},
                       tamper=upper_case_names)
    key_id = ok(resp)["key_id"]
    assert ok(client.get(f"/kms/keys/{key_id}", tamper=upper_case_names))[
        "key_metadata"]["description"] == "upper"
    ok(client.get("/kms/keys", query={"limit": "2"}, tamper=upper_case_names))
    s3 = s3raw(edge_server)
    resp = s3.request("GET", f"/{bucket}", "encryption", tamper=upper_case_names)
    assert resp.status == 200, resp
    assert parse_encryption_xml(resp.body) == config("AES256")
    resp = s3.put_encryption(bucket, ENC_XML, tamper=upper_case_names)
    assert resp.status == 200, resp


def test_runs_of_spaces_in_a_signed_header_value_verify(edge_server, bucket):
    # SigV4 canonical headers trim values and fold inner runs of spaces; botocore does too.
    client = admin(edge_server)
    ok(client.get("/kms/keys", query={"limit": "1"}, headers={"X-Custom-Header": "  a   b    c  "}))
    resp = s3raw(edge_server).request("GET", f"/{bucket}", "encryption",
                                      headers={"X-Amz-Meta-Note": " spaced   out "})
    assert resp.status == 200, resp


# ---- query strings -----------------------------------------------------------------------------


def test_unsorted_query_parameters_verify(edge_server, bucket):
    client = admin(edge_server)
    for name in ("a", "b", "c"):
        ok(client.post("/kms/keys", {"Description": name}))
    page = ok(client.get(admin_target("/kms/keys?marker=&limit=2"), absolute=True))
    assert len(page["keys"]) == 2 and page["truncated"] is True, page
    second = ok(client.get(admin_target(
        f"/kms/keys?marker={urllib.parse.quote(page['next_marker'], safe='-_.~')}&limit=2"),
        absolute=True))
    assert not {k["key_id"] for k in second["keys"]} & {k["key_id"] for k in page["keys"]}
    s3 = s3raw(edge_server)
    for query in ("x-id=GetBucketEncryption&encryption", "encryption&x-id=GetBucketEncryption",
                  "x-id=b&encryption=&x-id=a"):
        resp = s3.request("GET", f"/{bucket}", query)
        assert resp.status == 200, resp
        assert parse_encryption_xml(resp.body) == config("AES256")


def test_repeated_query_parameters_verify(edge_server, bucket):
    client = admin(edge_server)
    # Verified, then refused for the repetition (§5: a wrong query is a 400, never ignored).
    for target in ("/kms/keys?limit=5&limit=6", "/kms/keys?limit=6&limit=5",
                   "/kms/keys?marker=&limit=5&marker="):
        expect_error(client.get(admin_target(target), absolute=True), 400, "InvalidRequest")
    s3 = s3raw(edge_server)
    for query in ("encryption&x-id=z&x-id=a", "x-id=a&x-id=a&encryption"):
        resp = s3.request("GET", f"/{bucket}", query)
        assert resp.status == 200, resp


MARKERS = {
    "space": "a b",
    "plus": "a+b",
    "slash": "a/b",
    "tilde": "a~b",
    "unicode": "clé-密钥-🔑",
    "reserved": "a=b&c;d,e?f#g",
    "percent": "100%",
    "all": " +/~é",
}


@pytest.mark.parametrize("value", list(MARKERS.values()), ids=list(MARKERS))
def test_percent_encoded_query_values_verify(edge_server, bucket, value):
    client = admin(edge_server)
    # The query as botocore writes its own query parameters (AWS rules: everything but
    # A-Z a-z 0-9 - _ . ~ percent-encoded, space as %20), in both orders.
    for pairs in ({"limit": "5", "marker": value}, {"marker": value, "limit": "5"}):
        query = percent_encode_sequence(pairs)
        resp = client.get(admin_target(f"/kms/keys?{query}"), absolute=True)
        expect_error(resp, 400, "InvalidRequest")
    encoded = percent_encode_sequence({"x-note": value})
    # S3 ignores unknown parameters: the same value must verify and be served.
    resp = s3raw(edge_server).request("GET", f"/{bucket}", f"encryption&{encoded}")
    assert resp.status == 200, resp


# ---- clock skew --------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [-(14 * 60 + 50), 14 * 60 + 50])
def test_a_clock_skew_just_inside_15_minutes_is_accepted(edge_server, bucket, seconds):
    clock = now_utc() + dt.timedelta(seconds=seconds)
    assert ok(admin(edge_server).get("/kms/service-status", clock=clock))["status"] == "Running"
    resp = s3raw(edge_server).request("GET", f"/{bucket}", "encryption", clock=clock)
    assert resp.status == 200, resp


@pytest.mark.parametrize("seconds", [-(15 * 60 + 10), 15 * 60 + 10])
def test_a_clock_skew_just_outside_15_minutes_is_refused(edge_server, bucket, seconds):
    clock = now_utc() + dt.timedelta(seconds=seconds)
    before = len(list_all_keys(admin(edge_server)))
    expect_error(admin(edge_server).get("/kms/service-status", clock=clock), 401, "AccessDenied")
    expect_error(admin(edge_server).post("/kms/keys", {"Description": "skewed"}, clock=clock),
                 401, "AccessDenied")
    assert len(list_all_keys(admin(edge_server))) == before
    # S3 answers a skewed request 403 RequestTimeTooSkewed, as AWS does.
    resp = s3raw(edge_server).request("GET", f"/{bucket}", "encryption", clock=clock)
    expect_s3_error(resp, 403, "RequestTimeTooSkewed")


# ---- duplicated headers ------------------------------------------------------------------------


def duplicated(headers: dict, name: str, other: str, first: bool) -> list[tuple[str, str]]:
    items = list(headers.items())
    index = next(i for i, (k, _) in enumerate(items) if k.lower() == name.lower())
    extra = (items[index][0], other)
    items.insert(index if first else index + 1, extra)
    return items


@pytest.mark.parametrize("other", ["same", "garbage", "other-valid"])
@pytest.mark.parametrize("first", [True, False], ids=["extra-first", "extra-second"])
def test_a_duplicated_authorization_header_is_unauthenticated(edge_server, identities, other,
                                                              first):
    target = admin_target("/kms/keys")
    body = b'{"Description": "duplicated authorization"}'
    headers = sign(edge_server, "POST", target, body)
    value = {
        "same": headers["Authorization"],
        "garbage": "AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/execute-api/aws4_request, "
                   "SignedHeaders=host, Signature=" + "0" * 64,
        "other-valid": sign(edge_server, "POST", target, body,
                            credentials=identities["kms:CreateKey"][0])["Authorization"],
    }[other]
    before = len(list_all_keys(admin(edge_server)))
    resp = send_signed(edge_server, "POST", target,
                       duplicated(headers, "Authorization", value, first), body)
    expect_error(resp, 401, "AccessDenied")
    assert len(list_all_keys(admin(edge_server))) == before


def test_a_duplicated_authorization_header_on_s3_is_refused(edge_server):
    name = f"dup-{uuid.uuid4().hex[:12]}"
    headers = sign(edge_server, "PUT", f"/{name}", service="s3", signer_class=S3SigV4Auth)
    for first in (True, False):
        resp = send_signed(edge_server, "PUT", f"/{name}",
                           duplicated(headers, "Authorization", headers["Authorization"], first))
        assert resp.status in (400, 403), resp
        # A repeated Authorization is a malformed authorization header (API.md names no code).
        expect_s3_error(resp, resp.status, "AccessDenied" if resp.status == 403 else
                        "AuthorizationHeaderMalformed")
    resp = s3raw(edge_server).request("HEAD", f"/{name}")
    assert resp.status == 404, resp


def test_a_duplicated_x_amz_date_is_unauthenticated(edge_server):
    target = admin_target("/kms/keys")
    headers = sign(edge_server, "GET", target)
    later = (now_utc() + dt.timedelta(seconds=30)).strftime("%Y%m%dT%H%M%SZ")
    for first in (True, False):
        resp = send_signed(edge_server, "GET", target,
                           duplicated(headers, "X-Amz-Date", later, first))
        expect_error(resp, 401, "AccessDenied")


# ---- presigned URLs ----------------------------------------------------------------------------


def test_an_expired_presigned_url_is_access_denied(edge_server, bucket):
    presigner = boto3_client(edge_server, edge_server.credentials, signature_version="s3v4")
    new_bucket = f"presigned-{uuid.uuid4().hex[:12]}"
    get_url = presigner.generate_presigned_url(
        "get_bucket_encryption", Params={"Bucket": bucket}, ExpiresIn=1)
    put_url = presigner.generate_presigned_url(
        "create_bucket", Params={"Bucket": new_bucket}, ExpiresIn=1)
    fresh = presigner.generate_presigned_url(
        "get_bucket_encryption", Params={"Bucket": bucket}, ExpiresIn=60)
    time.sleep(2)

    def fetch(method: str, url: str) -> Response:
        parts = urllib.parse.urlsplit(url)
        return send_http("presigned", edge_server.port, method, f"{parts.path}?{parts.query}",
                         None, {})

    resp = fetch("GET", fresh)
    assert resp.status == 200 and parse_encryption_xml(resp.body) == config("AES256"), resp
    expect_s3_error(fetch("GET", get_url), 403, "AccessDenied")
    expect_s3_error(fetch("PUT", put_url), 403, "AccessDenied")
    assert s3raw(edge_server).request("HEAD", f"/{new_bucket}").status == 404


# ---- every route, every identity lacking its action ----------------------------------------------

# (name, kind, method, target, body, action). ``{key}`` is a fresh key, ``{blob}`` a ciphertext
# blob of it, ``{bucket}`` a bucket with AES256 default encryption, ``{empty}`` a bucket with
# none, ``{new}`` a bucket name that does not exist; ``config`` is the server's own
# configuration. Bodies are valid, so a refusal can only be about the identity.
ADMIN = "admin"
S3 = "s3"
ROUTES = [
    ("service-status", ADMIN, "GET", "/kms/service-status", None, "admin:ServerInfo"),
    ("config", ADMIN, "GET", "/kms/config", None, "admin:ServerInfo"),
    ("status", ADMIN, "GET", "/kms/status", None, "admin:ServerInfo"),
    ("list-keys", ADMIN, "GET", "/kms/keys?limit=3", None, "admin:ServerInfo"),
    ("describe-key", ADMIN, "GET", "/kms/keys/{key}", None, "admin:ServerInfo"),
    ("legacy-describe", ADMIN, "GET", "/kms/describe-key?keyId={key}", None, "admin:ServerInfo"),
    ("legacy-list", ADMIN, "GET", "/kms/list-keys?limit=3", None, "admin:ServerInfo"),
    ("configure", ADMIN, "POST", "/kms/configure", "config", "kms:Configure"),
    ("reconfigure", ADMIN, "POST", "/kms/reconfigure", "config", "kms:Configure"),
    ("start", ADMIN, "POST", "/kms/start", None, "kms:Configure"),
    ("stop", ADMIN, "POST", "/kms/stop", None, "kms:Configure"),
    ("clear-cache", ADMIN, "POST", "/kms/clear-cache", None, "kms:Configure"),
    ("create-key", ADMIN, "POST", "/kms/keys", {"Description": "denied?"}, "kms:CreateKey"),
    ("legacy-create", ADMIN, "POST", "/kms/create-key", {"Description": "denied?"},
     "kms:CreateKey"),
    ("enable", ADMIN, "POST", "/kms/keys/enable", {"key_id": "{key}"}, "kms:ManageKey"),
    ("disable", ADMIN, "POST", "/kms/keys/disable", {"key_id": "{key}"}, "kms:ManageKey"),
    ("rotate", ADMIN, "POST", "/kms/keys/rotate", {"key_id": "{key}"}, "kms:ManageKey"),
    ("rotation", ADMIN, "POST", "/kms/keys/rotation",
     {"key_id": "{key}", "enabled": True, "rotation_period_in_days": 90}, "kms:ManageKey"),
    ("schedule-deletion", ADMIN, "DELETE", "/kms/keys/delete",
     {"key_id": "{key}", "pending_window_in_days": 7}, "kms:DeleteKey"),
    ("schedule-deletion-query", ADMIN, "DELETE", "/kms/keys/delete?key_id={key}", None,
     "kms:DeleteKey"),
    ("cancel-deletion", ADMIN, "POST", "/kms/keys/cancel-deletion", {"key_id": "{key}"},
     "kms:DeleteKey"),
    ("generate-data-key", ADMIN, "POST", "/kms/generate-data-key", {"key_id": "{key}"},
     "kms:GenerateDataKey"),
    ("decrypt", ADMIN, "POST", "/kms/decrypt", {"ciphertext_blob": "{blob}"}, "kms:Decrypt"),
    ("mirror-list-buckets", ADMIN, "GET", "/api/v1/buckets", None, "s3:ListAllMyBuckets"),
    ("mirror-get-encryption", ADMIN, "GET", "/api/v1/bucket-encryption/{bucket}", None,
     "s3:GetEncryptionConfiguration"),
    ("mirror-put-encryption", ADMIN, "PUT", "/api/v1/bucket-encryption/{empty}",
     config("aws:kms", "{key}"), "s3:PutEncryptionConfiguration"),
    ("mirror-delete-encryption", ADMIN, "DELETE", "/api/v1/bucket-encryption/{bucket}", None,
     "s3:PutEncryptionConfiguration"),
    ("ListBuckets", S3, "GET", "/", None, "s3:ListAllMyBuckets"),
    ("CreateBucket", S3, "PUT", "/{new}", None, "s3:CreateBucket"),
    ("HeadBucket", S3, "HEAD", "/{bucket}", None, "s3:ListBucket"),
    ("ListObjects", S3, "GET", "/{bucket}", None, "s3:ListBucket"),
    ("DeleteBucket", S3, "DELETE", "/{empty}", None, "s3:DeleteBucket"),
    ("GetBucketEncryption", S3, "GET", "/{bucket}?encryption", None,
     "s3:GetEncryptionConfiguration"),
    ("PutBucketEncryption", S3, "PUT", "/{empty}?encryption", "xml",
     "s3:PutEncryptionConfiguration"),
    ("DeleteBucketEncryption", S3, "DELETE", "/{bucket}?encryption", None,
     "s3:PutEncryptionConfiguration"),
    ("PutObject", S3, "PUT", "/{bucket}/new-object", None, "s3:PutObject"),
    ("GetObject", S3, "GET", "/{bucket}/object", None, "s3:GetObject"),
    ("HeadObject", S3, "HEAD", "/{bucket}/object", None, "s3:GetObject"),
    ("DeleteObject", S3, "DELETE", "/{bucket}/object", None, "s3:DeleteObject"),
    ("CreateMultipartUpload", S3, "POST", "/{bucket}/new-object?uploads", None, "s3:PutObject"),
    ("ListParts", S3, "GET", "/{bucket}/upload?uploadId={upload}", None,
     "s3:ListMultipartUploadParts"),
    ("AbortMultipartUpload", S3, "DELETE", "/{bucket}/upload?uploadId={upload}", None,
     "s3:AbortMultipartUpload"),
    ("ListMultipartUploads", S3, "GET", "/{bucket}?uploads", None,
     "s3:ListBucketMultipartUploads"),
]


def fill(value, names: dict):
    if isinstance(value, str):
        for name, replacement in names.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    return value


def snapshot(server, names: dict) -> dict:
    """What a refused request must leave as it was (read as root)."""
    root = admin(server)
    s3 = s3raw(server)
    encryption = {}
    for bucket in (names["bucket"], names["empty"]):
        resp = s3.request("GET", f"/{bucket}", "encryption")
        encryption[bucket] = (resp.status, resp.body if resp.status == 200 else None)
    return {
        "service": ok(root.get("/kms/service-status")),
        "config": ok(root.get("/kms/config")),
        "keys": list_all_keys(root),
        "key": ok(root.get(f"/kms/keys/{names['key']}"))["key_metadata"],
        "buckets": ok(root.get("/api/v1/buckets"))["Buckets"],
        "encryption": encryption,
        "new": s3.request("HEAD", f"/{names['new']}").status,
        "objects": s3.request("GET", f"/{names['bucket']}").body,
        "uploads": s3.request("GET", f"/{names['bucket']}", "uploads").body,
    }


def call(server, credentials: Credentials, kind: str, method: str, target: str, body) -> Response:
    if kind == ADMIN:
        client = admin(server, credentials)
        return client.call(method, target) if body is None else client.call(method, target, body)
    path, _, query = target.partition("?")
    s3 = s3raw(server, credentials)
    if body == "xml":
        return s3.put_encryption(path.lstrip("/"), ENC_XML)
    return s3.request(method, path, query)


@pytest.mark.parametrize("name, kind, method, target, body, action", ROUTES,
                         ids=[route[0] for route in ROUTES])
def test_every_route_denies_every_identity_lacking_its_action(edge_server, identities, name,
                                                              kind, method, target, body, action):
    root = admin(edge_server)
    s3 = s3raw(edge_server)
    key_id = ok(root.post("/kms/keys", {"Description": f"authz {name}"}))["key_id"]
    blob = ok(root.post("/kms/generate-data-key", {"key_id": key_id}))["ciphertext_blob"]
    if name == "cancel-deletion":
        ok(root.delete("/kms/keys/delete", {"key_id": key_id}))
    if name == "enable":
        ok(root.post("/kms/keys/disable", {"key_id": key_id}))
    names = {"key": key_id, "blob": blob, "bucket": f"authz-{uuid.uuid4().hex[:12]}",
             "empty": f"authz-empty-{uuid.uuid4().hex[:12]}",
             "new": f"authz-new-{uuid.uuid4().hex[:12]}"}
    for bucket in (names["bucket"], names["empty"]):
        assert s3.request("PUT", f"/{bucket}").status == 200
    assert s3.put_encryption(names["bucket"], ENC_XML).status == 200
    assert s3.request("PUT", f"/{names['bucket']}/object", body=b"authz").status == 200
    created = s3.request("POST", f"/{names['bucket']}/upload", "uploads")
    assert created.status == 200, created
    names["upload"] = ET.fromstring(created.body).find(f"{{{S3_NS}}}UploadId").text
    server_config = {"backend_type": "local", "default_key_id": DEFAULT_KEY,
                     "key_directory": str(edge_server.data_dir / "keys")}
    request_target = fill(target, names)
    request_body = server_config if body == "config" else fill(body, names)

    before = snapshot(edge_server, names)
    denied = [who for who, (_, actions) in identities.items()
              if not any(grants(granted, action) for granted in actions)]
    assert len(denied) >= 13, denied
    for who in denied:
        resp = call(edge_server, identities[who][0], kind, method, request_target, request_body)
        if kind == ADMIN:
            expect_error(resp, 403, "AccessDenied")
        else:
            expect_s3_error(resp, 403, "AccessDenied")
    after = snapshot(edge_server, names)
    assert after == before, f"{name}: a refused request changed something"

    # The identity holding exactly this action is allowed (so the refusals were about the
    # action, not the request).
    resp = call(edge_server, identities[action][0], kind, method, request_target, request_body)
    assert resp.status in (200, 204), f"{action} may {name}: {resp}"
    if name == "stop":
        ok(root.post("/kms/start"))
