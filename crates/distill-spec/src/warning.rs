//! Warnings: values distill accepts but that probably do not do what the recipe says (a warm-up
//! longer than training, a batch larger than the data, a label read as text). Each names its key.
//! The recipe's own ([`warnings`]), the data's and the run's are one type, reported the same way:
//! by `validate`, in the log, in the run's summary on the terminal and in `metrics.json`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Pipeline, TrainSpec};

/// One warning: the key it is about and what is odd about its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Dotted key path (`student.train.batch`), or the data key the finding is about.
    pub key: String,
    pub message: String,
}

impl Warning {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// What the recipe alone says that is accepted but odd. The data's and the run's warnings come
/// from distill-data and distill-pipeline, once the rows are known.
pub fn warnings(p: &Pipeline) -> Vec<Warning> {
    let mut out = Vec::new();
    let trained_teacher = p.teacher.model.is_some() && p.teacher.weights.is_none() && p.teacher.logits.is_none();
    let trains = [("teacher.train", Some(&p.teacher.train).filter(|_| trained_teacher)), ("student.train", Some(&p.student.train))];
    for (key, train) in trains {
        if let Some(w) = train.and_then(|t| warmup_warning(key, t)) {
            out.push(w);
        }
    }
    out
}

/// A warm-up of at least the whole budget: the learning rate never reaches `optimizer.lr`.
fn warmup_warning(key: &str, t: &TrainSpec) -> Option<Warning> {
    let warmup = t.schedule.as_ref()?.warmup_epochs();
    let epochs = t.epochs as f64;
    (warmup > epochs).then(|| {
        Warning::new(
            format!("{key}.schedule.warmup_epochs"),
            format!(
                "{warmup} warm-up epochs of {} training epochs: the learning rate never reaches `optimizer.lr` (it ends at {:.0}% of it); shorten the warm-up or train longer",
                t.epochs,
                100.0 * epochs / warmup
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_warmup_longer_than_training_is_named() {
        let text = "version: 1\nname: w\ndata: {source: {path: d.csv}, label: y}\nteacher: {model: {hidden: [8]}}\n\
                    student: {model: {hidden: [4]}, train: {epochs: 2, schedule: {kind: cosine, warmup_epochs: 4}}}\n";
        let p = crate::parse_str(text, "w.yaml".as_ref(), &[]).unwrap();
        let w = super::warnings(&p);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "student.train.schedule.warmup_epochs");
        assert!(w[0].message.contains("ends at 50%"), "{}", w[0]);
    }
}
