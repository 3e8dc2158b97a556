"""Master keys (API.md §5) through curl, botocore and the guide's JavaScript."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from conftest import DEFAULT_KEY
from kms_clients import (
    LIST_ENTRY_FIELDS,
    check_metadata,
    expect_error,
    list_all_keys,
    now_utc,
    ok,
    parse_timestamp,
)

# The guide's createKey example, word for word.
GUIDE_KEY_REQUEST = {
    "KeyUsage": "ENCRYPT_DECRYPT",
    "Description": "前端应用主密钥",
    "Tags": {
        "owner": "frontend-team",
        "environment": "production",
        "project": "user-data-encryption",
    },
}

SLACK = dt.timedelta(seconds=5)


def describe(client, key_id: str) -> dict:
    body = ok(client.get(f"/kms/keys/{key_id}"))
    return check_metadata(body["key_metadata"], key_id=key_id)


# ---- create and describe ----------------------------------------------------------------------


def test_create_key_with_the_guides_body_returns_complete_metadata(client):
    before = now_utc()
    body = ok(client.post("/kms/keys", GUIDE_KEY_REQUEST))
    after = now_utc()

    key_id = body["key_id"]
    assert str(uuid.UUID(key_id)) == key_id, f"key_id is not a lower-case UUID: {key_id!r}"
    meta = check_metadata(
        body["key_metadata"],
        key_id=key_id,
        description="前端应用主密钥",
        tags=GUIDE_KEY_REQUEST["Tags"],
        key_usage="ENCRYPT_DECRYPT",
        key_state="Enabled",
        enabled=True,
        rotation_enabled=False,
        deletion_date=None,
    )
    assert before - SLACK <= parse_timestamp(meta["creation_date"]) <= after + SLACK
    assert describe(client, key_id) == meta


def test_create_key_accepts_snake_case_aliases(client):
    request = {"key_usage": "ENCRYPT_DECRYPT", "description": "snake", "tags": {"name": "s"}}
    body = ok(client.post("/kms/keys", request))
    check_metadata(body["key_metadata"], description="snake", tags={"name": "s"},
                   key_usage="ENCRYPT_DECRYPT", key_state="Enabled")


def test_create_key_with_an_empty_body_defaults_everything(client):
    body = ok(client.post("/kms/keys", {}))
    check_metadata(body["key_metadata"], key_id=body["key_id"], key_usage="ENCRYPT_DECRYPT",
                   tags={}, description="", key_state="Enabled")


def test_create_key_accepts_values_at_their_limits(client):
    tags = {f"t{i:02d}": f"v{i}" for i in range(49)}
    tags["k" * 128] = "v" * 256
    # Limits count characters, not UTF-8 bytes: 256 CJK characters are 768 bytes.
    request = {"Description": "密" * 256, "Tags": tags}
    body = ok(client.post("/kms/keys", request))
    meta = check_metadata(body["key_metadata"], description="密" * 256, tags=tags)
    assert describe(client, body["key_id"]) == meta


def test_tags_need_not_be_unique_across_keys(client):
    first = ok(client.post("/kms/keys", {"Tags": {"name": "same"}}))["key_id"]
    second = ok(client.post("/kms/keys", {"Tags": {"name": "same"}}))["key_id"]
    assert first != second
    assert describe(client, second)["tags"] == {"name": "same"}


@pytest.mark.parametrize(
    "request_body",
    [
        pytest.param({"Description": "d" * 257}, id="description-257-chars"),
        pytest.param({"Description": 5}, id="description-not-a-string"),
        pytest.param({"Tags": {f"t{i}": "v" for i in range(51)}}, id="51-tags"),
        pytest.param({"Tags": {"k" * 129: "v"}}, id="tag-key-129-chars"),
        pytest.param({"Tags": {"": "v"}}, id="empty-tag-key"),
        pytest.param({"Tags": {"k": "v" * 257}}, id="tag-value-257-chars"),
        pytest.param({"Tags": {"k": 5}}, id="tag-value-not-a-string"),
        pytest.param({"Tags": ["k", "v"]}, id="tags-not-an-object"),
        pytest.param({"KeyUsage": "SIGN_VERIFY"}, id="unsupported-key-usage"),
        pytest.param({"KeyUsage": 1}, id="key-usage-not-a-string"),
        pytest.param({"KeyUsage": "ENCRYPT_DECRYPT", "Origin": "AWS_KMS"}, id="unknown-field"),
        pytest.param(["ENCRYPT_DECRYPT"], id="body-not-an-object"),
    ],
)
def test_create_key_refuses_invalid_requests(client, admin, request_body):
    before = list_all_keys(admin)
    expect_error(client.post("/kms/keys", request_body), 400, "InvalidRequest")
    assert len(list_all_keys(admin)) == len(before), "a refused create made a key"


# ---- state changes ----------------------------------------------------------------------------


def test_disable_then_enable(client, new_key):
    key_id = new_key("toggle")
    body = ok(client.post("/kms/keys/disable", {"key_id": key_id}))
    assert body["key_id"] == key_id
    check_metadata(body["key_metadata"], key_id=key_id, key_state="Disabled", enabled=False)
    assert describe(client, key_id)["key_state"] == "Disabled"

    body = ok(client.post("/kms/keys/enable", {"key_id": key_id}))
    meta = check_metadata(body["key_metadata"], key_id=key_id, key_state="Enabled", enabled=True)
    assert describe(client, key_id) == meta


def test_schedule_deletion_with_the_guides_body_then_cancel(client, new_key):
    key_id = new_key("doomed", {"name": "doomed"})
    before = now_utc()
    body = ok(client.delete("/kms/keys/delete", {"key_id": key_id, "pending_window_in_days": 7}))
    assert body["key_id"] == key_id
    assert body["pending_window_in_days"] == 7
    assert body["buckets_using_key"] == []
    deletion = parse_timestamp(body["deletion_date"])
    expected = before + dt.timedelta(days=7)
    assert expected - SLACK <= deletion <= expected + dt.timedelta(minutes=1), body

    meta = describe(client, key_id)
    check_metadata(meta, key_state="PendingDeletion", enabled=False)
    assert parse_timestamp(meta["deletion_date"]) == deletion

    body = ok(client.post("/kms/keys/cancel-deletion", {"key_id": key_id}))
    assert body["key_id"] == key_id
    meta = check_metadata(body["key_metadata"], key_id=key_id, key_state="Enabled",
                          enabled=True, deletion_date=None, tags={"name": "doomed"})
    assert describe(client, key_id) == meta


@pytest.mark.parametrize("days", [None, 30])
def test_schedule_deletion_window_defaults_to_7_and_accepts_30(client, new_key, days):
    key_id = new_key()
    request = {"key_id": key_id} if days is None else {"key_id": key_id,
                                                        "pending_window_in_days": days}
    before = now_utc()
    body = ok(client.delete("/kms/keys/delete", request))
    window = days or 7
    assert body["pending_window_in_days"] == window
    expected = before + dt.timedelta(days=window)
    assert expected - SLACK <= parse_timestamp(body["deletion_date"]) <= expected + SLACK * 12


@pytest.mark.parametrize("days", [6, 31, 0, -7, "7", 7.5])
def test_schedule_deletion_window_out_of_range_is_refused(client, new_key, days):
    key_id = new_key()
    resp = client.delete("/kms/keys/delete", {"key_id": key_id, "pending_window_in_days": days})
    expect_error(resp, 400, "InvalidRequest")
    assert describe(client, key_id)["key_state"] == "Enabled"


def test_a_null_window_means_the_default_window(client, new_key):
    key_id = new_key()
    body = ok(client.delete("/kms/keys/delete", {"key_id": key_id, "pending_window_in_days": None}))
    assert body["pending_window_in_days"] == 7


@pytest.mark.parametrize("name", ["key_id", "keyId"])
def test_schedule_deletion_by_query_parameter_when_there_is_no_body(client, new_key, name):
    key_id = new_key()
    body = ok(client.delete("/kms/keys/delete", query={name: key_id}))
    assert body["key_id"] == key_id and body["pending_window_in_days"] == 7
    assert describe(client, key_id)["key_state"] == "PendingDeletion"


def test_query_parameters_next_to_a_body_are_refused(client, new_key):
    key_id = new_key()
    resp = client.delete("/kms/keys/delete", {"key_id": key_id}, query={"key_id": key_id})
    expect_error(resp, 400, "InvalidRequest")
    assert describe(client, key_id)["key_state"] == "Enabled"


def test_scheduling_the_default_key_is_a_conflict(client):
    expect_error(client.delete("/kms/keys/delete", {"key_id": DEFAULT_KEY}), 409, "Conflict")
    assert describe(client, DEFAULT_KEY)["key_state"] == "Enabled"


def test_scheduling_twice_or_cancelling_a_live_key_is_an_invalid_key_state(client, new_key):
    key_id = new_key()
    resp = client.post("/kms/keys/cancel-deletion", {"key_id": key_id})
    expect_error(resp, 400, "InvalidKeyState")
    first = ok(client.delete("/kms/keys/delete", {"key_id": key_id}))
    resp = client.delete("/kms/keys/delete", {"key_id": key_id, "pending_window_in_days": 30})
    expect_error(resp, 400, "InvalidKeyState")
    assert describe(client, key_id)["deletion_date"] == first["deletion_date"]


def test_rotate_makes_a_new_current_version(client, new_key):
    key_id = new_key()
    version = describe(client, key_id)["current_version"]
    body = ok(client.post("/kms/keys/rotate", {"key_id": key_id}))
    assert body["key_id"] == key_id
    check_metadata(body["key_metadata"], key_id=key_id, current_version=version + 1,
                   key_state="Enabled")
    body = ok(client.post("/kms/keys/rotate", {"key_id": key_id}))
    assert body["key_metadata"]["current_version"] == version + 2
    assert describe(client, key_id)["current_version"] == version + 2


def test_rotation_settings_turn_automatic_rotation_on_and_off(client, new_key):
    key_id = new_key()
    body = ok(client.post("/kms/keys/rotation",
                          {"key_id": key_id, "enabled": True, "rotation_period_in_days": 90}))
    assert body["key_id"] == key_id
    check_metadata(body["key_metadata"], key_id=key_id, rotation_enabled=True)
    assert describe(client, key_id)["rotation_enabled"] is True

    body = ok(client.post("/kms/keys/rotation", {"key_id": key_id, "enabled": False}))
    check_metadata(body["key_metadata"], rotation_enabled=False)
    # The period defaults to 365 and 2560 is the largest allowed.
    body = ok(client.post("/kms/keys/rotation",
                          {"key_id": key_id, "enabled": True, "rotation_period_in_days": 2560}))
    check_metadata(body["key_metadata"], rotation_enabled=True)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"enabled": True, "rotation_period_in_days": 89}, id="period-89"),
        pytest.param({"enabled": True, "rotation_period_in_days": 2561}, id="period-2561"),
        pytest.param({"enabled": True, "rotation_period_in_days": "90"}, id="period-string"),
        pytest.param({"enabled": "yes"}, id="enabled-string"),
        pytest.param({"enabled": True, "period": 90}, id="unknown-field"),
    ],
)
def test_rotation_settings_refuse_invalid_values(client, new_key, fields):
    key_id = new_key()
    expect_error(client.post("/kms/keys/rotation", {"key_id": key_id, **fields}),
                 400, "InvalidRequest")
    assert describe(client, key_id)["rotation_enabled"] is False


# ---- listing ----------------------------------------------------------------------------------


def walk(client, limit: int, between_pages=None) -> list[dict]:
    """Every page of GET /kms/keys with ``limit``, checking each page's own invariants."""
    pages, marker = [], None
    while True:
        query = {"limit": str(limit), **({"marker": marker} if marker else {})}
        page = ok(client.get("/kms/keys", query=query))
        assert set(page) >= {"keys", "truncated", "next_marker"}, page
        assert len(page["keys"]) <= limit, page
        assert (page["next_marker"] is None) is (not page["truncated"]), page
        pages.append(page)
        assert len(pages) < 1000, "pagination does not end"
        if not page["truncated"]:
            return pages
        marker = page["next_marker"]
        if between_pages:
            between_pages()


def sort_key(entry: dict):
    return (parse_timestamp(entry["creation_date"]), entry["key_id"])


def test_list_pages_through_every_key_once_in_creation_order(kind, clients, spawn_server):
    server = spawn_server("list")
    client = clients.make(kind, server)
    created = [ok(client.post("/kms/keys", {"Description": f"k{i}", "Tags": {"name": f"n{i}"}}))
               for i in range(5)]
    pages = walk(client, 2)

    assert [len(p["keys"]) for p in pages] == [2, 2, 2], pages
    entries = [e for p in pages for e in p["keys"]]
    for entry in entries:
        assert set(entry) >= LIST_ENTRY_FIELDS, entry
        assert entry["enabled"] is (entry["key_state"] == "Enabled"), entry
    assert entries == sorted(entries, key=sort_key), "not in creation-date, key-id order"
    ids = [e["key_id"] for e in entries]
    assert sorted(ids) == sorted([DEFAULT_KEY] + [c["key_id"] for c in created])
    by_id = {e["key_id"]: e for e in entries}
    for i, c in enumerate(created):
        meta = c["key_metadata"]
        for name in LIST_ENTRY_FIELDS:
            assert by_id[c["key_id"]][name] == meta[name], (name, by_id[c["key_id"]], meta)
        assert by_id[c["key_id"]]["tags"] == {"name": f"n{i}"}


def test_list_default_page_size_is_50_and_1000_is_allowed(kind, clients, spawn_server):
    server = spawn_server("list50")
    fast = clients.make("botocore", server)
    for i in range(51):
        ok(fast.post("/kms/keys", {"Description": f"bulk {i}"}))
    client = clients.make(kind, server)

    first = ok(client.get("/kms/keys"))
    assert len(first["keys"]) == 50 and first["truncated"] is True, first
    assert isinstance(first["next_marker"], str) and first["next_marker"]
    rest = ok(client.get("/kms/keys", query={"marker": first["next_marker"]}))
    assert len(rest["keys"]) == 2 and rest["truncated"] is False, rest
    assert rest["next_marker"] is None

    everything = ok(client.get("/kms/keys", query={"limit": "1000"}))
    assert len(everything["keys"]) == 52 and everything["truncated"] is False
    assert everything["next_marker"] is None
    assert everything["keys"] == first["keys"] + rest["keys"]


def test_keys_existing_during_a_listing_appear_exactly_once(kind, clients, spawn_server):
    server = spawn_server("list-live")
    client = clients.make(kind, server)
    fast = clients.make("botocore", server)
    existing = {ok(fast.post("/kms/keys", {}))["key_id"] for _ in range(5)} | {DEFAULT_KEY}

    pages = walk(client, 2, between_pages=lambda: ok(fast.post("/kms/keys", {})))
    ids = [e["key_id"] for p in pages for e in p["keys"]]
    assert len(ids) == len(set(ids)), f"a key was listed twice: {ids}"
    assert existing <= set(ids), f"missing: {existing - set(ids)}"


def test_keys_pending_deletion_are_listed(client, admin, new_key):
    key_id = new_key()
    ok(admin.delete("/kms/keys/delete", {"key_id": key_id}))
    entry = next((e for e in list_all_keys(client) if e["key_id"] == key_id), None)
    assert entry is not None, "a key pending deletion is missing from the list"
    assert entry["key_state"] == "PendingDeletion" and entry["enabled"] is False, entry


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"limit": "0"}, id="limit-0"),
        pytest.param({"limit": "1001"}, id="limit-1001"),
        pytest.param({"limit": "-1"}, id="limit-negative"),
        pytest.param({"limit": "ten"}, id="limit-not-a-number"),
        pytest.param({"limit": ""}, id="limit-empty"),
        pytest.param({"limit": "5", "prefix": "x"}, id="unknown-parameter"),
    ],
)
def test_list_refuses_invalid_query_parameters(client, query):
    expect_error(client.get("/kms/keys", query=query), 400, "InvalidRequest")
