"""The integration guide's JavaScript, run as the guide runs it.

js/kms_client.mjs holds the guide's `createSignedRequest` and `callKMSAPI` verbatim except for
one line: the guide passes `body: ''` on GET, which fetch refuses, so the copy passes no body on
GET (API.md §1 allows exactly this change). The route tests of the other files already run
through it; these tests follow the guide's own sequences and check what its request looks like
on the wire.
"""

from __future__ import annotations

import base64

from conftest import DEFAULT_KEY
from kms_clients import check_metadata, expect_error, local_config, ok


def test_the_guides_request_uses_a_double_slash_url_and_signs_only_x_amz_date(clients, server):
    js = clients.make("js", server)
    resp = js.get("/kms/service-status")
    assert ok(resp)["status"] == "Running"
    assert resp.url == f"{server.url}//rustfs/admin/v3/kms/service-status", resp.url
    authorization = resp.sent_headers["Authorization"]
    assert "SignedHeaders=x-amz-date," in authorization, authorization
    assert "/us-east-1/execute-api/aws4_request" in authorization, authorization


def test_get_carries_no_body_and_post_carries_the_json(clients, server, js_runner):
    js = clients.make("js", server)
    reply = js_runner.request(js._command("call", method="GET", path="/kms/keys?limit=1"))
    assert reply["ok"], reply
    assert reply["exchanges"][0]["request_body_length"] is None
    reply = js_runner.request(js._command("call", method="POST", path="/kms/keys",
                                          body={"Description": "js"}))
    assert reply["ok"], reply
    assert reply["exchanges"][0]["request_body_length"] == len('{"Description":"js"}')


def test_the_guides_initialize_sequence_works_on_a_self_configured_server(clients, spawn_server,
                                                                          tmp_path):
    # KMSServiceManager.initialize('local'): configure, start, then read /kms/status.
    server = spawn_server("js-init")
    js = clients.make("js", server)
    configured = ok(js.post("/kms/configure", local_config(tmp_path / "keys")))
    assert configured["success"] is True, configured
    started = ok(js.post("/kms/start"))
    assert started["success"] is True and started["status"] == "Running", started
    status = ok(js.get("/kms/status"))
    # KMSServiceManager.checkHealth() reads exactly this field.
    assert status["healthy"] is True, status


def test_the_guides_key_manager_workflow(clients, server):
    js = clients.make("js", server)
    # KMSKeyManager.createApplicationKey: the guide adds created_by and created_at tags.
    tags = {"name": "app-key", "created_by": "frontend-app",
            "created_at": "2024-09-19T07:10:42.012Z"}
    created = ok(js.post("/kms/keys", {"KeyUsage": "ENCRYPT_DECRYPT",
                                       "Description": "应用主密钥", "Tags": tags}))
    key_id = created["key_id"]
    details = ok(js.get(f"/kms/keys/{key_id}"))
    check_metadata(details["key_metadata"], key_id=key_id, tags=tags, description="应用主密钥")

    # FileEncryptionManager.encryptFile / decryptFile with the guide's context shape.
    context = {"file_name": "report.pdf", "file_size": "52341", "file_type": "application/pdf",
               "user_id": "user123", "upload_session": 1733328000123}
    data_key = ok(js.post("/kms/generate-data-key", {"key_id": key_id, "key_spec": "AES_256",
                                                     "encryption_context": context}))
    assert len(base64.b64decode(data_key["plaintext_key"])) == 32
    plain = ok(js.post("/kms/decrypt", {"ciphertext_blob": data_key["ciphertext_blob"],
                                        "encryption_context": context}))
    assert plain["plaintext"] == data_key["plaintext_key"] and plain["key_id"] == key_id

    # KMSKeyManager.safeDeleteKey, then the guide's cancel example.
    deleted = ok(js.delete("/kms/keys/delete", {"key_id": key_id, "pending_window_in_days": 7}))
    assert deleted["key_id"] == key_id and deleted["pending_window_in_days"] == 7
    cancelled = ok(js.post("/kms/keys/cancel-deletion", {"key_id": key_id}))
    check_metadata(cancelled["key_metadata"], deletion_date=None, key_state="Enabled")


def test_the_guides_pagination_loop_lists_every_key_once(clients, spawn_server):
    server = spawn_server("js-pages")
    fast = clients.make("botocore", server)
    created = {ok(fast.post("/kms/keys", {"Tags": {"name": f"k{i}"}}))["key_id"]
               for i in range(7)}
    js = clients.make("js", server)

    reply, pages = js.list_all("3")
    assert reply["ok"], reply
    ids = [entry["key_id"] for entry in reply["data"]]
    assert sorted(ids) == sorted(created | {DEFAULT_KEY}), ids
    assert len(pages) == 3 and all(page.status == 200 for page in pages), pages
    assert "marker=" in pages[1].url and "limit=3" in pages[1].url, pages[1].url

    reply, pages = js.list_all("50")
    assert len(reply["data"]) == 8 and len(pages) == 1, reply


def test_call_kms_api_throws_the_servers_message_on_errors(clients, server):
    js = clients.make("js", server)
    resp = js.get("/kms/keys/00000000-0000-4000-8000-000000000000")
    error = expect_error(resp, 404, "KeyNotFound")
    assert resp.thrown == f"KMS API Error: {error['message']}"
