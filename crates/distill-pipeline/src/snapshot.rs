//! The data stage's snapshot: the prepared splits, the check report and the data's shape, cached
//! under the blake3 of the source files' bytes (every file the `data:` section reads), the
//! `data:` section itself, the seed and distill's version. A run whose files have the same bytes
//! reads the snapshot instead of parsing and checking them again; one changed byte in any file
//! is a new key. The files are hashed every time: a (size, mtime) check could be fooled by a
//! tool that keeps the mtime (`cp -p`, `rsync -t`, `tar x`) and hashing costs far less than
//! parsing (see the README for the numbers).
//!
//! Layout: `DSNAP001`, the header's length (u64 LE), the header (YAML: names, classes,
//! fingerprint, warnings, the check report, the split sizes; YAML so every float reads back to
//! the same bits), then per split (train, val, test) the row ids (u64 LE), the features (f32
//! LE), the classes (u32 LE) and the label states (one byte each), then the test split's unscaled
//! features (f32 LE, what an exported model reads), streamed through the cache so the matrices
//! are never held twice.

use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use distill_cache::{Cache, Fingerprint, FingerprintBuilder, Lease};
use distill_data::{resolve_path, CheckReport, LabelState, Prepared, Scaling, Split};
use distill_spec::memory::Shape;
use distill_spec::{ImageSpec, Warning};

use crate::load::{data_stage_with_shape, refuse_shape, Loaded};
use crate::stages::DATA;
use crate::PipelineError;

const MAGIC: &[u8; 8] = b"DSNAP002";
/// Values converted per write or read: the buffer, not the matrix, is what is held twice.
const CHUNK: usize = 1 << 14;

#[derive(Serialize, Deserialize)]
struct Header {
    feature_names: Vec<String>,
    class_names: Vec<String>,
    fingerprint: String,
    image: Option<ImageSpec>,
    warnings: Vec<Warning>,
    /// The fitted feature scaling (bit for bit: YAML writes the shortest f32 that reads back).
    scaling: Option<Scaling>,
    report: CheckReport,
    /// The training rows before augmentation, features and classes, for the memory refusal.
    shape: [u64; 3],
    /// Rows and feature values of train, val and test.
    splits: [[u64; 2]; 3],
}

/// What the data stage gave a run: the prepared data (none when a check failed), the report,
/// and its snapshot's fingerprint (none when a source file cannot be read: the stage's own error
/// says which) and whether it came from the cache.
pub(crate) struct DataOutcome {
    pub prepared: Option<Prepared>,
    pub report: CheckReport,
    pub fingerprint: Option<Fingerprint>,
    pub cached: bool,
}

/// How the data stage uses snapshots: `forced` ignores one in the cache, `store` writes one
/// (`run`; `plan` only reads).
pub(crate) struct SnapshotUse<'a> {
    pub cache: &'a Cache,
    pub forced: bool,
    pub store: bool,
    pub lease: Option<&'a mut Lease>,
}

/// The data stage through its snapshot: found under the source files' hash, or computed (and
/// stored when the data can be trained on).
pub(crate) fn data_stage_cached(loaded: &Loaded, using: SnapshotUse) -> Result<DataOutcome, PipelineError> {
    let p = &loaded.pipeline;
    let fingerprint = snapshot_fingerprint(loaded);
    if let (Some(fp), Some(lease)) = (&fingerprint, using.lease) {
        lease.hold(&fp.key)?;
    }
    let Some(fp) = fingerprint else {
        let (prepared, report, _) = data_stage_with_shape(loaded)?;
        return Ok(DataOutcome { prepared, report, fingerprint: None, cached: false });
    };
    let path = using.cache.artifact(DATA.name, &fp.key);
    let found = |cache: &Cache| (!using.forced).then(|| load(cache, &path)).flatten();
    if let Some(outcome) = found(using.cache) {
        return hit(p, &fp, outcome);
    }
    if !using.store {
        let (prepared, report, _) = data_stage_with_shape(loaded)?;
        return Ok(DataOutcome { prepared, report, fingerprint: Some(fp), cached: false });
    }
    // Under the snapshot's lock, so the points of a parallel sweep prepare the data once.
    let lock = using.cache.lock(DATA.name, &fp.key)?;
    if let Some(outcome) = found(using.cache) {
        return hit(p, &fp, outcome);
    }
    let (prepared, report, shape) = data_stage_with_shape(loaded)?;
    if let (Some(data), Some(shape), false) = (&prepared, shape, report.has_errors()) {
        let write = |out: &mut dyn Write| write_snapshot(out, data, &report, shape);
        using.cache.store_streamed(DATA.name, &fp.key, &path, &p.name, write)?;
        tracing::info!(key = %short(&fp.key), "data: snapshot stored");
    }
    drop(lock);
    Ok(DataOutcome { prepared, report, fingerprint: Some(fp), cached: false })
}

fn hit(p: &distill_spec::Pipeline, fp: &Fingerprint, (prepared, report, shape): (Prepared, CheckReport, Shape)) -> Result<DataOutcome, PipelineError> {
    refuse_shape(p, shape)?;
    let rows = prepared.train.len() + prepared.val.len() + prepared.test.len();
    tracing::info!(key = %short(&fp.key), rows, "data: snapshot found, the source was not parsed again");
    Ok(DataOutcome { prepared: Some(prepared), report, fingerprint: Some(fp.clone()), cached: true })
}

fn short(key: &str) -> &str {
    &key[..key.len().min(12)]
}

/// The snapshot's key: every data file's bytes, the `data:` section, the seed, the version.
fn snapshot_fingerprint(loaded: &Loaded) -> Option<Fingerprint> {
    let (p, base) = (&loaded.pipeline, &loaded.base_dir);
    let d = &p.data;
    let sources = [
        ("data.source", Some(&d.source)),
        ("data.test_source", d.test_source.as_ref()),
        ("data.transfer.source", d.transfer.as_ref().and_then(|t| t.source.as_ref())),
    ];
    let mut fp = FingerprintBuilder::new("data-snapshot/v1");
    for (key, spec) in sources {
        let Some(spec) = spec else { continue };
        for (what, path) in [("path", Some(&spec.path)), ("labels", spec.labels.as_ref())] {
            let Some(path) = path else { continue };
            let hash = hash_file(&resolve_path(base, path).ok()?).ok()?;
            fp = fp.part(&format!("{key}.{what}"), hash.as_bytes());
        }
    }
    let spec = serde_yaml::to_string(d).ok()?;
    Some(fp.part("data", spec.as_bytes()).part("seed", &p.seed.to_le_bytes()).part("version", env!("CARGO_PKG_VERSION").as_bytes()).finish())
}

fn hash_file(path: &Path) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// The snapshot at `path` if it is there, intact and readable; anything else is logged and the
/// data is prepared again (and the snapshot replaced).
fn load(cache: &Cache, path: &Path) -> Option<(Prepared, CheckReport, Shape)> {
    match cache.load_streamed(path, read_snapshot) {
        Ok(found) => found,
        Err(problem) => {
            tracing::warn!(path = %path.display(), %problem, "the data snapshot is unusable; preparing the data again");
            None
        }
    }
}

fn write_snapshot(out: &mut dyn Write, data: &Prepared, report: &CheckReport, shape: Shape) -> io::Result<()> {
    let splits = [&data.train, &data.val, &data.test];
    let header = Header {
        feature_names: data.feature_names.clone(),
        class_names: data.class_names.clone(),
        fingerprint: data.fingerprint.clone(),
        image: data.image,
        warnings: data.warnings.clone(),
        scaling: data.scaling.clone(),
        report: report.clone(),
        shape: [shape.rows, shape.features, shape.classes],
        splits: splits.map(|s| [s.len() as u64, s.x.len() as u64]),
    };
    let text = serde_yaml::to_string(&header).map_err(io::Error::other)?;
    out.write_all(MAGIC)?;
    out.write_all(&(text.len() as u64).to_le_bytes())?;
    out.write_all(text.as_bytes())?;
    for split in splits {
        write_values(out, &split.row_ids, u64::to_le_bytes)?;
        write_values(out, &split.x, f32::to_le_bytes)?;
        write_values(out, &split.y, u32::to_le_bytes)?;
        write_values(out, &split.state, |s| [state_byte(s)])?;
    }
    write_values(out, &data.test_raw_x, f32::to_le_bytes)
}

fn read_snapshot(input: &mut dyn Read) -> io::Result<(Prepared, CheckReport, Shape)> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(bad("not a distill data snapshot".into()));
    }
    let len = u64::from_le_bytes(read_array(input)?);
    let mut text = Vec::new();
    input.take(len).read_to_end(&mut text)?;
    let h: Header = serde_yaml::from_slice(&text).map_err(|e| bad(format!("header: {e}")))?;
    let mut splits = Vec::with_capacity(3);
    for [rows, values] in h.splits {
        let (rows, values) = (usize::try_from(rows).map_err(io::Error::other)?, usize::try_from(values).map_err(io::Error::other)?);
        let row_ids = read_values(input, rows, u64::from_le_bytes)?;
        let x = read_values(input, values, f32::from_le_bytes)?;
        let y = read_values(input, rows, u32::from_le_bytes)?;
        let state = read_values(input, rows, |[b]: [u8; 1]| b)?
            .into_iter()
            .map(state_of)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("a label state that is none".into()))?;
        splits.push(Split { row_ids, x, y, state });
    }
    let [train, val, test]: [Split; 3] = splits.try_into().map_err(|_| bad("not three splits".into()))?;
    let test_raw_x = read_values(input, test.x.len(), f32::from_le_bytes)?;
    let [rows, features, classes] = h.shape;
    let prepared = Prepared {
        feature_names: h.feature_names,
        class_names: h.class_names,
        train,
        val,
        test,
        fingerprint: h.fingerprint,
        image: h.image,
        warnings: h.warnings,
        scaling: h.scaling,
        test_raw_x,
    };
    Ok((prepared, h.report, Shape { rows, features, classes }))
}

fn state_byte(s: LabelState) -> u8 {
    match s {
        LabelState::Labelled => 0,
        LabelState::Hidden => 1,
        LabelState::Unlabelled => 2,
    }
}

fn state_of(b: u8) -> Option<LabelState> {
    [LabelState::Labelled, LabelState::Hidden, LabelState::Unlabelled].get(b as usize).copied()
}

fn write_values<T: Copy, const N: usize>(out: &mut dyn Write, values: &[T], bytes: impl Fn(T) -> [u8; N]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(CHUNK * N);
    for chunk in values.chunks(CHUNK) {
        buf.clear();
        chunk.iter().for_each(|&v| buf.extend_from_slice(&bytes(v)));
        out.write_all(&buf)?;
    }
    Ok(())
}

fn read_array<const N: usize>(input: &mut dyn Read) -> io::Result<[u8; N]> {
    let mut a = [0u8; N];
    input.read_exact(&mut a)?;
    Ok(a)
}

/// `n` values; the count comes from the header, so an impossible one is an error, not an abort.
fn read_values<T, const N: usize>(input: &mut dyn Read, n: usize, from: impl Fn([u8; N]) -> T) -> io::Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{n} values: {e}")))?;
    let mut buf = vec![0u8; CHUNK.min(n.max(1)) * N];
    let mut left = n;
    while left > 0 {
        let k = left.min(CHUNK);
        input.read_exact(&mut buf[..k * N])?;
        out.extend(buf[..k * N].chunks_exact(N).map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            from(a)
        }));
        left -= k;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_back_bit_for_bit() {
        let split = |n: u64| Split {
            row_ids: (0..n).collect(),
            x: (0..n * 2).map(|i| (i as f32).sqrt() * 0.1 - f32::MIN_POSITIVE).collect(),
            y: (0..n as u32).map(|i| i % 2).collect(),
            state: (0..n).map(|i| state_of((i % 3) as u8).unwrap()).collect(),
        };
        let prepared = Prepared {
            feature_names: vec!["a".into(), "b".into()],
            class_names: vec!["x".into(), "y".into()],
            train: split(40_000),
            val: split(0),
            test: split(3),
            fingerprint: "f".into(),
            image: None,
            warnings: vec![Warning::new("data", "w")],
            scaling: Some(Scaling { offset: vec![0.1, -3.0e-9], factor: vec![1.0 / 3.0, f32::MAX] }),
            test_raw_x: vec![0.7, 1.0 / 7.0, -0.0, 5.0, 6.0, 1e-40],
        };
        let report = CheckReport { rows: 7, checks: Vec::new() };
        let mut bytes = Vec::new();
        write_snapshot(&mut bytes, &prepared, &report, Shape { rows: 1, features: 2, classes: 3 }).unwrap();
        let (back, r, shape) = read_snapshot(&mut bytes.as_slice()).unwrap();
        assert_eq!((back.train, back.val, back.test), (prepared.train, prepared.val, prepared.test));
        assert_eq!((back.warnings, r.rows, shape.classes), (prepared.warnings, 7, 3));
        assert_eq!(
            (back.scaling, back.test_raw_x.iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
            (prepared.scaling, prepared.test_raw_x.iter().map(|v| v.to_bits()).collect())
        );
        assert!(read_snapshot(&mut &bytes[..bytes.len() - 1]).is_err(), "a truncated snapshot");
        assert!(read_snapshot(&mut &b"DSNAP001"[..]).is_err(), "an older layout");
    }
}
