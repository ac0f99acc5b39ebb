//! MNIST-style IDX files: big-endian header (magic `0x0000_08TT_DD`: type TT = 0x08 for u8,
//! DD dimensions), then the dimension sizes as u32, then the values. Gzipped (or zstd) files are
//! detected by their magic bytes, not their name.

use std::path::Path;

use polars::prelude::*;

use crate::file::read_decompressed;
use crate::DataError;

/// A decoded IDX array of u8 values.
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub values: Vec<u8>,
}

fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>, DataError> {
    read_decompressed(path).map(|(bytes, _)| bytes).map_err(|message| DataError::Load { path: path.display().to_string(), message })
}

/// Reads and validates one IDX file of u8 values.
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let err = |message: String| DataError::Load { path: path.display().to_string(), message };
    let mut bytes = read_maybe_gzipped(path)?;
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(err("not an IDX file (bad magic number)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(err(format!("IDX value type 0x{:02x} is not supported (only u8, 0x08)", bytes[2])));
    }
    let ndims = bytes[3] as usize;
    let header = 4 + 4 * ndims;
    if ndims == 0 || bytes.len() < header {
        return Err(err("IDX header is truncated".into()));
    }
    let dims: Vec<usize> = (0..ndims).map(|i| u32::from_be_bytes([bytes[4 + 4 * i], bytes[5 + 4 * i], bytes[6 + 4 * i], bytes[7 + 4 * i]]) as usize).collect();
    // Sizes come from the file: an overflowing product is a bad header, not a wrapped size.
    let Some(expected) = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
        return Err(err(format!("IDX dimensions {dims:?} are too large to be a file")));
    };
    if bytes.len() - header != expected {
        return Err(err(format!("IDX dimensions {dims:?} need {expected} values, the file has {}", bytes.len() - header)));
    }
    // The values in place (no second copy of the file).
    bytes.drain(..header);
    Ok(IdxArray { dims, values: bytes })
}

/// Images (N × H × W ...) become Float32 columns `px0..`; labels (N) become Int64 column `label`.
pub fn load_idx(images: &Path, labels: Option<&Path>) -> Result<DataFrame, DataError> {
    let img = read_idx(images)?;
    let n = img.dims[0];
    // With no images every pixel count "fits" the zero values: refuse it before making columns.
    if n == 0 {
        return Err(DataError::Load { path: images.display().to_string(), message: format!("the IDX file holds no images (dimensions {:?})", img.dims) });
    }
    let width: usize = img.dims[1..].iter().product();
    let mut columns: Vec<Column> = (0..width)
        .map(|j| {
            let values: Vec<f32> = (0..n).map(|i| img.values[i * width + j] as f32).collect();
            Column::new(format!("px{j}").into(), values)
        })
        .collect();
    if let Some(path) = labels {
        let lab = read_idx(path)?;
        if lab.dims.len() != 1 || lab.dims[0] != n {
            return Err(DataError::Load {
                path: path.display().to_string(),
                message: format!("{} labels for {n} images (dimensions {:?})", lab.dims.iter().product::<usize>(), lab.dims),
            });
        }
        columns.push(Column::new("label".into(), lab.values.iter().map(|&v| v as i64).collect::<Vec<i64>>()));
    }
    tracing::info!(path = %images.display(), rows = n, shape = ?&img.dims[1..], "loaded IDX images");
    Ok(DataFrame::new(n, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(dims: &[u32], values: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend(values);
        b
    }

    #[test]
    fn reads_plain_and_gzipped_idx() {
        let dir = tempdir();
        let images = dir.join("img.idx");
        std::fs::write(&images, idx(&[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 255])).unwrap();
        let labels = dir.join("lab.idx.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&idx(&[2], &[7, 9])).unwrap();
        std::fs::write(&labels, gz.finish().unwrap()).unwrap();
        let df = load_idx(&images, Some(&labels)).unwrap();
        assert_eq!(df.shape(), (2, 5));
        assert_eq!(df.column("px3").unwrap().f32().unwrap().get(1), Some(255.0));
        assert_eq!(df.column("label").unwrap().i64().unwrap().get(1), Some(9));

        std::fs::write(&labels, idx(&[3], &[1, 2, 3])).unwrap();
        assert!(load_idx(&images, Some(&labels)).unwrap_err().to_string().contains("3 labels for 2 images"));
        std::fs::write(&images, idx(&[2, 2, 2], &[0, 1])).unwrap();
        assert!(load_idx(&images, None).unwrap_err().to_string().contains("need 8 values"));
        // Found by fuzzing: no images of 196,608 × 50,331,656 pixels made ~10¹³ empty columns.
        std::fs::write(&images, idx(&[0, 196_608, 50_331_656], &[])).unwrap();
        assert!(load_idx(&images, None).unwrap_err().to_string().contains("holds no images"));
        std::fs::write(&images, idx(&[65_536, 65_536, 65_536, 65_536, 65_536], &[])).unwrap();
        assert!(load_idx(&images, None).unwrap_err().to_string().contains("too large"));
        std::fs::write(&images, b"hello").unwrap();
        assert!(load_idx(&images, None).unwrap_err().to_string().contains("bad magic"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("distill-idx-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
