"""Secrets at rest and in logs (issue 7; API.md §4, §6, §11; README "The root secret").

On servers of their own, the tests do everything a deployment does with secrets (create keys,
generate data keys of both sizes, decrypt, fail to decrypt, rotate, change states, configure,
buckets and their encryption, signed requests by several identities, bad signatures, restarts
with both log formats at debug level), then scan:

- no data key (each ``plaintext_key`` received: base64, hex and raw bytes), no root secret
  (the contents of ``data/root.secret`` and the bytes it decodes to, or ``KMS_ROOT_SECRET``), no
  secret key of any identity appears in the server's log (stderr), in ``audit.log``, or in any
  file of the data directory other than ``root.secret`` and ``credentials.toml``;
- ``root.secret``, ``credentials.toml``, ``kms-config.json``, ``keys/*.key`` and
  ``buckets/*.json`` are mode 0600, the data directory, ``keys/`` and ``buckets/`` 0700, and no
  other file is readable by group or others; this holds with a umask of 000.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import uuid
from pathlib import Path

import pytest

from conftest import random_credentials
from hardening import admin, files_under, forms, mode_of, s3raw, write_identities
from kms_clients import Credentials, expect_error, local_config, ok
from s3_clients import config, config_xml

SECRET_FILES = ("root.secret", "credentials.toml")


@contextlib.contextmanager
def umask(mask: int):
    """The server inherits the umask; file modes must not depend on it."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def scan(places: dict[str, bytes], secret_values: dict[str, bytes | str]) -> list[str]:
    found = []
    for label, value in secret_values.items():
        for form in forms(value):
            for place, content in places.items():
                if form in content:
                    found.append(f"{label} ({form[:12]!r}...) appears in {place}")
    return found


def readable_places(server) -> dict[str, bytes]:
    """The log and every file of the data directory except the two that hold secrets by design."""
    places = {f"server log {server.log_path.name}": server.log_path.read_bytes()}
    for path in files_under(server.data_dir):
        if path.relative_to(server.data_dir).as_posix() not in SECRET_FILES:
            places[str(path.relative_to(server.data_dir))] = path.read_bytes()
    assert "audit.log" in places, f"no audit.log in {sorted(places)}"
    return places


def check_modes(data_dir: Path) -> None:
    problems = []
    for directory in (data_dir, data_dir / "keys", data_dir / "buckets"):
        if mode_of(directory) != 0o700:
            problems.append(f"{directory}: {oct(mode_of(directory))}, expected 0o700")
    secret_files = [data_dir / "root.secret", data_dir / "kms-config.json"]
    secret_files += sorted((data_dir / "keys").glob("*.key"))
    secret_files += sorted((data_dir / "buckets").glob("*.json"))
    if (data_dir / "credentials.toml").exists():
        secret_files.append(data_dir / "credentials.toml")
    assert list((data_dir / "keys").glob("*.key")) and list((data_dir / "buckets").glob("*.json"))
    for path in secret_files:
        if mode_of(path) != 0o600:
            problems.append(f"{path}: {oct(mode_of(path))}, expected 0o600")
    for path in files_under(data_dir):
        if mode_of(path) & 0o077:
            problems.append(f"{path}: {oct(mode_of(path))} is readable by group or others")
    for path in data_dir.rglob("*"):
        if path.is_dir() and mode_of(path) & 0o077:
            problems.append(f"{path}/: {oct(mode_of(path))} is open to group or others")
    assert not problems, "\n".join(problems)


def exercise(server, users: dict[str, Credentials], tmp_path: Path) -> list[bytes]:
    """Everything a deployment does with secrets; returns every data key received (raw)."""
    client = admin(server)
    data_keys: list[bytes] = []

    def remember(answer: dict) -> dict:
        raw = base64.b64decode(answer["plaintext_key"])
        assert len(raw) in (16, 32), answer
        data_keys.append(raw)
        return answer

    keys = [ok(client.post("/kms/keys", {"Description": f"secret scan {i}",
                                         "Tags": {"name": f"scan-{i}"}}))["key_id"]
            for i in range(3)]
    context = {"bucket": "photos", "object_key": "2024/cat.jpg", "size": 1234}
    blobs = []
    for key_id in keys + [None]:
        for spec in ("AES_256", "AES_128"):
            body = {"key_spec": spec, "encryption_context": context}
            if key_id:
                body["key_id"] = key_id
            blobs.append(remember(ok(client.post("/kms/generate-data-key", body))))
    for blob in blobs:
        plain = ok(client.post("/kms/decrypt", {"ciphertext_blob": blob["ciphertext_blob"],
                                                 "encryption_context": context}))
        assert plain["plaintext"] == blob["plaintext_key"]
        expect_error(client.post("/kms/decrypt", {"ciphertext_blob": blob["ciphertext_blob"],
                                                  "encryption_context": {"bucket": "other"}}),
                     400, "DecryptionFailed")
    ok(client.post("/kms/keys/rotate", {"key_id": keys[0]}))
    blobs.append(remember(ok(client.post("/kms/generate-data-key", {"key_id": keys[0]}))))
    ok(client.post("/kms/keys/disable", {"key_id": keys[1]}))
    expect_error(client.post("/kms/decrypt", {"ciphertext_blob": blobs[2]["ciphertext_blob"],
                                              "encryption_context": context}),
                 400, "InvalidKeyState")
    ok(client.post("/kms/keys/enable", {"key_id": keys[1]}))
    ok(client.delete("/kms/keys/delete", {"key_id": keys[2]}))
    ok(client.post("/kms/keys/cancel-deletion", {"key_id": keys[2]}))
    ok(client.post("/kms/keys/rotation", {"key_id": keys[1], "enabled": True}))
    ok(client.post("/kms/clear-cache"))
    ok(client.post("/kms/reconfigure", local_config(server.data_dir / "keys")))

    # Other identities: allowed and denied calls, and a signature with a wrong secret.
    minter = admin(server, users["minter"])
    blobs.append(remember(ok(minter.post("/kms/generate-data-key", {"key_id": keys[0]}))))
    expect_error(minter.get("/kms/keys"), 403, "AccessDenied")
    forger = admin(server, Credentials(users["minter"].access_key, "a-wrong-secret-for-minter"))
    expect_error(forger.post("/kms/generate-data-key", {}), 401, "AccessDenied")
    expect_error(admin(server, Credentials(server.credentials.access_key, "wrong")).get(
        "/kms/keys"), 401, "AccessDenied")

    # Buckets (the S3 API and the JSON mirror).
    s3 = s3raw(server)
    bucket = f"secrets-{uuid.uuid4().hex[:10]}"
    assert s3.request("PUT", f"/{bucket}").status == 200
    assert s3.put_encryption(bucket, config_xml("aws:kms", keys[0], True)).status == 200
    assert s3.request("GET", f"/{bucket}", "encryption").status == 200
    ok(client.call("PUT", f"/api/v1/bucket-encryption/{bucket}", config("aws:kms", keys[1])))
    ok(client.get("/api/v1/buckets"))
    for blob in blobs:
        client.post("/kms/decrypt", {"ciphertext_blob": blob["ciphertext_blob"]})
    return data_keys


@pytest.fixture
def identities(tmp_path) -> dict[str, Credentials]:
    users = {"minter": random_credentials("minter"), "reader": random_credentials("reader")}
    write_identities(tmp_path / "identities.toml", {
        "minter": (users["minter"], ("kms:GenerateDataKey",)),
        "reader": (users["reader"], ("admin:ServerInfo",)),
    })
    return users


def test_no_data_key_root_secret_or_secret_key_in_logs_or_data_files(spawn_server, tmp_path,
                                                                      identities):
    args = ("--identities", str(tmp_path / "identities.toml"), "--log-level", "debug")
    with umask(0):
        server = spawn_server("secrets", args=args)
    data_keys = exercise(server, identities, tmp_path)

    # Again after a restart, with JSON logs (the start-up path reads every secret).
    server.args = args + ("--log-format", "json")
    with umask(0):
        server.restart()
    client = admin(server)
    data_keys += [base64.b64decode(ok(client.post("/kms/generate-data-key", {}))["plaintext_key"])]
    server.stop()

    root_text = (server.data_dir / "root.secret").read_text().strip()
    root_bytes = base64.b64decode(root_text)
    assert len(root_bytes) >= 32
    secret_values: dict[str, bytes | str] = {
        "root.secret (as stored)": root_text,
        "root.secret (decoded)": root_bytes,
        "root secret key": server.credentials.secret_key,
    }
    for name, credentials in identities.items():
        secret_values[f"secret key of {name}"] = credentials.secret_key
    for index, data_key in enumerate(data_keys):
        secret_values[f"data key #{index} ({len(data_key)} bytes)"] = data_key
    found = scan(readable_places(server), secret_values)
    assert not found, "\n".join(found[:20])
    check_modes(server.data_dir)


def test_a_root_secret_from_the_environment_is_nowhere_in_the_data_directory(spawn_server,
                                                                            tmp_path, identities):
    root_secret = "env-root-secret-" + secrets.token_urlsafe(32)
    with umask(0):
        server = spawn_server("env-secret", env={"KMS_ROOT_SECRET": root_secret}, args=(
            "--identities", str(tmp_path / "identities.toml"), "--log-level", "debug"))
    data_keys = exercise(server, identities, tmp_path)
    with umask(0):
        server.restart()
    blob = ok(admin(server).post("/kms/generate-data-key", {}))
    data_keys.append(base64.b64decode(blob["plaintext_key"]))
    server.stop()
    assert not (server.data_dir / "root.secret").exists(), (
        "KMS_ROOT_SECRET is set, yet a root.secret file was written")
    secret_values: dict[str, bytes | str] = {"KMS_ROOT_SECRET": root_secret,
                                            "root secret key": server.credentials.secret_key}
    for name, credentials in identities.items():
        secret_values[f"secret key of {name}"] = credentials.secret_key
    secret_values.update({f"data key #{i}": k for i, k in enumerate(data_keys)})
    found = scan(readable_places(server), secret_values)
    assert not found, "\n".join(found[:20])
    for directory in (server.data_dir, server.data_dir / "keys", server.data_dir / "buckets"):
        assert mode_of(directory) == 0o700, (directory, oct(mode_of(directory)))


def test_generated_root_credentials_are_private_and_shown_once(spawn_server):
    with umask(0):
        server = spawn_server("generated", credentials=None)
    text = (server.data_dir / "credentials.toml").read_text()
    secret_key = next(line.split("=", 1)[1].strip().strip('"') for line in text.splitlines()
                      if line.strip().startswith("secret_key"))
    access_key = next(line.split("=", 1)[1].strip().strip('"') for line in text.splitlines()
                      if line.strip().startswith("access_key"))
    server.credentials = Credentials(access_key, secret_key)
    client = admin(server)
    ok(client.post("/kms/generate-data-key", {}))
    assert s3raw(server).request("PUT", f"/generated-{uuid.uuid4().hex[:10]}").status == 200
    with umask(0):
        server.restart()
    ok(client.get("/kms/status"))
    server.stop()

    assert mode_of(server.data_dir / "credentials.toml") == 0o600
    log = server.log_path.read_bytes()
    assert log.count(secret_key.encode()) == 1, (
        f"the generated secret key should be printed once on stderr, found "
        f"{log.count(secret_key.encode())} times")
    places = readable_places(server)
    places.pop(f"server log {server.log_path.name}")
    found = scan(places, {"generated secret key": secret_key})
    assert not found, "\n".join(found)
    check_modes(server.data_dir)
