use super::*;
use serde_json::json;

fn two_runs() -> Vec<(String, Value, Value)> {
    let m1 = json!({
        "student": {"accuracy": 0.90, "ece": 0.05, "confusion": [[1, 2], [3, 4]]},
        "teacher": {"accuracy": 0.95},
    });
    let m2 = json!({
        "student": {"accuracy": 0.92, "ece": 0.04, "confusion": [[1, 2], [3, 4]]},
        "teacher": {"accuracy": 0.95},
    });
    let p1 = json!({
        "name": "iris",
        "student": {"hidden": [16], "loss": {"temperature": 2, "alpha": 0.5}},
        "checks": [{"id": "nulls", "max": 0}],
    });
    let mut p2 = p1.clone();
    p2["student"]["loss"]["temperature"] = json!(4);
    vec![("base".into(), m1, p1), ("hot".into(), m2, p2)]
}

#[test]
fn metrics_rows_and_deltas() {
    let c = compare_runs(&two_runs());
    assert_eq!(c.runs, vec!["base", "hot"]);
    let paths: Vec<&str> = c.metrics.iter().map(|m| m.path.as_str()).collect();
    assert!(paths.contains(&"student.accuracy") && paths.contains(&"teacher.accuracy"));
    assert!(!paths.iter().any(|p| p.contains("confusion")), "{paths:?}");
    let acc = c.metrics.iter().find(|m| m.path == "student.accuracy").unwrap();
    assert_eq!(acc.values, vec![Some(0.90), Some(0.92)]);
    assert_eq!(acc.deltas[0], Some(0.0));
    assert!((acc.deltas[1].unwrap() - 0.02).abs() < 1e-12);
}

#[test]
fn only_the_changed_key_differs() {
    let c = compare_runs(&two_runs());
    assert_eq!(c.differing_keys.len(), 1, "{:?}", c.differing_keys);
    let d = &c.differing_keys[0];
    assert_eq!(d.path, "student.loss.temperature");
    assert_eq!(d.values, vec![Some(json!(2)), Some(json!(4))]);
}

#[test]
fn missing_keys_and_number_forms() {
    let runs = vec![
        ("a".into(), json!({"x": 1}), json!({"lr": 2, "l": [{"w": 1}]})),
        ("b".into(), json!({"y": 2}), json!({"lr": 2.0, "l": [{"w": 1}, {"w": 2}], "new": true})),
    ];
    let c = compare_runs(&runs);
    let keys: Vec<&str> = c.differing_keys.iter().map(|k| k.path.as_str()).collect();
    assert_eq!(keys, vec!["l[1].w", "new"]);
    let x = c.metrics.iter().find(|m| m.path == "x").unwrap();
    assert_eq!(x.values, vec![Some(1.0), None]);
    assert_eq!(x.deltas, vec![Some(0.0), None]);
}

#[test]
fn renderers_show_both_runs() {
    let c = compare_runs(&two_runs());
    let t = to_table(&c);
    let line = t.lines().find(|l| l.starts_with("student.accuracy")).unwrap();
    assert!(line.contains("0.9000") && line.contains("0.9200") && line.contains("+0.0200"));
    let temp = t.lines().find(|l| l.starts_with("student.loss.temperature")).unwrap();
    assert!(temp.ends_with('4') && temp.contains('2'));
    // columns are aligned: every metrics line has its first value at the same offset
    let offsets: Vec<usize> = t.lines().filter(|l| l.contains("accuracy")).map(|l| l.find("0.9").unwrap()).collect();
    assert!(offsets.windows(2).all(|w| w[0] == w[1]), "{t}");

    let md = to_markdown(&c);
    assert!(md.contains("| metric | base | hot | Δ hot |"), "{md}");
    assert!(md.contains("| student.loss.temperature | 2 | 4 |"), "{md}");

    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["differing_keys"][0]["path"], "student.loss.temperature");
}

#[test]
fn identical_and_empty_inputs() {
    let mut runs = two_runs();
    runs[1].2 = runs[0].2.clone();
    let c = compare_runs(&runs);
    assert!(c.differing_keys.is_empty());
    assert!(to_table(&c).contains("(pipelines are identical)"));
    let empty = compare_runs(&[]);
    assert!(empty.metrics.is_empty() && empty.runs.is_empty());
    assert!(to_markdown(&empty).contains("No numeric metrics."));
}
