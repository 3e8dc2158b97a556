"""Authentication (SigV4, 401) and authorization (identity file actions, 403): API.md §2, §3."""

from __future__ import annotations

import datetime as dt
import http.client
import uuid

import pytest

from conftest import ACTIONS
from kms_clients import Credentials, expect_error, list_all_keys, now_utc, ok

# Every admin route of §4–§8 with the action it needs; `{key}` is a fresh key, `{blob}` a
# ciphertext blob of it. Bodies are valid, so a refusal can only be about the identity.
ROUTES = [
    ("GET", "/kms/service-status", None, "admin:ServerInfo"),
    ("GET", "/kms/config", None, "admin:ServerInfo"),
    ("GET", "/kms/status", None, "admin:ServerInfo"),
    ("GET", "/kms/keys", None, "admin:ServerInfo"),
    ("GET", "/kms/keys/{key}", None, "admin:ServerInfo"),
    ("GET", "/kms/describe-key?keyId={key}", None, "admin:ServerInfo"),
    ("GET", "/kms/list-keys?limit=5", None, "admin:ServerInfo"),
    ("POST", "/kms/configure", "config", "kms:Configure"),
    ("POST", "/kms/reconfigure", "config", "kms:Configure"),
    ("POST", "/kms/start", None, "kms:Configure"),
    ("POST", "/kms/stop", None, "kms:Configure"),
    ("POST", "/kms/clear-cache", None, "kms:Configure"),
    ("POST", "/kms/keys", {"Description": "denied?"}, "kms:CreateKey"),
    ("POST", "/kms/create-key", {"Description": "denied?"}, "kms:CreateKey"),
    ("POST", "/kms/keys/enable", {"key_id": "{key}"}, "kms:ManageKey"),
    ("POST", "/kms/keys/disable", {"key_id": "{key}"}, "kms:ManageKey"),
    ("POST", "/kms/keys/rotate", {"key_id": "{key}"}, "kms:ManageKey"),
    ("POST", "/kms/keys/rotation", {"key_id": "{key}", "enabled": True}, "kms:ManageKey"),
    ("DELETE", "/kms/keys/delete", {"key_id": "{key}"}, "kms:DeleteKey"),
    ("POST", "/kms/keys/cancel-deletion", {"key_id": "{key}"}, "kms:DeleteKey"),
    ("POST", "/kms/generate-data-key", {"key_id": "{key}"}, "kms:GenerateDataKey"),
    ("POST", "/kms/decrypt", {"ciphertext_blob": "{blob}"}, "kms:Decrypt"),
]


def fill(value, key_id: str, blob: str, config: dict):
    if value == "config":
        return config
    if isinstance(value, str):
        return value.replace("{key}", key_id).replace("{blob}", blob)
    if isinstance(value, dict):
        return {k: fill(v, key_id, blob, config) for k, v in value.items()}
    return value


def snapshot(admin, key_id: str) -> dict:
    """What a refused request must leave as it was."""
    return {
        "status": ok(admin.get("/kms/service-status")),
        "key": ok(admin.get(f"/kms/keys/{key_id}"))["key_metadata"],
        "key_count": len(list_all_keys(admin)),
    }


@pytest.mark.parametrize("method, path, body, action", ROUTES,
                         ids=[f"{route[0]} {route[1]}" for route in ROUTES])
def test_an_identity_without_the_action_is_denied_and_changes_nothing(
    kind, clients, server, admin, users, new_key, tmp_path, method, path, body, action
):
    key_id = new_key("authz")
    blob = ok(admin.post("/kms/generate-data-key", {"key_id": key_id}))["ciphertext_blob"]
    config = {"backend_type": "local", "key_directory": str(tmp_path / "keys"),
              "default_key_id": "should-not-exist"}
    target = fill(path, key_id, blob, config)
    request = fill(body, key_id, blob, config)
    before = snapshot(admin, key_id)

    for other, credentials in users.items():
        if other == action:
            continue
        client = clients.make(kind, server, credentials)
        resp = client.call(method, target, request) if request is not None else client.call(
            method, target)
        expect_error(resp, 403, "AccessDenied")

    assert snapshot(admin, key_id) == before


def user_client(clients, server, users, kind, action):
    return clients.make(kind, server, users[action])


def test_a_read_only_monitoring_user_reads_but_cannot_mint_data_keys(kind, clients, server,
                                                                    users, new_key):
    reader = user_client(clients, server, users, kind, "admin:ServerInfo")
    key_id = new_key("visible")
    assert ok(reader.get("/kms/service-status"))["status"] == "Running"
    assert ok(reader.get("/kms/status"))["healthy"] is True
    assert ok(reader.get("/kms/config"))["backend"] == "local"
    assert ok(reader.get(f"/kms/keys/{key_id}"))["key_metadata"]["description"] == "visible"
    assert ok(reader.get("/kms/keys", query={"limit": "1"}))["keys"]

    expect_error(reader.post("/kms/generate-data-key", {"key_id": key_id}), 403, "AccessDenied")
    # Authorization is checked before the body is: a bad body still gets 403.
    expect_error(reader.post("/kms/generate-data-key", {"key_spec": "AES_512", "x": 1}),
                 403, "AccessDenied")


def test_a_user_with_only_generate_data_key_can_do_exactly_that(kind, clients, server, users,
                                                                new_key):
    minter = user_client(clients, server, users, kind, "kms:GenerateDataKey")
    key_id = new_key()
    data_key = ok(minter.post("/kms/generate-data-key", {"key_id": key_id}))
    assert data_key["key_id"] == key_id
    expect_error(minter.post("/kms/decrypt", {"ciphertext_blob": data_key["ciphertext_blob"]}),
                 403, "AccessDenied")
    expect_error(minter.get("/kms/keys"), 403, "AccessDenied")
    expect_error(minter.get(f"/kms/keys/{key_id}"), 403, "AccessDenied")
    expect_error(minter.post("/kms/keys", {}), 403, "AccessDenied")


def test_each_action_allows_its_own_routes(kind, clients, server, users, new_key, admin):
    key_id = new_key()
    as_user = lambda action: user_client(clients, server, users, kind, action)  # noqa: E731

    ok(as_user("kms:Configure").post("/kms/clear-cache"))
    assert ok(as_user("kms:Configure").post("/kms/start"))["status"] == "Running"
    assert ok(as_user("kms:CreateKey").post("/kms/keys", {}))["key_metadata"]["enabled"] is True
    manager = as_user("kms:ManageKey")
    ok(manager.post("/kms/keys/disable", {"key_id": key_id}))
    ok(manager.post("/kms/keys/enable", {"key_id": key_id}))
    ok(manager.post("/kms/keys/rotate", {"key_id": key_id}))
    ok(manager.post("/kms/keys/rotation", {"key_id": key_id, "enabled": True}))
    deleter = as_user("kms:DeleteKey")
    ok(deleter.delete("/kms/keys/delete", {"key_id": key_id}))
    ok(deleter.post("/kms/keys/cancel-deletion", {"key_id": key_id}))
    blob = ok(as_user("kms:GenerateDataKey").post("/kms/generate-data-key",
                                                  {"key_id": key_id}))["ciphertext_blob"]
    assert ok(as_user("kms:Decrypt").post("/kms/decrypt", {"ciphertext_blob": blob}))[
        "key_id"] == key_id
    expect_error(as_user("kms:Decrypt").post("/kms/generate-data-key", {"key_id": key_id}),
                 403, "AccessDenied")


# ---- 401 --------------------------------------------------------------------------------------


def test_a_wrong_secret_is_unauthenticated_and_creates_nothing(client, admin, root_credentials):
    before = len(list_all_keys(admin))
    wrong = client.with_credentials(Credentials(root_credentials.access_key, "not-the-secret"))
    expect_error(wrong.get("/kms/keys"), 401, "AccessDenied")
    expect_error(wrong.post("/kms/keys", {"Description": "must not exist"}), 401, "AccessDenied")
    assert len(list_all_keys(admin)) == before


def test_an_unknown_access_key_is_unauthenticated(client):
    stranger = client.with_credentials(Credentials("no-such-user", "whatever-secret"))
    expect_error(stranger.get("/kms/service-status"), 401, "AccessDenied")


def test_an_unsigned_request_is_unauthenticated(clients, server):
    curl = clients.make("curl", server)
    expect_error(curl.call("GET", "/kms/keys", sign=False), 401, "AccessDenied")
    expect_error(curl.call("POST", "/kms/keys", {}, sign=False), 401, "AccessDenied")


def test_a_forged_authorization_header_is_unauthenticated(clients, server, root_credentials):
    curl = clients.make("curl", server)
    date = now_utc().strftime("%Y%m%dT%H%M%SZ")
    forged = (f"AWS4-HMAC-SHA256 Credential={root_credentials.access_key}/{date[:8]}/us-east-1/"
              f"execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature={'0' * 64}")
    resp = curl.call("GET", "/kms/keys", sign=False,
                     headers={"Authorization": forged, "X-Amz-Date": date})
    expect_error(resp, 401, "AccessDenied")


def flip_signature(headers: dict, body):
    auth = headers["Authorization"]
    last = auth[-1]
    headers["Authorization"] = auth[:-1] + ("0" if last != "0" else "1")
    return body


def change_date(headers: dict, body):
    headers["X-Amz-Date"] = (now_utc() - dt.timedelta(seconds=5)).strftime("%Y%m%dT%H%M%SZ")
    return body


def change_body(headers: dict, body):
    return body.replace(b"signed", b"forged")


def change_host(headers: dict, body):
    headers["Host"] = "other.example:9000"
    return body


@pytest.mark.parametrize(
    "tamper",
    [flip_signature, change_date, change_body],
    ids=["signature", "x-amz-date", "body"],
)
def test_a_request_changed_after_signing_is_unauthenticated(clients, server, admin, tamper):
    before = len(list_all_keys(admin))
    signer = clients.make("botocore", server)
    resp = signer.post("/kms/keys", {"Description": "signed"}, tamper=tamper)
    expect_error(resp, 401, "AccessDenied")
    assert len(list_all_keys(admin)) == before


def test_a_signed_host_must_match(clients, server):
    # botocore signs `host`; sending another Host header breaks the signature.
    signer = clients.make("botocore", server)
    expect_error(signer.get("/kms/keys", tamper=change_host), 401, "AccessDenied")


@pytest.mark.parametrize("minutes", [-16, 16, -60 * 24])
def test_a_request_more_than_15_minutes_off_is_unauthenticated(clients, server, minutes):
    signer = clients.make("botocore", server)
    clock = now_utc() + dt.timedelta(minutes=minutes)
    expect_error(signer.get("/kms/service-status", clock=clock), 401, "AccessDenied")


@pytest.mark.parametrize("minutes", [-14, 14])
def test_a_request_less_than_15_minutes_off_is_accepted(clients, server, minutes):
    signer = clients.make("botocore", server)
    clock = now_utc() + dt.timedelta(minutes=minutes)
    assert ok(signer.get("/kms/service-status", clock=clock))["status"] == "Running"


def test_a_credential_scope_naming_another_region_is_unauthenticated(client):
    expect_error(client.with_region("eu-west-1").get("/kms/keys"), 401, "AccessDenied")


def test_a_server_started_with_another_region_wants_signatures_for_it(kind, clients,
                                                                     spawn_server):
    server = spawn_server("region", args=("--region", "eu-central-1"))
    client = clients.make(kind, server)
    expect_error(client.get("/kms/service-status"), 401, "AccessDenied")
    regional = client.with_region("eu-central-1")
    assert ok(regional.get("/kms/service-status"))["status"] == "Running"


def test_a_signature_for_another_service_is_unauthenticated(clients, server):
    signer = clients.make("botocore", server)
    signer.service = "s3"
    expect_error(signer.get("/kms/keys"), 401, "AccessDenied")


# ---- what needs no signature ------------------------------------------------------------------


def raw_request(server, method: str, path: str, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def test_health_needs_no_signature(server):
    status, _, _ = raw_request(server, "GET", "/health")
    assert status == 200


def test_the_admin_path_is_normalised_before_verification(clients, server):
    # What the guide's function does: sign `/rustfs/admin/v3/...`, fetch `//rustfs/admin/v3/...`.
    signer = clients.make("botocore", server)
    resp = signer.get("/kms/service-status", wire_target="//rustfs/admin/v3//kms/service-status")
    assert ok(resp)["status"] == "Running"


ORIGIN = "http://console.example.test"


def test_cors_preflights_are_answered_for_listed_origins_only(spawn_server):
    server = spawn_server(
        "cors", args=("--cors-allowed-origins", f"{ORIGIN},http://other.example.test")
    )
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-amz-date",
    }
    status, headers, _ = raw_request(server, "OPTIONS", "/rustfs/admin/v3/kms/keys",
                                     {"Origin": ORIGIN, **preflight})
    assert status in (200, 204), (status, headers)
    assert headers.get("access-control-allow-origin") == ORIGIN, headers
    allowed = headers.get("access-control-allow-methods", "").upper()
    assert "POST" in allowed, headers

    status, headers, _ = raw_request(server, "OPTIONS", "/rustfs/admin/v3/kms/keys",
                                     {"Origin": "http://evil.example.test", **preflight})
    assert "access-control-allow-origin" not in headers, (status, headers)
