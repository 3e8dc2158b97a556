"""Shared plumbing of the end-to-end suite: the server processes and the client fixtures.

Run it with ``cargo xtask e2e`` (which builds the release server, installs the clients and
passes their paths in ``KMS_E2E_*`` variables). Running pytest from the venv directly also works
once ``cargo xtask e2e`` has installed everything: the same paths are then guessed.

One server (the ``server`` fixture) serves the whole session, on a free 127.0.0.1 port, with a
fresh data directory and an identity file of one user per action. Tests that need a server in a
particular state (not configured, first start, restarts, stopped service) get their own from
``spawn_server``. Every server's stderr (its log) goes to ``<name>.log`` next to its data
directory, for the "no secrets in logs" checks.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from kms_clients import (
    BotocoreClient,
    Credentials,
    CurlClient,
    JsClient,
    JsRunner,
    ok,
)
from s3_clients import AwsCli, JsS3, S3Raw, empty_bucket, unique_bucket

REPO = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).resolve().parent

# The actions of API.md §2; the session server's identity file has one user holding each alone.
ACTIONS = (
    "admin:ServerInfo",
    "kms:Configure",
    "kms:CreateKey",
    "kms:ManageKey",
    "kms:DeleteKey",
    "kms:GenerateDataKey",
    "kms:Decrypt",
)

DEFAULT_KEY = "default-master-key"


@dataclass(frozen=True)
class Tools:
    server_bin: Path
    node: str
    curl: str
    venv_bin: Path
    js_dir: Path


def _tools() -> Tools:
    env = os.environ.get
    return Tools(
        server_bin=Path(env("KMS_E2E_SERVER_BIN") or REPO / "target" / "release" / "kms-server"),
        node=env("KMS_E2E_NODE") or shutil.which("node") or "node",
        curl=env("KMS_E2E_CURL") or shutil.which("curl") or "curl",
        venv_bin=Path(env("KMS_E2E_VENV_BIN") or REPO / "target" / "e2e" / "venv" / "bin"),
        js_dir=SUITE / "js",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def random_credentials(prefix: str) -> Credentials:
    return Credentials(f"{prefix}-{secrets.token_hex(4)}", secrets.token_urlsafe(30))


class KmsServer:
    """One ``kms-server`` process; ``restart`` keeps the port, data directory and arguments."""

    def __init__(self, binary: Path, workdir: Path, name: str, *, credentials: Credentials | None,
                 args: tuple[str, ...] = (), data_dir: Path | None = None,
                 pass_data_dir: bool = True, cwd: Path | None = None, env: dict | None = None):
        self.binary = binary
        self.name = name
        self.credentials = credentials
        self.args = args
        self.workdir = workdir
        self.data_dir = data_dir or workdir / f"{name}-data"
        self.pass_data_dir = pass_data_dir
        self.cwd = cwd or workdir
        self.extra_env = env or {}
        self.log_path = workdir / f"{name}.log"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.exit_codes: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [str(self.binary), "--address", f"127.0.0.1:{self.port}"]
        if self.pass_data_dir:
            command += ["--data-dir", str(self.data_dir)]
        return command + list(self.args)

    def environment(self) -> dict[str, str]:
        # A developer's own KMS_* settings must not leak into the servers under test.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
        env["RUST_BACKTRACE"] = "1"
        if self.credentials is not None:
            env["KMS_ACCESS_KEY"] = self.credentials.access_key
            env["KMS_SECRET_KEY"] = self.credentials.secret_key
        return {**env, **self.extra_env}

    def start(self, timeout: float = 30) -> "KmsServer":
        assert self.process is None, f"{self.name} is already running"
        with open(self.log_path, "ab") as log:
            log.write(f"===== e2e: starting {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(), cwd=self.cwd, env=self.environment(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise AssertionError(
                    f"{self.name} exited with {code} before answering /health:\n{self.log_tail()}"
                )
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/health")
                status = connection.getresponse().status
                connection.close()
                if status == 200:
                    return
                last = f"status {status}"
            except OSError as err:
                last = str(err)
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"{self.name}: GET /health not 200 within {timeout}s ({last})")

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then wait; a server that ignores SIGTERM is killed and reported."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM")
        self.exit_codes.append(code)
        return code

    def restart(self) -> "KmsServer":
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class ClientFactory:
    """Makes clients of any kind for any server and identity."""

    KINDS = ("curl", "botocore", "js")

    def __init__(self, tools: Tools, runner: JsRunner, workdir: Path):
        self.tools = tools
        self.runner = runner
        self.workdir = workdir

    def make(self, kind: str, server: KmsServer, credentials: Credentials | None = None):
        credentials = credentials or server.credentials
        if kind == "curl":
            return CurlClient(server, credentials, curl=self.tools.curl,
                              workdir=self.workdir / f"curl-{uuid.uuid4().hex[:8]}")
        if kind == "botocore":
            return BotocoreClient(server, credentials)
        if kind == "js":
            return JsClient(server, credentials, runner=self.runner)
        raise ValueError(kind)


# ---- session fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tools() -> Tools:
    found = _tools()
    if not found.server_bin.is_file():
        pytest.exit(f"no server binary at {found.server_bin}; run `cargo xtask e2e`", returncode=3)
    if not (found.js_dir / "node_modules").is_dir():
        pytest.exit(f"no {found.js_dir}/node_modules; run `cargo xtask e2e`", returncode=3)
    return found


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def root_credentials() -> Credentials:
    return random_credentials("e2e-root")


@pytest.fixture(scope="session")
def users() -> dict[str, Credentials]:
    """One identity per action of API.md §2, keyed by the action."""
    return {action: random_credentials(action.replace(":", "-").lower()) for action in ACTIONS}


# S3 grants (API.md §2, §9) of extra identities in the session server's identity file; they are
# kept apart from ``users`` so that the tests of the admin actions see exactly those.
S3_GRANTS = ("s3:*", "s3:GetEncryptionConfiguration")


@pytest.fixture(scope="session")
def s3_users() -> dict[str, Credentials]:
    """One identity per grant of ``S3_GRANTS``, keyed by the grant."""
    return {grant: random_credentials(grant.replace(":", "-").replace("*", "all").lower())
            for grant in S3_GRANTS}


@pytest.fixture(scope="session")
def identities_file(workdir, users, s3_users) -> Path:
    path = workdir / "identities.toml"
    entries = [
        f'[[user]]\naccess_key = "{c.access_key}"\nsecret_key = "{c.secret_key}"\n'
        f'actions = ["{action}"]\n'
        for action, c in {**users, **s3_users}.items()
    ]
    path.write_text("\n".join(entries))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def server(tools, workdir, root_credentials, identities_file):
    """The session's server: auto-configured local backend, identities loaded."""
    instance = KmsServer(
        tools.server_bin, workdir, "session", credentials=root_credentials,
        args=("--identities", str(identities_file)),
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def js_runner(tools, workdir):
    runner = JsRunner(tools.node, tools.js_dir, workdir / "node.log")
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def clients(tools, js_runner, workdir) -> ClientFactory:
    return ClientFactory(tools, js_runner, workdir / "clients")


@pytest.fixture(params=ClientFactory.KINDS)
def kind(request) -> str:
    """Each of the three clients, by name, for tests that make clients for their own servers."""
    return request.param


@pytest.fixture(params=ClientFactory.KINDS)
def client(request, clients, server):
    """The root identity on the session server, through each of the three clients."""
    return clients.make(request.param, server)


@pytest.fixture(params=("curl", "botocore"))
def raw_client(request, clients, server):
    """The clients that can send any bytes (malformed JSON, huge bodies)."""
    return clients.make(request.param, server)


@pytest.fixture(scope="session")
def admin(clients, server):
    """A fast client (botocore, root) for setting up what a test needs."""
    return clients.make("botocore", server)


@pytest.fixture
def spawn_server(tools, tmp_path, root_credentials):
    """Factory for servers of a test's own; every one is stopped at the end of the test."""
    started: list[KmsServer] = []

    def spawn(name: str = "own", *, args: tuple[str, ...] = (), start: bool = True, **kwargs):
        kwargs.setdefault("credentials", root_credentials)
        instance = KmsServer(tools.server_bin, tmp_path, name, args=args, **kwargs)
        started.append(instance)
        return instance.start() if start else instance

    yield spawn
    for instance in started:
        instance.stop()


@pytest.fixture
def new_key(admin):
    """Factory: creates a key through the admin client and returns its id."""

    def create(description: str = "e2e key", tags: dict | None = None, client=None) -> str:
        body = {"KeyUsage": "ENCRYPT_DECRYPT", "Description": description, "Tags": tags or {}}
        return ok((client or admin).post("/kms/keys", body))["key_id"]

    return create


@pytest.fixture(scope="session")
def s3_client(server, root_credentials):
    """boto3 S3 client for the session server, path-style, for the S3 tests (API.md §9)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=root_credentials.access_key,
        aws_secret_access_key=root_credentials.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


# ---- S3 (API.md §9) ---------------------------------------------------------------------------


@pytest.fixture
def make_bucket(s3_client):
    """Factory: creates a bucket on the session server (boto3, root) and returns its name; every
    bucket still there at the end of the test is emptied of objects and deleted."""
    made: list[str] = []

    def create(prefix: str = "e2e", client=None) -> str:
        name = unique_bucket(prefix)
        (client or s3_client).create_bucket(Bucket=name)
        made.append(name)
        return name

    yield create
    for name in made:
        try:
            s3_client.delete_bucket(Bucket=name)
        except ClientError as err:
            code = err.response["Error"].get("Code")
            if code == "BucketNotEmpty":
                empty_bucket(s3_client, name)
                s3_client.delete_bucket(Bucket=name)
            elif code not in ("NoSuchBucket", "404"):
                raise


@pytest.fixture
def s3_raw(server):
    """Raw SigV4-signed S3 requests (botocore ``S3SigV4Auth``, ``http.client``), root identity."""
    return S3Raw(server, server.credentials)


@pytest.fixture
def aws_cli(tools, tmp_path, server):
    """Factory for the venv's AWS CLI bound to a server (default: the session's) and identity."""
    executable = tools.venv_bin / "aws"
    if not executable.is_file():
        pytest.fail(f"no AWS CLI at {executable}; run `cargo xtask e2e`")

    def make(on=None, credentials: Credentials | None = None):
        target = on or server
        return AwsCli(executable, target, credentials or target.credentials, tmp_path / "aws-home")

    return make


@pytest.fixture
def js_s3(tools, server):
    """Factory for ``@aws-sdk/client-s3`` (js/s3_ops.mjs) bound to a server and identity."""
    def make(on=None, credentials: Credentials | None = None):
        target = on or server
        return JsS3(tools.node, tools.js_dir, target, credentials or target.credentials)

    return make
