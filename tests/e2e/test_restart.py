"""What a restart (SIGTERM, start again on the same data directory) must keep: API.md §4–§6."""

from __future__ import annotations

from conftest import DEFAULT_KEY
from kms_clients import expect_error, list_all_keys, local_config, ok

CONTEXT = {"bucket": "photos", "object_key": "2024/cat.jpg", "upload_session": 1733328000123}


def test_keys_configuration_and_ciphertexts_survive_a_restart(kind, clients, spawn_server,
                                                              tmp_path):
    server = spawn_server("restart")
    client = clients.make(kind, server)
    config = local_config(tmp_path / "keys", default_key_id="restart-default", timeout_seconds=45,
                          retry_attempts=2, cache_ttl_seconds=300, cache_max_keys=10)
    ok(client.post("/kms/reconfigure", config))

    def create(description, tags):
        return ok(client.post("/kms/keys", {"Description": description, "Tags": tags}))["key_id"]

    plain_key = create("持久的密钥 survives", {"name": "kept", "team": "storage"})
    disabled = create("disabled", {"name": "off"})
    ok(client.post("/kms/keys/disable", {"key_id": disabled}))
    doomed = create("pending", {"name": "doomed"})
    doomed_blob = ok(client.post("/kms/generate-data-key", {"key_id": doomed}))
    deletion = ok(client.delete("/kms/keys/delete",
                                {"key_id": doomed, "pending_window_in_days": 10}))
    rotated = create("rotated", {})
    rotated_blob = ok(client.post("/kms/generate-data-key",
                                  {"key_id": rotated, "encryption_context": CONTEXT}))
    ok(client.post("/kms/keys/rotate", {"key_id": rotated}))
    ok(client.post("/kms/keys/rotation",
                   {"key_id": rotated, "enabled": True, "rotation_period_in_days": 100}))
    blobs = [
        rotated_blob,
        ok(client.post("/kms/generate-data-key", {"key_id": plain_key,
                                                  "encryption_context": CONTEXT})),
        ok(client.post("/kms/generate-data-key", {"encryption_context": CONTEXT})),
    ]

    status = ok(client.get("/kms/service-status"))
    monitoring_config = ok(client.get("/kms/config"))
    keys = {key_id: ok(client.get(f"/kms/keys/{key_id}"))["key_metadata"]
            for key_id in (plain_key, disabled, doomed, rotated, "restart-default")}
    listing = list_all_keys(client)

    server.restart()

    assert ok(client.get("/kms/service-status")) == status
    assert ok(client.get("/kms/config")) == monitoring_config
    for key_id, meta in keys.items():
        assert ok(client.get(f"/kms/keys/{key_id}"))["key_metadata"] == meta
    assert keys[doomed]["deletion_date"] == deletion["deletion_date"]
    assert list_all_keys(client) == listing

    for data_key in blobs:
        plain = ok(client.post("/kms/decrypt", {"ciphertext_blob": data_key["ciphertext_blob"],
                                                "encryption_context": CONTEXT}))
        assert plain["key_id"] == data_key["key_id"]
        assert plain["plaintext"] == data_key["plaintext_key"]
    assert blobs[2]["key_id"] == "restart-default"

    # States still gate the crypto routes, and can still be undone.
    expect_error(client.post("/kms/generate-data-key", {"key_id": disabled}),
                 400, "InvalidKeyState")
    expect_error(client.post("/kms/decrypt", {"ciphertext_blob": doomed_blob["ciphertext_blob"]}),
                 400, "InvalidKeyState")
    ok(client.post("/kms/keys/cancel-deletion", {"key_id": doomed}))
    ok(client.post("/kms/keys/enable", {"key_id": disabled}))
    plain = ok(client.post("/kms/decrypt", {"ciphertext_blob": doomed_blob["ciphertext_blob"]}))
    assert plain["plaintext"] == doomed_blob["plaintext_key"]
    ok(client.post("/kms/generate-data-key", {"key_id": disabled}))


def test_the_first_start_configuration_is_saved(kind, clients, spawn_server):
    server = spawn_server("firstsave")
    client = clients.make(kind, server)
    status = ok(client.get("/kms/service-status"))
    default_key = ok(client.get(f"/kms/keys/{DEFAULT_KEY}"))["key_metadata"]
    data_key = ok(client.post("/kms/generate-data-key", {}))

    server.restart()

    assert ok(client.get("/kms/service-status")) == status
    assert ok(client.get(f"/kms/keys/{DEFAULT_KEY}"))["key_metadata"] == default_key
    plain = ok(client.post("/kms/decrypt", {"ciphertext_blob": data_key["ciphertext_blob"]}))
    assert plain["plaintext"] == data_key["plaintext_key"]


def test_a_saved_configuration_is_reloaded_even_with_no_auto_configure(kind, clients,
                                                                       spawn_server, tmp_path):
    server = spawn_server("reload", args=("--no-auto-configure",))
    client = clients.make(kind, server)
    ok(client.post("/kms/configure", local_config(tmp_path / "keys", default_key_id="saved")))
    ok(client.post("/kms/start"))
    status = ok(client.get("/kms/service-status"))
    assert status["status"] == "Running", status

    server.restart()

    assert ok(client.get("/kms/service-status")) == status
    assert ok(client.post("/kms/generate-data-key", {}))["key_id"] == "saved"
