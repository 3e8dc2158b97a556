//! The Vault requests this backend needs in a shape vaultrs does not offer.
//!
//! - `sys/health` is read for the two fields that matter: vaultrs's typed answer requires fields
//!   OpenBao does not send (`performance_standby`).
//! - `sys/internal/ui/mounts/{path}` tells the type and options of a mount to any token that may
//!   use it, so the probe at connect works with a least-privilege policy.
//! - `{transit}/keys/{name}` is read with the key type as plain text: vaultrs's typed answer
//!   refuses key types it does not know, and an unknown type must be a clear refusal to adopt.

use std::collections::BTreeMap;

use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use serde::Deserialize;

/// `GET sys/internal/ui/mounts/{path}`.
pub(crate) struct ReadMountInfo {
    pub(crate) path: String,
}

/// What [`ReadMountInfo`] answers.
#[derive(Debug, Deserialize)]
pub(crate) struct MountInfo {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) options: Option<BTreeMap<String, serde_json::Value>>,
}

impl MountInfo {
    /// Whether this is a KV mount of version 2.
    pub(crate) fn is_kv_v2(&self) -> bool {
        let version = self.options.as_ref().and_then(|o| o.get("version"));
        self.kind == "kv" && version.and_then(|v| v.as_str()) == Some("2")
    }
}

impl Endpoint for ReadMountInfo {
    type Response = MountInfo;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        format!("sys/internal/ui/mounts/{}", self.path)
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::GET
    }
}

/// `GET sys/health`, standbys counting as healthy (they forward requests), and a sealed or
/// uninitialised server answering 503 like an unreachable one.
pub(crate) struct ReadHealth;

/// What [`ReadHealth`] answers with 200.
#[derive(Debug, Deserialize)]
pub(crate) struct Health {
    pub(crate) initialized: bool,
    pub(crate) sealed: bool,
}

impl Endpoint for ReadHealth {
    type Response = Health;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        "sys/health".into()
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::GET
    }

    fn query(&self) -> Result<Option<String>, rustify::errors::ClientError> {
        Ok(Some(
            "standbyok=true&perfstandbyok=true&sealedcode=503&uninitcode=503".into(),
        ))
    }
}

/// `GET {mount}/keys/{name}`.
pub(crate) struct ReadTransitKey {
    pub(crate) mount: String,
    pub(crate) name: String,
}

/// The parts of a Transit key's description this backend reads.
#[derive(Debug, Deserialize)]
pub(crate) struct TransitKey {
    #[serde(rename = "type")]
    pub(crate) key_type: String,
    #[serde(default)]
    pub(crate) derived: bool,
    #[serde(default)]
    pub(crate) supports_encryption: bool,
    #[serde(default)]
    pub(crate) supports_decryption: bool,
    pub(crate) latest_version: u32,
    /// Version number → creation time (Unix seconds) for symmetric keys.
    #[serde(default)]
    pub(crate) keys: BTreeMap<String, serde_json::Value>,
}

impl TransitKey {
    /// When a version was made, for symmetric keys.
    pub(crate) fn version_time(&self, version: u32) -> Option<chrono::DateTime<chrono::Utc>> {
        let seconds = self.keys.get(&version.to_string())?.as_i64()?;
        chrono::DateTime::from_timestamp(seconds, 0)
    }

    /// The oldest version still held.
    pub(crate) fn oldest_version(&self) -> Option<u32> {
        self.keys.keys().filter_map(|v| v.parse().ok()).min()
    }
}

impl Endpoint for ReadTransitKey {
    type Response = TransitKey;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        format!("{}/keys/{}", self.mount, self.name)
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::GET
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_version_two_is_recognised() {
        let v2: MountInfo =
            serde_json::from_str(r#"{"type":"kv","options":{"version":"2"}}"#).unwrap();
        assert!(v2.is_kv_v2());
        let v1: MountInfo = serde_json::from_str(r#"{"type":"kv","options":null}"#).unwrap();
        assert!(!v1.is_kv_v2());
        let transit: MountInfo = serde_json::from_str(r#"{"type":"transit"}"#).unwrap();
        assert!(!transit.is_kv_v2());
    }

    #[test]
    fn openbao_health_answers_are_read() {
        let answer = r#"{"initialized":true,"sealed":false,"standby":false,
            "replication_performance_mode":"disabled","server_time_utc":1,"version":"2.7.2"}"#;
        let health: Health = serde_json::from_str(answer).unwrap();
        assert!(health.initialized && !health.sealed);
    }

    #[test]
    fn transit_keys_of_any_type_are_read() {
        let key: TransitKey = serde_json::from_str(
            r#"{"type":"some-future-type","derived":false,"latest_version":3,
                "keys":{"2":1700000000,"3":1700000100},"supports_encryption":true}"#,
        )
        .unwrap();
        assert_eq!(key.key_type, "some-future-type");
        assert_eq!(key.oldest_version(), Some(2));
        assert_eq!(key.version_time(3).unwrap().timestamp(), 1_700_000_100);
        assert_eq!(key.version_time(1), None);
    }
}
