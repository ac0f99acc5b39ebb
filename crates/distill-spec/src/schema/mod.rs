//! `distill schema`: the JSON Schema (draft 2020-12) of a recipe, for editors.
//!
//! Every spec type derives (or, for the kind-tagged and hand-parsed ones, implements)
//! `schemars::JsonSchema`; doc comments become the descriptions. The schema follows the parser:
//! unknown keys are rejected (`additionalProperties: false`), each kind of a tagged section is
//! one closed object, and a file with `extends:` is checked as a *partial* recipe (nothing
//! required, `null` removes a key), since its base supplies the rest. Value checks that need
//! more than a type (ranges, keys that depend on each other) stay with `distill validate`.

mod kinds;
mod partial;

pub(crate) use kinds::{no_keys, Shape};

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::Pipeline;

/// Which file the schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaFor {
    /// A recipe to run; one with `extends:` is partial.
    Recipe,
    /// A base that recipes extend: every key optional (it need not have a `name`).
    Base,
}

/// The JSON Schema of a recipe (or of a base file), as `distill schema` prints it.
pub fn json_schema(of: SchemaFor) -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    generator.subschema_for::<Pipeline>();
    let mut defs = generator.take_definitions(true);
    let partial = partial::partial_defs(&defs, "Pipeline");
    defs.extend(partial.defs);
    if let Some(Value::Object(root)) = defs.get_mut(&partial.root) {
        let extends = json!({
            "description": "The recipe this one changes, relative to this file. The base is merged under this file: maps key by key, lists and scalars replaced, `null` removes the key. A chain (a base that extends another) is fine.",
            "type": "string",
            "minLength": 1
        });
        root.entry("properties").or_insert_with(|| json!({})).as_object_mut().map(|p| p.insert("extends".into(), extends));
    }
    for def in defs.values_mut() {
        reflow_descriptions(def);
    }
    let partial_ref = json!({ "$ref": format!("#/$defs/{}", partial.root) });
    let mut root = Map::new();
    root.insert("$schema".into(), "https://json-schema.org/draft/2020-12/schema".into());
    match of {
        SchemaFor::Recipe => {
            root.insert("title".into(), "distill recipe".into());
            root.insert("description".into(), "A distill knowledge-distillation recipe (version 1). A file with `extends:` is the changes to its base: its keys are checked, none is required.".into());
            root.insert("if".into(), json!({ "required": ["extends"] }));
            root.insert("then".into(), partial_ref);
            root.insert("else".into(), json!({ "$ref": "#/$defs/Pipeline" }));
        }
        SchemaFor::Base => {
            root.insert("title".into(), "distill base recipe".into());
            root.insert(
                "description".into(),
                "A base that distill recipes extend (`extends:`): every key optional, `null` removes a key of its own base.".into(),
            );
            root.insert("$ref".into(), partial_ref["$ref"].clone());
        }
    }
    root.insert("$defs".into(), defs.into());
    root.into()
}

/// Doc comments arrive with their line breaks; an editor's hover reads better with paragraphs
/// joined. List items and code blocks keep their lines.
fn reflow_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text) if key == "description" => *text = reflow(text),
                    _ => reflow_descriptions(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(reflow_descriptions),
        _ => {}
    }
}

fn reflow(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let (mut in_code, mut continues) = (false, false);
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_code = !in_code;
            lines.push(trimmed.to_string());
            continues = false;
        } else if in_code {
            lines.push(line.to_string());
        } else if trimmed.is_empty() {
            lines.push(String::new());
            continues = false;
        } else if let (true, false, Some(last)) = (continues, trimmed.starts_with("- "), lines.last_mut()) {
            last.push(' ');
            last.push_str(trimmed);
        } else {
            lines.push(trimmed.to_string());
            continues = true;
        }
    }
    lines.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every object schema with `properties` in `value`, with its JSON pointer.
    fn objects<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a Map<String, Value>)>) {
        match value {
            Value::Object(map) => {
                if map.contains_key("properties") {
                    out.push((at.clone(), map));
                }
                map.iter().for_each(|(k, v)| objects(v, format!("{at}/{k}"), out));
            }
            Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| objects(v, format!("{at}/{i}"), out)),
            _ => {}
        }
    }

    #[test]
    fn every_section_rejects_unknown_keys_and_partial_ones_require_nothing() {
        let schema = json_schema(SchemaFor::Recipe);
        let mut found = Vec::new();
        objects(&schema["$defs"], String::new(), &mut found);
        assert!(found.len() > 40, "{}", found.len());
        for (at, object) in &found {
            // The parser denies unknown fields everywhere; a map of kinds (`terms`) takes other
            // names as plugins' kinds, with their own schema.
            let others = object.get("additionalProperties");
            assert!(matches!(others, Some(Value::Bool(false) | Value::Object(_))), "{at} takes unknown keys: {others:?}");
            let partial = at.split('/').nth(1).is_some_and(|def| def.ends_with("Partial"));
            // A partial twin requires nothing, except inside list items (a list is replaced whole).
            if partial && !at.contains("/items") {
                assert!(!object.contains_key("required"), "{at} requires keys");
            }
        }
        let kinds: Vec<&str> = schema["$defs"]["LossSpec"]["oneOf"].as_array().unwrap().iter().filter_map(|k| k["title"].as_str()).collect();
        assert_eq!(kinds, ["kd", "ce", "teacher_hard", "soft_ce", "mse_logits", "dkd", "plugin", "terms"]);
        assert_eq!(schema["$defs"]["PipelinePartial"]["properties"]["extends"]["type"], "string");
        assert_eq!(json_schema(SchemaFor::Base)["$ref"], "#/$defs/PipelinePartial");
    }

    #[test]
    fn paragraphs_are_joined_and_lists_kept() {
        assert_eq!(reflow("One line\nand its rest.\n\nNext paragraph."), "One line and its rest.\n\nNext paragraph.");
        assert_eq!(reflow("Kinds:\n\n- `a`: first\n  more\n- `b`"), "Kinds:\n\n- `a`: first more\n- `b`");
        assert_eq!(reflow("Example:\n\n```yaml\nmodel:\n  hidden: [4]\n```\nAfter."), "Example:\n\n```yaml\nmodel:\n  hidden: [4]\n```\nAfter.");
    }
}
