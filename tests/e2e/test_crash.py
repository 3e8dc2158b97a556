"""Crash safety (issue 7; API.md §4, §5, §9, §11): client threads write keys, key states, buckets,
bucket encryption and data keys while the server is killed with SIGKILL at random moments and
restarted on the same data directory. After every restart:

- every acknowledged write is there (key with its description and tags, state change, deletion
  date, rotation, bucket, bucket encryption), and every acknowledged ciphertext blob decrypts
  with its context to the plaintext key that was returned;
- writes in flight at the kill may or may not be there, but whole: a key that appears unannounced
  is one whose creation was in flight, with exactly the description and tags sent; a state or
  configuration is the acknowledged one or the one in flight, nothing else;
- the server starts, and leaves no temporary file (``.*.tmp``) in ``keys/`` or ``buckets/``:
  neither a real one caught by the kill nor one planted before the start.

``KMS_E2E_CRASH_ROUNDS`` raises the number of kill rounds (``cargo xtask soak``); the default
run does 5. Each round's verification describes every key touched in the round plus a sample of
the others, and the last round checks everything.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

from conftest import DEFAULT_KEY
from hardening import CONNECTION_ERRORS, admin, kill9, leftover_temps, s3raw
from kms_clients import check_metadata, list_all_keys, ok
from s3_clients import config, config_xml

ROUNDS = int(os.environ.get("KMS_E2E_CRASH_ROUNDS", "5"))
WORKERS = 6
SAMPLE = 40  # keys and blobs from earlier rounds re-checked each round, besides the touched ones
SEED = int(os.environ.get("KMS_E2E_CRASH_SEED", str(random.randrange(1 << 30))))


class Crashed(Exception):
    """The server died under a request: the worker stops for this round."""


@dataclass
class KeyRecord:
    key_id: str
    description: str
    tags: dict
    state: str = "Enabled"                       # acknowledged (or observed after a restart)
    possible: set = field(default_factory=lambda: {"Enabled"})
    deletion_date: str | None = None             # acknowledged with the state
    touched: bool = True


@dataclass
class BucketRecord:
    name: str
    possible: list = field(default_factory=lambda: [None])  # acknowledged first, then in flight
    touched: bool = True


@dataclass
class Blob:
    key_id: str
    context: dict
    ciphertext: str
    plaintext: str
    fresh: bool = True


class Journal:
    """What the clients were told, shared by the worker threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys: dict[str, KeyRecord] = {}
        self.pending_keys: dict[str, dict] = {}      # description -> tags, creation in flight
        self.buckets: dict[str, BucketRecord] = {}
        self.pending_buckets: set[str] = set()
        self.blobs: list[Blob] = []
        self.versions: dict[str, int] = {}          # stable key -> least current_version acked
        self.failures: list[str] = []
        self.acknowledged = 0

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)


STABLE_DESCRIPTIONS = ("crash stable one", "crash stable two")


def encryption_choices(stable: list[str]) -> list[dict | None]:
    """Bucket configurations a worker writes (None: DeleteBucketEncryption)."""
    return [
        config("AES256"),
        config("AES256", bucket_key=True),
        config("aws:kms", DEFAULT_KEY),
        config("aws:kms", stable[0], bucket_key=True),
        config("aws:kms", stable[1], bucket_key=False),
        None,
    ]


class Worker(threading.Thread):
    def __init__(self, index: int, server, journal: Journal, round_no: int,
                 crashed: threading.Event, own_keys: list[KeyRecord],
                 own_buckets: list[BucketRecord], stable: list[str]):
        super().__init__(daemon=True, name=f"crash-worker-{index}")
        self.index = index
        self.client = admin(server)
        self.s3 = s3raw(server)
        self.journal = journal
        self.round = round_no
        self.crashed = crashed
        self.own_keys = own_keys
        self.own_buckets = own_buckets
        self.stable = stable
        self.rng = random.Random(SEED * 1000 + round_no * 100 + index)
        self.counter = 0

    # -- plumbing --

    def send(self, call):
        try:
            return call()
        except CONNECTION_ERRORS as err:
            if not self.crashed.is_set():
                self.journal.fail(f"[{self.name}] connection failed while the server was up: "
                                  f"{err!r}")
            raise Crashed from None

    def expect(self, resp, *statuses):
        """A real answer: it must be one we expect (the server answered before it died)."""
        if resp.status not in statuses:
            self.journal.fail(f"[{self.name}] unexpected answer: {resp}")
            raise Crashed
        return resp

    def run(self) -> None:
        ops = [(self.create_key, 3), (self.change_state, 4), (self.data_key, 4),
               (self.bucket, 3), (self.rotate, 1)]
        choices = [op for op, weight in ops for _ in range(weight)]
        try:
            while True:
                self.counter += 1
                self.rng.choice(choices)()
        except Crashed:
            return
        except Exception as err:  # noqa: BLE001 - a test failure, reported by the main thread
            self.journal.fail(f"[{self.name}] {err!r}")

    # -- operations --

    def create_key(self) -> None:
        n = self.counter
        description = f"crash r{self.round} t{self.index} n{n} 密钥"
        tags = {"name": f"r{self.round}-t{self.index}-{n}", "owner": f"t{self.index}",
                "round": str(self.round)}
        with self.journal.lock:
            self.journal.pending_keys[description] = tags
        resp = self.send(lambda: self.client.post(
            "/kms/keys", {"Description": description, "Tags": tags}))
        meta = check_metadata(ok(resp)["key_metadata"], description=description, tags=tags,
                              key_state="Enabled")
        record = KeyRecord(meta["key_id"], description, tags)
        with self.journal.lock:
            del self.journal.pending_keys[description]
            self.journal.keys[record.key_id] = record
            self.journal.acknowledged += 1
        self.own_keys.append(record)

    def change_state(self) -> None:
        if not self.own_keys:
            return self.create_key()
        record = self.rng.choice(self.own_keys)
        record.touched = True
        if record.state == "Enabled":
            action = self.rng.choice(["disable", "schedule"])
        else:
            action = "enable" if record.state == "Disabled" else "cancel"
        target = {"disable": "Disabled", "schedule": "PendingDeletion", "enable": "Enabled",
                  "cancel": "Enabled"}[action]
        with self.journal.lock:
            record.possible.add(target)
        body = {"key_id": record.key_id}
        if action == "schedule":
            body["pending_window_in_days"] = self.rng.randint(7, 30)
            resp = self.send(lambda: self.client.delete("/kms/keys/delete", body))
            answer = ok(resp)
            deletion_date = answer["deletion_date"]
            assert answer["key_id"] == record.key_id, resp
        else:
            route = {"disable": "/kms/keys/disable", "enable": "/kms/keys/enable",
                     "cancel": "/kms/keys/cancel-deletion"}[action]
            resp = self.send(lambda: self.client.post(route, body))
            check_metadata(ok(resp)["key_metadata"], key_state=target)
            deletion_date = None
        with self.journal.lock:
            record.state = target
            record.possible = {target}
            record.deletion_date = deletion_date
            self.journal.acknowledged += 1

    def data_key(self) -> None:
        usable = [r.key_id for r in self.own_keys if r.state == "Enabled"]
        key_id = self.rng.choice(usable + self.stable + [DEFAULT_KEY])
        context = {"bucket": f"crash-{self.index}", "object_key": f"r{self.round}/{self.counter}",
                   "n": self.counter}
        spec = self.rng.choice(["AES_256", "AES_128"])
        resp = self.send(lambda: self.client.post(
            "/kms/generate-data-key",
            {"key_id": key_id, "key_spec": spec, "encryption_context": context}))
        answer = ok(resp)
        assert answer["key_id"] == key_id, resp
        with self.journal.lock:
            self.journal.blobs.append(
                Blob(key_id, context, answer["ciphertext_blob"], answer["plaintext_key"]))
            self.journal.acknowledged += 1

    def bucket(self) -> None:
        if not self.own_buckets or self.rng.random() < 0.25:
            name = f"crash-r{self.round}-t{self.index}-{self.counter}-{uuid.uuid4().hex[:6]}"
            with self.journal.lock:
                self.journal.pending_buckets.add(name)
            self.expect(self.send(lambda: self.s3.request("PUT", f"/{name}")), 200)
            record = BucketRecord(name)
            with self.journal.lock:
                self.journal.pending_buckets.discard(name)
                self.journal.buckets[name] = record
                self.journal.acknowledged += 1
            self.own_buckets.append(record)
            return
        record = self.rng.choice(self.own_buckets)
        record.touched = True
        wanted = self.rng.choice(encryption_choices(self.stable))
        with self.journal.lock:
            record.possible.append(wanted)
        if wanted is None:
            if self.rng.random() < 0.5:
                self.expect(self.send(lambda: self.s3.request(
                    "DELETE", f"/{record.name}", "encryption")), 204)
            else:
                resp = self.send(lambda: self.client.delete(
                    f"/api/v1/bucket-encryption/{record.name}"))
                assert ok(resp) == {"success": True}, resp
        elif self.rng.random() < 0.5:
            rule = wanted["Rules"][0]
            default = rule["ApplyServerSideEncryptionByDefault"]
            body = config_xml(default["SSEAlgorithm"], default.get("KMSMasterKeyID"),
                              rule.get("BucketKeyEnabled"))
            self.expect(self.send(lambda: self.s3.put_encryption(record.name, body)), 200)
        else:
            resp = self.send(lambda: self.client.call(
                "PUT", f"/api/v1/bucket-encryption/{record.name}", wanted))
            assert ok(resp) == {"success": True}, resp
        with self.journal.lock:
            record.possible = [wanted]
            self.journal.acknowledged += 1

    def rotate(self) -> None:
        key_id = self.rng.choice(self.stable)
        resp = self.send(lambda: self.client.post("/kms/keys/rotate", {"key_id": key_id}))
        version = check_metadata(ok(resp)["key_metadata"])["current_version"]
        with self.journal.lock:
            self.journal.versions[key_id] = max(self.journal.versions.get(key_id, 1), version)
            self.journal.acknowledged += 1


# ---- verification after a restart ----------------------------------------------------------


def plant_temporaries(data_dir) -> list:
    """Temporary files as an atomic write killed before its rename leaves them."""
    planted = []
    for sub, suffix in (("keys", "key"), ("buckets", "json")):
        folder = data_dir / sub
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f".planted-{uuid.uuid4().hex}.{suffix}.{uuid.uuid4()}.tmp"
        path.write_bytes(b'{"half": "writ')
        planted.append(path)
    return planted


def enable(client, record: KeyRecord) -> None:
    """Brings a key back to Enabled (so its blobs can be decrypted), as an acknowledged change."""
    if record.state == "Disabled":
        ok(client.post("/kms/keys/enable", {"key_id": record.key_id}))
    elif record.state == "PendingDeletion":
        ok(client.post("/kms/keys/cancel-deletion", {"key_id": record.key_id}))
    record.state, record.possible, record.deletion_date = "Enabled", {"Enabled"}, None


def verify(server, journal: Journal, stable: list[str], rng: random.Random, final: bool) -> dict:
    client = admin(server)
    problems: list[str] = []

    # Keys: the listing holds every acknowledged key once; an unknown key is a creation that was
    # in flight, whole.
    listing = list_all_keys(client)
    ids = [entry["key_id"] for entry in listing]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        problems.append(f"listed more than once: {sorted(duplicates)}")
    listed = set(ids)
    lost = sorted(set(journal.keys) - listed)
    if lost:
        problems.append(f"acknowledged keys missing after the restart: {lost}")
    for key_id in sorted(listed - set(journal.keys) - set(stable) - {DEFAULT_KEY}):
        meta = check_metadata(ok(client.get(f"/kms/keys/{key_id}"))["key_metadata"])
        tags = journal.pending_keys.get(meta["description"])
        if tags is None or meta["tags"] != tags or meta["key_state"] != "Enabled":
            problems.append(f"a key nobody created (or not whole): {meta}")
            continue
        del journal.pending_keys[meta["description"]]
        journal.keys[key_id] = KeyRecord(key_id, meta["description"], tags)
    journal.pending_keys.clear()

    records = list(journal.keys.values())
    checked = [r for r in records if r.touched or final]
    others = [r for r in records if not (r.touched or final)]
    checked += rng.sample(others, min(SAMPLE, len(others)))
    for record in checked:
        if record.key_id not in listed:
            continue
        resp = client.get(f"/kms/keys/{record.key_id}")
        if resp.status != 200:
            problems.append(f"describe of an acknowledged key failed: {resp}")
            continue
        meta = check_metadata(resp.json()["key_metadata"])
        if (meta["description"], meta["tags"]) != (record.description, record.tags):
            problems.append(f"key {record.key_id}: expected description {record.description!r} "
                            f"and tags {record.tags}, got {meta}")
        if meta["key_state"] not in record.possible:
            problems.append(f"key {record.key_id}: state {meta['key_state']}, acknowledged "
                            f"{record.state}, possible {sorted(record.possible)}")
        if (record.possible == {"PendingDeletion"}
                and meta["deletion_date"] != record.deletion_date):
            problems.append(f"key {record.key_id}: deletion date {meta['deletion_date']}, "
                            f"acknowledged {record.deletion_date}")
        record.state, record.possible = meta["key_state"], {meta["key_state"]}
        record.deletion_date = meta["deletion_date"]
        record.touched = False
    for key_id, version in journal.versions.items():
        meta = ok(client.get(f"/kms/keys/{key_id}"))["key_metadata"]
        if meta["current_version"] < version:
            problems.append(f"key {key_id}: current_version {meta['current_version']} after an "
                            f"acknowledged rotation to {version}")

    # Buckets and their encryption (through the JSON mirrors).
    listed_buckets = {b["Name"] for b in ok(client.get("/api/v1/buckets"))["Buckets"]}
    lost = sorted(set(journal.buckets) - listed_buckets)
    if lost:
        problems.append(f"acknowledged buckets missing after the restart: {lost}")
    for name in sorted(listed_buckets - set(journal.buckets)):
        if name not in journal.pending_buckets:
            problems.append(f"a bucket nobody created: {name}")
            continue
        journal.buckets[name] = BucketRecord(name)
    journal.pending_buckets.clear()
    bucket_records = list(journal.buckets.values())
    checked_buckets = [b for b in bucket_records if b.touched or final]
    rest = [b for b in bucket_records if not (b.touched or final)]
    checked_buckets += rng.sample(rest, min(SAMPLE, len(rest)))
    for record in checked_buckets:
        if record.name not in listed_buckets:
            continue
        resp = client.get(f"/api/v1/bucket-encryption/{record.name}")
        if resp.status == 200:
            found = resp.json().get("ServerSideEncryptionConfiguration")
        elif resp.status == 404 and "ServerSideEncryptionConfigurationNotFoundError" in resp.text:
            found = None
        else:
            problems.append(f"bucket {record.name}: {resp}")
            continue
        if found not in record.possible:
            problems.append(f"bucket {record.name}: encryption {found}, acknowledged "
                            f"{record.possible[0]}, in flight {record.possible[1:]}")
        record.possible, record.touched = [found], False

    # Every acknowledged ciphertext blob decrypts with its context (keys brought back to
    # Enabled first: Disabled and PendingDeletion keys refuse decrypt, API.md §5).
    old = [b for b in journal.blobs if not (b.fresh or final)]
    blobs = [b for b in journal.blobs if b.fresh or final] + rng.sample(old, min(SAMPLE, len(old)))
    for blob in blobs:
        record = journal.keys.get(blob.key_id)
        if record is not None and record.state != "Enabled":
            enable(client, record)
        resp = client.post("/kms/decrypt", {"ciphertext_blob": blob.ciphertext,
                                            "encryption_context": blob.context})
        if resp.status != 200 or resp.json() != {"key_id": blob.key_id,
                                                 "plaintext": blob.plaintext}:
            problems.append(f"acknowledged blob of {blob.key_id} does not decrypt: {resp}")
        blob.fresh = False

    assert not problems, "after a kill -9 and restart:\n" + "\n".join(problems[:30])
    return {"keys": len(journal.keys), "buckets": len(journal.buckets),
            "blobs": len(journal.blobs), "checked_blobs": len(blobs)}


def test_acknowledged_writes_survive_kill_9_and_in_flight_writes_are_whole(spawn_server):
    server = spawn_server("crash", args=("--maintenance-interval", "3600"))
    setup = admin(server)
    stable = [ok(setup.post("/kms/keys", {"Description": d}))["key_id"]
              for d in STABLE_DESCRIPTIONS]
    journal = Journal()
    rng = random.Random(SEED)
    history = []

    for round_no in range(ROUNDS):
        crashed = threading.Event()
        records = sorted(journal.keys.values(), key=lambda r: r.key_id)
        buckets = sorted(journal.buckets.values(), key=lambda b: b.name)
        workers = [
            Worker(i, server, journal, round_no, crashed, records[i::WORKERS],
                   buckets[i::WORKERS], stable)
            for i in range(WORKERS)
        ]
        before = journal.acknowledged
        for worker in workers:
            worker.start()
        time.sleep(rng.uniform(0.2, 1.5))
        crashed.set()  # before the kill: a connection error seen from now on is the kill's
        kill9(server)
        for worker in workers:
            worker.join(timeout=60)
            assert not worker.is_alive(), f"{worker.name} hangs after the kill"
        assert not journal.failures, (
            f"round {round_no} (seed {SEED}), before the kill:\n"
            + "\n".join(journal.failures[:20]))

        caught = leftover_temps(server.data_dir)
        planted = plant_temporaries(server.data_dir)
        server.start()
        remaining = leftover_temps(server.data_dir)
        assert not remaining, (
            f"temporary files left after the start (planted {planted}, caught by the kill "
            f"{caught}): {remaining}")
        summary = verify(server, journal, stable, rng, final=round_no == ROUNDS - 1)
        history.append({"round": round_no, "acknowledged": journal.acknowledged - before,
                        "temporaries_caught": len(caught), **summary})
        assert journal.acknowledged > before, (
            f"round {round_no} (seed {SEED}): no write was acknowledged before the kill; "
            f"{history}")

    # The last restart was after a kill; one more clean restart changes nothing.
    listing = list_all_keys(setup)
    server.restart()
    assert list_all_keys(setup) == listing
    print(f"crash rounds (seed {SEED}): {history}")
