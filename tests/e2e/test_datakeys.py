"""Data keys (API.md §6) and the key states that refuse them (§5), through all three clients."""

from __future__ import annotations

import base64

import pytest

from conftest import DEFAULT_KEY
from kms_clients import NO_BODY, expect_error, ok

# The guide's generate-data-key example context.
GUIDE_CONTEXT = {
    "bucket": "user-uploads",
    "object_key": "documents/report.pdf",
    "user_id": "user123",
    "department": "finance",
}


def generate(client, key_id=None, context=NO_BODY, **fields):
    request = {**({"key_id": key_id} if key_id else {}), **fields}
    if context is not NO_BODY:
        request["encryption_context"] = context
    return client.post("/kms/generate-data-key", request)


def decrypt(client, blob: str, context=NO_BODY):
    request = {"ciphertext_blob": blob}
    if context is not NO_BODY:
        request["encryption_context"] = context
    return client.post("/kms/decrypt", request)


def b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def round_trip(client, key_id, context=NO_BODY) -> dict:
    """Generates a data key and checks that decrypt gives the same bytes back."""
    data_key = ok(generate(client, key_id, context))
    plain = ok(decrypt(client, data_key["ciphertext_blob"], context))
    assert plain["key_id"] == data_key["key_id"]
    assert b64(plain["plaintext"]) == b64(data_key["plaintext_key"])
    return data_key


# ---- generate and decrypt ---------------------------------------------------------------------


@pytest.mark.parametrize("spec, size", [(None, 32), ("AES_256", 32), ("AES_128", 16)])
def test_generate_data_key_and_decrypt_round_trip(client, new_key, spec, size):
    key_id = new_key()
    fields = {} if spec is None else {"key_spec": spec}
    data_key = ok(generate(client, key_id, GUIDE_CONTEXT, **fields))
    assert set(data_key) >= {"key_id", "plaintext_key", "ciphertext_blob"}, data_key
    assert data_key["key_id"] == key_id
    assert len(b64(data_key["plaintext_key"])) == size
    assert b64(data_key["plaintext_key"]) not in b64(data_key["ciphertext_blob"])

    plain = ok(decrypt(client, data_key["ciphertext_blob"], GUIDE_CONTEXT))
    assert set(plain) >= {"key_id", "plaintext"}, plain
    assert plain["key_id"] == key_id
    assert b64(plain["plaintext"]) == b64(data_key["plaintext_key"])


def test_every_call_returns_a_fresh_data_key(client, new_key):
    key_id = new_key()
    first = ok(generate(client, key_id, GUIDE_CONTEXT))
    second = ok(generate(client, key_id, GUIDE_CONTEXT))
    assert first["plaintext_key"] != second["plaintext_key"]
    assert first["ciphertext_blob"] != second["ciphertext_blob"]


def test_without_a_key_id_the_default_key_is_used(client):
    data_key = round_trip(client, None, {"bucket": "b"})
    assert data_key["key_id"] == DEFAULT_KEY


def test_absent_and_empty_context_are_the_same(client, new_key):
    key_id = new_key()
    without = ok(generate(client, key_id))
    assert ok(decrypt(client, without["ciphertext_blob"], {}))["key_id"] == key_id
    assert ok(decrypt(client, without["ciphertext_blob"]))["key_id"] == key_id
    empty = ok(generate(client, key_id, {}))
    plain = ok(decrypt(client, empty["ciphertext_blob"]))
    assert b64(plain["plaintext"]) == b64(empty["plaintext_key"])


def test_context_order_does_not_matter(client, new_key):
    key_id = new_key()
    data_key = ok(generate(client, key_id, {"a": "1", "b": "2", "c": "3"}))
    plain = ok(decrypt(client, data_key["ciphertext_blob"], {"c": "3", "a": "1", "b": "2"}))
    assert b64(plain["plaintext"]) == b64(data_key["plaintext_key"])


def test_integer_context_values_are_bound_as_decimal_text(client, new_key):
    key_id = new_key()
    # The guide's upload example puts `upload_session: Date.now()` in the context.
    numbers = {"upload_session": 1733328000123, "part": 0, "offset": -5}
    texts = {"upload_session": "1733328000123", "part": "0", "offset": "-5"}
    as_numbers = ok(generate(client, key_id, numbers))
    plain = ok(decrypt(client, as_numbers["ciphertext_blob"], texts))
    assert b64(plain["plaintext"]) == b64(as_numbers["plaintext_key"])
    as_texts = ok(generate(client, key_id, texts))
    ok(decrypt(client, as_texts["ciphertext_blob"], numbers))
    # Decimal text means exactly that: no leading zeros, no plus sign.
    resp = decrypt(client, as_numbers["ciphertext_blob"], {**texts, "part": "00"})
    expect_error(resp, 400, "DecryptionFailed")


CONTEXT = {"bucket": "user-uploads", "object_key": "documents/report.pdf"}


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"bucket": "user-uploads", "object_key": "documents/other.pdf"},
                     id="different-value"),
        pytest.param({"bucket": "user-uploads", "object": "documents/report.pdf"},
                     id="different-key"),
        pytest.param({"bucket": "user-uploads"}, id="missing-entry"),
        pytest.param({**CONTEXT, "user_id": "user123"}, id="extra-entry"),
        pytest.param({}, id="empty"),
        pytest.param(NO_BODY, id="absent"),
        # Length-prefixed encoding: moving a boundary between key and value must not collide.
        pytest.param({"bucketu": "ser-uploads", "object_key": "documents/report.pdf"},
                     id="shifted-boundary"),
    ],
)
def test_decrypt_with_another_context_is_refused(client, new_key, other):
    key_id = new_key()
    data_key = ok(generate(client, key_id, CONTEXT))
    expect_error(decrypt(client, data_key["ciphertext_blob"], other), 400, "DecryptionFailed")


def test_context_without_entries_does_not_open_a_blob_made_with_one(client, new_key):
    key_id = new_key()
    data_key = ok(generate(client, key_id))
    expect_error(decrypt(client, data_key["ciphertext_blob"], {"a": "b"}), 400, "DecryptionFailed")


def flip(blob: str, index: int) -> str:
    raw = bytearray(b64(blob))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda blob: flip(blob, -1), id="last-byte-flipped"),
        pytest.param(lambda blob: flip(blob, -20), id="ciphertext-byte-flipped"),
        pytest.param(lambda blob: base64.b64encode(b64(blob)[:-1]).decode(), id="truncated"),
        pytest.param(lambda blob: base64.b64encode(b64(blob) + b"\0").decode(), id="extended"),
    ],
)
def test_a_modified_blob_is_refused(client, new_key, change):
    data_key = ok(generate(client, new_key(), CONTEXT))
    expect_error(decrypt(client, change(data_key["ciphertext_blob"]), CONTEXT),
                 400, "DecryptionFailed")


@pytest.mark.parametrize("blob", ["not base64 at all!", "", base64.b64encode(b"short").decode()])
def test_a_blob_that_is_no_envelope_is_a_400(client, blob):
    resp = decrypt(client, blob, {})
    assert resp.status == 400, f"expected 400, got: {resp}"
    assert resp.json()["error"]["code"] in {"InvalidRequest", "DecryptionFailed"}, str(resp)


# ---- the encryption context's own rules -------------------------------------------------------


@pytest.mark.parametrize(
    "context",
    [
        pytest.param({"k": 1.5}, id="float"),
        pytest.param({"k": True}, id="bool"),
        pytest.param({"k": None}, id="null"),
        pytest.param({"k": ["v"]}, id="list"),
        pytest.param({"k": {"v": "w"}}, id="object"),
        pytest.param({"": "v"}, id="empty-key"),
        pytest.param(["k", "v"], id="not-an-object"),
        pytest.param("k=v", id="a-string"),
    ],
)
def test_invalid_encryption_context_is_refused_by_generate_and_decrypt(client, new_key, context):
    key_id = new_key()
    expect_error(generate(client, key_id, context), 400, "InvalidRequest")
    blob = ok(generate(client, key_id))["ciphertext_blob"]
    expect_error(decrypt(client, blob, context), 400, "InvalidRequest")


def test_encryption_context_is_limited_to_8_kib_of_utf8(client, new_key):
    key_id = new_key()
    # 1 + 8191 = 8192 bytes: at the limit.
    round_trip(client, key_id, {"k": "v" * 8191})
    # 1 + 4096 * 2 = 8193 bytes in only 4097 characters: over the limit.
    expect_error(generate(client, key_id, {"k": "é" * 4096}), 400, "InvalidRequest")
    expect_error(generate(client, key_id, {"k": "v" * 4000, "l": "w" * 4200}),
                 400, "InvalidRequest")


# ---- request validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"key_spec": "AES_512"}, id="unknown-key-spec"),
        pytest.param({"key_spec": "aes_256"}, id="lower-case-key-spec"),
        pytest.param({"key_spec": 256}, id="key-spec-not-a-string"),
        pytest.param({"number_of_bytes": 32}, id="unknown-field"),
        pytest.param({"key_id": 7}, id="key-id-not-a-string"),
    ],
)
def test_generate_refuses_invalid_requests(client, new_key, fields):
    request = {"key_id": new_key(), **fields}
    expect_error(client.post("/kms/generate-data-key", request), 400, "InvalidRequest")


@pytest.mark.parametrize(
    "request_body",
    [
        pytest.param({}, id="no-ciphertext-blob"),
        pytest.param({"ciphertext_blob": 5}, id="blob-not-a-string"),
        pytest.param({"ciphertext_blob": "AAAA", "key_id": "x", "grant": 1}, id="unknown-field"),
    ],
)
def test_decrypt_refuses_invalid_requests(client, request_body):
    expect_error(client.post("/kms/decrypt", request_body), 400, "InvalidRequest")


# ---- key states -------------------------------------------------------------------------------


def test_a_disabled_key_refuses_generate_and_decrypt_until_enabled(client, admin, new_key):
    key_id = new_key()
    data_key = ok(generate(client, key_id, CONTEXT))
    ok(admin.post("/kms/keys/disable", {"key_id": key_id}))

    expect_error(generate(client, key_id, CONTEXT), 400, "InvalidKeyState")
    expect_error(decrypt(client, data_key["ciphertext_blob"], CONTEXT), 400, "InvalidKeyState")

    ok(admin.post("/kms/keys/enable", {"key_id": key_id}))
    plain = ok(decrypt(client, data_key["ciphertext_blob"], CONTEXT))
    assert b64(plain["plaintext"]) == b64(data_key["plaintext_key"])
    round_trip(client, key_id, CONTEXT)


def test_a_key_pending_deletion_refuses_generate_and_decrypt_until_cancelled(
    client, admin, new_key
):
    key_id = new_key()
    data_key = ok(generate(client, key_id, CONTEXT))
    ok(admin.delete("/kms/keys/delete", {"key_id": key_id, "pending_window_in_days": 7}))

    expect_error(generate(client, key_id, CONTEXT), 400, "InvalidKeyState")
    expect_error(decrypt(client, data_key["ciphertext_blob"], CONTEXT), 400, "InvalidKeyState")

    ok(admin.post("/kms/keys/cancel-deletion", {"key_id": key_id}))
    plain = ok(decrypt(client, data_key["ciphertext_blob"], CONTEXT))
    assert b64(plain["plaintext"]) == b64(data_key["plaintext_key"])
    round_trip(client, key_id, CONTEXT)


def test_old_blobs_decrypt_after_rotation(client, admin, new_key):
    key_id = new_key()
    before = ok(generate(client, key_id, CONTEXT))
    ok(admin.post("/kms/keys/rotate", {"key_id": key_id}))
    after = ok(generate(client, key_id, CONTEXT))
    ok(admin.post("/kms/keys/rotate", {"key_id": key_id}))
    for data_key in (before, after):
        plain = ok(decrypt(client, data_key["ciphertext_blob"], CONTEXT))
        assert plain["key_id"] == key_id
        assert b64(plain["plaintext"]) == b64(data_key["plaintext_key"])
