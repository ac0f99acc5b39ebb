//! The JSON Schema of kind-tagged sections (checks, losses, optimisers, schedules,
//! augmentations): one closed object per kind, built from the family the parser reads them with,
//! so a kind added to a family is in the schema too.

use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::tagged::Family;

/// What a family's sections take besides their kinds' own keys.
#[derive(Default)]
pub(crate) struct Shape {
    /// What the schema says of the section as a whole.
    pub description: &'static str,
    /// Keys every kind takes: an object schema (its `properties` and `required`).
    pub shared: Option<Schema>,
    /// The kind of a section that leaves `kind` out.
    pub default_kind: Option<&'static str>,
    /// The keys of a kind a plugin provides (any name but the built-in ones), and what the schema
    /// says of it.
    pub plugin: Option<(Schema, &'static str)>,
}

impl Family {
    /// A section with `kind`: exactly one of the kinds' objects.
    pub(crate) fn tagged_schema(&self, g: &mut SchemaGenerator, shape: &Shape) -> Schema {
        let variants: Vec<Value> = self.variants(g, shape).into_iter().map(|(_, v)| v).collect();
        described(json_schema!({ "oneOf": variants }), shape.description)
    }

    /// A map from kind name to that kind's keys (`terms: {kd: {...}, ce: {...}}`); a name that is
    /// not built in is a plugin's.
    pub(crate) fn keyed_schema(&self, g: &mut SchemaGenerator, shape: &Shape) -> Schema {
        let mut properties = Map::new();
        let mut others = Value::Bool(false);
        for (name, variant) in self.variants(g, shape) {
            match name {
                Some(name) => drop(properties.insert(name.to_string(), variant)),
                None => others = variant,
            }
        }
        described(json_schema!({ "type": "object", "properties": properties, "additionalProperties": others }), shape.description)
    }

    /// Every kind's closed object (the plugin kind's last, named `None`).
    fn variants(&self, g: &mut SchemaGenerator, shape: &Shape) -> Vec<(Option<&'static str>, Value)> {
        let shared = shape.shared.as_ref().and_then(Schema::as_object).cloned().unwrap_or_default();
        let mut out: Vec<(Option<&'static str>, Value)> = self
            .kinds
            .iter()
            .map(|kind| {
                let body = (kind.schema)(g);
                let tag = self.tagged.then(|| json!({ "const": kind.name }));
                (Some(kind.name), self.variant(kind.name, tag, shape.default_kind != Some(kind.name), &shared, body, kind.note))
            })
            .collect();
        if let Some((body, note)) = &shape.plugin {
            let tag = self.tagged.then(|| json!({ "type": "string", "not": { "enum": self.names() } }));
            out.push((None, self.variant("plugin", tag, true, &shared, body.clone(), note)));
        }
        out
    }

    /// One kind: the shared keys, `kind` (when `tag` is given), the kind's own keys; nothing else.
    fn variant(&self, title: &str, tag: Option<Value>, kind_required: bool, shared: &Map<String, Value>, body: Schema, note: &str) -> Value {
        let body = body.as_object().cloned().unwrap_or_default();
        let description = if note.is_empty() { body.get("description").cloned().unwrap_or(Value::Null) } else { Value::from(note) };
        let mut properties = shared.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        let mut required: Vec<Value> = Vec::new();
        if let Some(mut tag) = tag {
            if let (Some(t), Some(d)) = (tag.as_object_mut(), description.as_str()) {
                t.insert("description".into(), d.into());
            }
            properties.insert("kind".into(), tag);
            if kind_required {
                required.push("kind".into());
            }
        }
        properties.extend(body.get("properties").and_then(Value::as_object).cloned().unwrap_or_default());
        for part in [shared.get("required"), body.get("required")].into_iter().flatten() {
            required.extend(part.as_array().cloned().unwrap_or_default());
        }
        let mut out = Map::new();
        out.insert("title".into(), title.into());
        if !description.is_null() {
            out.insert("description".into(), description);
        }
        out.insert("type".into(), "object".into());
        out.insert("properties".into(), properties.into());
        if !required.is_empty() {
            out.insert("required".into(), required.into());
        }
        out.insert("additionalProperties".into(), false.into());
        out.into()
    }
}

fn described(mut schema: Schema, description: &str) -> Schema {
    if !description.is_empty() {
        schema.insert("description".into(), description.into());
    }
    schema
}

/// The schema of a kind without keys.
pub(crate) fn no_keys(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "properties": {} })
}
