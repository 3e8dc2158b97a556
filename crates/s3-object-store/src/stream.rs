//! Writing and reading segment files, package by package. These are blocking; the HTTP layer
//! runs them on blocking threads and moves bytes through bounded channels, so memory stays at a
//! few packages per request whatever the object's size.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use md5::{Digest, Md5};

use crate::package::{package_count, sealed_len, SegmentCipher, Tampered, PACKAGE, SEALED_PACKAGE};

/// Writes one segment: plaintext in, packages (or, unencrypted, the plaintext itself) out.
pub struct SegmentWriter {
    out: BufWriter<File>,
    cipher: Option<SegmentCipher>,
    pending: Vec<u8>,
    index: u64,
    size: u64,
    stored_md5: Md5,
}

/// What a finished segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrittenSegment {
    /// Plaintext bytes.
    pub size: u64,
    /// The MD5 the segment's ETag is made of: of the plaintext for an unencrypted segment (as
    /// S3), of the packages' GCM tags for a sealed one. The tags authenticate every byte on disk
    /// under a key no other segment shares, so they identify the stored bytes as well as a hash
    /// of them would, at 16 bytes hashed per 64 KiB package.
    pub stored_md5: [u8; 16],
}

impl SegmentWriter {
    /// A writer into `file` (new and empty), sealing with `cipher` when given.
    pub fn new(file: File, cipher: Option<SegmentCipher>) -> Self {
        Self {
            out: BufWriter::with_capacity(SEALED_PACKAGE as usize, file),
            cipher,
            pending: Vec::with_capacity(PACKAGE as usize),
            index: 0,
            size: 0,
            stored_md5: Md5::new(),
        }
    }

    /// Appends plaintext.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.size += data.len() as u64;
        let Some(cipher) = &self.cipher else {
            self.stored_md5.update(data);
            return self.out.write_all(data);
        };
        while !data.is_empty() {
            // A full package is sealed only once more data arrives: until then it may be the
            // last one, which is sealed differently.
            if self.pending.len() == PACKAGE as usize {
                let sealed = cipher.seal(self.index, false, &self.pending);
                self.index += 1;
                self.pending.clear();
                self.stored_md5.update(tag_of(&sealed));
                self.out.write_all(&sealed)?;
            }
            let room = PACKAGE as usize - self.pending.len();
            let take = room.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals the last package, flushes and syncs the file.
    pub fn finish(mut self) -> io::Result<WrittenSegment> {
        if let Some(cipher) = &self.cipher {
            let sealed = cipher.seal(self.index, true, &self.pending);
            self.stored_md5.update(tag_of(&sealed));
            self.out.write_all(&sealed)?;
        }
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(WrittenSegment {
            size: self.size,
            stored_md5: self.stored_md5.finalize().into(),
        })
    }
}

/// The GCM tag at the end of a sealed package.
fn tag_of(sealed: &[u8]) -> &[u8] {
    &sealed[sealed.len() - crate::package::TAG as usize..]
}

/// Reads plaintext bytes `start..end` of a segment of `size` plaintext bytes, handing them to
/// `sink` in pieces of at most one package; stops early when `sink` returns `false`. Only the
/// packages that hold the range are read and opened. A segment whose file length does not
/// match, or a package that does not authenticate, is an `InvalidData` error carrying
/// [`Tampered`].
pub fn read_segment(
    mut file: File,
    cipher: Option<&SegmentCipher>,
    size: u64,
    start: u64,
    end: u64,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
) -> io::Result<()> {
    debug_assert!(start <= end && end <= size);
    let expected_len = match cipher {
        Some(_) => sealed_len(size),
        None => size,
    };
    if file.metadata()?.len() != expected_len {
        return Err(tampered());
    }
    let Some(cipher) = cipher else {
        file.seek(SeekFrom::Start(start))?;
        let mut remaining = end - start;
        while remaining > 0 {
            let mut buf = vec![0; remaining.min(PACKAGE) as usize];
            file.read_exact(&mut buf)?;
            remaining -= buf.len() as u64;
            if !sink(buf) {
                return Ok(());
            }
        }
        return Ok(());
    };
    let count = package_count(size);
    let first = start / PACKAGE;
    // Even an empty range of an empty segment opens its one package, so a wrong key or a
    // damaged file never reads as an empty object.
    let last = if end > start {
        (end - 1) / PACKAGE
    } else {
        first.min(count - 1)
    };
    file.seek(SeekFrom::Start(first * SEALED_PACKAGE))?;
    let mut sealed = Vec::with_capacity(SEALED_PACKAGE as usize);
    for index in first..=last {
        let plain_len = if index + 1 == count {
            size - index * PACKAGE
        } else {
            PACKAGE
        };
        sealed.resize((plain_len + crate::package::TAG) as usize, 0);
        file.read_exact(&mut sealed)?;
        let plain = cipher
            .open(index, index + 1 == count, &sealed)
            .map_err(|_| tampered())?;
        let from = start.saturating_sub(index * PACKAGE) as usize;
        let to = (end - index * PACKAGE).min(plain_len) as usize;
        let piece = if from == 0 && to == plain.len() {
            plain
        } else {
            plain[from.min(to)..to].to_vec()
        };
        if !piece.is_empty() && !sink(piece) {
            return Ok(());
        }
    }
    Ok(())
}

fn tampered() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Tampered)
}

/// Whether an I/O error means the stored data failed to authenticate.
pub fn is_tampered(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<Tampered>().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{SALT_LEN, TAG};
    use kms_core::SecretBytes;
    use proptest::prelude::*;

    fn cipher(part: u32) -> SegmentCipher {
        let key = SecretBytes::new(vec![7; 32]);
        SegmentCipher::new(&key, &[3; SALT_LEN], part)
    }

    fn written(
        data: &[u8],
        encrypted: bool,
        pieces: usize,
    ) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        let mut writer =
            SegmentWriter::new(File::create(&path).unwrap(), encrypted.then(|| cipher(1)));
        for piece in data.chunks(pieces.max(1)) {
            writer.write(piece).unwrap();
        }
        let done = writer.finish().unwrap();
        assert_eq!(done.size, data.len() as u64);
        (dir, path)
    }

    fn read(path: &Path, encrypted: bool, size: u64, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let c = cipher(1);
        let mut out = Vec::new();
        read_segment(
            File::open(path).unwrap(),
            encrypted.then_some(&c),
            size,
            start,
            end,
            &mut |piece| {
                out.extend_from_slice(&piece);
                true
            },
        )?;
        Ok(out)
    }

    use std::path::Path;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_range_reads_back_what_was_written(
            len in 0usize..(3 * PACKAGE as usize + 10),
            pieces in 1usize..100_000,
            a in any::<u64>(),
            b in any::<u64>(),
            encrypted in any::<bool>(),
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let (_dir, path) = written(&data, encrypted, pieces);
            let size = len as u64;
            let (start, end) = if size == 0 { (0, 0) } else {
                let (x, y) = (a % (size + 1), b % (size + 1));
                (x.min(y), x.max(y))
            };
            let got = read(&path, encrypted, size, start, end).unwrap();
            prop_assert_eq!(&got[..], &data[start as usize..end as usize]);
        }
    }

    #[test]
    fn sealed_data_is_not_the_plaintext_and_every_change_is_caught() {
        let data = vec![b'M'; 2 * PACKAGE as usize + 100];
        let (_dir, path) = written(&data, true, 1000);
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(stored.len() as u64, sealed_len(data.len() as u64));
        assert!(!stored.windows(64).any(|w| w == &data[..64]));
        let size = data.len() as u64;

        // A flipped bit in any package.
        for at in [0, SEALED_PACKAGE as usize + 5, stored.len() - 1] {
            let mut bad = stored.clone();
            bad[at] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            assert!(is_tampered(&read(&path, true, size, 0, size).unwrap_err()));
        }
        // Two packages swapped.
        let mut swapped = stored.clone();
        let p = SEALED_PACKAGE as usize;
        swapped[..p].copy_from_slice(&stored[p..2 * p]);
        swapped[p..2 * p].copy_from_slice(&stored[..p]);
        std::fs::write(&path, &swapped).unwrap();
        assert!(is_tampered(&read(&path, true, size, 0, 10).unwrap_err()));
        // Cut after a whole package, with the size edited to match: the new last package was
        // not sealed as the last.
        std::fs::write(&path, &stored[..2 * p]).unwrap();
        let cut = 2 * PACKAGE;
        assert!(is_tampered(&read(&path, true, cut, 0, cut).unwrap_err()));
        // Another part number (another key) does not open it either.
        std::fs::write(&path, &stored).unwrap();
        let other = cipher(2);
        let err = read_segment(
            File::open(&path).unwrap(),
            Some(&other),
            size,
            0,
            1,
            &mut |_| true,
        )
        .unwrap_err();
        assert!(is_tampered(&err));
    }

    #[test]
    fn a_range_opens_only_the_packages_it_touches() {
        let data: Vec<u8> = (0..4 * PACKAGE as usize).map(|i| (i % 253) as u8).collect();
        let (_dir, path) = written(&data, true, 4096);
        let size = data.len() as u64;
        // Damage package 0: a range inside packages 2..3 never reads it, so it still succeeds,
        // and a range that touches package 0 fails.
        let mut stored = std::fs::read(&path).unwrap();
        stored[3] ^= 0xff;
        std::fs::write(&path, &stored).unwrap();
        let (start, end) = (2 * PACKAGE + 10, 3 * PACKAGE + 20);
        let got = read(&path, true, size, start, end).unwrap();
        assert_eq!(got, &data[start as usize..end as usize]);
        assert!(is_tampered(
            &read(&path, true, size, PACKAGE - 1, PACKAGE + 1).unwrap_err()
        ));
    }

    #[test]
    fn an_empty_segment_still_carries_a_tag() {
        let (_dir, path) = written(&[], true, 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), TAG);
        assert!(read(&path, true, 0, 0, 0).unwrap().is_empty());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"x").unwrap();
        assert!(is_tampered(&read(&path, true, 0, 0, 0).unwrap_err()));
    }
}
