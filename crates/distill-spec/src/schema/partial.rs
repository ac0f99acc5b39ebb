//! The partial form of the recipe's schema: what a file with `extends:` (or a base) may hold.
//!
//! Such a file is merged over its base, maps key by key, so a map in it may leave out any key and
//! `null` removes one; a list replaces the base's whole list, so list items stay complete. Each
//! definition reached through maps gets a partial twin (`<Name>Partial`) without `required`,
//! whose properties also accept `null`; `oneOf` becomes `anyOf` (kinds without their required
//! keys may overlap); anything under `items` keeps the full definitions.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// The partial twins of the definitions reachable from `root`, and the root's partial name.
pub(super) struct Partial {
    pub root: String,
    pub defs: Map<String, Value>,
}

pub(super) fn partial_defs(defs: &Map<String, Value>, root: &str) -> Partial {
    let mut p = Partializer { defs, names: BTreeMap::new(), out: Map::new() };
    let root = p.def(root);
    Partial { root, defs: p.out }
}

struct Partializer<'a> {
    defs: &'a Map<String, Value>,
    /// A definition's partial name: its own when nothing in it changes.
    names: BTreeMap<String, String>,
    out: Map<String, Value>,
}

impl Partializer<'_> {
    /// The name of `name`'s partial twin, made on first use.
    fn def(&mut self, name: &str) -> String {
        if let Some(known) = self.names.get(name) {
            return known.clone();
        }
        let twin = format!("{name}Partial");
        // Recursive references made while it is built point at the twin.
        self.names.insert(name.to_string(), twin.clone());
        let Some(full) = self.defs.get(name) else { return name.to_string() };
        let partial = self.schema(full);
        if partial == *full && !self.out.contains_key(&twin) {
            self.names.insert(name.to_string(), name.to_string());
            return name.to_string();
        }
        self.out.insert(twin.clone(), partial);
        twin
    }

    fn schema(&mut self, schema: &Value) -> Value {
        let Value::Object(map) = schema else { return schema.clone() };
        let mut out = Map::new();
        for (key, value) in map {
            let value = match key.as_str() {
                "required" => continue,
                "properties" | "patternProperties" => {
                    Value::Object(value.as_object().into_iter().flatten().map(|(k, v)| (k.clone(), self.nullable(v))).collect())
                }
                "additionalProperties" if value.is_object() => self.nullable(value),
                "anyOf" | "allOf" | "oneOf" => Value::Array(value.as_array().into_iter().flatten().map(|v| self.schema(v)).collect()),
                "$ref" => match value.as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
                    Some(name) => Value::String(format!("#/$defs/{}", self.def(name))),
                    None => value.clone(),
                },
                _ => value.clone(),
            };
            // Kinds without their required keys may overlap; unchanged branches stay exclusive.
            let key = if key == "oneOf" && value != map[key] { "anyOf".to_string() } else { key.clone() };
            out.insert(key, value);
        }
        Value::Object(out)
    }

    /// The partial form of a key's value, which may also be `null` (removing the base's key).
    fn nullable(&mut self, schema: &Value) -> Value {
        let partial = self.schema(schema);
        if accepts_null(&partial) {
            return partial;
        }
        let mut wrapper = Map::new();
        for key in ["description", "default"] {
            if let Some(v) = partial.get(key) {
                wrapper.insert(key.into(), v.clone());
            }
        }
        wrapper.insert("anyOf".into(), json!([partial, { "type": "null" }]));
        Value::Object(wrapper)
    }
}

/// Whether a schema plainly takes `null` (`true`, a `null` type, or an `anyOf` branch that does).
fn accepts_null(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(map) => {
            let typed = match map.get("type") {
                Some(Value::String(t)) => t == "null",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
                _ => false,
            };
            typed || map.get("anyOf").and_then(Value::as_array).is_some_and(|bs| bs.iter().any(accepts_null)) || map.is_empty()
        }
        _ => false,
    }
}
