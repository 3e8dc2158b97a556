"""What the server's log (stderr) may and may not hold: API.md §3 and §11."""

from __future__ import annotations

import base64
import time
import uuid

from kms_clients import expect_error, ok


def test_logs_name_each_request_but_hold_no_secrets(client, server, new_key, root_credentials,
                                                    users):
    secret_value = f"ctx-{uuid.uuid4().hex}"
    secret_description = f"body-{uuid.uuid4().hex}"
    key_id = new_key()
    context = {"label": secret_value}

    generated = client.post("/kms/generate-data-key",
                            {"key_id": key_id, "encryption_context": context})
    data_key = ok(generated)
    plain = ok(client.post("/kms/decrypt", {"ciphertext_blob": data_key["ciphertext_blob"],
                                            "encryption_context": context}))
    expect_error(client.post("/kms/keys", {"Description": secret_description, "Bogus": 1}),
                 400, "InvalidRequest")
    time.sleep(0.2)
    log = server.log_text()

    request_id = generated.headers["x-request-id"]
    assert request_id in log, f"no log line names request {request_id}"
    key_bytes = base64.b64decode(data_key["plaintext_key"])
    for name, secret in {
        "plaintext_key": data_key["plaintext_key"],
        "plaintext": plain["plaintext"],
        "plaintext key as hex": key_bytes.hex(),
        "root secret key": root_credentials.secret_key,
        "encryption context value": secret_value,
        "request body value": secret_description,
        **{f"secret key of {action}": c.secret_key for action, c in users.items()},
    }.items():
        assert secret not in log, f"the server log contains the {name}"
