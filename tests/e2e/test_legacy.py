"""The guide's legacy routes (API.md §8): the same validation, errors and answers as the
current routes they stand for."""

from __future__ import annotations

import uuid

import pytest

from kms_clients import check_metadata, expect_error, ok


def test_create_key_with_an_empty_body(client):
    # The guide's function sends no body when given none; for POST that is an empty body.
    body = ok(client.post("/kms/create-key"))
    check_metadata(body["key_metadata"], key_id=body["key_id"], key_usage="ENCRYPT_DECRYPT",
                   key_state="Enabled", tags={})
    assert ok(client.get(f"/kms/keys/{body['key_id']}"))["key_metadata"] == body["key_metadata"]


def test_create_key_takes_the_same_body_as_keys(client):
    request = {"KeyUsage": "ENCRYPT_DECRYPT", "Description": "legacy", "Tags": {"name": "old"}}
    body = ok(client.post("/kms/create-key", request))
    check_metadata(body["key_metadata"], description="legacy", tags={"name": "old"})
    snake = ok(client.post("/kms/create-key", {"description": "legacy2"}))
    check_metadata(snake["key_metadata"], description="legacy2")


@pytest.mark.parametrize(
    "request_body",
    [{"Description": "d" * 257}, {"KeyUsage": "SIGN_VERIFY"}, {"Unknown": 1}],
    ids=["description-too-long", "bad-key-usage", "unknown-field"],
)
def test_create_key_refuses_what_keys_refuses(client, request_body):
    expect_error(client.post("/kms/create-key", request_body), 400, "InvalidRequest")


def test_describe_key_answers_like_keys_by_id(client, new_key):
    key_id = new_key("described", {"name": "d"})
    legacy = ok(client.get("/kms/describe-key", query={"keyId": key_id}))
    current = ok(client.get(f"/kms/keys/{key_id}"))
    assert legacy == current
    check_metadata(legacy["key_metadata"], key_id=key_id, description="described")


def test_describe_key_errors(client):
    expect_error(client.get("/kms/describe-key"), 400, "InvalidRequest")
    expect_error(client.get("/kms/describe-key", query={"keyId": str(uuid.uuid4())}),
                 404, "KeyNotFound")
    expect_error(client.get("/kms/describe-key", query={"keyId": "a/b"}), 400, "InvalidRequest")
    expect_error(client.get("/kms/describe-key", query={"keyId": "x", "extra": "1"}),
                 400, "InvalidRequest")


def test_list_keys_answers_like_keys(client, new_key):
    for _ in range(4):
        new_key("listed")
    first = ok(client.get("/kms/list-keys", query={"limit": "3"}))
    assert first == ok(client.get("/kms/keys", query={"limit": "3"}))
    assert len(first["keys"]) == 3 and first["truncated"] is True, first
    query = {"limit": "3", "marker": first["next_marker"]}
    assert ok(client.get("/kms/list-keys", query=query)) == ok(client.get("/kms/keys",
                                                                          query=query))
    assert ok(client.get("/kms/list-keys")) == ok(client.get("/kms/keys"))


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "1001"}, {"bogus": "1"}],
                         ids=["limit-0", "limit-1001", "unknown-parameter"])
def test_list_keys_refuses_what_keys_refuses(client, query):
    expect_error(client.get("/kms/list-keys", query=query), 400, "InvalidRequest")
