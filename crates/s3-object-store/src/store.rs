//! The object store on disk.
//!
//! ```text
//! <data>/objects/<bucket>/<sha256(key)>.json   object record (ObjectMeta), written atomically
//! <data>/objects/<bucket>/<uuid>.seg           segment files (packages)
//! <data>/uploads/<upload id>/upload.json       multipart upload record (UploadMeta)
//! <data>/uploads/<upload id>/part-<n>.json     part record (PartMeta)
//! <data>/uploads/<upload id>/<uuid>.seg        part segment files
//! ```
//!
//! The record is the commit point: segment files are written and synced first, then the record
//! is written atomically (write, fsync, rename, fsync directory). A crash at any moment leaves
//! either the old record or the new one; segment files no record names are removed at the next
//! start. Completing a multipart upload hard-links the part segments into the bucket directory
//! before the record is written, so the upload stays whole until the object exists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use kms_backend_local::{ensure_private_dir, remove_durably, remove_leftover_temps, write_atomic};
use kms_core::SecretBytes;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::listing::{list, ListQuery, Listing};
use crate::meta::{layout_mac, verify_layout, ObjectMeta, PartMeta, UploadMeta};
use crate::package::Tampered;

/// What a listing shows of an object, kept in memory for every object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Plaintext size.
    pub size: u64,
    /// Entity tag, without quotes.
    pub etag: String,
    /// When it was written.
    pub last_modified: DateTime<Utc>,
}

type Index = HashMap<String, BTreeMap<String, Summary>>;

/// Every object and upload, on disk, with an in-memory index of names for listings.
pub struct ObjectStore {
    objects: PathBuf,
    uploads: PathBuf,
    integrity_key: SecretBytes,
    index: RwLock<Index>,
    commits: tokio::sync::Mutex<()>,
}

impl ObjectStore {
    /// Opens (creating) `<data>/objects` and `<data>/uploads`, reads every object record and
    /// removes what a crash left behind. `integrity_key` keys the layout MACs.
    pub fn open(data_dir: &Path, integrity_key: SecretBytes) -> io::Result<Arc<Self>> {
        let objects = data_dir.join("objects");
        let uploads = data_dir.join("uploads");
        ensure_private_dir(&objects)?;
        ensure_private_dir(&uploads)?;
        let mut index = Index::new();
        for entry in fs::read_dir(&objects)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let bucket = entry.file_name().to_string_lossy().into_owned();
            index.insert(bucket, open_bucket_dir(&entry.path())?);
        }
        for entry in fs::read_dir(&uploads)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                clean_upload_dir(&entry.path())?;
            }
        }
        Ok(Arc::new(Self {
            objects,
            uploads,
            integrity_key,
            index: RwLock::new(index),
            commits: tokio::sync::Mutex::new(()),
        }))
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        // Bucket names are safe file names by their rules (checked by the caller).
        self.objects.join(bucket)
    }

    fn record_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.bucket_dir(bucket).join(format!(
            "{}.json",
            hex::encode(Sha256::digest(key.as_bytes()))
        ))
    }

    /// The path of a segment file of an object.
    pub fn segment_path(&self, bucket: &str, file: &str) -> PathBuf {
        self.bucket_dir(bucket).join(file)
    }

    /// Creates a new, empty segment file for an object of `bucket`.
    pub fn create_segment(&self, bucket: &str) -> io::Result<(PendingSegment, File)> {
        let dir = self.bucket_dir(bucket);
        ensure_private_dir(&dir)?;
        new_segment_file(&dir)
    }

    /// The layout MAC for a record about to be committed.
    pub fn seal_layout(&self, bucket: &str, meta: &mut ObjectMeta) {
        meta.layout_mac = layout_mac(&self.integrity_key, bucket, meta);
    }

    /// Checks a record's layout MAC before its data is served.
    pub fn verify_layout(&self, bucket: &str, meta: &ObjectMeta) -> Result<(), Tampered> {
        verify_layout(&self.integrity_key, bucket, meta)
    }

    /// Makes `meta` (layout MAC set with [`Self::seal_layout`]) the object's current record,
    /// replacing any earlier one, whose segments are then removed. Like every change here, it
    /// runs to its end on a task of its own, even when the request that asked for it is dropped,
    /// so the files and the index never disagree.
    ///
    /// `segment` is the new segment file: kept when the record is written, removed otherwise.
    pub async fn commit(
        self: &Arc<Self>,
        bucket: &str,
        meta: ObjectMeta,
        segment: PendingSegment,
    ) -> io::Result<()> {
        let this = Arc::clone(self);
        let bucket = bucket.to_owned();
        detached(async move {
            this.commit_now(&bucket, meta).await?;
            segment.keep();
            Ok(())
        })
        .await
    }

    async fn commit_now(&self, bucket: &str, meta: ObjectMeta) -> io::Result<()> {
        let _commit = self.commits.lock().await;
        let path = self.record_path(bucket, &meta.key);
        let dir = self.bucket_dir(bucket);
        let bytes = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
        let keep: HashSet<String> = meta.segments.iter().map(|s| s.file.clone()).collect();
        blocking(move || {
            let old = read_json::<ObjectMeta>(&path)?;
            write_atomic(&path, &bytes, 0o600)?;
            if let Some(old) = old {
                remove_segments(&dir, old.segments.iter().map(|s| &s.file), &keep);
            }
            Ok(())
        })
        .await?;
        let summary = Summary {
            size: meta.size,
            etag: meta.etag.clone(),
            last_modified: meta.last_modified,
        };
        self.index
            .write()
            .expect("index lock poisoned")
            .entry(bucket.to_owned())
            .or_default()
            .insert(meta.key, summary);
        Ok(())
    }

    /// The current record of an object.
    pub async fn get(&self, bucket: &str, key: &str) -> io::Result<Option<ObjectMeta>> {
        if self.summary(bucket, key).is_none() {
            return Ok(None);
        }
        let path = self.record_path(bucket, key);
        blocking(move || read_json::<ObjectMeta>(&path)).await
    }

    /// What the index knows of an object.
    pub fn summary(&self, bucket: &str, key: &str) -> Option<Summary> {
        self.index
            .read()
            .expect("index lock poisoned")
            .get(bucket)
            .and_then(|objects| objects.get(key).cloned())
    }

    /// Deletes an object; `false` when there was none.
    pub async fn delete(self: &Arc<Self>, bucket: &str, key: &str) -> io::Result<bool> {
        let this = Arc::clone(self);
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        detached(async move { this.delete_now(&bucket, &key).await }).await
    }

    async fn delete_now(&self, bucket: &str, key: &str) -> io::Result<bool> {
        let _commit = self.commits.lock().await;
        if self.summary(bucket, key).is_none() {
            return Ok(false);
        }
        let path = self.record_path(bucket, key);
        let dir = self.bucket_dir(bucket);
        blocking(move || {
            let old = read_json::<ObjectMeta>(&path)?;
            remove_durably(&path)?;
            if let Some(old) = old {
                remove_segments(&dir, old.segments.iter().map(|s| &s.file), &HashSet::new());
            }
            Ok(())
        })
        .await?;
        if let Some(objects) = self
            .index
            .write()
            .expect("index lock poisoned")
            .get_mut(bucket)
        {
            objects.remove(key);
        }
        Ok(true)
    }

    /// One page of a bucket's object names.
    pub fn list(&self, bucket: &str, query: &ListQuery<'_>) -> Listing {
        let index = self.index.read().expect("index lock poisoned");
        match index.get(bucket) {
            Some(objects) => list(objects, query),
            None => Listing::default(),
        }
    }

    /// Whether a bucket holds no object.
    pub fn is_empty(&self, bucket: &str) -> bool {
        self.index
            .read()
            .expect("index lock poisoned")
            .get(bucket)
            .is_none_or(BTreeMap::is_empty)
    }

    /// Removes what is left of a deleted bucket: its (empty) directory and its uploads.
    pub async fn forget_bucket(&self, bucket: &str) -> io::Result<()> {
        let _commit = self.commits.lock().await;
        self.index
            .write()
            .expect("index lock poisoned")
            .remove(bucket);
        let dir = self.bucket_dir(bucket);
        let uploads = self.uploads.clone();
        let bucket = bucket.to_owned();
        blocking(move || {
            if dir.exists() {
                fs::remove_dir_all(&dir)?;
            }
            for (dir, _) in uploads_in(&uploads, &bucket)? {
                fs::remove_dir_all(dir)?;
            }
            Ok(())
        })
        .await
    }

    // ---- multipart uploads ----------------------------------------------------------------

    fn upload_dir(&self, upload_id: &str) -> Option<PathBuf> {
        // Upload ids are ours (simple UUIDs); anything else cannot name one, nor a path.
        let valid = upload_id.len() == 32 && upload_id.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| self.uploads.join(upload_id))
    }

    /// Starts an upload; returns its id.
    pub async fn create_upload(&self, mut upload: UploadMeta) -> io::Result<String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        upload.upload_id = id.clone();
        let dir = self.uploads.join(&id);
        let bytes = serde_json::to_vec_pretty(&upload).map_err(io::Error::other)?;
        blocking(move || {
            ensure_private_dir(&dir)?;
            write_atomic(&dir.join("upload.json"), &bytes, 0o600)
        })
        .await?;
        Ok(id)
    }

    /// The record of an upload in progress.
    pub async fn upload(&self, upload_id: &str) -> io::Result<Option<UploadMeta>> {
        let Some(dir) = self.upload_dir(upload_id) else {
            return Ok(None);
        };
        blocking(move || read_json(&dir.join("upload.json"))).await
    }

    /// Creates a new, empty segment file for a part of an upload.
    pub fn create_part_segment(&self, upload_id: &str) -> io::Result<(PendingSegment, File)> {
        let dir = self.upload_dir(upload_id).ok_or_else(no_upload)?;
        new_segment_file(&dir)
    }

    /// Records an uploaded part, replacing an earlier upload of the same number. Fails with
    /// `NotFound` when the upload was completed or aborted meanwhile.
    ///
    /// `segment` is the part's file: kept when the record is written, removed otherwise.
    pub async fn commit_part(
        self: &Arc<Self>,
        upload_id: &str,
        part: PartMeta,
        segment: PendingSegment,
    ) -> io::Result<()> {
        let this = Arc::clone(self);
        let upload_id = upload_id.to_owned();
        detached(async move {
            this.commit_part_now(&upload_id, part).await?;
            segment.keep();
            Ok(())
        })
        .await
    }

    async fn commit_part_now(&self, upload_id: &str, part: PartMeta) -> io::Result<()> {
        let _commit = self.commits.lock().await;
        let dir = self.upload_dir(upload_id).ok_or_else(no_upload)?;
        let bytes = serde_json::to_vec_pretty(&part).map_err(io::Error::other)?;
        blocking(move || {
            if !dir.join("upload.json").exists() {
                return Err(no_upload());
            }
            let path = dir.join(format!("part-{:05}.json", part.part_number));
            let old = read_json::<PartMeta>(&path)?;
            write_atomic(&path, &bytes, 0o600)?;
            if let Some(old) = old {
                let keep = HashSet::from([part.file.clone()]);
                remove_segments(&dir, [&old.file], &keep);
            }
            Ok(())
        })
        .await
    }

    /// The parts of an upload, by number.
    pub async fn parts(&self, upload_id: &str) -> io::Result<Vec<PartMeta>> {
        let dir = self.upload_dir(upload_id).ok_or_else(no_upload)?;
        blocking(move || read_parts(&dir)).await
    }

    /// Completes an upload: `meta`'s segments name part segment files of the upload; they are
    /// linked into the bucket, the record is sealed and committed, the upload removed.
    pub async fn complete_upload(
        self: &Arc<Self>,
        upload_id: &str,
        bucket: &str,
        meta: ObjectMeta,
    ) -> io::Result<()> {
        let this = Arc::clone(self);
        let (upload_id, bucket) = (upload_id.to_owned(), bucket.to_owned());
        detached(async move { this.complete_now(&upload_id, &bucket, meta).await }).await
    }

    async fn complete_now(
        &self,
        upload_id: &str,
        bucket: &str,
        mut meta: ObjectMeta,
    ) -> io::Result<()> {
        let dir = self.upload_dir(upload_id).ok_or_else(no_upload)?;
        let bucket_dir = self.bucket_dir(bucket);
        let mut segments = meta.segments.clone();
        segments = blocking(move || {
            ensure_private_dir(&bucket_dir)?;
            for segment in &mut segments {
                let name = format!("{}.seg", uuid::Uuid::new_v4().simple());
                fs::hard_link(dir.join(&segment.file), bucket_dir.join(&name))?;
                segment.file = name;
            }
            File::open(&bucket_dir)?.sync_all()?;
            Ok(segments)
        })
        .await?;
        meta.segments = segments;
        self.seal_layout(bucket, &mut meta);
        self.commit_now(bucket, meta).await?;
        self.abort_now(upload_id).await.map(|_| ())
    }

    /// Removes an upload and its parts; `false` when there was none.
    pub async fn abort_upload(self: &Arc<Self>, upload_id: &str) -> io::Result<bool> {
        let this = Arc::clone(self);
        let upload_id = upload_id.to_owned();
        detached(async move { this.abort_now(&upload_id).await }).await
    }

    async fn abort_now(&self, upload_id: &str) -> io::Result<bool> {
        let _commit = self.commits.lock().await;
        let Some(dir) = self.upload_dir(upload_id) else {
            return Ok(false);
        };
        blocking(move || {
            // The record goes first, durably: a crash midway leaves a directory without a
            // record, which the next start removes.
            match remove_durably(&dir.join("upload.json")) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            }
            fs::remove_dir_all(&dir)?;
            Ok(true)
        })
        .await
    }

    /// The uploads in progress in a bucket, by key then initiation time.
    pub async fn uploads_of(&self, bucket: &str) -> io::Result<Vec<UploadMeta>> {
        let root = self.uploads.clone();
        let bucket = bucket.to_owned();
        blocking(move || {
            let mut found: Vec<UploadMeta> = uploads_in(&root, &bucket)?
                .into_iter()
                .map(|(_, upload)| upload)
                .collect();
            found.sort_by(|a, b| (&a.key, a.initiated).cmp(&(&b.key, b.initiated)));
            Ok(found)
        })
        .await
    }
}

fn no_upload() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such upload")
}

/// A segment file being written, removed when dropped unless [`PendingSegment::keep`] was
/// called: a request that fails, is refused, or is abandoned mid-body (the client went away and
/// its future was dropped) leaves no file behind.
#[derive(Debug)]
pub struct PendingSegment {
    name: String,
    path: PathBuf,
    kept: bool,
}

impl PendingSegment {
    /// The file's name, for the record that will name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keeps the file: its record is written.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for PendingSegment {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn new_segment_file(dir: &Path) -> io::Result<(PendingSegment, File)> {
    let name = format!("{}.seg", uuid::Uuid::new_v4().simple());
    let path = dir.join(&name);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let pending = PendingSegment {
        name,
        path,
        kept: false,
    };
    Ok((pending, file))
}

/// A JSON record: `None` when the file does not exist, `InvalidData` when it does not parse.
fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The uploads in progress in a bucket, with their directories. An unreadable upload record
/// is passed over: it belongs to no bucket anyone can name.
fn uploads_in(root: &Path, bucket: &str) -> io::Result<Vec<(PathBuf, UploadMeta)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(root)? {
        let dir = entry?.path();
        if let Ok(Some(upload)) = read_json::<UploadMeta>(&dir.join("upload.json")) {
            if upload.bucket == bucket {
                found.push((dir, upload));
            }
        }
    }
    Ok(found)
}

fn read_parts(dir: &Path) -> io::Result<Vec<PartMeta>> {
    if !dir.join("upload.json").exists() {
        return Err(no_upload());
    }
    let mut parts = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("part-") && name.ends_with(".json") {
            if let Some(part) = read_json::<PartMeta>(&dir.join(&name))? {
                parts.push(part);
            }
        }
    }
    parts.sort_by_key(|p| p.part_number);
    Ok(parts)
}

/// Removes the named segment files except those in `keep`. Failures only leave orphans, which
/// the next start removes.
fn remove_segments<'a>(
    dir: &Path,
    files: impl IntoIterator<Item = &'a String>,
    keep: &HashSet<String>,
) {
    for file in files {
        if !keep.contains(file) && is_segment_name(file) {
            let _ = fs::remove_file(dir.join(file));
        }
    }
}

fn is_segment_name(name: &str) -> bool {
    name.strip_suffix(".seg")
        .is_some_and(|stem| stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Reads a bucket directory's records and removes segment files none of them names.
fn open_bucket_dir(dir: &Path) -> io::Result<BTreeMap<String, Summary>> {
    remove_leftover_temps(dir)?;
    let mut objects = BTreeMap::new();
    let mut referenced = HashSet::new();
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            let Some(meta) = read_json::<ObjectMeta>(&entry.path())? else {
                continue;
            };
            referenced.extend(meta.segments.iter().map(|s| s.file.clone()));
            objects.insert(
                meta.key.clone(),
                Summary {
                    size: meta.size,
                    etag: meta.etag.clone(),
                    last_modified: meta.last_modified,
                },
            );
        } else if is_segment_name(&name) {
            segments.push(name);
        }
    }
    for name in segments {
        if !referenced.contains(&name) {
            tracing::info!(file = %name, "removing a segment no object record names");
            fs::remove_file(dir.join(&name))?;
        }
    }
    Ok(objects)
}

/// Removes an upload directory without a record, or the part segments no part record names.
fn clean_upload_dir(dir: &Path) -> io::Result<()> {
    if !dir.join("upload.json").exists() {
        return fs::remove_dir_all(dir);
    }
    remove_leftover_temps(dir)?;
    let referenced: HashSet<String> = read_parts(dir)?.into_iter().map(|p| p.file).collect();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if is_segment_name(&name) && !referenced.contains(&name) {
            fs::remove_file(dir.join(&name))?;
        }
    }
    Ok(())
}

/// Runs a change on a task of its own and waits for it: dropping the waiting future does not
/// stop the change.
async fn detached<T: Send + 'static>(
    change: impl std::future::Future<Output = io::Result<T>> + Send + 'static,
) -> io::Result<T> {
    tokio::spawn(change).await.map_err(io::Error::other)?
}

/// Runs file I/O off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::meta::{Encryption, Segment};

    fn record(key: &str, file: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            key: key.to_owned(),
            size,
            etag: "e".into(),
            last_modified: kms_core::now(),
            headers: vec![],
            user_metadata: vec![],
            checksum: None,
            encryption: Encryption::None,
            segments: vec![Segment {
                file: file.to_owned(),
                part_number: 1,
                size,
                salt: None,
            }],
            layout_mac: String::new(),
        }
    }

    fn segment_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".seg"))
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn overwrites_and_crashes_leave_only_the_segments_a_record_names() {
        let data = tempfile::tempdir().unwrap();
        let key = SecretBytes::new(vec![1; 32]);
        let store = ObjectStore::open(data.path(), key.clone()).unwrap();
        let (first, mut file) = store.create_segment("b").unwrap();
        file.write_all(b"one").unwrap();
        let mut meta = record("k", first.name(), 3);
        store.seal_layout("b", &mut meta);
        store.commit("b", meta, first).await.unwrap();

        // An overwrite removes the old segment once the new record is in place.
        let (pending, mut file) = store.create_segment("b").unwrap();
        file.write_all(b"two!").unwrap();
        let second = pending.name().to_owned();
        let mut meta = record("k", &second, 4);
        store.seal_layout("b", &mut meta);
        store.commit("b", meta.clone(), pending).await.unwrap();
        let bucket_dir = data.path().join("objects").join("b");
        assert_eq!(segment_files(&bucket_dir), std::slice::from_ref(&second));

        // A crash between writing a segment and its record leaves an orphan; the next start
        // removes it and keeps the committed object.
        let (pending, _) = store.create_segment("b").unwrap();
        let orphan = pending.name().to_owned();
        std::mem::forget(pending); // as if the process died before its drop
        assert!(segment_files(&bucket_dir).contains(&orphan));
        // A segment whose request fails is removed at once.
        let (failed, _) = store.create_segment("b").unwrap();
        let failed_name = failed.name().to_owned();
        drop(failed);
        assert!(!segment_files(&bucket_dir).contains(&failed_name));
        drop(store);
        let store = ObjectStore::open(data.path(), key.clone()).unwrap();
        assert_eq!(segment_files(&bucket_dir), [second]);
        let read = store.get("b", "k").await.unwrap().unwrap();
        assert_eq!(read, meta);
        store.verify_layout("b", &read).unwrap();
        let mut edited = read.clone();
        edited.segments[0].size = 3;
        edited.size = 3;
        assert!(store.verify_layout("b", &edited).is_err());

        assert!(store.delete("b", "k").await.unwrap());
        assert!(segment_files(&bucket_dir).is_empty());
        assert!(store.is_empty("b"));
    }

    #[tokio::test]
    async fn a_completed_upload_becomes_an_object_and_leaves_no_upload_behind() {
        let data = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(data.path(), SecretBytes::new(vec![2; 32])).unwrap();
        let upload = UploadMeta {
            upload_id: String::new(),
            bucket: "b".into(),
            key: "big".into(),
            initiated: kms_core::now(),
            headers: vec![],
            user_metadata: vec![],
            encryption: Encryption::None,
        };
        let id = store.create_upload(upload).await.unwrap();
        assert!(store.upload("../../etc").await.unwrap().is_none());
        let mut segments = Vec::new();
        for (number, body) in [(1u32, b"first ".as_slice()), (2, b"second")] {
            let (pending, mut handle) = store.create_part_segment(&id).unwrap();
            handle.write_all(body).unwrap();
            let file = pending.name().to_owned();
            let part = PartMeta {
                part_number: number,
                size: body.len() as u64,
                etag: format!("p{number}"),
                last_modified: kms_core::now(),
                file: file.clone(),
                salt: None,
                checksum: None,
            };
            store.commit_part(&id, part, pending).await.unwrap();
            segments.push(Segment {
                file,
                part_number: number,
                size: body.len() as u64,
                salt: None,
            });
        }
        assert_eq!(store.parts(&id).await.unwrap().len(), 2);
        let mut meta = record("big", "", 12);
        meta.segments = segments;
        store.complete_upload(&id, "b", meta).await.unwrap();
        assert!(store.upload(&id).await.unwrap().is_none());
        assert_eq!(
            fs::read_dir(data.path().join("uploads")).unwrap().count(),
            0
        );
        let object = store.get("b", "big").await.unwrap().unwrap();
        store.verify_layout("b", &object).unwrap();
        let mut bytes = Vec::new();
        for segment in &object.segments {
            bytes.extend(fs::read(store.segment_path("b", &segment.file)).unwrap());
        }
        assert_eq!(bytes, b"first second");
    }
}
