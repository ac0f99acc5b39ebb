//! The distill pipeline file: one versioned YAML document that describes a whole
//! knowledge-distillation recipe.
//!
//! This crate turns text into a typed, validated [`Pipeline`]. It is strict: unknown keys, wrong
//! types, missing fields and out-of-range values are errors that name the file, line, column and
//! key path. It knows nothing about data frames or tensors; the other crates consume its types.
//! [`json_schema`] describes the same format as a JSON Schema for editors (`distill schema`).
//!
//! ```
//! let text = "version: 1\nname: demo\ndata: {source: {path: d.csv}, label: y}\n\
//!             teacher: {model: {hidden: [8]}}\nstudent: {model: {hidden: [4]}}\n";
//! let pipeline = distill_spec::parse_str(text, "demo.yaml".as_ref(), &[]).unwrap();
//! assert_eq!(pipeline.student.loss, distill_spec::LossSpec::Kd(distill_spec::KdLoss { temperature: 2.0, alpha: 0.5 }));
//! ```

mod augment;
mod checks;
mod cnn;
mod compose;
mod data;
mod display;
mod error;
mod explain;
mod export;
mod extends;
mod hint;
mod locate;
mod loss;
mod loss_checks;
pub mod memory;
mod model;
mod optim;
mod overrides;
mod schema;
pub mod sweep;
mod tagged;
mod threshold;
mod train;
mod types;
mod validate;
mod warning;

use std::path::Path;

pub use augment::*;
pub use checks::*;
pub use cnn::{describe as describe_image, ConvSpec, PoolKind, PoolSpec};
pub use compose::{compose, compose_file, Composed, Origin, Origins};
pub use data::*;
pub use display::ModelWithSizes;
pub use error::{SpecError, SpecErrors};
pub use explain::explain;
pub use export::{ExportFormat, ExportSpec};
pub use extends::relative_to;
pub use hint::{Hint, HintFeatures, HintMeasure, HintTerm};
pub use locate::Locations;
pub use loss::*;
pub use loss_checks::validate_loss;
pub use memory::{Memory, Need, Shape};
pub use model::*;
pub use optim::*;
pub use schema::{json_schema, SchemaFor};
pub use sweep::{Objective, SweepPoint, SweepSpec};
pub use threshold::*;
pub use train::*;
pub use types::*;
pub use warning::{warnings, Warning};

/// Reads and validates a pipeline file, applying `--set key.path=value` overrides.
pub fn load(path: &Path, overrides: &[String]) -> Result<Pipeline, SpecErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecErrors::single(SpecError::new(path, None, "", format!("cannot read the pipeline file: {e}"))))?;
    parse_str(&text, path, overrides)
}

/// Parses and validates pipeline text; `file` names it in errors (and its folder holds the
/// bases an `extends:` names).
pub fn parse_str(text: &str, file: &Path, overrides: &[String]) -> Result<Pipeline, SpecErrors> {
    // A chain or `--set` values are merged as YAML values first; errors are located per key.
    if !overrides.is_empty() || extends::declares_extends(text) {
        return compose::parse(&compose::compose(text, file, overrides)?);
    }
    let locations = Locations::index(text);
    let de = serde_yaml::Deserializer::from_str(text);
    let pipeline: Pipeline = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let pos = inner.location().map(|l| (l.line(), l.column()));
        // A syntax error has no meaningful key path.
        let path = if path.contains('?') { String::new() } else { clean_path(&path) };
        let message = strip_location(&inner);
        // serde_yaml may start its message with the same path; say it once.
        let message = match message.split_once(": ") {
            Some((prefix, rest)) if !prefix.is_empty() && !prefix.contains(' ') && path.starts_with(prefix) => rest.to_string(),
            _ => message,
        };
        // A kind-tagged section puts the key path below it in front of its message: the
        // position of that key is exact where serde_yaml's is the section's.
        let (path, message, pos) = match tagged::join_nested(&path, &message) {
            Some((full, rest)) => (full.clone(), rest, locations.find(&full).or(pos)),
            None => (path, message, pos),
        };
        SpecErrors::single(SpecError::new(file, pos, &path, message))
    })?;
    let problems = validate::validate(&pipeline);
    if problems.is_empty() {
        Ok(pipeline)
    } else {
        Err(SpecErrors(problems.into_iter().map(|(path, msg)| SpecError::new(file, locations.find(&path), &path, msg)).collect()))
    }
}

/// serde_path_to_error writes `.` for the document root.
fn clean_path(path: &str) -> String {
    if path == "." {
        String::new()
    } else {
        path.to_string()
    }
}

/// serde_yaml appends " at line L column C"; we print the location ourselves.
fn strip_location(e: &serde_yaml::Error) -> String {
    let msg = e.to_string();
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}
