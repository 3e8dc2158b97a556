"""Service lifecycle (API.md §4): configure, start, stop, reconfigure, service-status, and what
key routes answer in each state. Each test gets its own server, since it changes the state."""

from __future__ import annotations

import re
import stat
import uuid

import pytest

from conftest import DEFAULT_KEY, KmsServer, free_port
from kms_clients import Credentials, expect_error, local_config, ok

GUIDE_SUMMARY = {
    "backend_type": "local",
    "default_key_id": DEFAULT_KEY,
    "timeout_seconds": 30,
    "retry_attempts": 3,
    "enable_cache": True,
}

# Key and crypto routes (§5, §6, §8) with bodies that are valid, so only the state can refuse.
KEY_CALLS = [
    ("POST", "/kms/keys", {"Description": "x"}),
    ("POST", "/kms/create-key", {}),
    ("GET", "/kms/keys", None),
    ("GET", "/kms/list-keys", None),
    ("GET", "/kms/keys/{key}", None),
    ("GET", "/kms/describe-key?keyId={key}", None),
    ("POST", "/kms/keys/enable", {"key_id": "{key}"}),
    ("POST", "/kms/keys/disable", {"key_id": "{key}"}),
    ("POST", "/kms/keys/rotate", {"key_id": "{key}"}),
    ("POST", "/kms/keys/rotation", {"key_id": "{key}", "enabled": True}),
    ("DELETE", "/kms/keys/delete", {"key_id": "{key}"}),
    ("POST", "/kms/keys/cancel-deletion", {"key_id": "{key}"}),
    ("POST", "/kms/generate-data-key", {"key_id": "{key}"}),
    ("POST", "/kms/decrypt", {"ciphertext_blob": "{blob}"}),
]


def key_routes_answer(client, status: int, code: str, key_id: str, blob: str) -> None:
    for method, path, body in KEY_CALLS:
        path = path.replace("{key}", key_id)
        if body is None:
            resp = client.call(method, path)
        else:
            filled = {k: v.replace("{key}", key_id).replace("{blob}", blob)
                      if isinstance(v, str) else v for k, v in body.items()}
            resp = client.call(method, path, filled)
        expect_error(resp, status, code)


def service_status(client) -> dict:
    body = ok(client.get("/kms/service-status"))
    assert set(body) >= {"status", "backend_type", "healthy", "config_id", "config_summary"}, body
    assert body["status"] in {"NotConfigured", "Stopped", "Running", "Error"}, body
    return body


def check_success(body: dict, **expected) -> dict:
    assert body["success"] is True, body
    assert isinstance(body["message"], str) and body["message"], body
    for name, value in expected.items():
        assert body[name] == value, body
    return body


@pytest.fixture
def foreign_blob(admin) -> str:
    """A real ciphertext blob (from the session server) for routes that need one."""
    return ok(admin.post("/kms/generate-data-key", {}))["ciphertext_blob"]


# ---- first start ------------------------------------------------------------------------------


def test_first_start_without_flags_is_running_with_the_default_key(kind, clients, spawn_server,
                                                                   tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    # No --data-dir: the default ./data is used. (--address only keeps port 9000 free.)
    server = spawn_server("first", pass_data_dir=False, cwd=cwd)
    client = clients.make(kind, server)

    status = service_status(client)
    assert status["status"] == "Running" and status["healthy"] is True, status
    assert status["backend_type"] == "local", status
    assert isinstance(status["config_id"], str) and status["config_id"], status
    assert status["config_summary"] == GUIDE_SUMMARY, status

    assert ok(client.get("/kms/config")) == {
        "backend": "local",
        "cache_enabled": True,
        "cache_max_keys": 1000,
        "cache_ttl_seconds": 600,
        "default_key_id": DEFAULT_KEY,
    }
    meta = ok(client.get(f"/kms/keys/{DEFAULT_KEY}"))["key_metadata"]
    assert meta["key_id"] == DEFAULT_KEY and meta["key_state"] == "Enabled", meta

    data = cwd / "data"
    assert data.is_dir(), "no ./data directory after a start without --data-dir"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700, oct(data.stat().st_mode)


def test_without_root_credentials_they_are_generated_once_and_kept_private(kind, clients,
                                                                          spawn_server):
    server = spawn_server("gencreds", credentials=None)
    printed = server.log_text()
    access = re.search(r"access[ _-]?key\W+([A-Za-z0-9+/=_-]{8,})", printed, re.IGNORECASE)
    secret = re.search(r"secret[ _-]?key\W+([A-Za-z0-9+/=_-]{16,})", printed, re.IGNORECASE)
    assert access and secret, f"no generated credentials printed at first start:\n{printed}"
    credentials = Credentials(access.group(1), secret.group(1))
    client = clients.make(kind, server, credentials)
    assert service_status(client)["status"] == "Running"

    holders = [path for path in server.data_dir.rglob("*")
               if path.is_file() and credentials.secret_key.encode() in path.read_bytes()]
    assert holders, "the generated secret key is not stored in the data directory"
    for path in holders:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is not 0600"

    server.restart()
    assert printed.count(credentials.secret_key) == 1
    assert server.log_text().count(credentials.secret_key) == 1, "credentials printed again"
    assert service_status(client)["status"] == "Running"


def test_no_auto_configure_starts_not_configured(kind, clients, spawn_server, foreign_blob):
    server = spawn_server("nac", args=("--no-auto-configure",))
    client = clients.make(kind, server)

    status = service_status(client)
    assert status["status"] == "NotConfigured", status
    assert status["healthy"] is False, status
    assert status["backend_type"] is None and status["config_id"] is None, status
    assert status["config_summary"] is None, status

    config = ok(client.get("/kms/config"))
    assert set(config) >= {"backend", "cache_enabled", "cache_max_keys", "cache_ttl_seconds",
                           "default_key_id"}, config
    assert config["backend"] is None and config["default_key_id"] is None, config
    monitoring = ok(client.get("/kms/status"))
    assert monitoring["backend_status"] == "not_configured", monitoring
    assert monitoring["healthy"] is False, monitoring

    expect_error(client.post("/kms/start"), 409, "ServiceNotConfigured")
    key_routes_answer(client, 409, "ServiceNotConfigured", DEFAULT_KEY, foreign_blob)
    assert service_status(client)["status"] == "NotConfigured"


# ---- the guide's sequence ---------------------------------------------------------------------


def test_the_guides_configure_then_start_sequence(kind, clients, spawn_server, tmp_path,
                                                  foreign_blob):
    server = spawn_server("guide", args=("--no-auto-configure",))
    client = clients.make(kind, server)
    key_directory = tmp_path / "guide-keys"

    configured = check_success(ok(client.post("/kms/configure", local_config(key_directory))))
    assert isinstance(configured["config_id"], str) and configured["config_id"], configured

    status = service_status(client)
    assert status["status"] == "Stopped" and status["healthy"] is False, status
    assert status["config_id"] == configured["config_id"], status
    assert status["backend_type"] == "local" and status["config_summary"] == GUIDE_SUMMARY
    assert ok(client.get("/kms/status"))["backend_status"] == "stopped"
    key_routes_answer(client, 409, "ServiceNotRunning", DEFAULT_KEY, foreign_blob)

    check_success(ok(client.post("/kms/start")), status="Running")
    status = service_status(client)
    assert status["status"] == "Running" and status["healthy"] is True, status
    monitoring = ok(client.get("/kms/status"))
    assert monitoring["healthy"] is True and monitoring["backend_status"] == "healthy"
    meta = ok(client.get(f"/kms/keys/{DEFAULT_KEY}"))["key_metadata"]
    assert meta["key_state"] == "Enabled", meta
    assert key_directory.is_dir() and any(key_directory.iterdir()), "no key files written"


def test_start_and_stop_are_idempotent_and_gate_the_key_routes(kind, clients, spawn_server):
    server = spawn_server("startstop")
    client = clients.make(kind, server)
    key_id = ok(client.post("/kms/keys", {}))["key_id"]
    data_key = ok(client.post("/kms/generate-data-key", {"key_id": key_id}))

    check_success(ok(client.post("/kms/start")), status="Running")
    check_success(ok(client.post("/kms/stop")), status="Stopped")
    check_success(ok(client.post("/kms/stop")), status="Stopped")
    status = service_status(client)
    assert status["status"] == "Stopped" and status["healthy"] is False, status
    monitoring = ok(client.get("/kms/status"))
    assert monitoring["backend_status"] == "stopped" and monitoring["healthy"] is False

    key_routes_answer(client, 409, "ServiceNotRunning", key_id, data_key["ciphertext_blob"])
    # Order (§3): validation before service state, service state before key lookup.
    expect_error(client.post("/kms/keys/enable", {"key_id": key_id, "bogus": 1}),
                 400, "InvalidRequest")
    expect_error(client.post("/kms/keys/enable", {"key_id": str(uuid.uuid4())}),
                 409, "ServiceNotRunning")

    check_success(ok(client.post("/kms/start")), status="Running")
    plain = ok(client.post("/kms/decrypt", {"ciphertext_blob": data_key["ciphertext_blob"]}))
    assert plain["plaintext"] == data_key["plaintext_key"]


# ---- configure and reconfigure ----------------------------------------------------------------


def test_configure_on_a_configured_service_keeps_the_run_state(kind, clients, spawn_server,
                                                               tmp_path):
    server = spawn_server("keepstate")
    client = clients.make(kind, server)
    first = service_status(client)

    body = check_success(ok(client.post(
        "/kms/configure", local_config(tmp_path / "k2", default_key_id="second-key"))))
    status = service_status(client)
    assert status["status"] == "Running", status
    assert status["config_id"] == body["config_id"] != first["config_id"], status
    assert status["config_summary"]["default_key_id"] == "second-key", status
    assert ok(client.get("/kms/keys/second-key"))["key_metadata"]["key_state"] == "Enabled"
    assert ok(client.get("/kms/config"))["default_key_id"] == "second-key"

    ok(client.post("/kms/stop"))
    body = check_success(ok(client.post(
        "/kms/configure", local_config(tmp_path / "k3", default_key_id="third-key"))))
    status = service_status(client)
    assert status["status"] == "Stopped", f"configure started a stopped service: {status}"
    assert status["config_id"] == body["config_id"], status
    assert status["config_summary"]["default_key_id"] == "third-key", status


def test_reconfigure_applies_the_configuration_and_ends_running(kind, clients, spawn_server,
                                                                tmp_path):
    server = spawn_server("reconf")
    client = clients.make(kind, server)
    ok(client.post("/kms/stop"))
    config = local_config(tmp_path / "keys", default_key_id="re-key", timeout_seconds=60,
                          retry_attempts=5, enable_cache=False)

    check_success(ok(client.post("/kms/reconfigure", config)), status="Running")
    status = service_status(client)
    assert status["status"] == "Running" and status["healthy"] is True, status
    assert status["config_summary"] == {
        "backend_type": "local",
        "default_key_id": "re-key",
        "timeout_seconds": 60,
        "retry_attempts": 5,
        "enable_cache": False,
    }, status
    data_key = ok(client.post("/kms/generate-data-key", {}))
    assert data_key["key_id"] == "re-key"


def test_repeated_configure_adopts_the_existing_default_key(kind, clients, spawn_server,
                                                            tmp_path):
    server = spawn_server("adopt", args=("--no-auto-configure",))
    client = clients.make(kind, server)
    config = local_config(tmp_path / "keys")
    ok(client.post("/kms/configure", config))
    ok(client.post("/kms/start"))
    before = ok(client.get(f"/kms/keys/{DEFAULT_KEY}"))["key_metadata"]
    data_key = ok(client.post("/kms/generate-data-key", {}))

    check_success(ok(client.post("/kms/configure", config)))
    check_success(ok(client.post("/kms/reconfigure", config)), status="Running")
    assert ok(client.get(f"/kms/keys/{DEFAULT_KEY}"))["key_metadata"] == before
    plain = ok(client.post("/kms/decrypt", {"ciphertext_blob": data_key["ciphertext_blob"]}))
    assert plain["plaintext"] == data_key["plaintext_key"]


INVALID_CONFIGS = {
    "no-backend-type": {"backend_type": None},
    "unknown-backend-type": {"backend_type": "s3"},
    "no-default-key-id": {"default_key_id": None},
    "empty-default-key-id": {"default_key_id": ""},
    "default-key-id-with-slash": {"default_key_id": "a/b"},
    "default-key-id-with-space": {"default_key_id": "a b"},
    "default-key-id-257-bytes": {"default_key_id": "k" * 257},
    "timeout-0": {"timeout_seconds": 0},
    "timeout-301": {"timeout_seconds": 301},
    "timeout-as-text": {"timeout_seconds": "30"},
    "retry-minus-1": {"retry_attempts": -1},
    "retry-11": {"retry_attempts": 11},
    "relative-key-directory": {"key_directory": "relative/keys"},
    "enable-cache-as-text": {"enable_cache": "yes"},
    "cache-ttl-as-text": {"cache_ttl_seconds": "600"},
    "unknown-field": {"backend": "local"},
    "vault-without-address": {"backend_type": "vault", "key_directory": None,
                              "auth_method": {"token": "t"}},
    "vault-unknown-auth-method": {"backend_type": "vault", "key_directory": None,
                                  "address": "http://127.0.0.1:1",
                                  "auth_method": {"password": "p"}},
}


@pytest.fixture(scope="module")
def config_server(tools, tmp_path_factory, root_credentials):
    """One server for the refused configurations, which must all leave it as it was."""
    instance = KmsServer(tools.server_bin, tmp_path_factory.mktemp("config"), "config",
                         credentials=root_credentials)
    instance.start()
    yield instance
    instance.stop()


@pytest.mark.parametrize("change", INVALID_CONFIGS.values(), ids=INVALID_CONFIGS.keys())
@pytest.mark.parametrize("route", ["/kms/configure", "/kms/reconfigure"])
def test_an_invalid_configuration_is_refused_and_changes_nothing(kind, clients, config_server,
                                                                 tmp_path, route, change):
    client = clients.make(kind, config_server)
    before = service_status(client)
    config = {k: v for k, v in {**local_config(tmp_path / "keys"), **change}.items()
              if v is not None}
    expect_error(client.post(route, config), 400, "InvalidRequest")
    assert service_status(client) == before
    assert not (tmp_path / "keys").exists(), "a refused configuration created its key directory"


def test_an_unreachable_vault_is_refused_and_the_previous_configuration_serves(
    kind, clients, spawn_server
):
    server = spawn_server("vault-down")
    client = clients.make(kind, server)
    before = service_status(client)
    token = f"s.e2e-token-{uuid.uuid4().hex}"
    config = {
        "backend_type": "vault",
        "address": f"http://127.0.0.1:{free_port()}",
        "auth_method": {"token": token},
        "mount_path": "transit",
        "kv_mount": "secret",
        "key_path_prefix": "rustfs/kms/keys",
        "default_key_id": "rustfs-master",
        "timeout_seconds": 2,
        "retry_attempts": 0,
    }
    for route in ("/kms/configure", "/kms/reconfigure"):
        error = expect_error(client.post(route, config), 503, "BackendUnavailable")
        assert token not in error["message"]
        assert service_status(client) == before
    assert ok(client.post("/kms/generate-data-key", {}))["key_id"] == DEFAULT_KEY
    assert token not in server.log_text(), "the Vault token was logged"
