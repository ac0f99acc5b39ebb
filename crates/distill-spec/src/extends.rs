//! `extends: base.yaml`: a recipe written as the changes to another one.
//!
//! A file's `extends` names its base, relative to the file; the base may extend another (a chain).
//! The chain is read child first, each base's paths are rebased so they stay relative to the file
//! that was run, and the layers are merged base first: maps key by key, lists and scalars
//! replaced, a `null` removes the key. Each layer keeps its own key locations, so an error points
//! at the file and line where a key was written.

use std::path::{Component, Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::error::{SpecError, SpecErrors};
use crate::locate::Locations;

/// The keys whose values are paths relative to the recipe file (`[]`: every item of a list).
/// A base's values of these keys are rewritten to be relative to the extending file.
pub(crate) const PATH_KEYS: &[&str] = &[
    "cache_dir",
    "plugins[].path",
    "data.source.path",
    "data.source.labels",
    "data.test_source.path",
    "data.test_source.labels",
    "data.transfer.source.path",
    "data.transfer.source.labels",
    "teacher.weights",
    "teacher.logits.path",
    "teachers[].weights",
    "teachers[].logits.path",
];

/// One file of a chain: its own keys (without `extends`), where they are written.
pub(crate) struct Layer {
    /// The file as the user would name it (the run's path, or the base's path joined to it).
    pub file: PathBuf,
    pub value: Mapping,
    pub locations: Locations,
}

impl Layer {
    fn error(&self, key: &str, message: impl Into<String>) -> SpecErrors {
        SpecErrors::single(SpecError::new(&self.file, self.locations.get(key), key, message))
    }
}

/// Whether `text` is a recipe with a top-level `extends` key (text that does not parse has none).
pub(crate) fn declares_extends(text: &str) -> bool {
    matches!(serde_yaml::from_str::<Value>(text), Ok(Value::Mapping(m)) if m.contains_key("extends"))
}

/// The layers of the recipe `text` (read from `file`), the file itself first, then its base, the
/// base's base, and so on; every base's paths already rebased to `file`'s folder.
pub(crate) fn chain(text: &str, file: &Path) -> Result<Vec<Layer>, SpecErrors> {
    let (first, mut next) = layer(text, file)?;
    let child_dir = real_dir(file);
    let mut seen = vec![std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf())];
    let mut layers = vec![first];
    while let Some(base) = next.take() {
        let named_by = layers.last().expect("the chain starts with the file itself");
        let joined = named_by.file.parent().unwrap_or(Path::new("")).join(&base);
        // Named lexically in messages; read through the file system as written.
        let path = normalize(&joined);
        let real = std::fs::canonicalize(&joined).map_err(|e| named_by.error("extends", format!("cannot read the base file {}: {e}", path.display())))?;
        if let Some(at) = seen.iter().position(|s| *s == real) {
            let names: Vec<String> = layers[at..].iter().map(|l| l.file.display().to_string()).chain([path.display().to_string()]).collect();
            return Err(named_by.error("extends", format!("`extends` makes a cycle: {}", names.join(" → "))));
        }
        let text = std::fs::read_to_string(&joined).map_err(|e| named_by.error("extends", format!("cannot read the base file {}: {e}", path.display())))?;
        let (mut base_layer, base_next) = layer(&text, &path)?;
        check_version(&layers, &base_layer)?;
        rebase_paths(&mut base_layer.value, &relative_to(&child_dir, real.parent().unwrap_or(Path::new("/"))));
        seen.push(real);
        layers.push(base_layer);
        next = base_next;
    }
    Ok(layers)
}

/// Parses one file: its keys without `extends`, and the base it names.
fn layer(text: &str, file: &Path) -> Result<(Layer, Option<String>), SpecErrors> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| {
        let pos = e.location().map(|l| (l.line(), l.column()));
        SpecErrors::single(SpecError::new(file, pos, "", crate::strip_location(&e)))
    })?;
    let locations = Locations::index(text);
    let mut value = match value {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        _ => return Err(SpecErrors::single(SpecError::new(file, Some((1, 1)), "", "a recipe must be a mapping of keys (`version: 1`, `name: ...`)"))),
    };
    let layer_of = |value| Layer { file: file.to_path_buf(), value, locations: locations.clone() };
    let base = match value.shift_remove("extends") {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(other) => {
            let got = serde_yaml::to_string(&other).unwrap_or_default();
            return Err(layer_of(value).error("extends", format!("must be the path of a base recipe, got `{}`", got.trim())));
        }
    };
    Ok((layer_of(value), base))
}

/// A base must have the version of the file that extends it (the first layer that states one).
fn check_version(layers: &[Layer], base: &Layer) -> Result<(), SpecErrors> {
    let Some(theirs) = base.value.get("version") else { return Ok(()) };
    let Some(ours) = layers.iter().find_map(|l| l.value.get("version").map(|v| (v, &l.file))) else { return Ok(()) };
    if theirs == ours.0 {
        return Ok(());
    }
    let show = |v: &Value| serde_yaml::to_string(v).unwrap_or_default().trim().to_string();
    Err(base.error(
        "version",
        format!("the base has version {} but {} has version {}: a base must have the same version", show(theirs), ours.1.display(), show(ours.0)),
    ))
}

/// Merges `overlay` onto `base`: maps key by key, anything else replaced, `null` removes the key.
/// A key new to the base goes after the overlay's key before it, so the merged order reads like
/// the overlay where it adds keys.
pub(crate) fn merge(base: &mut Mapping, overlay: Mapping) {
    let keys: Vec<Value> = base.keys().cloned().collect();
    // added[0]: new keys before any shared key; added[i + 1]: after the base's i-th key.
    let mut added: Vec<Vec<(Value, Value)>> = vec![Vec::new(); keys.len() + 1];
    let mut anchor = 0;
    for (key, value) in overlay {
        match keys.iter().position(|k| *k == key) {
            Some(i) => {
                anchor = i + 1;
                merge_value(base, key, value);
            }
            None if value.is_null() => {}
            None => {
                let mut one = Mapping::new();
                merge_value(&mut one, key.clone(), value);
                added[anchor].extend(one);
            }
        }
    }
    let mut merged = Mapping::new();
    merged.extend(added[0].drain(..));
    for (i, key) in keys.iter().enumerate() {
        if let Some(v) = base.remove(key) {
            merged.insert(key.clone(), v);
        }
        merged.extend(added[i + 1].drain(..));
    }
    *base = merged;
}

/// Merges one overlay entry into `base`.
fn merge_value(base: &mut Mapping, key: Value, value: Value) {
    match value {
        Value::Null => {
            base.remove(&key);
        }
        Value::Mapping(over) => {
            // A map over a non-map starts empty, so its own nulls still mean "absent".
            if !matches!(base.get(&key), Some(Value::Mapping(_))) {
                base.insert(key.clone(), Value::Mapping(Mapping::new()));
            }
            if let Some(Value::Mapping(inner)) = base.get_mut(&key) {
                merge(inner, over);
            }
        }
        other => {
            base.insert(key, other);
        }
    }
}

/// Rewrites the relative paths under [`PATH_KEYS`] as `prefix` joined with them. Paths that are
/// absolute or start with `$` (an environment variable that may hold an absolute path) stay.
fn rebase_paths(doc: &mut Mapping, prefix: &Path) {
    if prefix.as_os_str().is_empty() {
        return;
    }
    for key in PATH_KEYS {
        let parts: Vec<&str> = key.split('.').collect();
        visit(doc, &parts, &mut |value| {
            if let Value::String(s) = value {
                if !s.starts_with('$') && Path::new(s.as_str()).is_relative() {
                    *s = join_normalized(prefix, s);
                }
            }
        });
    }
}

/// Calls `f` on every value at `parts` below `doc` (`name[]` walks each item of a list).
fn visit(doc: &mut Mapping, parts: &[&str], f: &mut dyn FnMut(&mut Value)) {
    let Some((first, rest)) = parts.split_first() else { return };
    let (name, each) = match first.strip_suffix("[]") {
        Some(n) => (n, true),
        None => (*first, false),
    };
    let Some(value) = doc.get_mut(name) else { return };
    let mut targets: Vec<&mut Value> = match (each, value) {
        (true, Value::Sequence(items)) => items.iter_mut().collect(),
        (true, _) => return,
        (false, v) => vec![v],
    };
    for target in targets.iter_mut() {
        match (rest.is_empty(), &mut **target) {
            (true, v) => f(v),
            (false, Value::Mapping(m)) => visit(m, rest, f),
            _ => {}
        }
    }
}

/// The folder of `file` with links resolved (the file's own folder as given when it cannot be).
fn real_dir(file: &Path) -> PathBuf {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The relative path from folder `from` to `to` (both absolute and free of links).
pub fn relative_to(from: &Path, to: &Path) -> PathBuf {
    let (a, b): (Vec<Component>, Vec<Component>) = (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// `prefix/path`, where each leading `..` of `path` cancels a folder of `prefix` (the prefix comes
/// from link-free folders, so that is exact); `path`'s own `a/..` parts are kept as written.
fn join_normalized(prefix: &Path, path: &str) -> String {
    let mut out: Vec<String> = prefix.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let mut leading = true;
    for part in path.split('/') {
        match part {
            "" | "." if leading => {}
            ".." if leading && out.last().is_some_and(|l| l != "..") => {
                out.pop();
            }
            _ => {
                leading = false;
                out.push(part.to_string());
            }
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

/// `a/./b/../c` as `a/c`, for naming files in messages.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> Mapping {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn merge_rules() {
        let mut base = map("a: {b: 1, c: [1, 2], d: {e: 1}}\nf: 1\ng: x\nh: 1");
        merge(&mut base, map("first: 0\na: {c: [3], d: {x: 2}}\nf: null\nafter_f: 1\ng: {k: 1, n: null}\nnew: null"));
        let want = map("first: 0\na: {b: 1, c: [3], d: {e: 1, x: 2}}\nafter_f: 1\ng: {k: 1}\nh: 1");
        assert_eq!(base, want);
        // Mapping equality ignores order; the order is part of the rule.
        assert_eq!(base.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    }

    #[test]
    fn paths_are_rebased() {
        assert_eq!(relative_to(Path::new("/w/p"), Path::new("/w/p/base")), PathBuf::from("base"));
        assert_eq!(relative_to(Path::new("/w/p/q"), Path::new("/w/s")), PathBuf::from("../../s"));
        assert_eq!(join_normalized(Path::new("base"), "../../d/x.csv"), "../d/x.csv");
        assert_eq!(join_normalized(Path::new("../s"), "./x/../y.csv"), "../s/x/../y.csv");
        assert_eq!(join_normalized(Path::new("base"), ".."), ".");
        let mut doc =
            map("plugins: [{path: lib.so}, {path: /abs.so}]\ndata: {source: {path: '${D}/x.csv', labels: l.idx}}\nteacher: {logits: {path: t.parquet}}");
        rebase_paths(&mut doc, Path::new("b"));
        assert_eq!(
            doc,
            map("plugins: [{path: b/lib.so}, {path: /abs.so}]\ndata: {source: {path: '${D}/x.csv', labels: b/l.idx}}\nteacher: {logits: {path: b/t.parquet}}")
        );
    }
}
