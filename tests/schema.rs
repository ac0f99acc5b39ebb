//! `distill schema` through the binary: the shipped schema files are what it prints, every
//! shipped recipe (and what `distill init` writes) passes them under Python's `jsonschema`, and
//! recipes with an unknown key, a bad kind or a bad enum value fail them, as `distill validate`
//! fails them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const RECIPE_SCHEMA: &str = "schema/distill.schema.json";
const BASE_SCHEMA: &str = "schema/distill-base.schema.json";
/// The line that tells editors (yaml-language-server: VS Code, Neovim, Helix, ...) the schema.
const MODELINE: &str = "# yaml-language-server: $schema=";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn distill(args: &[&str], dir: &Path) -> Output {
    common::distill_in(args, dir)
}

/// A Python with `jsonschema` and PyYAML, in a virtual environment of its own.
fn python() -> PathBuf {
    common::provision(&common::target_dir().join("py-venv-schema"), &["jsonschema", "pyyaml"]).unwrap_or_else(|e| panic!("cannot provision Python: {e}"))
}

/// Reads `{"schemas": {name: path}, "docs": [[name, schema name, YAML text]]}` on stdin; checks
/// each schema against the draft 2020-12 meta-schema, validates each document and prints
/// `{name: [error, ...]}`.
const VALIDATE: &str = r#"
import json, sys, yaml, jsonschema
job = json.load(sys.stdin)
validators = {}
for name, path in job["schemas"].items():
    with open(path) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validators[name] = jsonschema.Draft202012Validator(schema)
out = {}
for name, schema, text in job["docs"]:
    errors = validators[schema].iter_errors(yaml.safe_load(text))
    out[name] = ["/".join(map(str, e.absolute_path)) + ": " + e.message for e in errors]
print(json.dumps(out))
"#;

/// The schema errors of each document (`(name, schema file, text)`), by name.
fn schema_errors(docs: &[(String, &str, String)]) -> serde_json::Map<String, Value> {
    let schemas = json!({ RECIPE_SCHEMA: repo().join(RECIPE_SCHEMA), BASE_SCHEMA: repo().join(BASE_SCHEMA) });
    let job = json!({ "schemas": schemas, "docs": docs });
    let mut child =
        Command::new(python()).args(["-c", VALIDATE]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("python runs");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), job.to_string().as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "the validator failed: {}", String::from_utf8_lossy(&o.stderr));
    match serde_json::from_slice(&o.stdout).expect("the validator prints JSON") {
        Value::Object(map) => map,
        other => panic!("unexpected validator output {other}"),
    }
}

#[test]
fn the_shipped_schemas_are_what_distill_schema_prints() {
    for (file, args) in [(RECIPE_SCHEMA, &["schema"][..]), (BASE_SCHEMA, &["schema", "--base"][..])] {
        let o = distill(args, &repo());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let printed = String::from_utf8(o.stdout).unwrap();
        let shipped = std::fs::read_to_string(repo().join(file)).unwrap_or_default();
        assert!(printed == shipped, "{file} is out of date with the spec types: regenerate it with `cargo run --release -- {} > {file}`", args.join(" "));
        let schema: Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    }
}

/// Every YAML file under `dir`, recursively.
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// The schema file a recipe's modeline names, as a shipped schema's repository path.
fn modeline_schema(file: &Path, text: &str) -> &'static str {
    let line = text.lines().next().unwrap_or_default();
    let target = line.strip_prefix(MODELINE).unwrap_or_else(|| panic!("{}: the first line should be `{MODELINE}...`, got {line:?}", file.display()));
    let named = std::fs::canonicalize(file.parent().unwrap().join(target)).unwrap_or_else(|e| panic!("{}: {target}: {e}", file.display()));
    [RECIPE_SCHEMA, BASE_SCHEMA]
        .into_iter()
        .find(|s| std::fs::canonicalize(repo().join(s)).unwrap() == named)
        .unwrap_or_else(|| panic!("{}: {target} is not a shipped schema", file.display()))
}

#[test]
fn shipped_recipes_and_init_recipes_pass_the_schema() {
    let mut files = Vec::new();
    yaml_files(&repo().join("pipelines"), &mut files);
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let mut docs: Vec<(String, &str, String)> = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let schema = modeline_schema(file, &text);
        // Bases are fragments (no `name`); everything else is a recipe.
        let is_base = file.parent().is_some_and(|d| d.ends_with("base"));
        assert_eq!(schema, if is_base { BASE_SCHEMA } else { RECIPE_SCHEMA }, "{}", file.display());
        docs.push((file.strip_prefix(repo()).unwrap().display().to_string(), schema, text));
    }
    // `init` names a schema it finds in `schema/` at or above the recipe's folder in the
    // modeline, and otherwise says how to get one.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("schema")).unwrap();
    std::fs::copy(repo().join(RECIPE_SCHEMA), tmp.path().join(RECIPE_SCHEMA)).unwrap();
    std::fs::create_dir_all(tmp.path().join("recipes")).unwrap();
    let alone = tempfile::tempdir().unwrap();
    for (data, out, modeline) in
        [("iris.csv", tmp.path().join("recipes/iris.yaml"), Some("../schema/distill.schema.json")), ("digits.csv", alone.path().join("digits.yaml"), None)]
    {
        let o = distill(&["init", repo().join("datasets").join(data).to_str().unwrap(), "--out", out.to_str().unwrap()], tmp.path());
        assert!(o.status.success(), "init {data}: {}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(&out).unwrap();
        match modeline {
            Some(path) => assert_eq!(text.lines().next(), Some(format!("{MODELINE}{path}").as_str()), "{text}"),
            None => assert!(!text.starts_with(MODELINE) && text.contains("distill schema > distill.schema.json"), "{text}"),
        }
        docs.push((format!("init {data}"), RECIPE_SCHEMA, text));
    }
    let errors = schema_errors(&docs);
    assert_eq!(errors.len(), docs.len());
    for (name, problems) in &errors {
        assert_eq!(problems, &json!([]), "{name} does not pass its schema");
    }
}

/// A small recipe with `extra` lines appended under `student:` (indented) or at the top level.
fn recipe(student: &str, top: &str) -> String {
    // A case that gives its own student model replaces the default one (YAML keys are unique).
    let model = if student.contains("  model:") { "" } else { "  model: {hidden: [4]}\n" };
    format!(
        "version: 1\nname: t\ndata:\n  source: {{path: d.csv}}\n  label: y\n  checks:\n    - {{id: rows, kind: row_count, min: 10, severity: warn}}\nteacher: {{model: {{hidden: [8]}}}}\nstudent:\n{model}{student}{top}"
    )
}

#[test]
fn the_schema_rejects_what_the_parser_rejects() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("base.yaml"), recipe("", "")).unwrap();
    // (case, recipe, whether both the schema and `distill validate` accept it)
    let cases: Vec<(&str, String, bool)> = vec![
        ("plain", recipe("", ""), true),
        ("unknown top-level key", recipe("", "colour: red\n"), false),
        ("misspelt loss key", recipe("  loss: {kind: kd, temprature: 2}\n", ""), false),
        ("loss without kind is kd", recipe("  loss: {temperature: 4, alpha: 0.9}\n", ""), true),
        ("key of another loss kind", recipe("  loss: {kind: ce, temperature: 4}\n", ""), false),
        ("weighted terms", recipe("  loss: {terms: {kd: {weight: 0.7, temperature: 4}, ce: {weight: 0.3, label_smoothing: 0.1}}}\n", ""), true),
        ("term without weight", recipe("  loss: {terms: {ce: {label_smoothing: 0.1}}}\n", ""), false),
        ("kind beside terms", recipe("  loss: {kind: kd, terms: {ce: {weight: 1}}}\n", ""), false),
        ("zero epochs", recipe("  train: {epochs: 0}\n", ""), false),
        ("bad optimiser kind", recipe("  train: {optimizer: {kind: adamx}}\n", ""), false),
        ("sgd with schedule", recipe("  train: {optimizer: {kind: sgd, lr: 0.1, momentum: 0.9}, schedule: {kind: step, every: 3}}\n", ""), true),
        ("step schedule without every", recipe("  train: {schedule: {kind: step}}\n", ""), false),
        ("bad activation", recipe("  model: {hidden: [4], activation: swish}\n", ""), false),
        ("layer list", recipe("  model: {layers: [{dense: 8}, {residual: [{dense: 8}, {norm: layer}]}, {activation: gelu}]}\n", ""), true),
        ("layer with two keys", recipe("  model: {layers: [{dense: 8, dropout: 0.1}]}\n", ""), false),
        ("bad scale kind", recipe("", "evaluate: {top_k: 2}\n").replace("  label: y\n", "  label: y\n  scale: {kind: maxmin}\n"), false),
        ("bad device", recipe("", "device: gpu\n"), false),
        ("bad check kind", recipe("", "").replace("kind: row_count, min: 10", "kind: rows"), false),
        ("bad threshold", recipe("", "").replace("severity: warn", "warn: about 5"), false),
        ("sweep", recipe("", "sweep: {grid: {student.model.hidden: [[2], [4]]}, objective: fastest}\n"), true),
        ("sweep with a bad objective", recipe("", "sweep: {grid: {student.model.hidden: [[2]]}, objective: cheapest}\n"), false),
        ("extends: a partial recipe", "version: 1\nextends: base.yaml\nstudent:\n  loss: {temperature: 4}\n  model: {hidden: null}\n".into(), true),
        ("extends with an unknown key", "version: 1\nextends: base.yaml\nstudent:\n  modle: {hidden: [2]}\n".into(), false),
        ("extends with a bad enum value", "version: 1\nextends: base.yaml\ndata: {scale: {kind: maxmin}}\n".into(), false),
        ("no name without extends", recipe("", "").replace("name: t\n", ""), false),
    ];
    let docs: Vec<(String, &str, String)> = cases.iter().map(|(name, text, _)| (name.to_string(), RECIPE_SCHEMA, text.clone())).collect();
    let errors = schema_errors(&docs);
    for (i, (name, text, valid)) in cases.iter().enumerate() {
        let problems = errors[*name].as_array().unwrap();
        assert_eq!(problems.is_empty(), *valid, "schema on `{name}`:\n{text}\n{problems:?}");
        let file = tmp.path().join(format!("case-{i}.yaml"));
        std::fs::write(&file, text).unwrap();
        let o = distill(&["validate", file.to_str().unwrap()], tmp.path());
        assert_eq!(o.status.code(), Some(if *valid { 0 } else { 2 }), "validate on `{name}`:\n{text}\n{}", String::from_utf8_lossy(&o.stderr));
    }
    // A base file may leave out `name` under the base schema, and still not misspell keys.
    let base = [("base", "version: 1\nseed: 3\nteacher: {train: {epochs: 2}}\n"), ("bad base", "version: 1\nteacher: {trian: {epochs: 2}}\n")];
    let docs: Vec<(String, &str, String)> = base.iter().map(|(n, t)| (n.to_string(), BASE_SCHEMA, t.to_string())).collect();
    let errors = schema_errors(&docs);
    assert_eq!(errors["base"], json!([]));
    assert!(errors["bad base"].to_string().contains("trian"), "{}", errors["bad base"]);
}
