//! `distill validate --explain`: the composed recipe as YAML, each key followed by where it was
//! written (`# file:line` or `# --set KEY=VALUE`). The text parses back to the same keys.

use serde_yaml::{Mapping, Value};

use crate::compose::{key_text, Composed};

/// Comments start at this column at least, so they line up on most recipes.
const COMMENT_COLUMN: usize = 44;
/// Lines longer than this do not push every other line's comment further right.
const MAX_COMMENT_COLUMN: usize = 72;

/// The merged keys of `composed` with their origins (keys left to their defaults are not shown:
/// `pipeline.resolved.yaml` of a run has those).
pub fn explain(composed: &Composed) -> String {
    let chain: Vec<String> = composed.files.iter().map(|f| f.display().to_string()).collect();
    let mut lines = Vec::new();
    if let Value::Mapping(m) = &composed.value {
        map_lines(m, "", 0, composed, &mut lines);
    }
    let width = lines.iter().map(|(text, _)| text.chars().count() + 2).filter(|w| *w <= MAX_COMMENT_COLUMN).max().unwrap_or(0).max(COMMENT_COLUMN);
    let mut out = format!("# {} merged ({}); each key's origin after `#`\n", composed.file.display(), chain.join(" extends "));
    for (text, origin) in lines {
        match origin {
            Some(o) if text.chars().count() + 2 <= width => out += &format!("{text:<width$}# {o}\n"),
            Some(o) => out += &format!("{text}  # {o}\n"),
            None => out += &format!("{text}\n"),
        }
    }
    out
}

type Lines = Vec<(String, Option<String>)>;

fn origin(composed: &Composed, path: &str) -> Option<String> {
    composed.origins.get(path).map(|o| o.to_string())
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

fn map_lines(m: &Mapping, path: &str, indent: usize, c: &Composed, out: &mut Lines) {
    for (k, v) in m {
        let key = key_text(k);
        let p = join(path, &key);
        let head = format!("{}{}:", " ".repeat(indent), scalar(k));
        match inline(v, &p, c) {
            Some(text) => out.push((format!("{head} {text}"), origin(c, &p))),
            None => {
                out.push((head, origin(c, &p)));
                match v {
                    Value::Mapping(inner) => map_lines(inner, &p, indent + 2, c, out),
                    Value::Sequence(items) => seq_lines(items, &p, indent + 2, c, out),
                    _ => {}
                }
            }
        }
    }
}

fn seq_lines(items: &[Value], path: &str, indent: usize, c: &Composed, out: &mut Lines) {
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let dash = format!("{}- ", " ".repeat(indent));
        if let Some(text) = inline(item, &p, c) {
            out.push((format!("{dash}{text}"), origin(c, &p)));
            continue;
        }
        // A block item: render it two columns in, then put the dash on its first line.
        let start = out.len();
        match item {
            Value::Mapping(m) => map_lines(m, &p, indent + 2, c, out),
            Value::Sequence(inner) => seq_lines(inner, &p, indent + 2, c, out),
            _ => {}
        }
        if let Some((first, _)) = out.get_mut(start) {
            first.replace_range(..indent + 2, &dash);
        }
    }
}

/// One-line text for scalars, empty collections, and lists of scalars that all come from where
/// the list does; `None` when the value needs block lines.
fn inline(v: &Value, path: &str, c: &Composed) -> Option<String> {
    match v {
        Value::Mapping(m) if m.is_empty() => Some("{}".into()),
        Value::Mapping(_) => None,
        Value::Sequence(items) => {
            // Items of a flow list share a line; shown inline when they share the list's origin.
            let same = items.iter().enumerate().all(|(i, item)| is_scalar(item) && origin(c, &format!("{path}[{i}]")) == origin(c, path));
            same.then(|| format!("[{}]", items.iter().map(flow_scalar).collect::<Vec<_>>().join(", ")))
        }
        Value::Tagged(t) => inline(&t.value, path, c).map(|text| format!("{} {text}", t.tag)),
        other => Some(scalar(other)),
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_))
}

/// A scalar as YAML reads it back: serde_yaml's plain or quoted form, a JSON string when that
/// would take several lines (a JSON string is a valid double-quoted YAML scalar).
fn scalar(v: &Value) -> String {
    let text = serde_yaml::to_string(v).unwrap_or_default();
    let text = text.trim_end_matches('\n');
    match v {
        Value::String(s) if text.contains('\n') => serde_json::to_string(s).unwrap_or_default(),
        _ => text.to_string(),
    }
}

/// A scalar inside `[...]`, where `,`, `[`, `]`, `{`, `}` end a plain scalar.
fn flow_scalar(v: &Value) -> String {
    match v {
        Value::String(s) if s.contains([',', '[', ']', '{', '}']) => serde_json::to_string(s).unwrap_or_default(),
        other => scalar(other),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn explained_text_reads_back_as_the_same_keys() {
        let text = "version: 1\nname: \"a: b\"\nl: [x, 'y, z', 3]\nm:\n  - {k: 1, n: [1, {q: 2}]}\n  - [1, [2]]\n  - plain\ne: {}\ns: \"two\\nlines\"\n";
        let c = crate::compose(text, Path::new("r.yaml"), &["m.0.k=7".into()]).unwrap();
        let shown = explain(&c);
        let back: Value = serde_yaml::from_str(&shown).unwrap();
        assert_eq!(back, c.value, "{shown}");
        assert!(shown.contains("# r.yaml:3\n"), "{shown}");
        assert!(shown.contains("# --set m.0.k=7\n"), "{shown}");
    }
}
