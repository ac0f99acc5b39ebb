//! Stage fingerprints: a key hashed from labelled inputs, and the inputs' own hashes kept beside
//! it so `distill plan` can say which input changed since a recorded run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{hash_bytes, KeyBuilder};

/// A stage's cache key and the hash of each input it was built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// blake3 over the domain and every labelled input: the artifact's name in the cache.
    pub key: String,
    /// Input label → blake3 of that input (recorded in `lock.json`).
    pub inputs: BTreeMap<String, String>,
}

/// Builds a [`Fingerprint`]; the key is the same as a [`KeyBuilder`] over the same parts.
pub struct FingerprintBuilder {
    key: KeyBuilder,
    inputs: BTreeMap<String, String>,
}

impl FingerprintBuilder {
    pub fn new(domain: &str) -> Self {
        Self { key: KeyBuilder::new(domain), inputs: BTreeMap::new() }
    }

    pub fn part(mut self, label: &str, bytes: &[u8]) -> Self {
        self.key.part(label, bytes);
        self.inputs.insert(label.to_string(), hash_bytes(bytes));
        self
    }

    pub fn finish(self) -> Fingerprint {
        Fingerprint { key: self.key.finish(), inputs: self.inputs }
    }
}

impl Fingerprint {
    /// Labels whose hash differs from (or is missing in) `earlier`, in label order.
    pub fn changed_since(&self, earlier: &BTreeMap<String, String>) -> Vec<String> {
        let mut out: Vec<String> = self.inputs.iter().filter(|(k, v)| earlier.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
        out.extend(earlier.keys().filter(|k| !self.inputs.contains_key(*k)).cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_matches_key_builder_and_changes_are_named() {
        let a = FingerprintBuilder::new("d").part("x", b"1").part("y", b"2").finish();
        assert_eq!(a.key, KeyBuilder::new("d").part("x", b"1").part("y", b"2").finish());
        let b = FingerprintBuilder::new("d").part("x", b"1").part("y", b"3").finish();
        assert_ne!(a.key, b.key);
        assert_eq!(b.changed_since(&a.inputs), vec!["y".to_string()]);
        assert!(a.changed_since(&a.inputs).is_empty());
    }
}
