//! A recipe as the user composed it: its `extends:` chain merged, `--set` values applied, and for
//! every key the place it was written (file, line, column, or `--set`).
//!
//! Files without `extends` and without `--set` are parsed straight from their text (see
//! [`crate::parse_str`]), which gives serde_yaml's own positions; everything else comes here.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::error::{SpecError, SpecErrors};
use crate::extends::{self, Layer};
use crate::Pipeline;

/// Where a key of the composed recipe was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// In a recipe file (1-based line and column).
    File { file: PathBuf, line: usize, column: usize },
    /// By `--set KEY=VALUE` (the whole item).
    Set(String),
}

impl fmt::Display for Origin {
    /// `file:line`, or `--set KEY=VALUE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { file, line, .. } => write!(f, "{}:{line}", file.display()),
            Origin::Set(item) => write!(f, "--set {item}"),
        }
    }
}

/// The origin of every key path (`data.checks[2].min`) of a composed recipe.
#[derive(Debug, Clone, Default)]
pub struct Origins(HashMap<String, Origin>);

impl Origins {
    /// The origin of exactly `path`.
    pub fn get(&self, path: &str) -> Option<&Origin> {
        self.0.get(path)
    }

    /// The origin of `path` or of its closest ancestor that has one (a missing key is reported
    /// where its parent was written).
    pub fn find(&self, path: &str) -> Option<&Origin> {
        let mut candidate = path;
        loop {
            if let Some(o) = self.0.get(candidate) {
                return Some(o);
            }
            candidate = &candidate[..candidate.rfind(['.', '['])?];
        }
    }

    /// Each path of `doc` gets the first layer (most derived first) that writes exactly it: lists
    /// are replaced whole, so a path inside the merged value comes from the last file that set it.
    fn of_layers(doc: &Mapping, layers: &[Layer]) -> Self {
        let mut out = HashMap::new();
        walk_map(doc, "", &mut |path| {
            let found = layers.iter().find_map(|l| l.locations.get(path).map(|(line, column)| Origin::File { file: l.file.clone(), line, column }));
            if let Some(origin) = found {
                out.insert(path.to_string(), origin);
            }
        });
        Self(out)
    }

    /// `path` and everything below it now come from `origin`.
    fn replace_subtree(&mut self, path: &str, value: &Value, origin: Origin) {
        self.0.retain(|k, _| !is_under(k, path));
        let mut paths = vec![path.to_string()];
        walk(value, path, &mut |p| paths.push(p.to_string()));
        for p in paths {
            self.0.insert(p, origin.clone());
        }
    }
}

/// A recipe merged from its chain, with `--set` applied, before typing.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The file that was given (the most derived one).
    pub file: PathBuf,
    /// The files of the chain, that file first, then its base, the base's base, ...
    pub files: Vec<PathBuf>,
    /// The merged keys (`extends` removed; base paths relative to `file`).
    pub value: Value,
    pub origins: Origins,
}

impl Composed {
    /// An error at `path`, located where the key (or its closest written ancestor) came from.
    pub fn error(&self, path: &str, message: impl Into<String>) -> SpecError {
        let message = message.into();
        match self.origins.find(path) {
            Some(Origin::File { file, line, column }) => SpecError::new(file, Some((*line, *column)), path, message),
            Some(Origin::Set(item)) => SpecError::new(&self.file, None, path, format!("{message} (the value comes from --set {item})")),
            None => SpecError::new(&self.file, None, path, message),
        }
    }
}

/// Reads `path`, its `extends:` chain and `--set` values (see [`compose`]).
pub fn compose_file(path: &Path, overrides: &[String]) -> Result<Composed, SpecErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecErrors::single(SpecError::new(path, None, "", format!("cannot read the pipeline file: {e}"))))?;
    compose(&text, path, overrides)
}

/// Merges the chain of the recipe `text` (read from `file`) and applies `--set KEY=VALUE` items.
/// An empty VALUE is an error; `KEY=null` removes the key, as `null` does in a file over its base.
pub fn compose(text: &str, file: &Path, overrides: &[String]) -> Result<Composed, SpecErrors> {
    let layers = extends::chain(text, file)?;
    let mut merged = Mapping::new();
    for layer in layers.iter().rev() {
        extends::merge(&mut merged, layer.value.clone());
    }
    let mut origins = Origins::of_layers(&merged, &layers);
    let mut value = Value::Mapping(merged);
    for item in overrides {
        apply_set(&mut value, &mut origins, item).map_err(|(key, msg)| SpecErrors::single(SpecError::new(file, None, &key, format!("--set {item}: {msg}"))))?;
    }
    Ok(Composed { file: file.to_path_buf(), files: layers.into_iter().map(|l| l.file).collect(), value, origins })
}

/// Types and validates a composed recipe; every error is located through its origins.
pub fn parse(composed: &Composed) -> Result<Pipeline, SpecErrors> {
    let pipeline: Pipeline = serde_path_to_error::deserialize(composed.value.clone()).map_err(|e| {
        let path = crate::clean_path(&e.path().to_string());
        let message = e.into_inner().to_string();
        let (path, message) = crate::tagged::join_nested(&path, &message).unwrap_or((path, message));
        SpecErrors::single(composed.error(&path, message))
    })?;
    let problems = crate::validate::validate(&pipeline);
    if problems.is_empty() {
        Ok(pipeline)
    } else {
        Err(SpecErrors(problems.into_iter().map(|(path, msg)| composed.error(&path, msg)).collect()))
    }
}

/// One `--set` item; the error names the key.
fn apply_set(doc: &mut Value, origins: &mut Origins, item: &str) -> Result<(), (String, String)> {
    let (key, raw) = item.split_once('=').ok_or_else(|| (String::new(), "expected KEY.PATH=VALUE".to_string()))?;
    let fail = |msg: String| (key.to_string(), msg);
    if raw.trim().is_empty() {
        return Err(fail(format!("empty value for `{key}`: give a value, or `{key}=null` to remove the key (its default then applies)")));
    }
    let value: Value = serde_yaml::from_str(raw).map_err(|e| fail(format!("value is not valid YAML: {e}")))?;
    if value.is_null() {
        return remove(doc, key).map_err(fail);
    }
    crate::overrides::apply(doc, item).map_err(fail)?;
    let path = canonical_path(doc, key);
    let set = lookup(doc, key).cloned().unwrap_or(Value::Null);
    origins.replace_subtree(&path, &set, Origin::Set(item.to_string()));
    Ok(())
}

/// Removes the map key at the dotted `key` (absent keys are fine: there is nothing to remove).
fn remove(doc: &mut Value, key: &str) -> Result<(), String> {
    let (parent, last) = match key.rsplit_once('.') {
        Some((p, l)) => (lookup_mut(doc, p), l),
        None => (Some(doc), key),
    };
    match parent {
        Some(Value::Mapping(m)) => {
            m.shift_remove(last);
            Ok(())
        }
        Some(Value::Sequence(_)) => Err("`null` cannot remove a list item; set the whole list instead".into()),
        _ => Ok(()),
    }
}

fn lookup<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(doc, |node, part| match node {
        Value::Mapping(m) => m.get(part),
        Value::Sequence(items) => items.get(part.parse::<usize>().ok()?),
        _ => None,
    })
}

fn lookup_mut<'a>(doc: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    key.split('.').try_fold(doc, |node, part| match node {
        Value::Mapping(m) => m.get_mut(part),
        Value::Sequence(items) => items.get_mut(part.parse::<usize>().ok()?),
        _ => None,
    })
}

/// `--set` keys write list indices as `.1`; key paths write them as `[1]`.
fn canonical_path(doc: &Value, key: &str) -> String {
    let mut node = Some(doc);
    let mut path = String::new();
    for part in key.split('.') {
        match node {
            Some(Value::Sequence(items)) => {
                path += &format!("[{part}]");
                node = part.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                path = join(&path, part);
                node = other.and_then(|v| v.get(part));
            }
        }
    }
    path
}

fn is_under(path: &str, root: &str) -> bool {
    path == root || (path.starts_with(root) && matches!(path.as_bytes().get(root.len()), Some(b'.' | b'[')))
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

/// The text of a map key as key paths write it.
pub(crate) fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "?".into(),
    }
}

/// Calls `f` with the path of every key and list item below `value` (at `path`).
fn walk(value: &Value, path: &str, f: &mut dyn FnMut(&str)) {
    match value {
        Value::Mapping(m) => walk_map(m, path, f),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                f(&p);
                walk(item, &p, f);
            }
        }
        _ => {}
    }
}

fn walk_map(m: &Mapping, path: &str, f: &mut dyn FnMut(&str)) {
    for (k, v) in m {
        let p = join(path, &key_text(k));
        f(&p);
        walk(v, &p, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_values_have_their_origin_and_null_removes() {
        let text = "version: 1\nname: x\nl: [{a: 1}, {a: 2}]\nm: {k: 1, j: 2}\n";
        let c = compose(text, Path::new("r.yaml"), &["l.1.a=5".into(), "m.k=null".into(), "m.n={q: 1}".into()]).unwrap();
        assert_eq!(c.origins.get("l[1].a"), Some(&Origin::Set("l.1.a=5".into())));
        assert_eq!(c.origins.get("l[0].a"), Some(&Origin::File { file: "r.yaml".into(), line: 3, column: 6 }));
        assert_eq!(c.origins.get("m.n.q"), Some(&Origin::Set("m.n={q: 1}".into())));
        assert!(lookup(&c.value, "m.k").is_none() && lookup(&c.value, "m.j").is_some());
        assert_eq!(c.origins.find("m.n.q.deeper"), Some(&Origin::Set("m.n={q: 1}".into())));
        let e = compose(text, Path::new("r.yaml"), &["m.k=".into()]).unwrap_err();
        assert_eq!(e.0[0].key, "m.k");
        assert!(e.0[0].message.contains("empty value"), "{e}");
        assert!(compose(text, Path::new("r.yaml"), &["l.0=null".into()]).is_err());
    }
}
