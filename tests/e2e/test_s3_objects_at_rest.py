"""Objects at rest (API.md §10): what the data directory holds and what a GET makes of it.

On servers of the tests' own: no plaintext of an encrypted object, nor an SSE-C key, is in any
file of the data directory (while the same marker in an unencrypted object is found, which
proves the scan); identical plaintexts never give repeated ciphertext; object data that was
changed, cut, reordered or swapped is never served as the object; everything reads back after
a restart; a stopped KMS makes encrypted reads a retryable 503 but leaves unencrypted and SSE-C
objects alone; deleted objects leave no data behind. On the session server, with keys of their
own: a key pending deletion or disabled makes its objects unreadable until it is back, and
rotated keys still read their old objects.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest

from at_rest import (
    Own,
    check_refused,
    files_containing,
    flip_byte,
    marked,
    new_seg_files,
    objects_dir,
    repeated_blocks,
    seg_files,
    swap_contents,
    swap_ranges,
    truncate,
)
from conftest import KmsServer
from hardening import forms, wait_until
from kms_clients import ok
from s3_clients import (
    KIB,
    MIN_PART,
    PACKAGE,
    Sse,
    body_of,
    boto_error,
    check_sse,
    config,
    customer_key,
    expect_s3_error,
    kms_stopped,
    object_target,
    upload_multipart,
)

ENCRYPTED = ("sse-s3", "sse-kms", "sse-c")
CUSTOMER_KEY = customer_key("at rest")
PART = MIN_PART + 1000


def sse_for(mode: str, key_id: str) -> Sse:
    return {"none": Sse.none(), "sse-s3": Sse.s3(), "sse-kms": Sse.kms(key_id),
            "sse-c": Sse.c(CUSTOMER_KEY)}[mode]


def read(s3, bucket: str, key: str, sse: Sse, **extra) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **sse.read_args(), **extra)["Body"].read()


def absent(s3, bucket: str, key: str) -> None:
    boto_error(lambda: s3.head_object(Bucket=bucket, Key=key), 404, "404")


# ---- no plaintext on disk ----------------------------------------------------------------------


def test_no_plaintext_of_an_encrypted_object_is_on_disk(spawn_server):
    own = Own.of(spawn_server("at-rest-marker"))
    s3, key_id = own.s3, own.new_key("marker")
    marker = f"e2e-marker-{uuid.uuid4().hex}".encode()
    body = marked(marker, 3 * PACKAGE + 123)
    for bucket in ("plain", "kms-default", "s3-default"):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(Bucket="kms-default",
                             ServerSideEncryptionConfiguration=config("aws:kms", key_id))
    s3.put_bucket_encryption(Bucket="s3-default",
                             ServerSideEncryptionConfiguration=config("AES256"))

    written: list[tuple[str, str, Sse]] = []
    for mode in ENCRYPTED:
        sse = sse_for(mode, key_id)
        s3.put_object(Bucket="plain", Key=f"single/{mode}", Body=body, **sse.put_args())
        parts = [marked(marker, PART), marked(marker, 70 * KIB)]
        upload_multipart(s3, "plain", f"multipart/{mode}", parts, sse)
        resp = own.raw.chunked("PUT", object_target("plain", f"chunked/{mode}"), "", body,
                               sse.put_headers(), chunk_size=PACKAGE // 3)
        assert resp.status == 200, resp
        written += [("plain", f"single/{mode}", sse), ("plain", f"chunked/{mode}", sse),
                    ("plain", f"multipart/{mode}", sse)]
    for bucket in ("kms-default", "s3-default"):
        s3.put_object(Bucket=bucket, Key="by-default", Body=body)
        written.append((bucket, "by-default", Sse.none()))
    s3.copy_object(Bucket="kms-default", Key="copied", CopySource={"Bucket": "plain",
                                                                   "Key": "single/sse-c"},
                   **Sse.c(CUSTOMER_KEY).copy_source_args())
    written.append(("kms-default", "copied", Sse.none()))
    # Parts of uploads still in progress are at rest too.
    pending = []
    for mode in ENCRYPTED:
        sse = sse_for(mode, key_id)
        upload_id = s3.create_multipart_upload(Bucket="plain", Key=f"pending/{mode}",
                                               **sse.put_args())["UploadId"]
        s3.upload_part(Bucket="plain", Key=f"pending/{mode}", UploadId=upload_id, PartNumber=1,
                       Body=marked(marker, PART), **sse.read_args())
        pending.append((f"pending/{mode}", upload_id))

    assert files_containing(own.data_dir, marker) == [], "plaintext of an encrypted object"
    # The customer key is never stored, nor an unsalted hash of it.
    digests = [hashlib.sha256(CUSTOMER_KEY).digest(), hashlib.md5(CUSTOMER_KEY).digest()]
    leaks = [f"{form[:12]!r} in {path}" for value in [CUSTOMER_KEY, *digests]
             for form in forms(value) for path in files_containing(own.data_dir, form)]
    assert not leaks, f"the SSE-C key is stored: {leaks}"

    # The same marker in an unencrypted object is found, in its data file: the scan works.
    s3.put_object(Bucket="plain", Key="unencrypted", Body=body)
    found = files_containing(own.data_dir, marker)
    assert found and all(p.suffix == ".seg" for p in found), found
    assert all(objects_dir(own.data_dir) in p.parents for p in found), found

    for bucket, key, sse in written:
        expected = body if not key.startswith("multipart/") else (
            marked(marker, PART) + marked(marker, 70 * KIB))
        assert read(s3, bucket, key, sse) == expected, f"{bucket}/{key} does not read back"
    for key, upload_id in pending:
        s3.abort_multipart_upload(Bucket="plain", Key=key, UploadId=upload_id)


def test_identical_plaintexts_never_give_repeated_ciphertext(spawn_server):
    # One data key per object and unique nonces: four equal packages in one object, or the same
    # object written twice under the same key, share no ciphertext.
    own = Own.of(spawn_server("at-rest-nonces"))
    key_id = own.new_key("nonces")
    own.s3.create_bucket(Bucket="nonces")
    body = body_of(PACKAGE, "one package") * 4
    for mode in ENCRYPTED:
        sse = sse_for(mode, key_id)
        stored = []
        for copy in ("first", "second"):
            with new_seg_files(own.data_dir) as files:
                own.s3.put_object(Bucket="nonces", Key=f"{mode}/{copy}", Body=body,
                                  **sse.put_args())
            stored.append(b"".join(p.read_bytes() for p in files))
        first, second = stored
        assert first != second, f"{mode}: the same object twice gave the same ciphertext"
        assert repeated_blocks(first) == 0, f"{mode}: equal packages gave equal ciphertext"
        assert repeated_blocks(first, second) == 0, f"{mode}: two objects share ciphertext"


# ---- damaged data is never served --------------------------------------------------------------


@pytest.fixture(scope="module")
def tamper(tools, tmp_path_factory, root_credentials):
    """This module's own server for the damage tests (each damages only objects of its own)."""
    workdir = tmp_path_factory.mktemp("objects-tamper")
    server = KmsServer(tools.server_bin, workdir, "objects-tamper", credentials=root_credentials)
    server.start()
    own = Own.of(server)
    own.s3.create_bucket(Bucket="tampered")
    yield own, own.new_key("tamper")
    server.stop()


def sealed_layout(own: Own, sse: Sse) -> tuple[int, int]:
    """The bytes one full package takes on disk and the bytes before the first one, measured
    from objects of two and three full packages (a segment file per object)."""
    sizes = []
    for count in (2, 3):
        with new_seg_files(own.data_dir) as files:
            own.s3.put_object(Bucket="tampered", Key=f"layout-{uuid.uuid4().hex}",
                              Body=body_of(count * PACKAGE, "layout"), **sse.put_args())
        sizes.append(sum(p.stat().st_size for p in files))
    package = sizes[1] - sizes[0]
    assert package > PACKAGE, f"a package takes {package} bytes on disk, less than its plaintext"
    return package, sizes[0] - 2 * package


def flip_first(files, layout):
    flip_byte(files[0], 0)


def flip_middle(files, layout):
    flip_byte(files[0], files[0].stat().st_size // 2)


def flip_last(files, layout):
    flip_byte(files[-1], -1)


def drop_last_byte(files, layout):
    truncate(files[-1], files[-1].stat().st_size - 1)


def drop_last_package(files, layout):
    # The object is three full packages and a short one of 100 bytes.
    package, _ = layout
    truncate(files[-1], files[-1].stat().st_size - (100 + package - PACKAGE))


def empty_file(files, layout):
    truncate(files[-1], 0)


def swap_two_packages(files, layout):
    package, header = layout
    swap_ranges(files[0], header, header + package, package)


DAMAGES = {f.__name__.replace("_", "-"): f for f in (
    flip_first, flip_middle, flip_last, drop_last_byte, drop_last_package, empty_file,
    swap_two_packages)}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
@pytest.mark.parametrize("mode", ENCRYPTED)
def test_damaged_object_data_is_never_served(tamper, mode, damage):
    own, key_id = tamper
    sse = sse_for(mode, key_id)
    layout = sealed_layout(own, sse)
    name = f"{mode}-{damage.__name__}"
    data = body_of(3 * PACKAGE + 100, name)
    with new_seg_files(own.data_dir) as files:
        own.s3.put_object(Bucket="tampered", Key=name, Body=data, **sse.put_args())
    own.s3.put_object(Bucket="tampered", Key=f"{name}-untouched", Body=data, **sse.put_args())

    damage(files, layout)
    check_refused(own.raw.fetch("GET", object_target("tampered", name), sse.read_headers()), data)
    # A second attempt is refused as well, and the server keeps serving other objects.
    check_refused(own.raw.fetch("GET", object_target("tampered", name), sse.read_headers()), data)
    assert read(own.s3, "tampered", f"{name}-untouched", sse) == data


@pytest.mark.parametrize("mode", ENCRYPTED)
def test_swapped_object_files_are_never_served(tamper, mode):
    own, key_id = tamper
    sse = sse_for(mode, key_id)
    bodies, files = {}, {}
    for name in (f"{mode}-swap-a", f"{mode}-swap-b"):
        bodies[name] = body_of(2 * PACKAGE + 50, name)
        with new_seg_files(own.data_dir) as written:
            own.s3.put_object(Bucket="tampered", Key=name, Body=bodies[name], **sse.put_args())
        files[name] = written
    first, second = files.values()
    assert len(first) == len(second), files
    for a, b in zip(first, second):
        swap_contents(a, b)
    for name, data in bodies.items():
        check_refused(own.raw.fetch("GET", object_target("tampered", name), sse.read_headers()),
                      data)


# ---- restarts ----------------------------------------------------------------------------------


def test_every_object_reads_back_after_a_restart(spawn_server):
    server = spawn_server("at-rest-restart")
    own = Own.of(server)
    s3, key_id = own.s3, own.new_key("restart")
    s3.create_bucket(Bucket="plain")
    s3.create_bucket(Bucket="kms-default")
    s3.put_bucket_encryption(Bucket="kms-default", ServerSideEncryptionConfiguration=config(
        "aws:kms", key_id, bucket_key=True))

    objects: dict[tuple[str, str], tuple[bytes, Sse]] = {}

    def single(bucket, key, data, sse):
        s3.put_object(Bucket=bucket, Key=key, Body=data, **sse.put_args())
        objects[(bucket, key)] = (data, sse)

    def multipart(bucket, key, sse):
        parts = [body_of(PART, f"{key} 1"), body_of(70 * KIB + 3, f"{key} 2")]
        upload_multipart(s3, bucket, key, parts, sse)
        objects[(bucket, key)] = (b"".join(parts), sse)

    for mode in ("none",) + ENCRYPTED:
        sse = sse_for(mode, key_id)
        single("plain", f"single/{mode}", body_of(3 * PACKAGE + 5, mode), sse)
        single("plain", f"empty/{mode}", b"", sse)
        multipart("plain", f"multipart/{mode}", sse)
    single("kms-default", "by-default", body_of(PACKAGE + 1, "default"), Sse.none())
    multipart("kms-default", "multipart-by-default", Sse.none())
    ok(own.admin.post("/kms/keys/rotate", {"key_id": key_id}))
    single("plain", "after-rotation", body_of(PACKAGE + 2, "rotated"), Sse.kms(key_id))
    upload_id = s3.create_multipart_upload(Bucket="plain", Key="in-progress",
                                           **Sse.s3().put_args())["UploadId"]
    part = body_of(PART, "in progress")
    part_etag = s3.upload_part(Bucket="plain", Key="in-progress", UploadId=upload_id,
                               PartNumber=1, Body=part)["ETag"]

    def snapshot():
        heads = {}
        for (bucket, key), (_, sse) in objects.items():
            head = s3.head_object(Bucket=bucket, Key=key, **sse.read_args())
            heads[(bucket, key)] = {k: head.get(k) for k in (
                "ETag", "ContentLength", "ServerSideEncryption", "SSEKMSKeyId",
                "SSECustomerAlgorithm", "SSECustomerKeyMD5", "BucketKeyEnabled", "LastModified")}
        listings = {b: s3.list_objects_v2(Bucket=b)["Contents"] for b in ("plain", "kms-default")}
        return heads, listings

    before = snapshot()
    server.restart()
    assert snapshot() == before

    for (bucket, key), (data, sse) in objects.items():
        assert read(s3, bucket, key, sse) == data, f"{bucket}/{key} after the restart"
        if len(data) > PACKAGE + 1:
            first, last = PACKAGE - 3, min(len(data), PART + 3) - 1
            got = read(s3, bucket, key, sse, Range=f"bytes={first}-{last}")
            assert got == data[first:last + 1], f"{bucket}/{key}: a range after the restart"
    parts = s3.list_parts(Bucket="plain", Key="in-progress", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, part_etag)], parts
    s3.complete_multipart_upload(Bucket="plain", Key="in-progress", UploadId=upload_id,
                                 MultipartUpload={"Parts": [{"PartNumber": 1,
                                                             "ETag": part_etag}]})
    assert read(s3, "plain", "in-progress", Sse.none()) == part


# ---- the KMS stopped ---------------------------------------------------------------------------


def test_a_stopped_kms_stops_encrypted_reads_and_nothing_else(spawn_server):
    own = Own.of(spawn_server("at-rest-kms-stop"))
    s3, key_id = own.s3, own.new_key("stopped")
    s3.create_bucket(Bucket="plain")
    s3.create_bucket(Bucket="kms-default")
    s3.put_bucket_encryption(Bucket="kms-default",
                             ServerSideEncryptionConfiguration=config("aws:kms", key_id))
    data = body_of(3 * PACKAGE + 7, "while stopped")
    for mode in ("none",) + ENCRYPTED:
        s3.put_object(Bucket="plain", Key=mode, Body=data, **sse_for(mode, key_id).put_args())
    s3.put_object(Bucket="kms-default", Key="by-default", Body=data)
    parts = [body_of(PART, "stopped 1"), body_of(KIB, "stopped 2")]
    upload_multipart(s3, "plain", "multipart", parts, Sse.kms(key_id))
    needs_kms = [("plain", "sse-s3"), ("plain", "sse-kms"), ("kms-default", "by-default"),
                 ("plain", "multipart")]

    with kms_stopped(own.admin):
        for bucket, key in needs_kms:
            boto_error(lambda: s3.get_object(Bucket=bucket, Key=key), 503, "ServiceUnavailable")
            boto_error(lambda: s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-10"), 503,
                       "ServiceUnavailable")
            # HEAD answers from the record, as S3 does: it needs no key and shows no data.
            assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
            resp = own.raw.request("GET", object_target(bucket, key))
            expect_s3_error(resp, 503, "ServiceUnavailable")
            assert data[:32] not in resp.body and parts[0][:32] not in resp.body, resp
        boto_error(lambda: s3.copy_object(Bucket="plain", Key="copy",
                                          CopySource={"Bucket": "plain", "Key": "sse-kms"}),
                   503, "ServiceUnavailable")
        absent(s3, "plain", "copy")

        # Unencrypted and SSE-C objects never need the KMS.
        for mode in ("none", "sse-c"):
            sse = sse_for(mode, key_id)
            assert read(s3, "plain", mode, sse) == data
            assert read(s3, "plain", mode, sse, Range="bytes=100-70000") == data[100:70001]
        s3.put_object(Bucket="plain", Key="written-while-stopped", Body=b"plain")
        assert [e["Key"] for e in s3.list_objects_v2(Bucket="plain")["Contents"]] == sorted(
            ["none", "sse-c", "sse-kms", "sse-s3", "multipart", "written-while-stopped"])

        # Writes that need a data key fail whole.
        for bucket, sse in [("plain", Sse.s3()), ("plain", Sse.kms(key_id)),
                            ("kms-default", Sse.none())]:
            boto_error(lambda: s3.put_object(Bucket=bucket, Key="refused", Body=data,
                                             **sse.put_args()), 503, "ServiceUnavailable")
            absent(s3, bucket, "refused")

    for bucket, key in needs_kms:
        expected = b"".join(parts) if key == "multipart" else data
        assert read(s3, bucket, key, Sse.none()) == expected, f"{bucket}/{key} after the start"


# ---- key states (on the session server, with keys of the tests' own) ---------------------------


@pytest.mark.parametrize("state", ["pending-deletion", "disabled"])
def test_objects_under_a_key_that_is_not_enabled_cannot_be_read_until_it_is(
        s3_client, admin, make_bucket, new_key, state):
    bucket = make_bucket("keystate")
    key_id = new_key(state)
    sse = Sse.kms(key_id)
    data = body_of(2 * PACKAGE + 1, state)
    s3_client.put_object(Bucket=bucket, Key="under-key", Body=data, **sse.put_args())
    parts = [body_of(PART, "state 1"), body_of(KIB, "state 2")]
    upload_multipart(s3_client, bucket, "multipart", parts, sse)
    s3_client.put_object(Bucket=bucket, Key="plain", Body=data)
    s3_client.put_object(Bucket=bucket, Key="other-key", Body=data, **Sse.s3().put_args())

    if state == "disabled":
        ok(admin.post("/kms/keys/disable", {"key_id": key_id}))
    else:
        ok(admin.delete("/kms/keys/delete", {"key_id": key_id, "pending_window_in_days": 7}))
    try:
        for key in ("under-key", "multipart"):
            boto_error(lambda: s3_client.get_object(Bucket=bucket, Key=key), 400,
                       "KMS.KMSInvalidStateException")
            boto_error(lambda: s3_client.get_object(Bucket=bucket, Key=key, Range="bytes=0-0"),
                       400, "KMS.KMSInvalidStateException")
            # HEAD answers from the record without the key, as S3 does.
            check_sse(s3_client.head_object(Bucket=bucket, Key=key), sse)
        boto_error(lambda: s3_client.copy_object(
            Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "under-key"}),
            400, "KMS.KMSInvalidStateException")
        absent(s3_client, bucket, "copy")
        assert read(s3_client, bucket, "plain", Sse.none()) == data
        assert read(s3_client, bucket, "other-key", Sse.none()) == data
    finally:
        if state == "disabled":
            ok(admin.post("/kms/keys/enable", {"key_id": key_id}))
        else:
            ok(admin.post("/kms/keys/cancel-deletion", {"key_id": key_id}))

    assert read(s3_client, bucket, "under-key", Sse.none()) == data
    assert read(s3_client, bucket, "multipart", Sse.none()) == b"".join(parts)
    check_sse(s3_client.head_object(Bucket=bucket, Key="under-key"), sse)


def test_objects_read_after_their_key_is_rotated(s3_client, admin, make_bucket, new_key):
    bucket = make_bucket("rotated")
    key_id = new_key("rotated")
    sse = Sse.kms(key_id)
    versions = {}
    # An upload that spans a rotation keeps the data key it was created with.
    upload_id = s3_client.create_multipart_upload(Bucket=bucket, Key="spanning",
                                                  **sse.put_args())["UploadId"]
    parts = [body_of(PART, "before rotation"), body_of(KIB, "after rotation")]
    etags = [s3_client.upload_part(Bucket=bucket, Key="spanning", UploadId=upload_id,
                                   PartNumber=1, Body=parts[0])["ETag"]]
    for round_ in range(3):
        versions[f"v{round_}"] = body_of(PACKAGE + round_, f"rotation {round_}")
        s3_client.put_object(Bucket=bucket, Key=f"v{round_}", Body=versions[f"v{round_}"],
                             **sse.put_args())
        ok(admin.post("/kms/keys/rotate", {"key_id": key_id}))
        for key, data in versions.items():
            assert read(s3_client, bucket, key, Sse.none()) == data, f"{key} after rotation"
    etags.append(s3_client.upload_part(Bucket=bucket, Key="spanning", UploadId=upload_id,
                                       PartNumber=2, Body=parts[1])["ETag"])
    s3_client.complete_multipart_upload(
        Bucket=bucket, Key="spanning", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e}
                                   for n, e in enumerate(etags, start=1)]})
    assert read(s3_client, bucket, "spanning", Sse.none()) == b"".join(parts)
    meta = ok(admin.get(f"/kms/keys/{key_id}"))["key_metadata"]
    assert meta["current_version"] == 4, meta


# ---- deleted data --------------------------------------------------------------------------------


def test_deleted_replaced_and_aborted_data_leaves_the_disk(spawn_server):
    own = Own.of(spawn_server("at-rest-cleanup"))
    s3, key_id = own.s3, own.new_key("cleanup")
    s3.create_bucket(Bucket="cleanup")
    data = body_of(2 * PACKAGE, "cleanup")

    def stored(key: str, sse: Sse) -> list:
        with new_seg_files(own.data_dir) as files:
            s3.put_object(Bucket="cleanup", Key=key, Body=data, **sse.put_args())
        return files

    def gone(files) -> bool:
        return not any(p.exists() for p in files)

    deleted = stored("deleted", Sse.kms(key_id))
    s3.delete_object(Bucket="cleanup", Key="deleted")
    batch = stored("batch", Sse.c(CUSTOMER_KEY))
    s3.delete_objects(Bucket="cleanup", Delete={"Objects": [{"Key": "batch"}]})
    replaced = stored("replaced", Sse.s3())
    stored("replaced", Sse.none())
    for files in (deleted, batch, replaced):
        assert wait_until(lambda: gone(files), timeout=10), f"still on disk: {files}"

    before = {p for p in own.data_dir.rglob("*") if p.is_file()}
    upload_id = s3.create_multipart_upload(Bucket="cleanup", Key="aborted",
                                           **Sse.kms(key_id).put_args())["UploadId"]
    s3.upload_part(Bucket="cleanup", Key="aborted", UploadId=upload_id, PartNumber=1, Body=data)
    s3.abort_multipart_upload(Bucket="cleanup", Key="aborted", UploadId=upload_id)

    def left_by_the_upload() -> list:
        return sorted(p for p in own.data_dir.rglob("*")
                      if p.is_file() and p.suffix in (".seg", ".json") and p not in before)

    assert wait_until(lambda: not left_by_the_upload(), timeout=10), left_by_the_upload()
    for key in ("replaced", "kept"):
        stored(key, Sse.s3())
        s3.delete_object(Bucket="cleanup", Key=key)
    assert wait_until(lambda: not seg_files(own.data_dir), timeout=10), seg_files(own.data_dir)


# ---- one unwrap per request -------------------------------------------------------------------


def test_a_request_unwraps_the_data_key_once_whatever_it_reads(spawn_server):
    """Every KMS unwrap loads the master key through the cache exactly once, so the cache's
    hit and miss counters (API.md §7) count the unwraps: one per GET or UploadPart, however many
    parts and packages it reads; none for HEAD, which needs no key."""
    own = Own.of(spawn_server("at-rest-unwraps"))
    own.kms_bucket("unwraps")

    def loads() -> int:
        stats = ok(own.admin.get("/kms/status"))["cache_stats"]
        return stats["hit_count"] + stats["miss_count"]

    def count(action) -> int:
        before = loads()
        action()
        return loads() - before

    parts = [body_of(PART, "unwrap 1"), body_of(PART, "unwrap 2"), body_of(3 * PACKAGE, "tail")]
    created = own.s3.create_multipart_upload(Bucket="unwraps", Key="big")
    upload_id = created["UploadId"]
    done = []
    for number, part in enumerate(parts, start=1):
        def upload(number=number, part=part):
            answer = own.s3.upload_part(Bucket="unwraps", Key="big", UploadId=upload_id,
                                        PartNumber=number, Body=part)
            done.append({"PartNumber": number, "ETag": answer["ETag"]})
        assert count(upload) == 1, "an UploadPart unwraps the upload's data key once"
    own.s3.complete_multipart_upload(Bucket="unwraps", Key="big", UploadId=upload_id,
                                     MultipartUpload={"Parts": done})
    whole = b"".join(parts)

    def read(**range_args):
        return own.s3.get_object(Bucket="unwraps", Key="big", **range_args)["Body"].read()

    assert count(lambda: read()) == 1, "a GET of three parts and 200 packages unwraps once"
    first, last = PART - PACKAGE, 2 * PART + 10
    assert count(lambda: read(Range=f"bytes={first}-{last}")) == 1, "a Range across parts too"
    assert read(Range=f"bytes={first}-{last}") == whole[first:last + 1]
    assert count(lambda: own.s3.head_object(Bucket="unwraps", Key="big")) == 0
