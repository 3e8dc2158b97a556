use std::fmt;

use kms_core::KeyId;

use crate::document;
use serde::{Deserialize, Serialize};

/// The namespace of S3 XML documents.
pub const S3_XML_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// The algorithm of a bucket default encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SseAlgorithm {
    /// SSE-S3: `AES256`, data keys under the KMS default key.
    #[serde(rename = "AES256")]
    Aes256,
    /// SSE-KMS: `aws:kms`, data keys under a named KMS key.
    #[serde(rename = "aws:kms")]
    AwsKms,
}

impl SseAlgorithm {
    /// The S3 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aes256 => "AES256",
            Self::AwsKms => "aws:kms",
        }
    }
}

/// Why an encryption configuration was refused, by S3 error code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The document is not a well-formed configuration (`MalformedXML`).
    Malformed(String),
    /// A value is not allowed (`InvalidArgument`).
    InvalidArgument(String),
    /// `KMSMasterKeyID` cannot name any key (an alias, an alias ARN, an id breaking the key id
    /// rules): no such key exists (`KMSKeyNotFound`).
    NoSuchKey(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) | Self::InvalidArgument(why) | Self::NoSuchKey(why) => {
                f.write_str(why)
            }
        }
    }
}

pub(crate) fn malformed(why: impl Into<String>) -> ConfigError {
    ConfigError::Malformed(why.into())
}

/// A validated bucket default encryption: exactly one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionConfig {
    /// The algorithm.
    pub algorithm: SseAlgorithm,
    /// The KMS key, with `aws:kms` only. `None` with `aws:kms` until the server fills in its
    /// default key.
    pub kms_master_key_id: Option<KeyId>,
    /// S3 Bucket Keys: stored and echoed.
    pub bucket_key_enabled: Option<bool>,
}

impl EncryptionConfig {
    /// Builds a configuration from its parts as clients spell them: the algorithm (`AES256` or
    /// `aws:kms`), the key id (bare or `arn:…:key/<id>`), `BucketKeyEnabled`.
    pub fn new(
        algorithm: &str,
        key_id: Option<&str>,
        bucket_key_enabled: Option<bool>,
    ) -> Result<Self, ConfigError> {
        let algorithm = match algorithm {
            "AES256" => SseAlgorithm::Aes256,
            "aws:kms" => SseAlgorithm::AwsKms,
            _ => return Err(malformed("SSEAlgorithm must be AES256 or aws:kms")),
        };
        let key_id = match (algorithm, key_id) {
            (SseAlgorithm::Aes256, Some(_)) => {
                return Err(ConfigError::InvalidArgument(
                    "KMSMasterKeyID is allowed only with SSEAlgorithm aws:kms".into(),
                ))
            }
            (_, None) => None,
            (_, Some(text)) => Some(parse_key_reference(text.trim())?),
        };
        Ok(Self {
            algorithm,
            kms_master_key_id: key_id,
            bucket_key_enabled,
        })
    }

    /// Parses a `ServerSideEncryptionConfiguration` document.
    pub fn from_xml(xml: &[u8]) -> Result<Self, ConfigError> {
        let tree = document::parse(xml)?;
        if tree.name != "ServerSideEncryptionConfiguration" {
            return Err(malformed(
                "the root element must be ServerSideEncryptionConfiguration",
            ));
        }
        let rules = tree.children_named("Rule", &["Rule"])?;
        let [rule] = rules.as_slice() else {
            return Err(malformed("the configuration must have exactly one Rule"));
        };
        let default = rule
            .only_child(
                "ApplyServerSideEncryptionByDefault",
                &["ApplyServerSideEncryptionByDefault", "BucketKeyEnabled"],
            )?
            .ok_or_else(|| malformed("the Rule must have ApplyServerSideEncryptionByDefault"))?;
        let bucket_key = match rule.only_child("BucketKeyEnabled", &[])? {
            None => None,
            Some(e) => match e.text.trim() {
                "true" => Some(true),
                "false" => Some(false),
                _ => return Err(malformed("BucketKeyEnabled must be true or false")),
            },
        };
        let allowed = ["SSEAlgorithm", "KMSMasterKeyID"];
        let algorithm = default
            .only_child("SSEAlgorithm", &allowed)?
            .ok_or_else(|| malformed("SSEAlgorithm is required"))?;
        let key_id = default.only_child("KMSMasterKeyID", &allowed)?;
        Self::new(
            algorithm.text.trim(),
            key_id.map(|e| e.text.trim()),
            bucket_key,
        )
    }

    /// Writes the configuration as S3 returns it from GetBucketEncryption.
    pub fn to_xml(&self) -> String {
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ServerSideEncryptionConfiguration xmlns=\"{S3_XML_NAMESPACE}\"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>{}</SSEAlgorithm>",
            self.algorithm.as_str()
        );
        if let Some(key_id) = &self.kms_master_key_id {
            xml.push_str(&format!(
                "<KMSMasterKeyID>{}</KMSMasterKeyID>",
                escape(key_id.as_str())
            ));
        }
        xml.push_str("</ApplyServerSideEncryptionByDefault>");
        if let Some(enabled) = self.bucket_key_enabled {
            xml.push_str(&format!("<BucketKeyEnabled>{enabled}</BucketKeyEnabled>"));
        }
        xml.push_str("</Rule></ServerSideEncryptionConfiguration>");
        xml
    }
}

/// A bare key id, or the key id at the end of `arn:aws:kms:region:account:key/<id>`. Anything
/// else (aliases, alias ARNs, ids breaking the key id rules) names no key this server has.
fn parse_key_reference(text: &str) -> Result<KeyId, ConfigError> {
    let not_found =
        || ConfigError::NoSuchKey(format!("KMS key '{}' does not exist", text.escape_debug()));
    let id = match text.strip_prefix("arn:") {
        Some(rest) => rest
            .rsplit_once(":key/")
            .map(|(_, id)| id)
            .ok_or_else(not_found)?,
        None => text,
    };
    KeyId::parse(id).map_err(|_| not_found())
}

fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(rule: &str) -> String {
        format!("<ServerSideEncryptionConfiguration xmlns=\"{S3_XML_NAMESPACE}\">{rule}</ServerSideEncryptionConfiguration>")
    }

    fn kms_rule(key: &str) -> String {
        format!("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>{key}</KMSMasterKeyID></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule>")
    }

    #[test]
    fn parses_sse_kms_with_an_arn_and_round_trips() {
        let arn = "arn:aws:kms:us-east-1:123456789012:key/fa5bac0e-2a2c-4f9a-a09d-2f5b8a59ed85";
        let config = EncryptionConfig::from_xml(doc(&kms_rule(arn)).as_bytes()).unwrap();
        assert_eq!(config.algorithm, SseAlgorithm::AwsKms);
        assert_eq!(
            config.kms_master_key_id.as_ref().unwrap().as_str(),
            "fa5bac0e-2a2c-4f9a-a09d-2f5b8a59ed85"
        );
        assert_eq!(config.bucket_key_enabled, Some(true));
        assert_eq!(
            EncryptionConfig::from_xml(config.to_xml().as_bytes()).unwrap(),
            config
        );
    }

    #[test]
    fn parses_sse_s3_without_namespace_prefix_issues() {
        let xml = "<?xml version=\"1.0\"?>\n<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n  <Rule>\n    <ApplyServerSideEncryptionByDefault>\n      <SSEAlgorithm>AES256</SSEAlgorithm>\n    </ApplyServerSideEncryptionByDefault>\n  </Rule>\n</ServerSideEncryptionConfiguration>";
        let config = EncryptionConfig::from_xml(xml.as_bytes()).unwrap();
        assert_eq!(
            (
                config.algorithm,
                config.kms_master_key_id,
                config.bucket_key_enabled
            ),
            (SseAlgorithm::Aes256, None, None)
        );
    }

    #[test]
    fn refuses_every_malformed_document() {
        let aes_with_key = "<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm><KMSMasterKeyID>k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule>";
        assert!(matches!(
            EncryptionConfig::from_xml(doc(aes_with_key).as_bytes()),
            Err(ConfigError::InvalidArgument(_))
        ));
        let cases = [
            String::new(),
            "not xml".into(),
            "<ServerSideEncryptionConfiguration>".into(),
            doc(""),
            doc(&format!("{}{}", kms_rule("a"), kms_rule("b"))),
            doc("<Rule></Rule>"),
            doc("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>DES</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>"),
            doc("<Rule><ApplyServerSideEncryptionByDefault></ApplyServerSideEncryptionByDefault></Rule>"),
            doc("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm><Extra/></ApplyServerSideEncryptionByDefault></Rule>"),
            doc("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>yes</BucketKeyEnabled></Rule>"),
            "<Other/>".into(),
            format!("{}<x/>", doc(&kms_rule("a"))),
            "<ServerSideEncryptionConfiguration xmlns=\"urn:other\"><Rule/></ServerSideEncryptionConfiguration>".into(),
        ];
        for (i, case) in cases.iter().enumerate() {
            let result = EncryptionConfig::from_xml(case.as_bytes());
            assert!(
                matches!(result, Err(ConfigError::Malformed(_))),
                "case {i}: {case} gave {result:?}"
            );
        }
    }

    #[test]
    fn references_that_name_no_key_are_key_not_found() {
        for reference in [
            "alias/my-key",
            "arn:aws:kms:us-east-1:000000000000:alias/my-key",
            &"k".repeat(257),
        ] {
            let result = EncryptionConfig::new("aws:kms", Some(reference), None);
            assert!(
                matches!(result, Err(ConfigError::NoSuchKey(_))),
                "{reference}: {result:?}"
            );
        }
    }

    #[test]
    fn key_ids_with_xml_specials_are_escaped() {
        let config = EncryptionConfig::new("aws:kms", Some("a&b<c"), None).unwrap();
        let xml = config.to_xml();
        assert!(xml.contains("a&amp;b&lt;c"));
        assert_eq!(EncryptionConfig::from_xml(xml.as_bytes()).unwrap(), config);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const VALID: &str = "<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>k1</KMSMasterKeyID></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>false</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>";

    proptest! {
        #[test]
        fn arbitrary_documents_are_refused_without_panicking(text in ".{0,300}") {
            let _ = EncryptionConfig::from_xml(text.as_bytes());
        }

        #[test]
        fn damaged_valid_documents_never_panic(cut in 0..VALID.len(), byte in any::<u8>(), at in 0..VALID.len()) {
            let mut bytes = VALID.as_bytes().to_vec();
            bytes[at] = byte;
            let _ = EncryptionConfig::from_xml(&bytes);
            let _ = EncryptionConfig::from_xml(&VALID.as_bytes()[..cut]);
        }

        #[test]
        fn generated_configurations_round_trip(id in "[A-Za-z0-9&<>'\"._-]{1,40}", bucket_key in proptest::option::of(any::<bool>())) {
            prop_assume!(!id.contains(".."));
            let config = EncryptionConfig::new("aws:kms", Some(&id), bucket_key).unwrap();
            prop_assert_eq!(EncryptionConfig::from_xml(config.to_xml().as_bytes()).unwrap(), config);
        }
    }
}
