"""The S3 bucket and bucket-encryption routes through ``curl --aws-sigv4``, as the README shows.

curl 7.x signs S3 requests its own way: no ``x-amz-content-sha256`` header, and a valueless
``?encryption`` signed without ``=``. The server accepts both (the body hash is still signed), and
these tests keep it that way.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import uuid

ENCRYPTION_XML = (
    '<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm>"
    "<KMSMasterKeyID>{key}</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule>"
    "</ServerSideEncryptionConfiguration>"
)


def curl_s3(curl: str, server, credentials, method: str, target: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> tuple[int, str]:
    command = [
        curl, "--silent", "--show-error", "--max-time", "30",
        "--aws-sigv4", "aws:amz:us-east-1:s3",
        "--user", f"{credentials.access_key}:{credentials.secret_key}",
        "--request", method, "--write-out", "\n%{http_code}",
    ]
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    if body:
        command += ["--data-binary", "@-"]
    done = subprocess.run(command + [f"{server.url}{target}"], input=body, capture_output=True,
                          check=True, timeout=60)
    text, _, status = done.stdout.decode().rpartition("\n")
    return int(status), text


def test_buckets_and_encryption_through_curl(tools, server, root_credentials, new_key):
    key_id = new_key()
    bucket = f"curl-{uuid.uuid4().hex[:12]}"
    xml = ENCRYPTION_XML.format(key=key_id).encode()
    md5 = base64.b64encode(hashlib.md5(xml).digest()).decode()

    assert curl_s3(tools.curl, server, root_credentials, "PUT", f"/{bucket}")[0] == 200
    status, listing = curl_s3(tools.curl, server, root_credentials, "GET", "/")
    assert status == 200 and f"<Name>{bucket}</Name>" in listing

    status, text = curl_s3(tools.curl, server, root_credentials, "PUT", f"/{bucket}?encryption", xml,
                           {"Content-MD5": md5})
    assert status == 200, text
    status, text = curl_s3(tools.curl, server, root_credentials, "GET", f"/{bucket}?encryption")
    assert status == 200 and f"<KMSMasterKeyID>{key_id}</KMSMasterKeyID>" in text, text

    status, text = curl_s3(tools.curl, server, root_credentials, "PUT", f"/{bucket}?encryption", xml)
    assert status == 400 and "<Code>InvalidRequest</Code>" in text, text
    status, text = curl_s3(tools.curl, server, root_credentials, "PUT", f"/{bucket}?encryption", xml,
                           {"Content-MD5": base64.b64encode(hashlib.md5(b"x").digest()).decode()})
    assert status == 400 and "<Code>BadDigest</Code>" in text, text

    assert curl_s3(tools.curl, server, root_credentials, "DELETE", f"/{bucket}?encryption")[0] == 204
    status, text = curl_s3(tools.curl, server, root_credentials, "GET", f"/{bucket}?encryption")
    assert status == 404 and "ServerSideEncryptionConfigurationNotFoundError" in text, text
    assert curl_s3(tools.curl, server, root_credentials, "HEAD", f"/{bucket}")[0] == 200
    assert curl_s3(tools.curl, server, root_credentials, "DELETE", f"/{bucket}")[0] == 204
    status, text = curl_s3(tools.curl, server, root_credentials, "GET", f"/{bucket}?encryption")
    assert status == 404 and "<Code>NoSuchBucket</Code>" in text, text


def test_a_curl_request_with_a_wrong_secret_is_refused(tools, server, root_credentials):
    class Wrong:
        access_key = root_credentials.access_key
        secret_key = "not-the-secret"
    status, text = curl_s3(tools.curl, server, Wrong, "GET", "/")
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in text, text
