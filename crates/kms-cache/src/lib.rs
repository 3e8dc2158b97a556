//! The cache layer: [`CachedBackend`] sits in front of any backend and is a backend itself.
//!
//! It keeps loaded master keys (metadata plus the unwrapped handle) in a moka cache with a TTL
//! and a size bound, so the hot routes (generate data key, decrypt, describe) skip the backend.
//! Generated data keys are never cached. Every change of a key goes through the cache, which
//! invalidates the key before the change is acknowledged, and no lookup that started before a
//! change can put stale data back afterwards. Concurrent misses for one key make one backend call.
//!
//! It knows nothing of files, Vault or HTTP.

mod cache;

pub use cache::{CacheSettings, CachedBackend};
