//! Stamp files that make installs idempotent: an install step writes the fingerprint of its
//! inputs after it succeeded, and is skipped while the fingerprint still matches.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// A stable 64-bit FNV-1a fingerprint of some inputs, written as 16 hex digits.
///
/// `std`'s `DefaultHasher` is not promised to be stable across Rust releases, and a stamp must
/// survive a toolchain update, so the few lines of FNV-1a are spelled out here. Each part is
/// length-prefixed so that moving bytes from one part to the next changes the result.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        let len = (part.len() as u64).to_le_bytes();
        for byte in len.iter().chain(part.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:016x}")
}

/// True when the stamp file exists and holds exactly `expected`.
pub fn is_current(stamp: &Path, expected: &str) -> bool {
    fs::read_to_string(stamp).is_ok_and(|found| found.trim() == expected)
}

/// Records that the install described by `value` succeeded.
pub fn write(stamp: &Path, value: &str) -> Result<()> {
    fs::write(stamp, format!("{value}\n"))
        .with_context(|| format!("cannot write stamp file {}", stamp.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_across_runs() {
        // Pinned so that a change of algorithm, which would reinstall everything, is deliberate.
        assert_eq!(fingerprint(&[]), "cbf29ce484222325");
        assert_eq!(fingerprint(&[b"pytest==9.2.0\n"]), "27680be52de33cdb");
    }

    #[test]
    fn fingerprint_changes_with_content_and_with_part_boundaries() {
        assert_ne!(fingerprint(&[b"a==1"]), fingerprint(&[b"a==2"]));
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
    }

    #[test]
    fn stamp_matches_only_what_was_written() {
        let dir = std::env::temp_dir().join(format!("xtask-stamp-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let stamp = dir.join("stamp");
        assert!(!is_current(&stamp, "0123"));
        write(&stamp, "0123").unwrap();
        assert!(is_current(&stamp, "0123"));
        assert!(!is_current(&stamp, "4567"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
