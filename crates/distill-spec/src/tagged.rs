//! Sections whose `kind` decides their keys (checks, losses, optimisers, schedules,
//! augmentations): one struct per kind, read once the mapping's `kind` is known.
//!
//! serde's own `#[serde(tag = "kind")]` buffers the mapping and reports errors inside it with
//! neither the key path nor the position, and it cannot map unknown kinds to plugin losses. Here
//! the mapping is read as YAML, the kind picks its struct, and that struct is read through
//! serde_path_to_error. An error carries its key path below the section in front of its message
//! (`temprature: unknown field ...`, the form serde_yaml itself uses), and `parse_str` joins it
//! to the section's path to find the line and column ([`join_nested`]).

use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::{Mapping, Value};

/// An error inside a tagged section: the key path below the section (empty: the section
/// itself) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Nested {
    pub path: String,
    pub message: String,
}

impl Nested {
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }

    /// The same error seen from `prefix` (a key or `key[i]` path above it).
    pub fn within(self, prefix: &str) -> Self {
        let path = match (prefix.is_empty(), self.path.is_empty()) {
            (true, _) => self.path,
            (false, true) => prefix.to_string(),
            (false, false) if self.path.starts_with('[') => format!("{prefix}{}", self.path),
            (false, false) => format!("{prefix}.{}", self.path),
        };
        Self { path, message: self.message }
    }

    /// Turns a serde error (from reading part of a section) into a nested one, keeping the path
    /// of an error that is itself nested.
    fn from_serde(path: &str, message: String) -> Self {
        let path = if path == "." { "" } else { path };
        match split_nested(&message) {
            Some((inner, rest)) => Nested::at(inner, rest).within(path),
            None => Nested::at(path, message),
        }
    }
}

impl fmt::Display for Nested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Splits `key.path: message` into its parts when the message starts with a key path (no
/// spaces, only key characters); serde's and distill's own messages never do.
pub(crate) fn split_nested(message: &str) -> Option<(&str, &str)> {
    let (head, rest) = message.split_once(": ")?;
    let key_char = |c: char| c.is_alphanumeric() || "_-.[]".contains(c);
    (!head.is_empty() && head.chars().all(key_char) && !head.starts_with('.')).then_some((head, rest))
}

/// `path` joined with the key path a nested message starts with, and the rest of the message;
/// `None` when the message carries no path of its own.
pub(crate) fn join_nested(path: &str, message: &str) -> Option<(String, String)> {
    let (inner, rest) = split_nested(message)?;
    let joined = Nested::at(inner, rest).within(path);
    Some((joined.path, joined.message))
}

/// One kind of a family: its name, its struct's keys, and its JSON Schema (the struct's, whose
/// doc comment describes the kind unless `note` does).
pub(crate) struct Kind {
    pub name: &'static str,
    pub keys: fn() -> &'static [&'static str],
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// What the schema says of this kind, when its struct's doc does not (a struct several
    /// kinds share, or a kind without keys).
    pub note: &'static str,
}

impl Kind {
    /// A kind whose keys are the fields of `T`.
    pub const fn of<T: DeserializeOwned + JsonSchema>(name: &'static str) -> Kind {
        Kind { name, keys: fields_of::<T>, schema: T::json_schema, note: "" }
    }

    /// [`Kind::of`], described by `note` rather than by `T`'s doc comment.
    pub const fn noted<T: DeserializeOwned + JsonSchema>(name: &'static str, note: &'static str) -> Kind {
        Kind { note, ..Kind::of::<T>(name) }
    }

    /// A kind without keys.
    pub const fn unit(name: &'static str, note: &'static str) -> Kind {
        Kind { name, keys: no_keys, schema: crate::schema::no_keys, note }
    }
}

/// A family of kinds: how messages name a kind, each kind's keys, and the keys around them.
pub(crate) struct Family {
    /// How a message names kind `k`: "a `k` check", "the `k` loss".
    pub describe: fn(&str) -> String,
    /// Every built-in kind with the keys of its struct (besides the shared ones).
    pub kinds: &'static [Kind],
    /// Keys every kind takes, listed before `kind` and after the kind's own keys in messages.
    pub leading: &'static [&'static str],
    pub trailing: &'static [&'static str],
    /// Whether the mapping names its kind with a `kind` key (a `terms:` entry's key is its kind).
    pub tagged: bool,
}

impl Family {
    /// The kind names, for "expected one of" messages.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name).collect()
    }

    fn keys_of(&self, kind: &str) -> Option<&'static [&'static str]> {
        self.kinds.iter().find(|k| k.name == kind).map(|k| (k.keys)())
    }

    /// Every key a mapping of `kind` may have (with `own`, the kind's own keys), in the order
    /// messages list them.
    fn expected(&self, own: &[&str]) -> Vec<String> {
        let tag = if self.tagged { &["kind"][..] } else { &[] };
        self.leading.iter().chain(tag).chain(own).chain(self.trailing).map(|k| format!("`{k}`")).collect()
    }

    /// Whether some kind of the family takes `key`.
    pub fn takes(&self, key: &str) -> bool {
        self.kinds.iter().any(|k| (k.keys)().contains(&key))
    }

    /// The error for a key that kind `kind` (whose keys are `own`) does not take.
    fn unknown_key(&self, kind: &str, own: &[&str], key: &str) -> Nested {
        let expected = one_of(&self.expected(own));
        let message = if self.takes(key) {
            format!("`{key}` does not apply to {}; {expected}", (self.describe)(kind))
        } else {
            format!("unknown field `{key}`, {expected}")
        };
        Nested::at(key, message)
    }

    /// The error for a `kind` that is not one of the family's.
    pub fn unknown_kind(&self, kind: &str) -> Nested {
        let names: Vec<String> = self.names().iter().map(|k| format!("`{k}`")).collect();
        Nested::at("kind", format!("unknown kind `{kind}`, {}", one_of(&names)))
    }

    /// Reads the struct of built-in kind `kind` from `rest` (the mapping without `kind` and the
    /// shared keys).
    pub fn body<T: DeserializeOwned>(&self, kind: &str, rest: Mapping) -> Result<T, Nested> {
        let own = self.keys_of(kind).unwrap_or_default();
        self.body_with(kind, own, rest)
    }

    /// Checks that `rest` is empty: kind `kind` takes no keys.
    pub fn no_body(&self, kind: &str, rest: Mapping) -> Result<(), Nested> {
        self.body_with::<serde::de::IgnoredAny>(kind, &[], rest).map(|_| ())
    }

    /// [`Family::body`] for a kind whose keys are `own` (a plugin's).
    pub fn body_with<T: DeserializeOwned>(&self, kind: &str, own: &[&str], rest: Mapping) -> Result<T, Nested> {
        for key in rest.keys() {
            let key = key_text(key)?;
            if !own.contains(&key.as_str()) {
                return Err(self.unknown_key(kind, own, &key));
            }
        }
        serde_path_to_error::deserialize(Value::Mapping(rest)).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            // "missing field `x`" says less than which kind needs it.
            match message.strip_prefix("missing field ") {
                Some(field) if path == "." => Nested::at("", format!("{} needs {field}", (self.describe)(kind))),
                _ => Nested::from_serde(&path, message),
            }
        })
    }
}

/// serde's wording: "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, `c`".
fn one_of(items: &[String]) -> String {
    match items {
        [] => "there are no fields".into(),
        [a] => format!("expected {a}"),
        [a, b] => format!("expected {a} or {b}"),
        _ => format!("expected one of {}", items.join(", ")),
    }
}

/// A mapping key as text; recipes only use text keys.
fn key_text(key: &Value) -> Result<String, Nested> {
    match key {
        Value::String(s) => Ok(s.clone()),
        other => Err(Nested::at("", format!("keys must be text, got {}", serde_yaml::to_string(other).unwrap_or_default().trim()))),
    }
}

/// Reads a section as a mapping: `null` (an empty value) is an error rather than the defaults,
/// so `--set student.loss=` or a `loss:` with nothing after it does not silently mean `kd`.
pub(crate) fn mapping<'de, D: Deserializer<'de>>(d: D, what: &str) -> Result<Mapping, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Mapping(m) => Ok(m),
        Value::Null => Err(D::Error::custom(format!("{what} is empty: give its keys (e.g. `{{kind: ...}}`), or leave it out for the default"))),
        other => Err(D::Error::custom(format!("invalid type: {}, expected {what} as a mapping with `kind`", value_kind(&other)))),
    }
}

fn value_kind(v: &Value) -> String {
    match v {
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Null => "null".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

/// Removes `kind` from the mapping: `None` when it is absent.
pub(crate) fn take_kind(map: &mut Mapping) -> Result<Option<String>, Nested> {
    match map.remove("kind") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Nested::at("kind", format!("invalid type: {}, expected the kind's name", value_kind(&other)))),
    }
}

/// Moves the entries named in `keys` out of `map` into a mapping of their own.
pub(crate) fn take_keys(map: &mut Mapping, keys: &[&str]) -> Mapping {
    let mut out = Mapping::new();
    for key in keys {
        if let Some(v) = map.remove(*key) {
            out.insert(Value::String(key.to_string()), v);
        }
    }
    out
}

/// Reads a struct from a mapping; errors keep their key path.
pub(crate) fn read<T: DeserializeOwned>(map: Mapping) -> Result<T, Nested> {
    serde_path_to_error::deserialize(Value::Mapping(map)).map_err(|e| Nested::from_serde(&e.path().to_string(), e.into_inner().to_string()))
}

/// `kind: name` (when `kind` is given) followed by the fields of `body` (a struct, or a unit
/// variant for a kind without keys): the recipe's own form of a tagged section.
pub(crate) fn tagged_mapping(kind: Option<&str>, body: &impl Serialize) -> Result<Mapping, serde_yaml::Error> {
    let mut out = Mapping::new();
    if let Some(kind) = kind {
        out.insert(Value::String("kind".into()), Value::String(kind.into()));
    }
    match serde_yaml::to_value(body)? {
        Value::Mapping(fields) => out.extend(fields),
        Value::Null => {}
        other => return Err(serde::ser::Error::custom(format!("a kind's settings must be a mapping, got {}", value_kind(&other)))),
    }
    Ok(out)
}

/// Serialises `kind: name` and the fields of `body`, after the entries of `leading`.
pub(crate) fn serialize_tagged<S: Serializer>(s: S, leading: Mapping, kind: Option<&str>, body: &impl Serialize, trailing: Mapping) -> Result<S::Ok, S::Error> {
    use serde::ser::Error;
    let mut out = leading;
    out.extend(tagged_mapping(kind, body).map_err(S::Error::custom)?);
    out.extend(trailing);
    out.serialize(s)
}

/// The field names a derived `Deserialize` struct accepts: serde passes them to
/// `deserialize_struct`, so a deserializer that only records them can ask.
pub(crate) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, fields: &'static [&'static str], _: V) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// "a" or "an" before a kind's name, as it is read aloud (`an sql check`).
pub(crate) fn article(kind: &str) -> &'static str {
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) || kind == "sql" {
        "an"
    } else {
        "a"
    }
}

/// The keys of a kind that has none.
pub(crate) fn no_keys() -> &'static [&'static str] {
    &[]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        a: f64,
        #[serde(default)]
        b: Option<Vec<u32>>,
    }

    static DEMO_KINDS: [Kind; 3] = [Kind::of::<Demo>("one"), Kind { keys: || &["c"], ..Kind::unit("two", "") }, Kind::unit("none", "")];

    fn family() -> Family {
        Family { describe: |k| format!("a `{k}` demo"), kinds: &DEMO_KINDS, leading: &["id"], trailing: &[], tagged: true }
    }

    fn map(text: &str) -> Mapping {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn a_kinds_struct_is_read_with_key_paths_in_errors() {
        let f = family();
        assert_eq!(fields_of::<Demo>(), ["a", "b"]);
        assert_eq!(f.body::<Demo>("one", map("{a: 1, b: [2]}")), Ok(Demo { a: 1.0, b: Some(vec![2]) }));
        let e = f.body::<Demo>("one", map("{a: 1, d: 2}")).unwrap_err();
        assert_eq!(e, Nested::at("d", "unknown field `d`, expected one of `id`, `kind`, `a`, `b`"));
        let e = f.body::<Demo>("one", map("{a: 1, c: 2}")).unwrap_err();
        assert_eq!(e.to_string(), "c: `c` does not apply to a `one` demo; expected one of `id`, `kind`, `a`, `b`");
        let e = f.body::<Demo>("one", map("{b: [1]}")).unwrap_err();
        assert_eq!(e, Nested::at("", "a `one` demo needs `a`"));
        let e = f.body::<Demo>("one", map("{a: 1, b: [1, x]}")).unwrap_err();
        assert_eq!(e.path, "b[1]");
        assert!(e.message.starts_with("invalid type: string \"x\""), "{e}");
        assert_eq!(f.unknown_kind("three").to_string(), "kind: unknown kind `three`, expected one of `one`, `two`, `none`");
    }

    #[test]
    fn nested_paths_join_the_sections_path() {
        assert_eq!(join_nested("student.loss", "temprature: unknown field"), Some(("student.loss.temprature".into(), "unknown field".into())));
        assert_eq!(join_nested("data.checks", "[1].min: bad"), Some(("data.checks[1].min".into(), "bad".into())));
        assert_eq!(join_nested("a", "invalid type: string"), None);
        assert_eq!(join_nested("a", "unknown field `x`, expected `y`"), None);
        let inner = Nested::at("alpha", "unknown field").within("terms.kd");
        assert_eq!(inner.to_string(), "terms.kd.alpha: unknown field");
        assert_eq!(Nested::from_serde("loss", inner.to_string()).path, "loss.terms.kd.alpha");
        assert_eq!(Nested::from_serde(".", "terms.kd.alpha: x".into()), Nested::at("terms.kd.alpha", "x"));
    }
}
