//! A run's results: every model the stages produced, measured on the test split, with its role.
//! `metrics.json` keeps one entry per role (`teacher`, `student`, `baseline`: over several seeds,
//! the mean and spread), so scripts keep working as more kinds of models arrive.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};

use distill_data::Prepared;
use distill_nn::{accuracy, kept_epoch, predict_logits, save_weights, EpochStats, Mlp, TrainConfig};
use distill_spec::{Pipeline, TrainSpec};

use crate::evaluate::{Kept, ModelMetrics, TargetResult};
use crate::report::Detail;
use crate::rundir::RunDir;
use crate::stages::{Output, Role};
use crate::trained::metadata;
use crate::walk::Walked;
use crate::PipelineError;

/// One role's model (over seeds, aggregated) and its test metrics.
#[derive(Debug, Clone)]
pub struct ModelResult {
    pub role: Role,
    pub metrics: ModelMetrics,
}

/// Every model of the run, serialised as `role → metrics`.
#[derive(Debug, Clone, Default)]
pub struct ModelResults(pub Vec<ModelResult>);

impl Serialize for ModelResults {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for m in &self.0 {
            map.serialize_entry(m.role.key(), &m.metrics)?;
        }
        map.end()
    }
}

impl ModelResults {
    pub fn get(&self, role: Role) -> Option<&ModelMetrics> {
        self.0.iter().find(|m| m.role == role).map(|m| &m.metrics)
    }
}

/// What the evaluation makes of the walk: metrics per role, training histories by stage name.
pub(crate) struct Evaluated {
    pub models: ModelResults,
    pub history: BTreeMap<String, Vec<EpochStats>>,
}

/// Measures every model the walk produced on the test split; writes the teacher's and the
/// first seed's student and baseline weights to the run directory.
pub(crate) fn evaluate(walked: &Walked, data: &Prepared, p: &Pipeline, run_dir: &RunDir) -> Result<Evaluated, PipelineError> {
    let (detail_spec, student) = (&p.evaluate, &p.student.model);
    let teacher = walked.outputs.iter().map(|o| &o.output).find(|o| matches!(o, Output::External(_) | Output::Model { role: Role::Teacher, .. }));
    let teacher_test: Option<Vec<f32>> = match teacher {
        Some(Output::Model { trained, .. }) => Some(predict_logits(&trained.model, &data.test.x)),
        Some(Output::External(e)) => e.test.clone(),
        _ => None,
    };
    let detail = Detail { data, teacher_test: teacher_test.as_deref(), spec: detail_spec };
    let mut history = BTreeMap::new();
    let mut models = Vec::new();
    if let Some(mut m) = teacher.map(|t| teacher_metrics(t, &detail, run_dir, &mut history)).transpose()?.flatten() {
        if let Some(Output::Model { trained, .. }) = teacher {
            m.kept = kept(&p.teacher.train, [&trained.history]);
        }
        models.push(ModelResult { role: Role::Teacher, metrics: m });
    }
    for role in [Role::Student, Role::Baseline] {
        let mut runs = Vec::new();
        let mut histories = Vec::new();
        let mut first: Option<&Mlp> = None;
        for produced in &walked.outputs {
            let Output::Model { role: r, trained, seconds } = &produced.output else { continue };
            if *r != role {
                continue;
            }
            history.insert(produced.name.clone(), trained.history.clone());
            histories.push(&trained.history);
            runs.push((produced.seed.unwrap_or_default(), measure(&trained.model, *seconds, data, teacher_test.as_deref())));
            first.get_or_insert(&trained.model);
        }
        let Some(model) = first else { continue };
        let mut metrics = ModelMetrics::aggregate(runs);
        // The baseline trains with the student's `train:` (its budget rescaled, the same `keep`).
        metrics.kept = kept(&p.student.train, histories);
        let bytes = save_weights(model, metadata(role.key(), student, None))
            .map_err(|source| PipelineError::Checkpoint { context: format!("saving the {}", role.key()), source })?;
        run_dir.write(&format!("{}.safetensors", role.key()), &bytes)?;
        detail.add(model, bytes.len(), &mut metrics, true)?;
        models.push(ModelResult { role, metrics });
    }
    Ok(Evaluated { models: ModelResults(models), history })
}

/// The keep rule of `train` and the epoch it kept in each history (none without a history: a
/// model given, not trained).
fn kept<'h>(train: &TrainSpec, histories: impl IntoIterator<Item = &'h Vec<EpochStats>>) -> Option<Kept> {
    let config = TrainConfig::from_spec(train);
    let epochs: Option<Vec<usize>> = histories.into_iter().map(|h| kept_epoch(h, &config)).collect();
    epochs.filter(|e| !e.is_empty()).map(|epochs| Kept { rule: train.effective_keep().as_str(), epochs })
}

/// Test accuracy, validation accuracy and agreement with the teacher of one trained model.
fn measure(model: &Mlp, seconds: f64, data: &Prepared, teacher_test: Option<&[f32]>) -> ModelMetrics {
    let classes = data.classes();
    let logits = predict_logits(model, &data.test.x);
    let mut m = ModelMetrics::new(&logits, &data.test.y, classes, model.param_count());
    m.val_accuracy = (!data.val.is_empty()).then(|| accuracy(&predict_logits(model, &data.val.x), &data.val.y, classes));
    m.teacher_agreement = teacher_test.and_then(|t| distill_eval::metrics::agreement(t, &logits, classes).ok()).map(|a| a.agreement);
    m.train_seconds = seconds;
    m
}

/// The teacher's metrics: of its model, or of an external file's test rows (none without them).
fn teacher_metrics(
    teacher: &Output,
    detail: &Detail,
    run_dir: &RunDir,
    history: &mut BTreeMap<String, Vec<EpochStats>>,
) -> Result<Option<ModelMetrics>, PipelineError> {
    let data = detail.data;
    match teacher {
        Output::Model { trained, seconds, .. } => {
            run_dir.write("teacher.safetensors", &trained.bytes)?;
            history.insert("teacher".to_string(), trained.history.clone());
            let mut m = measure(&trained.model, *seconds, data, None);
            detail.add(&trained.model, trained.bytes.len(), &mut m, false)?;
            Ok(Some(m))
        }
        Output::External(e) => match &e.test {
            Some(test) => {
                history.insert("teacher".to_string(), Vec::new());
                let mut m = ModelMetrics::new(test, &data.test.y, data.classes(), 0);
                detail.add_logits(test, &mut m, false)?;
                Ok(Some(m))
            }
            None => {
                tracing::info!("teacher: the external logits have no test rows; no teacher metrics");
                Ok(None)
            }
        },
        Output::Logits(_) | Output::Artifact(_) => Ok(None),
    }
}

/// The targets' results, from the recipe and the run's models.
pub(crate) fn targets(spec: &distill_spec::Targets, models: &ModelResults) -> Result<Vec<TargetResult>, PipelineError> {
    let student = models.get(Role::Student).ok_or_else(|| PipelineError::Graph("the run trained no student"))?;
    Ok(crate::evaluate::evaluate_targets(spec, models.get(Role::Teacher), student))
}
