//! `report.md`.

use super::tables::{self, Grid};
use super::{plan, PlotKind, ReportInput};
use std::fmt::Write;

/// Escapes what would break a table cell or be read as inline HTML.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace('<', "&lt;").replace(['\r', '\n'], " ")
}

fn table(g: &Grid) -> String {
    let mut out = String::new();
    let head: Vec<String> = g.header.iter().map(|h| cell(h)).collect();
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let align: Vec<&str> = (0..g.header.len()).map(|i| if g.numeric.get(i).copied().unwrap_or(false) { "---:" } else { "---" }).collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    for row in &g.rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

fn table_or(g: &Grid, empty: &str) -> String {
    if g.rows.is_empty() {
        format!("{empty}\n")
    } else {
        table(g)
    }
}

/// Renders `report.md`. Plots are linked by the file names [`super::render_plots`]
/// returns, so write those files into the same directory.
pub fn render_markdown(input: &ReportInput) -> String {
    let plots = plan(input);
    let image = |kinds: &dyn Fn(PlotKind) -> bool| {
        plots.iter().filter(|p| kinds(p.kind)).map(|p| format!("![{}]({})\n", p.title, p.file())).collect::<Vec<_>>().join("\n")
    };

    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", cell(&input.pipeline_name));
    if !input.description.trim().is_empty() {
        let _ = writeln!(md, "{}\n", input.description.trim());
    }

    let _ = writeln!(md, "## Recipe\n");
    md += &table_or(&tables::recipe(input), "No recipe summary.");

    let _ = writeln!(md, "\n## Data checks\n");
    md += &table_or(&tables::checks(input), "No data checks were configured.");

    let _ = writeln!(md, "\n## Metrics\n");
    md += &table(&tables::metrics(input));
    let _ = writeln!(md, "\n### Per-class metrics (student)\n");
    md += &table_or(&tables::per_class(input), "No classes.");

    let _ = writeln!(md, "\n## Targets\n");
    md += &table_or(&tables::targets(input), "No targets were set.");
    if let Some(d) = &input.deployment {
        let _ = writeln!(md, "\n## Deployment\n");
        for note in &d.notes {
            let _ = writeln!(md, "- {}", cell(note));
        }
        md += "\n";
        md += &table(&super::deployment::grid(d));
    }

    let _ = writeln!(md, "\n## Training curves\n");
    let history = tables::history(input);
    if history.rows.is_empty() {
        md += "No training history was recorded.\n";
    } else {
        md += &table(&history);
        md += "\n";
        md += &image(&|k| matches!(k, PlotKind::Loss(_) | PlotKind::ValAccuracy));
    }

    let _ = writeln!(md, "\n## Calibration\n");
    let _ = writeln!(md, "{}\n", tables::calibration_summary(input));
    md += &image(&|k| k == PlotKind::Reliability);

    let _ = writeln!(md, "\n## Confusion matrix\n");
    md += "Rows are true classes, columns predicted classes (student).\n\n";
    md += &image(&|k| k == PlotKind::Confusion);
    if let Some(g) = tables::confusion(input) {
        md += "\n";
        md += &table(&g);
    }
    md
}
