//! Whether an artifact's bytes load as their format, told by the file extension: the check that
//! `store` runs before keeping an existing artifact and `verify` runs on every one. A checksum
//! only proves the bytes are the ones recorded, not that they were ever a valid file.

use std::path::Path;

use crate::features::decode_features;
use crate::logits::decode_logits;

/// `Ok` when `bytes` load as the format of `artifact`'s extension (`.features.parquet`: a feature
/// file; `.parquet`: a cache logit file, footer, schema and metadata; `.safetensors`: the header and every tensor's extent);
/// an extension with no known format is not checked.
pub(crate) fn check_loads(artifact: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = artifact.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(crate::features::FEATURES_EXT) {
        return decode_features(artifact, bytes.to_vec()).map(|_| ()).map_err(|e| without_path(&e.to_string(), artifact));
    }
    match artifact.extension().and_then(|e| e.to_str()) {
        Some("parquet") => decode_logits(artifact, bytes.to_vec()).map(|_| ()).map_err(|e| without_path(&e.to_string(), artifact)),
        Some("safetensors") => safetensors::SafeTensors::deserialize(bytes).map(|_| ()).map_err(|e| format!("not a safetensors file: {e}")),
        _ => Ok(()),
    }
}

/// The decoder names the file; callers already show it.
fn without_path(message: &str, path: &Path) -> String {
    message.strip_prefix(&format!("{}: ", path.display())).unwrap_or(message).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::logits::{encode_logits, LogitMeta};

    pub(crate) fn safetensors_bytes() -> Vec<u8> {
        let data = [0u8; 8];
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
        safetensors::serialize([("w", view)], &None).unwrap()
    }

    #[test]
    fn real_files_load_and_truncated_or_foreign_ones_do_not() {
        let st = Path::new("/c/teachers/k.safetensors");
        let bytes = safetensors_bytes();
        assert_eq!(check_loads(st, &bytes), Ok(()));
        assert!(check_loads(st, &bytes[..bytes.len() - 1]).is_err(), "a tensor past the end");
        assert!(check_loads(st, b"weights").unwrap_err().contains("safetensors"));

        let pq = Path::new("/c/logits/k.parquet");
        let meta = LogitMeta { teacher_fingerprint: "t".into(), data_fingerprint: "d".into(), class_names: vec!["a".into(), "b".into()], top_k: None };
        let logits = encode_logits(pq, &meta, &[0, 1], &[0.5, -0.5, 1.0, 2.0]).unwrap();
        assert_eq!(check_loads(pq, &logits), Ok(()));
        let cut = check_loads(pq, &logits[..logits.len() / 2]).unwrap_err();
        assert!(!cut.contains("/c/logits"), "the path is not repeated: {cut}");
        assert!(check_loads(pq, &bytes).is_err(), "safetensors bytes are no logit file");
        assert_eq!(check_loads(Path::new("x.bin"), b"anything"), Ok(()));
    }
}
