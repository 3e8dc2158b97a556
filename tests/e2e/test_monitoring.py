"""Cache and monitoring routes (API.md §7): /kms/config, /kms/status, /kms/clear-cache."""

from __future__ import annotations

from conftest import DEFAULT_KEY
from kms_clients import local_config, ok


def counters(client) -> tuple[int, int]:
    stats = ok(client.get("/kms/status"))["cache_stats"]
    assert isinstance(stats, dict), f"cache_stats is not an object while the cache is on: {stats}"
    hits, misses = stats["hit_count"], stats["miss_count"]
    assert type(hits) is int and type(misses) is int and hits >= 0 and misses >= 0, stats
    return hits, misses


def use_key(client, key_id: str, times: int) -> None:
    for _ in range(times):
        ok(client.post("/kms/generate-data-key", {"key_id": key_id}))


def test_status_reports_backend_health_and_the_default_key(client):
    status = ok(client.get("/kms/status"))
    assert status["backend_type"] == "local", status
    assert status["backend_status"] == "healthy", status
    assert status["healthy"] is True, status
    assert status["cache_enabled"] is True, status
    assert status["default_key_id"] == DEFAULT_KEY, status
    counters(client)


def test_cache_counters_count_real_hits_and_misses(client, new_key):
    key_id = new_key("cached")
    ok(client.post("/kms/clear-cache"))
    hits, misses = counters(client)

    use_key(client, key_id, 3)
    after_hits, after_misses = counters(client)
    assert after_misses - misses >= 1, "the first use of a key after clear-cache is no miss"
    assert after_hits - hits >= 2, "repeated uses of a cached key are no hits"


def test_clear_cache_empties_the_cache(client, new_key):
    key_id = new_key("warm")
    use_key(client, key_id, 2)
    _, misses = counters(client)
    use_key(client, key_id, 1)
    assert counters(client)[1] == misses, "a warm key missed the cache"

    body = ok(client.post("/kms/clear-cache"))
    assert body["status"] == "success", body
    assert isinstance(body["message"], str) and body["message"], body
    _, misses = counters(client)
    use_key(client, key_id, 1)
    assert counters(client)[1] >= misses + 1, "a key used after clear-cache was still cached"


def test_config_reflects_the_live_configuration(kind, clients, spawn_server, tmp_path):
    server = spawn_server("monitor")
    client = clients.make(kind, server)
    assert ok(client.get("/kms/config")) == {
        "backend": "local",
        "cache_enabled": True,
        "cache_max_keys": 1000,
        "cache_ttl_seconds": 600,
        "default_key_id": DEFAULT_KEY,
    }
    ok(client.post("/kms/reconfigure", local_config(
        tmp_path / "keys", default_key_id="live", cache_ttl_seconds=300, cache_max_keys=10)))
    assert ok(client.get("/kms/config")) == {
        "backend": "local",
        "cache_enabled": True,
        "cache_max_keys": 10,
        "cache_ttl_seconds": 300,
        "default_key_id": "live",
    }
    assert ok(client.get("/kms/status"))["default_key_id"] == "live"


def test_with_the_cache_disabled_there_are_no_stats(kind, clients, spawn_server, tmp_path):
    server = spawn_server("nocache")
    client = clients.make(kind, server)
    ok(client.post("/kms/reconfigure", local_config(tmp_path / "keys", enable_cache=False)))
    status = ok(client.get("/kms/status"))
    assert status["cache_enabled"] is False and status["cache_stats"] is None, status
    assert status["healthy"] is True, status
    assert ok(client.get("/kms/config"))["cache_enabled"] is False
    summary = ok(client.get("/kms/service-status"))["config_summary"]
    assert summary["enable_cache"] is False, summary
    # Everything still works without a cache.
    data_key = ok(client.post("/kms/generate-data-key", {}))
    plain = ok(client.post("/kms/decrypt", {"ciphertext_blob": data_key["ciphertext_blob"]}))
    assert plain["plaintext"] == data_key["plaintext_key"]
