//! Self-contained `report.html`.

use super::tables::{self, Grid};
use super::{plan, render_plots, PlotKind, ReportError, ReportInput};
use std::fmt::Write;

/// Inline style sheet; the page must not load anything from elsewhere.
const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;vertical-align:top}
th{background:#f4f4f4;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafafa}
.status-pass,.met{color:#1a7f37;font-weight:600}.status-warn{color:#9a6700;font-weight:600}
.status-fail,.status-error,.unmet{color:#cf222e;font-weight:600}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9rem}.muted{color:#666}
";

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A CSS class from free text (`"Fail!"` → `fail`), for status colouring.
fn slug(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

/// `class_of(column, cell)` may add a CSS class to a cell.
fn table(g: &Grid, class_of: &dyn Fn(usize, &str) -> Option<String>) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for h in &g.header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out += "</tr></thead>\n<tbody>\n";
    for row in &g.rows {
        out += "<tr>";
        for (i, c) in row.iter().enumerate() {
            let mut classes = Vec::new();
            if g.numeric.get(i).copied().unwrap_or(false) {
                classes.push("num".to_string());
            }
            classes.extend(class_of(i, c));
            if classes.is_empty() {
                let _ = write!(out, "<td>{}</td>", esc(c));
            } else {
                let _ = write!(out, "<td class=\"{}\">{}</td>", classes.join(" "), esc(c));
            }
        }
        out += "</tr>\n";
    }
    out += "</tbody>\n</table>\n";
    out
}

fn plain(g: &Grid) -> String {
    table(g, &|_, _| None)
}

fn table_or(g: &Grid, empty: &str) -> String {
    if g.rows.is_empty() {
        format!("<p class=\"muted\">{}</p>\n", esc(empty))
    } else {
        plain(g)
    }
}

/// Renders the self-contained `report.html`: inline CSS, every plot inlined as SVG.
pub fn render_html(input: &ReportInput) -> Result<String, ReportError> {
    let plots = plan(input);
    let svgs = render_plots(input)?;
    let figures = |keep: &dyn Fn(PlotKind) -> bool| {
        let mut out = String::new();
        for (spec, (_, svg)) in plots.iter().zip(&svgs) {
            if keep(spec.kind) {
                let _ = write!(out, "<figure id=\"plot-{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>\n", esc(&spec.name), svg.trim(), esc(&spec.title));
            }
        }
        out
    };

    let title = esc(&input.pipeline_name);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} — distill report</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n"
    );
    if !input.description.trim().is_empty() {
        let _ = writeln!(h, "<p>{}</p>", esc(input.description.trim()));
    }

    let section = |h: &mut String, id: &str, heading: &str, body: String| {
        let _ = write!(h, "<section id=\"{id}\">\n<h2>{heading}</h2>\n{body}</section>\n");
    };

    section(&mut h, "recipe", "Recipe", table_or(&tables::recipe(input), "No recipe summary."));

    let checks = tables::checks(input);
    let checks_html = if checks.rows.is_empty() {
        "<p class=\"muted\">No data checks were configured.</p>\n".to_string()
    } else {
        table(&checks, &|col, c| (col == 2).then(|| format!("status-{}", slug(c))))
    };
    section(&mut h, "checks", "Data checks", checks_html);

    let metrics = plain(&tables::metrics(input)) + "<h3>Per-class metrics (student)</h3>\n" + &table_or(&tables::per_class(input), "No classes.");
    section(&mut h, "metrics", "Metrics", metrics);

    let targets = tables::targets(input);
    let targets_html = if targets.rows.is_empty() {
        "<p class=\"muted\">No targets were set.</p>\n".to_string()
    } else {
        table(&targets, &|col, c| (col == 3).then(|| if c == "yes" { "met" } else { "unmet" }.to_string()))
    };
    section(&mut h, "targets", "Targets", targets_html);
    if let Some(d) = &input.deployment {
        let notes: String = d.notes.iter().map(|n| format!("<li>{}</li>\n", esc(n))).collect();
        section(&mut h, "deployment", "Deployment", format!("<ul>\n{notes}</ul>\n") + &plain(&super::deployment::grid(d)));
    }

    let history = tables::history(input);
    let curves = if history.rows.is_empty() {
        "<p class=\"muted\">No training history was recorded.</p>\n".to_string()
    } else {
        plain(&history) + &figures(&|k| matches!(k, PlotKind::Loss(_) | PlotKind::ValAccuracy))
    };
    section(&mut h, "curves", "Training curves", curves);

    let calibration = format!("<p>{}</p>\n", esc(&tables::calibration_summary(input))) + &figures(&|k| k == PlotKind::Reliability);
    section(&mut h, "calibration", "Calibration", calibration);

    let mut confusion = String::from("<p>Rows are true classes, columns predicted classes (student).</p>\n");
    confusion += &figures(&|k| k == PlotKind::Confusion);
    if let Some(g) = tables::confusion(input) {
        confusion += &plain(&g);
    }
    section(&mut h, "confusion", "Confusion matrix", confusion);

    h += "</body>\n</html>\n";
    Ok(h)
}
