//! A run's warnings, gathered once: the recipe's (distill-spec), the data's (distill-data), the
//! ones only the prepared rows show (a batch larger than the rows a model trains on, `top_k`
//! above the class count) and every warn-level data check that failed. They are logged, printed
//! under the run's summary and kept in `metrics.json` (`warnings`), each naming its key.

use distill_data::{CheckReport, CheckStatus, CheckUnit, LabelState};
use distill_spec::Warning;

use crate::stages::Context;

/// Every warning of the run whose data and checks are `cx` and `report`.
pub(crate) fn of_run(cx: &Context, report: &CheckReport) -> Vec<Warning> {
    let (p, data) = (cx.pipeline(), cx.data);
    let mut found = distill_spec::warnings(p);
    let trained_teacher = p.teacher.model.is_some() && p.teacher.weights.is_none() && p.teacher.logits.is_none();
    let teacher_rows = data.train.state.iter().filter(|&&s| cx.teacher_sees(s)).count();
    let jobs = [
        ("teacher.train.batch", p.teacher.train.batch, teacher_rows, "the teacher trains on", trained_teacher),
        ("student.train.batch", p.student.train.batch, data.train.len(), "the student trains on", true),
        (
            "student.train.batch",
            p.student.train.batch,
            data.train.count(LabelState::Labelled),
            "the baseline trains on (the labelled ones)",
            p.student.baseline,
        ),
    ];
    for (key, batch, rows, who, applies) in jobs {
        if applies && batch > rows {
            found.push(Warning::new(key, format!("{batch} is more than the {rows} rows {who}: every step takes all of them, one step per epoch")));
        }
    }
    if p.evaluate.top_k > data.classes() {
        let (k, classes) = (p.evaluate.top_k, data.classes());
        found.push(Warning::new(
            "evaluate.top_k",
            format!("{k} is more than the {classes} classes: top-{k} accuracy counts every row as correct (it is computed with k = {classes})"),
        ));
    }
    found.iter().for_each(|w| tracing::warn!("{w}"));
    // The data's were logged when they were found.
    found.extend(data.warnings.iter().cloned());
    found.extend(checks_that_warned(report));
    found
}

/// A warn-level check that failed, as a warning of the run (the report has the samples).
fn checks_that_warned(report: &CheckReport) -> impl Iterator<Item = Warning> + '_ {
    report.checks.iter().filter(|c| c.status == CheckStatus::Warn).map(|c| {
        let unit = match c.unit {
            CheckUnit::Rows => "rows",
            CheckUnit::Columns => "columns",
            CheckUnit::Classes => "classes",
            CheckUnit::Table => "table",
        };
        let failing = format!("{} of {} {unit} failing ({:.2}%)", c.failing, c.total, c.fraction * 100.0);
        Warning::new("data.checks", format!("check `{}` ({}) warned: {failing}: {} (see checks.json)", c.id, c.kind, c.message))
    })
}
