//! `--set key.path=value` overrides, applied to the parsed YAML before typing.

use serde_yaml::{Mapping, Value};

/// Sets `key.path` in `doc` to `value` (parsed as YAML, so `8`, `true` and `[16, 16]` keep their types).
pub fn apply(doc: &mut Value, item: &str) -> Result<(), String> {
    let (key, raw) = item.split_once('=').ok_or("expected KEY.PATH=VALUE")?;
    let value: Value = serde_yaml::from_str(raw).map_err(|e| format!("value is not valid YAML: {e}"))?;
    let mut node = doc;
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("bad key path `{key}`"));
    }
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        node = match node {
            Value::Sequence(items) => {
                let index: usize = part.parse().map_err(|_| format!("`{part}` is not a list index"))?;
                let len = items.len();
                items.get_mut(index).ok_or(format!("index {index} is out of range (list has {len} items)"))?
            }
            Value::Mapping(map) => {
                let k = Value::String(part.to_string());
                if !map.contains_key(&k) {
                    map.insert(k.clone(), if last { Value::Null } else { Value::Mapping(Mapping::new()) });
                }
                map.get_mut(&k).ok_or("unreachable: key just inserted")?
            }
            Value::Null => {
                *node = Value::Mapping(Mapping::new());
                let Value::Mapping(map) = node else { return Err("unreachable".into()) };
                map.insert(Value::String(part.to_string()), Value::Null);
                map.get_mut(part).ok_or("unreachable: key just inserted")?
            }
            _ => return Err(format!("`{}` is not a mapping", parts[..i].join("."))),
        };
    }
    *node = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nested_values_with_yaml_types() {
        let mut doc: Value = serde_yaml::from_str("a: {b: 1}\nl: [1, 2]").unwrap();
        apply(&mut doc, "a.b=8").unwrap();
        apply(&mut doc, "a.c.d=[16, 16]").unwrap();
        apply(&mut doc, "l.1=x").unwrap();
        assert_eq!(doc["a"]["b"], Value::from(8));
        assert_eq!(doc["a"]["c"]["d"][1], Value::from(16));
        assert_eq!(doc["l"][1], Value::from("x"));
        assert!(apply(&mut doc, "l.9=1").is_err());
        assert!(apply(&mut doc, "novalue").is_err());
    }
}
