//! The JSON shapes of admin answers.

use kms_core::{format_timestamp, KeyMetadata, Tags};
use serde::Serialize;

/// `key_metadata` in answers.
#[derive(Serialize)]
pub struct KeyMetadataView<'a> {
    key_id: &'a str,
    description: &'a str,
    enabled: bool,
    key_usage: &'static str,
    key_state: &'static str,
    creation_date: String,
    rotation_enabled: bool,
    rotation_period_in_days: i64,
    next_rotation_date: Option<String>,
    deletion_date: Option<String>,
    current_version: u32,
    tags: &'a Tags,
}

impl<'a> From<&'a KeyMetadata> for KeyMetadataView<'a> {
    fn from(m: &'a KeyMetadata) -> Self {
        Self {
            key_id: m.key_id.as_str(),
            description: &m.description,
            enabled: m.enabled(),
            key_usage: m.key_usage.as_str(),
            key_state: m.key_state.as_str(),
            creation_date: format_timestamp(&m.creation_date),
            rotation_enabled: m.rotation_enabled,
            rotation_period_in_days: m.rotation_period_in_days,
            next_rotation_date: m.next_rotation_date().as_ref().map(format_timestamp),
            deletion_date: m.deletion_date.as_ref().map(format_timestamp),
            current_version: m.current_version,
            tags: &m.tags,
        }
    }
}

/// An entry of a key listing: what the guide's key pickers read.
#[derive(Serialize)]
pub struct KeyListEntry<'a> {
    key_id: &'a str,
    description: &'a str,
    tags: &'a Tags,
    enabled: bool,
    key_state: &'static str,
    creation_date: String,
}

impl<'a> From<&'a KeyMetadata> for KeyListEntry<'a> {
    fn from(m: &'a KeyMetadata) -> Self {
        Self {
            key_id: m.key_id.as_str(),
            description: &m.description,
            tags: &m.tags,
            enabled: m.enabled(),
            key_state: m.key_state.as_str(),
            creation_date: format_timestamp(&m.creation_date),
        }
    }
}

/// `{key_id, key_metadata}`, the answer of every key change.
#[derive(Serialize)]
pub struct KeyAnswer<'a> {
    key_id: &'a str,
    key_metadata: KeyMetadataView<'a>,
}

impl<'a> From<&'a KeyMetadata> for KeyAnswer<'a> {
    fn from(m: &'a KeyMetadata) -> Self {
        Self {
            key_id: m.key_id.as_str(),
            key_metadata: m.into(),
        }
    }
}
