"""The Vault backend through our server, against a real OpenBao (API.md §3–§7, §9; README
"The Vault / OpenBao backend").

One ``bao server -dev`` serves the module (``openbao.py``); every test starts servers of its own
on fresh data directories. What our server claims is checked against OpenBao's own HTTP API with
the root token: the Transit keys it made or adopted, their versions, the KV records, and that a
ciphertext blob's payload is a Transit ciphertext sealing exactly the returned data key under
the documented associated data (docs/ciphertext-format.md). Outages are played with a TCP proxy
(``tcp_proxy.py``) in front of OpenBao that the test cuts and restores.

Every Vault secret handed to a server (tokens, AppRole secret ids, wrong tokens too) is
remembered; the last test reads every byte of every data directory and every log of the module's
servers and finds none of them.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port
from kms_clients import check_metadata, expect_error, ok, parse_timestamp
from openbao import OpenBao, documented_policy, openbao  # noqa: F401  (module fixture)
from s3_clients import S3Raw, boto3_client, config_xml, expect_s3_error
from tcp_proxy import TcpProxy

CONTEXT = {"bucket": "photos", "object_key": "2024/cat.jpg", "upload_session": 1733328000123}
OTHER_CONTEXTS = (
    {"bucket": "photos", "object_key": "2024/dog.jpg", "upload_session": 1733328000123},  # other
    {},  # missing
    {**CONTEXT, "extra": "x"},  # extra
    {"bucket": "photos", "object_key": "2024/cat.jpg"},  # one pair fewer
)

# A short timeout and few retries, so that an outage answers quickly.
FAST = {"timeout_seconds": 5, "retry_attempts": 1}

# ---- what the module remembers for the final leak check --------------------------------------


class LeakWatch:
    """The servers of the module and every Vault secret any of them was given."""

    def __init__(self) -> None:
        self.servers: list[Any] = []
        self.secrets: set[str] = set()


@pytest.fixture(scope="module")
def leak_watch(openbao) -> LeakWatch:
    watch = LeakWatch()
    watch.secrets.add(openbao.root_token)
    return watch


@pytest.fixture
def vault_server(spawn_server, leak_watch):
    """``spawn_server``, remembering each server for the module's leak check."""

    def spawn(name: str, **kwargs):
        server = spawn_server(name, **kwargs)
        leak_watch.servers.append(server)
        return server

    return spawn


@pytest.fixture
def proxy(openbao):
    """A TCP proxy in front of OpenBao, listening; cut at the end of the test."""
    instance = TcpProxy(openbao.port).start()
    yield instance
    instance.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def vault_config(address: str, auth: dict, **overrides: Any) -> dict:
    """A Vault configuration with a record prefix and a default key of this test alone."""
    return {
        "backend_type": "vault",
        "address": address,
        "auth_method": auth,
        "mount_path": "transit",
        "kv_mount": "secret",
        "key_path_prefix": f"e2e/{uuid.uuid4().hex[:12]}",
        "default_key_id": unique("vault-default"),
        "enable_cache": True,
        "cache_ttl_seconds": 600,
        **overrides,
    }


def token_auth(token: str, watch: LeakWatch) -> dict:
    watch.secrets.add(token)
    return {"token": token}


# ---- ciphertext blobs (docs/ciphertext-format.md) --------------------------------------------


def parse_blob(blob_b64: str) -> tuple[str, int, bytes, bytes]:
    """(key id, key version, header, payload) of a version 1 blob."""
    blob = base64.b64decode(blob_b64)
    assert blob[:4] == b"KMS\x01", f"not a version 1 blob: {blob[:8]!r}"
    (length,) = struct.unpack(">H", blob[4:6])
    key_id = blob[6:6 + length].decode()
    (version,) = struct.unpack(">I", blob[6 + length:10 + length])
    return key_id, version, blob[:10 + length], blob[10 + length:]


def canonical_context(context: dict) -> bytes:
    pairs = sorted((k.encode(), str(v).encode()) for k, v in context.items())
    out = struct.pack(">I", len(pairs))
    for key, value in pairs:
        out += struct.pack(">I", len(key)) + key + struct.pack(">I", len(value)) + value
    return out


def check_sealed_by_transit(openbao: OpenBao, data_key: dict, context: dict,
                            key_id: str, version: int) -> None:
    """The blob names ``key_id`` version ``version``; its payload is the Transit ciphertext of
    that version, and Transit itself opens it, with the header and canonical context as
    associated data, to exactly the returned plaintext key."""
    blob_key, blob_version, header, payload = parse_blob(data_key["ciphertext_blob"])
    assert (blob_key, blob_version) == (key_id, version), data_key
    ciphertext = payload.decode()
    assert ciphertext.startswith(f"vault:v{version}:"), ciphertext
    plain = openbao.transit_decrypt(key_id, ciphertext, header + canonical_context(context))
    assert plain == base64.b64decode(data_key["plaintext_key"])


def data_key_round_trip(client, key_id: str | None = None, context: dict | None = None,
                        key_spec: str | None = None) -> dict:
    body: dict[str, Any] = {}
    if key_id is not None:
        body["key_id"] = key_id
    if context is not None:
        body["encryption_context"] = context
    if key_spec is not None:
        body["key_spec"] = key_spec
    data_key = ok(client.post("/kms/generate-data-key", body))
    size = 16 if key_spec == "AES_128" else 32
    assert len(base64.b64decode(data_key["plaintext_key"])) == size, data_key
    if key_id is not None:
        assert data_key["key_id"] == key_id, data_key
    check_decrypts(client, data_key, context)
    return data_key


def check_decrypts(client, data_key: dict, context: dict | None) -> None:
    body: dict[str, Any] = {"ciphertext_blob": data_key["ciphertext_blob"]}
    if context is not None:
        body["encryption_context"] = context
    plain = ok(client.post("/kms/decrypt", body))
    assert plain == {"key_id": data_key["key_id"], "plaintext": data_key["plaintext_key"]}, plain


def decrypt_body(data_key: dict, context: dict | None) -> dict:
    body: dict[str, Any] = {"ciphertext_blob": data_key["ciphertext_blob"]}
    if context is not None:
        body["encryption_context"] = context
    return body


def check_vault_running(client, config: dict, config_id: str | None = None) -> dict:
    status = ok(client.get("/kms/service-status"))
    assert status["status"] == "Running", status
    assert status["backend_type"] == "vault", status
    assert status["healthy"] is True, status
    assert isinstance(status["config_id"], str) and status["config_id"], status
    if config_id is not None:
        assert status["config_id"] == config_id, status
    assert status["config_summary"] == {
        "backend_type": "vault",
        "default_key_id": config["default_key_id"],
        "timeout_seconds": config.get("timeout_seconds", 30),
        "retry_attempts": config.get("retry_attempts", 3),
        "enable_cache": config.get("enable_cache", True),
    }, status
    monitoring = ok(client.get("/kms/status"))
    assert monitoring["backend_type"] == "vault", monitoring
    assert monitoring["backend_status"] == "healthy", monitoring
    assert monitoring["healthy"] is True, monitoring
    assert monitoring["default_key_id"] == config["default_key_id"], monitoring
    live = ok(client.get("/kms/config"))
    assert live["backend"] == "vault", live
    assert live["default_key_id"] == config["default_key_id"], live
    return status


def check_transit_key(openbao: OpenBao, key_id: str, latest_version: int = 1) -> dict:
    key = openbao.transit_key(key_id)
    assert key is not None, f"no transit key {key_id!r} in OpenBao"
    assert key["type"] == "aes256-gcm96", key
    assert key["latest_version"] == latest_version, key
    assert key["supports_encryption"] and key["supports_decryption"], key
    assert not key.get("derived"), key
    return key


def check_record(openbao: OpenBao, config: dict, key_id: str, **expected: Any) -> dict:
    """The KV v2 record of ``key_id`` under the configuration's prefix."""
    record = openbao.kv_read(f"{config['key_path_prefix']}/{key_id}", config["kv_mount"])
    assert record is not None, f"no KV record of {key_id!r} under {config['key_path_prefix']}"
    assert record["metadata"]["key_id"] == key_id, record
    for name, value in expected.items():
        assert record["metadata"][name] == value, (name, record)
    return record


def list_pages(client, limit: int) -> list[dict]:
    """Every list entry, following ``next_marker`` with pages of ``limit``."""
    entries: list[dict] = []
    query = {"limit": str(limit)}
    for _ in range(100):
        page = ok(client.get("/kms/keys", query=query))
        assert len(page["keys"]) <= limit, page
        entries += page["keys"]
        if not page["truncated"]:
            assert page["next_marker"] is None, page
            return entries
        assert len(page["keys"]) == limit and isinstance(page["next_marker"], str), page
        query = {"limit": str(limit), "marker": page["next_marker"]}
    raise AssertionError("GET /kms/keys did not stop paginating")


# ---- 1. configure, keys and data keys through each client -------------------------------------


def test_vault_configure_keys_and_data_keys(kind, clients, vault_server, openbao, leak_watch):
    server = vault_server(f"vault-{kind}")
    client = clients.make(kind, server)
    config = vault_config(openbao.address, token_auth(openbao.root_token, leak_watch))
    default = config["default_key_id"]
    assert openbao.transit_key(default) is None

    answer = ok(client.post("/kms/configure", config))
    assert answer["success"] is True and isinstance(answer["config_id"], str), answer
    # The server configured itself (local) on first start and runs: configure keeps it running.
    check_vault_running(client, config, answer["config_id"])

    # The default key is a Transit key of that exact name, with a KV record.
    check_transit_key(openbao, default)
    check_record(openbao, config, default, current_version=1, key_state="Enabled")
    check_metadata(ok(client.get(f"/kms/keys/{default}"))["key_metadata"], key_id=default,
                   key_state="Enabled", current_version=1)

    # A key made through the API is a Transit key too.
    created = ok(client.post("/kms/keys", {"KeyUsage": "ENCRYPT_DECRYPT",
                                           "Description": "vault e2e", "Tags": {"name": kind}}))
    key_id = created["key_id"]
    assert str(uuid.UUID(key_id)) == key_id, created
    check_metadata(created["key_metadata"], key_id=key_id, description="vault e2e",
                   tags={"name": kind}, key_state="Enabled", current_version=1)
    check_transit_key(openbao, key_id)
    check_record(openbao, config, key_id, description="vault e2e")
    assert ok(client.get(f"/kms/keys/{key_id}"))["key_metadata"] == created["key_metadata"]

    # Data keys: sealed by Transit, bound to the context, round trip.
    data_key = data_key_round_trip(client, key_id, CONTEXT)
    check_sealed_by_transit(openbao, data_key, CONTEXT, key_id, 1)
    short = data_key_round_trip(client, key_id, key_spec="AES_128")
    check_sealed_by_transit(openbao, short, {}, key_id, 1)
    by_default = data_key_round_trip(client, context={"n": 5})
    assert by_default["key_id"] == default, by_default
    check_sealed_by_transit(openbao, by_default, {"n": "5"}, default, 1)
    again = ok(client.post("/kms/generate-data-key", {"key_id": key_id,
                                                      "encryption_context": CONTEXT}))
    assert again["plaintext_key"] != data_key["plaintext_key"]
    assert again["ciphertext_blob"] != data_key["ciphertext_blob"]

    for other in OTHER_CONTEXTS:
        expect_error(client.post("/kms/decrypt", decrypt_body(data_key, other)),
                     400, "DecryptionFailed")
    expect_error(client.post("/kms/decrypt", decrypt_body(by_default, None)),
                 400, "DecryptionFailed")
    # A modified Transit ciphertext does not authenticate either.
    raw = bytearray(base64.b64decode(data_key["ciphertext_blob"]))
    raw[-3] ^= 0x01
    tampered = {"ciphertext_blob": base64.b64encode(bytes(raw)).decode()}
    expect_error(client.post("/kms/decrypt", {**tampered, "encryption_context": CONTEXT}),
                 400, "DecryptionFailed")

    # Disable: both directions refused; enable restores, the material untouched.
    disabled = ok(client.post("/kms/keys/disable", {"key_id": key_id}))
    check_metadata(disabled["key_metadata"], key_id=key_id, key_state="Disabled", enabled=False)
    check_record(openbao, config, key_id, key_state="Disabled")
    expect_error(client.post("/kms/generate-data-key", {"key_id": key_id}), 400, "InvalidKeyState")
    expect_error(client.post("/kms/decrypt", decrypt_body(data_key, CONTEXT)),
                 400, "InvalidKeyState")
    check_metadata(ok(client.post("/kms/keys/enable", {"key_id": key_id}))["key_metadata"],
                   key_state="Enabled")
    check_decrypts(client, data_key, CONTEXT)

    # Scheduled deletion: refused both ways, Transit key kept; cancel restores everything.
    scheduled = ok(client.delete("/kms/keys/delete", {"key_id": key_id,
                                                      "pending_window_in_days": 7}))
    assert scheduled["key_id"] == key_id and scheduled["pending_window_in_days"] == 7, scheduled
    days = (parse_timestamp(scheduled["deletion_date"]) - parse_timestamp(
        created["key_metadata"]["creation_date"])).total_seconds() / 86400
    assert 6.99 < days < 7.01, scheduled
    meta = check_metadata(ok(client.get(f"/kms/keys/{key_id}"))["key_metadata"],
                          key_state="PendingDeletion",
                          deletion_date=scheduled["deletion_date"])
    check_record(openbao, config, key_id, key_state="PendingDeletion")
    assert meta["enabled"] is False
    expect_error(client.post("/kms/generate-data-key", {"key_id": key_id}), 400, "InvalidKeyState")
    expect_error(client.post("/kms/decrypt", decrypt_body(data_key, CONTEXT)),
                 400, "InvalidKeyState")
    check_transit_key(openbao, key_id)
    expect_error(client.delete("/kms/keys/delete", {"key_id": default}), 409, "Conflict")
    cancelled = ok(client.post("/kms/keys/cancel-deletion", {"key_id": key_id}))
    check_metadata(cancelled["key_metadata"], key_state="Enabled", deletion_date=None)
    check_decrypts(client, data_key, CONTEXT)

    # Rotation: a new Transit version seals new data keys; every old blob still decrypts.
    rotated = ok(client.post("/kms/keys/rotate", {"key_id": key_id}))
    check_metadata(rotated["key_metadata"], key_id=key_id, current_version=2)
    check_transit_key(openbao, key_id, latest_version=2)
    check_record(openbao, config, key_id, current_version=2)
    newer = data_key_round_trip(client, key_id, CONTEXT)
    check_sealed_by_transit(openbao, newer, CONTEXT, key_id, 2)
    for old, context in ((data_key, CONTEXT), (short, None)):
        check_decrypts(client, old, context)

    # Listing with pagination: exactly this server's keys, in creation order, each once.
    more = [ok(client.post("/kms/keys", {"Description": f"list {i}"}))["key_id"]
            for i in range(3)]
    entries = list_pages(client, limit=2)
    ids = [e["key_id"] for e in entries]
    assert sorted(ids) == sorted([default, key_id, *more]), entries
    assert ids == [e["key_id"] for e in sorted(entries, key=lambda e: (
        parse_timestamp(e["creation_date"]), e["key_id"]))], entries
    for entry in entries:
        assert entry["key_state"] == "Enabled" and entry["enabled"] is True, entry
    assert sorted(openbao.kv_list(config["key_path_prefix"])) == sorted(ids)

    # Reconfigure onto another default key: Running, a new config id, the keys still served.
    changed = {**config, "default_key_id": unique("vault-default2"), "timeout_seconds": 20}
    previous_id = ok(client.get("/kms/service-status"))["config_id"]
    answer = ok(client.post("/kms/reconfigure", changed))
    assert answer["success"] is True and answer["status"] == "Running", answer
    status = check_vault_running(client, changed)
    assert status["config_id"] != previous_id, status
    check_transit_key(openbao, changed["default_key_id"])
    assert ok(client.post("/kms/generate-data-key", {}))["key_id"] == changed["default_key_id"]
    check_decrypts(client, newer, CONTEXT)
    check_decrypts(client, by_default, {"n": 5})
    assert len(list_pages(client, limit=1000)) == len(ids) + 1


# ---- 2. adoption of an existing Transit key ---------------------------------------------------


def test_an_existing_transit_key_is_adopted(clients, vault_server, openbao, leak_watch):
    server = vault_server("adopt")
    client = clients.make("js", server)
    config = vault_config(openbao.address, token_auth(openbao.root_token, leak_watch))
    default = config["default_key_id"]
    openbao.create_transit_key(default)
    before = openbao.rotate_transit_key(default)
    assert before["latest_version"] == 2, before
    # A ciphertext made by someone else under the key before adoption.
    foreign = openbao.transit_encrypt(default, b"made before", b"aad", version=1)

    answer = ok(client.post("/kms/configure", config))
    check_vault_running(client, config, answer["config_id"])

    # The same Transit key (same versions and times), not a new one.
    after = check_transit_key(openbao, default, latest_version=2)
    assert after["keys"] == before["keys"], (before, after)
    meta = check_metadata(ok(client.get(f"/kms/keys/{default}"))["key_metadata"],
                          key_id=default, key_state="Enabled", current_version=2)
    created = parse_timestamp(meta["creation_date"]).timestamp()
    assert abs(created - int(before["keys"]["1"])) < 1, (meta, before)
    check_record(openbao, config, default, current_version=2)
    listed = [e["key_id"] for e in list_pages(client, limit=10)]
    assert listed == [default], listed

    data_key = data_key_round_trip(client, default, CONTEXT)
    check_sealed_by_transit(openbao, data_key, CONTEXT, default, 2)
    data_key_round_trip(client, context=CONTEXT)
    assert openbao.transit_decrypt(default, foreign, b"aad") == b"made before"

    # Adopting again (a repeated configure) is idempotent.
    ok(client.post("/kms/reconfigure", config))
    check_transit_key(openbao, default, latest_version=2)
    assert [e["key_id"] for e in list_pages(client, limit=10)] == [default]
    check_decrypts(client, data_key, CONTEXT)

    # A Transit key this backend could not have made (another type) is refused, not adopted;
    # the running configuration stays, the foreign key is left as it was.
    status = ok(client.get("/kms/service-status"))
    foreign_id = unique("vault-chacha")
    foreign_key = openbao.create_transit_key(foreign_id, "chacha20-poly1305")
    resp = client.post("/kms/reconfigure", {**config, "default_key_id": foreign_id})
    expect_error(resp, 400, "InvalidRequest")
    assert ok(client.get("/kms/service-status")) == status
    assert openbao.transit_key(foreign_id) == foreign_key
    assert openbao.kv_read(f"{config['key_path_prefix']}/{foreign_id}") is None
    check_decrypts(client, data_key, CONTEXT)


# ---- 3. AppRole -------------------------------------------------------------------------------

APPROLE_POLICY = "rustfs-kms-e2e"
APPROLE_ROLE = "rustfs-kms-e2e"


@pytest.fixture(scope="module")
def kms_policy(openbao) -> str:
    """The policy of the Vault backend's docs, written to OpenBao; its name."""
    openbao.write_policy(APPROLE_POLICY, documented_policy())
    return APPROLE_POLICY


@pytest.fixture(scope="module")
def approle(openbao, kms_policy) -> str:
    """AppRole enabled, a role granted only the documented policy; its role id."""
    openbao.enable_approle()
    return openbao.create_role(APPROLE_ROLE, [kms_policy], token_ttl="20m",
                               token_max_ttl="1h", secret_id_ttl="0", secret_id_num_uses=0)


@pytest.mark.parametrize("source", ["secret_id", "secret_id_file"])
def test_approle_login(source, clients, vault_server, openbao, approle, leak_watch, tmp_path):
    server = vault_server(f"approle-{source}")
    client = clients.make("curl", server)
    secret_id = openbao.new_secret_id(APPROLE_ROLE)
    leak_watch.secrets.add(secret_id)
    if source == "secret_id":
        auth = {"approle": {"role_id": approle, "secret_id": secret_id}}
    else:
        path = tmp_path / "secret-id"
        path.write_text(secret_id + "\n")
        path.chmod(0o600)
        auth = {"approle": {"role_id": approle, "secret_id_file": str(path.resolve())}}
    # The documented policy covers the default mounts and prefix only.
    config = vault_config(openbao.address, auth, key_path_prefix="rustfs/kms/keys")
    default = config["default_key_id"]

    answer = ok(client.post("/kms/reconfigure", config))
    assert answer["success"] is True and answer["status"] == "Running", answer
    check_vault_running(client, config)
    check_transit_key(openbao, default)
    check_record(openbao, config, default)

    key_id = ok(client.post("/kms/keys", {"Description": "approle"}))["key_id"]
    check_transit_key(openbao, key_id)
    data_key = data_key_round_trip(client, key_id, CONTEXT)
    check_sealed_by_transit(openbao, data_key, CONTEXT, key_id, 1)
    data_key_round_trip(client, context=CONTEXT)
    ok(client.post("/kms/keys/rotate", {"key_id": key_id}))
    check_transit_key(openbao, key_id, latest_version=2)
    check_decrypts(client, data_key, CONTEXT)
    ok(client.post("/kms/keys/disable", {"key_id": key_id}))
    expect_error(client.post("/kms/decrypt", decrypt_body(data_key, CONTEXT)),
                 400, "InvalidKeyState")
    ok(client.post("/kms/keys/enable", {"key_id": key_id}))
    listed = {e["key_id"] for e in list_pages(client, limit=50)}
    assert {default, key_id} <= listed, listed


def test_token_file_login(clients, vault_server, openbao, kms_policy, leak_watch, tmp_path):
    """``{"token_file": path}`` with a token holding only the documented policy."""
    server = vault_server("token-file")
    client = clients.make("js", server)
    token = openbao.create_token([kms_policy])
    leak_watch.secrets.add(token)
    path = tmp_path / "vault-token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    config = vault_config(openbao.address, {"token_file": str(path.resolve())},
                          key_path_prefix="rustfs/kms/keys")
    answer = ok(client.post("/kms/configure", config))
    check_vault_running(client, config, answer["config_id"])
    check_transit_key(openbao, config["default_key_id"])
    data_key = data_key_round_trip(client, context=CONTEXT)
    check_sealed_by_transit(openbao, data_key, CONTEXT, config["default_key_id"], 1)


def test_approle_with_a_wrong_secret_id_is_refused(clients, vault_server, openbao, approle,
                                                   leak_watch):
    server = vault_server("approle-wrong")
    client = clients.make("botocore", server)
    before = ok(client.get("/kms/service-status"))
    wrong = str(uuid.uuid4())
    leak_watch.secrets.add(wrong)
    config = vault_config(openbao.address,
                          {"approle": {"role_id": approle, "secret_id": wrong}},
                          key_path_prefix="rustfs/kms/keys")
    resp = client.post("/kms/configure", config)
    error = expect_error(resp, 400, "InvalidRequest")
    assert wrong not in resp.text, error
    assert ok(client.get("/kms/service-status")) == before


# ---- 4. outage: the proxy cut and restored ----------------------------------------------------


def s3_put_encryption(server, bucket: str, body: bytes):
    """PutBucketEncryption signed by botocore's ``S3SigV4Auth``, with ``Content-MD5``."""
    return S3Raw(server, server.credentials).put_encryption(bucket, body)


def test_an_outage_answers_503_and_heals_without_restart(clients, vault_server, openbao, proxy,
                                                         leak_watch):
    server = vault_server("outage")
    admins = {kind: clients.make(kind, server) for kind in clients.KINDS}
    admin = admins["botocore"]
    config = vault_config(proxy.address, token_auth(openbao.root_token, leak_watch), **FAST)
    ok(admin.post("/kms/reconfigure", config))
    check_vault_running(admin, config)
    key_id = ok(admin.post("/kms/keys", {"Description": "outage"}))["key_id"]
    blobs = {kind: data_key_round_trip(c, key_id, CONTEXT) for kind, c in admins.items()}
    assert proxy.accepted > 0, "OpenBao was not reached through the proxy"

    s3 = boto3_client(server, server.credentials)
    bucket = unique("vault-outage")
    s3.create_bucket(Bucket=bucket)
    assert s3_put_encryption(server, bucket, config_xml("aws:kms", key_id)).status == 200
    stored = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    # Objects (API.md §10): one under the bucket default (SSE-KMS on OpenBao), one unencrypted
    # and one SSE-C in a bucket without default; only the first needs the KMS to be read.
    plain_bucket = unique("vault-plain")
    s3.create_bucket(Bucket=plain_bucket)
    secret = b"kms-encrypted object " * 5000
    s3.put_object(Bucket=bucket, Key="secret.bin", Body=secret)
    assert s3.head_object(Bucket=bucket, Key="secret.bin")["ServerSideEncryption"] == "aws:kms"
    plain = b"plain object " * 5000
    s3.put_object(Bucket=plain_bucket, Key="plain.bin", Body=plain)
    customer = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}
    s3.put_object(Bucket=plain_bucket, Key="customer.bin", Body=plain, **customer)

    proxy.cut()
    try:
        for kind, client in admins.items():
            started = time.monotonic()
            expect_error(client.post("/kms/generate-data-key", {"key_id": key_id}),
                         503, "BackendUnavailable")
            expect_error(client.post("/kms/decrypt", decrypt_body(blobs[kind], CONTEXT)),
                         503, "BackendUnavailable")
            assert time.monotonic() - started < 2 * FAST["timeout_seconds"] + 5
        # Creating a key needs the backend too, and must leave nothing behind.
        expect_error(admin.post("/kms/keys", {"Description": "during the outage"}),
                     503, "BackendUnavailable")
        monitoring = ok(admin.get("/kms/status"))
        assert monitoring["healthy"] is False, monitoring
        assert monitoring["backend_status"] == "unhealthy", monitoring
        assert monitoring["backend_type"] == "vault", monitoring
        status = ok(admin.get("/kms/service-status"))
        assert status["healthy"] is False and status["backend_type"] == "vault", status

        # S3: both algorithms need the KMS; nothing is stored, Get still answers.
        for body in (config_xml("AES256"), config_xml("aws:kms", key_id)):
            expect_s3_error(s3_put_encryption(server, bucket, body), 503, "ServiceUnavailable",
                            f"/{bucket}")
        assert s3.get_bucket_encryption(Bucket=bucket)[
            "ServerSideEncryptionConfiguration"] == stored

        # An SSE-KMS object neither reads nor is written while OpenBao is away (503, no byte
        # of it in the answer); objects that do not need the KMS are not affected.
        raw = S3Raw(server, server.credentials)
        answer = raw.request("GET", f"/{bucket}/secret.bin")
        expect_s3_error(answer, 503, "ServiceUnavailable", f"/{bucket}/secret.bin")
        assert secret[:40] not in answer.body, answer
        answer = raw.request("PUT", f"/{bucket}/during.bin", body=b"written during the outage")
        expect_s3_error(answer, 503, "ServiceUnavailable", f"/{bucket}/during.bin")
        assert raw.request("HEAD", f"/{bucket}/during.bin").status == 404
        assert s3.get_object(Bucket=plain_bucket, Key="plain.bin")["Body"].read() == plain
        assert s3.get_object(Bucket=plain_bucket, Key="customer.bin",
                             **customer)["Body"].read() == plain
    finally:
        proxy.restore()

    # Back with no restart: the very next requests succeed.
    listed = [e["key_id"] for e in list_pages(admin, limit=10)]
    assert sorted(listed) == sorted([config["default_key_id"], key_id]), listed
    for kind, client in admins.items():
        check_decrypts(client, blobs[kind], CONTEXT)
        data_key_round_trip(client, key_id, CONTEXT)
    check_vault_running(admin, config)
    body = config_xml("AES256")
    assert s3_put_encryption(server, bucket, body).status == 200
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
        "Rules"][0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert s3.get_object(Bucket=bucket, Key="secret.bin")["Body"].read() == secret
    s3.delete_bucket_encryption(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="secret.bin")
    s3.delete_bucket(Bucket=bucket)
    for key in ("plain.bin", "customer.bin"):
        s3.delete_object(Bucket=plain_bucket, Key=key)
    s3.delete_bucket(Bucket=plain_bucket)


def test_a_silent_vault_answers_503_within_the_timeout(clients, vault_server, openbao, proxy,
                                                     leak_watch):
    """A partition (connections accepted, never answered) is an outage too: every call that
    needs Vault gives up after ``timeout_seconds`` with 503, and all is well once it answers."""
    timeout = 2
    server = vault_server("silent")
    client = clients.make("botocore", server)
    config = vault_config(proxy.address, token_auth(openbao.root_token, leak_watch),
                          timeout_seconds=timeout, retry_attempts=1)
    ok(client.post("/kms/reconfigure", config))
    key_id = ok(client.post("/kms/keys", {"Description": "silent"}))["key_id"]
    data_key = data_key_round_trip(client, key_id, CONTEXT)
    s3 = boto3_client(server, server.credentials)
    bucket = unique("vault-silent")
    s3.create_bucket(Bucket=bucket)

    def bounded(call):
        started = time.monotonic()
        answer = call()
        took = time.monotonic() - started
        assert took < timeout + 3, f"{took:.1f}s (timeout_seconds {timeout}): {answer}"
        return answer

    proxy.stall()
    try:
        bounded(lambda: expect_error(
            client.post("/kms/generate-data-key", {"key_id": key_id}), 503, "BackendUnavailable"))
        bounded(lambda: expect_error(
            client.post("/kms/decrypt", decrypt_body(data_key, CONTEXT)),
            503, "BackendUnavailable"))
        monitoring = bounded(lambda: ok(client.get("/kms/status")))
        assert monitoring["healthy"] is False, monitoring
        assert monitoring["backend_status"] == "unhealthy", monitoring
        bounded(lambda: expect_s3_error(
            s3_put_encryption(server, bucket, config_xml("AES256")), 503, "ServiceUnavailable",
            f"/{bucket}"))
    finally:
        proxy.unstall()

    check_decrypts(client, data_key, CONTEXT)
    data_key_round_trip(client, key_id, CONTEXT)
    check_vault_running(client, config)
    assert s3_put_encryption(server, bucket, config_xml("AES256")).status == 200
    s3.delete_bucket_encryption(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)


# ---- 5. refused configurations leave the previous one serving --------------------------------


def test_an_unreachable_vault_or_a_wrong_token_keeps_the_previous_configuration(
        clients, vault_server, openbao, leak_watch, tmp_path):
    server = vault_server("refused")
    client = clients.make("botocore", server)
    local = {"backend_type": "local", "key_directory": str(tmp_path / "keys"),
             "default_key_id": "local-default"}
    ok(client.post("/kms/reconfigure", local))
    before = ok(client.get("/kms/service-status"))
    assert before["backend_type"] == "local" and before["healthy"] is True, before
    old = data_key_round_trip(client, context=CONTEXT)

    closed = f"http://127.0.0.1:{free_port()}"
    for route in ("/kms/configure", "/kms/reconfigure"):
        config = vault_config(closed, token_auth(openbao.root_token, leak_watch), **FAST)
        started = time.monotonic()
        error = expect_error(client.post(route, config), 503, "BackendUnavailable")
        assert time.monotonic() - started < 4 * FAST["timeout_seconds"], error
        assert openbao.root_token not in error["message"]
        assert ok(client.get("/kms/service-status")) == before
        check_decrypts(client, old, CONTEXT)
        assert data_key_round_trip(client, context=CONTEXT)["key_id"] == "local-default"

    for route in ("/kms/configure", "/kms/reconfigure"):
        wrong = f"e2e-wrong-{secrets.token_hex(12)}"
        config = vault_config(openbao.address, token_auth(wrong, leak_watch), **FAST)
        resp = client.post(route, config)
        error = expect_error(resp, 400, "InvalidRequest")
        assert wrong not in resp.text, error
        assert ok(client.get("/kms/service-status")) == before
        check_decrypts(client, old, CONTEXT)
        assert openbao.transit_key(config["default_key_id"]) is None


# ---- 6. restart -------------------------------------------------------------------------------


def secret_forms(secret: str) -> set[bytes]:
    raw = secret.encode()
    return {raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex().encode(),
            raw.hex().upper().encode()}


def files_containing(root: Path, secret: str) -> list[str]:
    forms = secret_forms(secret)
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            if any(form in data for form in forms):
                found.append(str(path))
    return found


def check_no_leak(server, secret: str) -> None:
    assert server.data_dir.is_dir(), server.data_dir
    assert files_containing(server.data_dir, secret) == [], "a Vault secret is stored in clear"
    log = server.log_path.read_bytes() if server.log_path.exists() else b""
    assert not any(form in log for form in secret_forms(secret)), (
        f"a Vault secret is in {server.log_path}"
    )


def test_a_restart_comes_back_running_on_vault(clients, vault_server, openbao, leak_watch):
    server = vault_server("restart", args=("--log-level", "debug,vaultrs=off"))
    client = clients.make("botocore", server)
    token = openbao.create_token(["root"])
    config = vault_config(openbao.address, token_auth(token, leak_watch))
    ok(client.post("/kms/configure", config))
    status = check_vault_running(client, config)

    key_id = ok(client.post("/kms/keys", {"Description": "kept", "Tags": {"name": "kept"}}))[
        "key_id"]
    old = data_key_round_trip(client, key_id, CONTEXT)
    ok(client.post("/kms/keys/rotate", {"key_id": key_id}))
    newer = data_key_round_trip(client, key_id, CONTEXT)
    by_default = data_key_round_trip(client, context=CONTEXT)
    off = ok(client.post("/kms/keys", {"Description": "off"}))["key_id"]
    ok(client.post("/kms/keys/disable", {"key_id": off}))
    metas = {k: ok(client.get(f"/kms/keys/{k}"))["key_metadata"]
             for k in (key_id, off, config["default_key_id"])}
    listing = list_pages(client, limit=2)

    server.restart()

    assert check_vault_running(client, config) == status
    for k, meta in metas.items():
        assert ok(client.get(f"/kms/keys/{k}"))["key_metadata"] == meta
    assert list_pages(client, limit=2) == listing
    for data_key in (old, newer, by_default):
        check_decrypts(client, data_key, CONTEXT)
    check_sealed_by_transit(openbao, newer, CONTEXT, key_id, 2)
    expect_error(client.post("/kms/generate-data-key", {"key_id": off}), 400, "InvalidKeyState")
    assert data_key_round_trip(client, context=CONTEXT)["key_id"] == config["default_key_id"]

    server.stop()
    audit = server.data_dir / "audit.log"
    assert audit.is_file() and audit.stat().st_size > 0, "no audit log in the data directory"
    check_no_leak(server, token)
    check_no_leak(server, openbao.root_token)


# ---- 7. restart while OpenBao is down ---------------------------------------------------------


def test_a_restart_during_an_outage_recovers_by_itself(clients, vault_server, openbao, proxy,
                                                       leak_watch):
    interval = 1
    server = vault_server("error", args=("--maintenance-interval", str(interval)))
    client = clients.make("curl", server)
    s3 = boto3_client(server, server.credentials)
    bucket = unique("vault-error")
    s3.create_bucket(Bucket=bucket)
    config = vault_config(proxy.address, token_auth(openbao.root_token, leak_watch), **FAST)
    ok(client.post("/kms/configure", config))
    running = check_vault_running(client, config)
    key_id = ok(client.post("/kms/keys", {"Description": "through the outage"}))["key_id"]
    data_key = data_key_round_trip(client, key_id, CONTEXT)

    server.stop()
    proxy.cut()
    server.start()

    status = ok(client.get("/kms/service-status"))
    assert status["status"] == "Error", status
    assert status["healthy"] is False and status["backend_type"] == "vault", status
    assert status["config_id"] == running["config_id"], status
    monitoring = ok(client.get("/kms/status"))
    assert monitoring["healthy"] is False and monitoring["backend_status"] == "unhealthy", (
        monitoring)
    for call in (
        lambda: client.post("/kms/generate-data-key", {"key_id": key_id}),
        lambda: client.post("/kms/decrypt", decrypt_body(data_key, CONTEXT)),
        lambda: client.get(f"/kms/keys/{key_id}"),
        lambda: client.get("/kms/keys"),
        lambda: client.post("/kms/keys", {"Description": "not now"}),
    ):
        expect_error(call(), 503, "BackendUnavailable")
    expect_s3_error(s3_put_encryption(server, bucket, config_xml("aws:kms", key_id)),
                    503, "ServiceUnavailable", f"/{bucket}")
    # `start` retries, and fails the same way while OpenBao is away.
    expect_error(client.post("/kms/start"), 503, "BackendUnavailable")
    # Still Error a few maintenance rounds later while OpenBao stays away.
    time.sleep(2 * interval + 0.5)
    assert ok(client.get("/kms/service-status"))["status"] == "Error"

    proxy.restore()
    restored = time.monotonic()
    # One maintenance round, plus the time to connect (login, probes, default key) on a busy
    # machine.
    deadline = restored + interval + 4
    while True:
        status = ok(client.get("/kms/service-status"))
        if status["status"] == "Running" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    took = time.monotonic() - restored
    assert status["status"] == "Running", f"still {status} {took:.1f}s after OpenBao came back"
    check_vault_running(client, config, running["config_id"])
    check_decrypts(client, data_key, CONTEXT)
    data_key_round_trip(client, key_id, CONTEXT)
    assert s3_put_encryption(server, bucket, config_xml("aws:kms", key_id)).status == 200
    s3.delete_bucket_encryption(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)


# ---- the module's leak check (keep last) ------------------------------------------------------


def test_no_vault_secret_in_any_data_directory_or_log(leak_watch):
    """Every token and secret id given to any server of this module, in clear, base64 or hex,
    is in no file of its data directory (saved configuration, audit.log, ...) and in no line of
    its stderr log."""
    if not leak_watch.servers:
        pytest.skip("no server of this module ran")
    for server in leak_watch.servers:
        assert server.process is None, f"{server.name} still runs"
    leaks = []
    for server in leak_watch.servers:
        for secret in leak_watch.secrets:
            label = f"secret #{sorted(leak_watch.secrets).index(secret)}"
            leaks += [f"{label} in {path}" for path in files_containing(server.data_dir, secret)]
            log = server.log_path.read_bytes() if server.log_path.exists() else b""
            if any(form in log for form in secret_forms(secret)):
                leaks.append(f"{label} in {server.log_path}")
    assert leaks == [], "\n".join(leaks)
