use super::*;
use crate::metrics::{agreement, evaluate_model};

/// Deterministic pseudo-random numbers in [0, 1), so fixtures need no rand crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Logits that favour the label with the given strength, plus noise.
fn logits(labels: &[u32], k: usize, strength: f32, seed: u64) -> Vec<f32> {
    let mut rng = Lcg(seed);
    let mut out = Vec::with_capacity(labels.len() * k);
    for &l in labels {
        for c in 0..k {
            let bump = if c as u32 == l { strength } else { 0.0 };
            out.push(bump + 3.0 * rng.next());
        }
    }
    out
}

fn history(epochs: usize, start: f64, with_val: bool) -> Vec<EpochRecord> {
    (1..=epochs)
        .map(|e| {
            let t = e as f64;
            EpochRecord {
                epoch: e,
                train_loss: start / t.sqrt(),
                val_loss: with_val.then(|| start / t.sqrt() + 0.1 + 0.01 * t),
                val_accuracy: with_val.then(|| 0.95 - 0.5 / t - 0.05 * (start - 1.2).abs()),
            }
        })
        .collect()
}

fn model(labels: &[u32], classes: &[String], strength: f32, seed: u64, teacher: Option<&[f32]>, hist: Vec<EpochRecord>) -> (ModelReport, Vec<f32>) {
    let l = logits(labels, classes.len(), strength, seed);
    let mut evaluation = evaluate_model(&l, labels, classes, 10, 2).unwrap();
    if let Some(t) = teacher {
        evaluation.teacher_agreement = Some(agreement(t, &l, classes.len()).unwrap());
    }
    let report = ModelReport {
        evaluation,
        params: 1000 * seed,
        size_bytes: 4000 * seed,
        latency: Some(crate::bench::LatencyStats { p50_ms: 0.1, p95_ms: 0.2, mean_ms: 0.12, runs: 100 }),
        history: hist,
    };
    (report, l)
}

fn input_with(classes: Vec<String>, n: usize) -> ReportInput {
    let labels: Vec<u32> = (0..n).map(|i| (i * 7 % classes.len()) as u32).collect();
    let (teacher, t) = model(&labels, &classes, 4.0, 3, None, history(30, 1.2, true));
    let (student, _) = model(&labels, &classes, 3.0, 5, Some(&t), history(20, 2.5, true));
    let (baseline, _) = model(&labels, &classes, 2.0, 7, Some(&t), history(20, 1.0, false));
    ReportInput {
        pipeline_name: "iris <distill> & co".into(),
        description: "Distil an MLP teacher into a tiny student.".into(),
        recipe: vec![("teacher.hidden".into(), "[64, 64]".into()), ("student.loss.temperature".into(), "4".into())],
        data_checks: vec![
            DataCheckRow {
                id: "no-nulls".into(),
                kind: "nulls".into(),
                status: "pass".into(),
                failing: 0,
                fraction: 0.0,
                message: "no missing values".into(),
                samples: vec![],
            },
            DataCheckRow {
                id: "petal-range".into(),
                kind: "range".into(),
                status: "warn".into(),
                failing: 3,
                fraction: 0.02,
                message: "values | outside [0, 10]".into(),
                samples: (0..8).map(|i| format!("row {i}: 11.{i}")).collect(),
            },
        ],
        teacher: Some(teacher),
        student,
        baseline: Some(baseline),
        targets: vec![
            TargetRow { name: "student.accuracy >=".into(), limit: 0.9, value: 0.93, met: true },
            TargetRow { name: "student.size_bytes <=".into(), limit: 1000.0, value: 20000.0, met: false },
        ],
        deployment: None,
    }
}

fn iris() -> ReportInput {
    let classes = ["setosa", "versicolor", "virginica"].map(String::from).to_vec();
    input_with(classes, 150)
}

/// Set `DISTILL_EVAL_DUMP=/some/dir` to write the rendered files for a visual check.
fn dump(name: &str, input: &ReportInput) {
    let Ok(dir) = std::env::var("DISTILL_EVAL_DUMP") else {
        return;
    };
    let dir = std::path::Path::new(&dir).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, svg) in render_plots(input).unwrap() {
        std::fs::write(dir.join(file), svg).unwrap();
    }
    std::fs::write(dir.join("report.md"), render_markdown(input)).unwrap();
    std::fs::write(dir.join("report.html"), render_html(input).unwrap()).unwrap();
}

#[test]
fn html_has_every_section_and_figure() {
    let input = iris();
    dump("iris", &input);
    let html = render_html(&input).unwrap();
    for id in ["recipe", "checks", "metrics", "targets", "curves", "calibration", "confusion"] {
        assert_eq!(html.matches(&format!("<section id=\"{id}\">")).count(), 1, "section {id}");
    }
    for (file, _) in render_plots(&input).unwrap() {
        let id = file.trim_end_matches(".svg");
        let open = format!("<figure id=\"plot-{id}\">");
        let at = html.find(&open).unwrap_or_else(|| panic!("figure {id} missing"));
        // the SVG itself is inlined in the figure
        assert!(html[at..].trim_start_matches(&open).trim_start().starts_with("<svg"));
    }
    for id in ["plot-loss-teacher", "plot-loss-student", "plot-loss-baseline", "plot-val-accuracy", "plot-reliability", "plot-confusion-student"] {
        assert!(html.contains(&format!("<figure id=\"{id}\">")), "{id}");
    }
    // self-contained: nothing is fetched from elsewhere
    for external in ["<link", "<script", "src=\"http", "href=\"http", "@import"] {
        assert!(!html.contains(external), "{external}");
    }
    // user text is escaped
    assert!(html.contains("iris &lt;distill&gt; &amp; co"));
    assert!(!html.contains("<distill>"));
    assert!(html.contains("class=\"status-warn\"") && html.contains("class=\"unmet\""));
    assert_eq!(html.matches("<figure").count(), html.matches("</figure>").count());
    assert_eq!(html.matches("<section").count(), html.matches("</section>").count());
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
}

#[test]
fn markdown_has_sections_and_side_by_side_metrics() {
    let input = iris();
    let md = render_markdown(&input);
    for h in ["## Recipe", "## Data checks", "## Metrics", "## Targets", "## Training curves", "## Calibration", "## Confusion matrix"] {
        assert!(md.contains(&format!("\n{h}\n")), "{h}");
    }
    assert!(md.contains("| metric | teacher | student | baseline |"), "{md}");
    let acc = md.lines().find(|l| l.starts_with("| accuracy |")).unwrap();
    assert_eq!(acc.matches('|').count(), 5, "{acc}");
    let student_acc = format!("{:.4}", input.student.evaluation.accuracy);
    assert!(acc.contains(&student_acc));
    assert!(md.contains("| top-2 accuracy |"));
    // every plot file is linked by its relative name
    for (file, _) in render_plots(&input).unwrap() {
        assert!(md.contains(&format!("]({file})")), "{file}");
    }
    assert!(md.contains("values \\| outside"), "pipes in cells are escaped");
    assert!(md.contains("… 3 more"));
}

#[test]
fn plots_are_svg_with_text_and_series() {
    let input = iris();
    let plots = render_plots(&input).unwrap();
    let names: Vec<&str> = plots.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, ["loss-teacher.svg", "loss-student.svg", "loss-baseline.svg", "val-accuracy.svg", "reliability.svg", "confusion-student.svg"]);
    for (file, svg) in &plots {
        assert!(svg.trim_start().starts_with("<svg"), "{file}");
        assert!(svg.trim_end().ends_with("</svg>"), "{file}");
        assert!(svg.contains("font-family=\"sans-serif\""), "{file}");
        assert!(svg.contains("<polyline") || svg.contains("<rect"), "{file}");
    }
    let conf = &plots[5].1;
    for class in ["setosa", "versicolor", "virginica", "predicted class", "true class"] {
        assert!(conf.contains(class), "{class}");
    }
    let reliability = &plots[4].1;
    assert!(reliability.contains("perfect calibration") && reliability.contains("ECE"));
}

#[test]
fn many_long_class_names_and_no_history() {
    let classes: Vec<String> = (0..12).map(|i| format!("very long class name number {i}")).collect();
    let mut input = input_with(classes, 240);
    for m in [input.teacher.as_mut().unwrap(), &mut input.student] {
        m.history.clear();
        m.latency = None;
    }
    input.baseline = None;
    input.data_checks.clear();
    input.targets.clear();
    dump("long", &input);
    let plots = render_plots(&input).unwrap();
    let names: Vec<&str> = plots.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, ["reliability.svg", "confusion-student.svg"]);
    assert!(plots[1].1.contains("rotate(270"), "long names are rotated");
    let md = render_markdown(&input);
    assert!(md.contains("No training history was recorded."));
    assert!(md.contains("| metric | teacher | student |\n"));
    let html = render_html(&input).unwrap();
    assert!(html.contains("<section id=\"curves\">"));
    assert!(!html.contains("plot-loss-"));
}

#[test]
fn report_input_round_trips_through_json() {
    let input = iris();
    let json = serde_json::to_string(&input).unwrap();
    let back: ReportInput = serde_json::from_str(&json).unwrap();
    // serde_json may change the last bit of a float, so compare the exact parts exactly.
    assert_eq!(back.recipe, input.recipe);
    assert_eq!(back.data_checks, input.data_checks);
    assert_eq!(back.targets, input.targets);
    assert_eq!(back.student.evaluation.confusion, input.student.evaluation.confusion);
    assert_eq!(back.teacher.as_ref().unwrap().history.len(), input.teacher.as_ref().unwrap().history.len());
    assert!((back.student.evaluation.ece - input.student.evaluation.ece).abs() < 1e-12);
    assert!(back.baseline.is_some());
    // optional parts may be left out of hand-written JSON
    let minimal = serde_json::json!({
        "pipeline_name": "p",
        "teacher": serde_json::to_value(&input.teacher).unwrap(),
        "student": {
            "evaluation": serde_json::to_value(&input.student.evaluation).unwrap(),
            "params": 1,
            "size_bytes": 4
        }
    });
    let parsed: ReportInput = serde_json::from_value(minimal).unwrap();
    assert!(parsed.baseline.is_none() && parsed.student.history.is_empty());
    assert!(render_html(&parsed).is_ok());
}

#[test]
fn hundred_classes_still_render() {
    let classes: Vec<String> = (0..100).map(|i| format!("class-{i}")).collect();
    let input = input_with(classes, 400);
    dump("hundred", &input);
    let plots = render_plots(&input).unwrap();
    let conf = &plots.last().unwrap().1;
    assert!(conf.contains("class-0") && !conf.contains(">\nclass-1\n<"), "labels are thinned");
    assert!(!render_markdown(&input).contains("| true \\\\ predicted |"), "table skipped");
}
