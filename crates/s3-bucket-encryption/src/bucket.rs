use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::EncryptionConfig;

/// A bucket name that follows the S3 rules: 3 to 63 characters of lower-case letters, digits,
/// `.` and `-`, starting and ending with a letter or digit, no `..`, not an IP address. The name
/// `rustfs` is reserved because it would shadow the admin API prefix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BucketName(String);

impl BucketName {
    /// Validates a bucket name; the error says which rule it breaks.
    pub fn parse(name: &str) -> Result<Self, String> {
        let bytes = name.as_bytes();
        if !(3..=63).contains(&bytes.len()) {
            return Err("bucket names have 3 to 63 characters".into());
        }
        let allowed =
            |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-');
        if !bytes.iter().all(allowed) {
            return Err("bucket names use only lower-case letters, digits, '.' and '-'".into());
        }
        let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !edge(bytes[0]) || !edge(bytes[bytes.len() - 1]) {
            return Err("bucket names start and end with a letter or digit".into());
        }
        if name.contains("..") || name.contains(".-") || name.contains("-.") {
            return Err("bucket names must not have adjacent '.' and '-'".into());
        }
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err("bucket names must not look like IP addresses".into());
        }
        if name == "rustfs" {
            return Err("the bucket name 'rustfs' is reserved".into());
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for BucketName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

impl From<BucketName> for String {
    fn from(name: BucketName) -> Self {
        name.0
    }
}

/// What the server keeps for one bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// The bucket's name.
    pub name: BucketName,
    /// When the bucket was created.
    pub creation_date: DateTime<Utc>,
    /// The default encryption, if configured.
    pub encryption: Option<EncryptionConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_s3_rules() {
        for good in ["abc", "my-bucket", "my.bucket.1", &"a".repeat(63)] {
            assert!(BucketName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "-abc",
            "abc-",
            "a..b",
            "a_b",
            "192.168.1.1",
            "rustfs",
            "a.-b",
        ] {
            assert!(BucketName::parse(bad).is_err(), "{bad}");
        }
    }
}
