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
use crate::trained::{metadata, Trained};
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

/// One model stage's output as the evaluation reads it: its name, its seed, its output.
pub(crate) type ModelOutput<'a> = (&'a str, Option<u64>, &'a Output);

/// The first teacher among `models` (a model or external logits).
fn first_teacher<'a>(models: &[ModelOutput<'a>]) -> Option<&'a Output> {
    models.iter().map(|m| m.2).find(|o| matches!(o, Output::External(_) | Output::Model { role: Role::Teacher, .. }))
}

/// The models of `role` among `models`, in graph order.
fn of_role<'a>(models: &[ModelOutput<'a>], role: Role) -> Vec<(&'a str, Option<u64>, &'a Trained, f64)> {
    models
        .iter()
        .filter_map(|&(name, seed, output)| match output {
            Output::Model { role: r, trained, seconds } if *r == role => Some((name, seed, trained, *seconds)),
            _ => None,
        })
        .collect()
}

/// The bytes the run directory keeps of a student or baseline (weights and their key, no history).
fn run_dir_weights(model: &Mlp, role: Role, p: &Pipeline) -> Result<Vec<u8>, PipelineError> {
    save_weights(model, metadata(role.key(), &p.student.model, None))
        .map_err(|source| PipelineError::Checkpoint { context: format!("saving the {}", role.key()), source })
}

/// Measures every model on the test split (the evaluate stage's work, cached): metrics per role,
/// over several seeds aggregated. `train_seconds` is the run's own and set by [`with_train_seconds`].
pub(crate) fn measure_models(models: &[ModelOutput], data: &Prepared, p: &Pipeline) -> Result<ModelResults, PipelineError> {
    let teacher = first_teacher(models);
    let teacher_test: Option<Vec<f32>> = match teacher {
        Some(Output::Model { trained, .. }) => Some(predict_logits(&trained.model, &data.test.x)),
        Some(Output::External(e)) => e.test.clone(),
        _ => None,
    };
    let detail = Detail { data, teacher_test: teacher_test.as_deref(), spec: &p.evaluate };
    let mut results = Vec::new();
    if let Some(mut m) = teacher.map(|t| teacher_metrics(t, &detail)).transpose()?.flatten() {
        if let Some(Output::Model { trained, .. }) = teacher {
            m.kept = kept(&p.teacher.train, [&trained.history]);
        }
        results.push(ModelResult { role: Role::Teacher, metrics: m });
    }
    for role in [Role::Student, Role::Baseline] {
        let found = of_role(models, role);
        let Some(&(_, _, first, _)) = found.first() else { continue };
        let runs = found.iter().map(|&(_, seed, t, seconds)| (seed.unwrap_or_default(), measure(&t.model, seconds, data, teacher_test.as_deref()))).collect();
        let mut metrics = ModelMetrics::aggregate(runs);
        // The baseline trains with the student's `train:` (its budget rescaled, the same `keep`).
        metrics.kept = kept(&p.student.train, found.iter().map(|f| &f.2.history));
        detail.add(&first.model, run_dir_weights(&first.model, role, p)?.len(), &mut metrics, true)?;
        results.push(ModelResult { role, metrics });
    }
    Ok(ModelResults(results))
}

/// The metrics with each role's `train_seconds` from this run's stages (0 for a model found in
/// the cache), so cached metrics say what this run spent.
pub(crate) fn with_train_seconds(mut results: ModelResults, models: &[ModelOutput]) -> ModelResults {
    for r in &mut results.0 {
        r.metrics.train_seconds = match r.role {
            Role::Teacher => match first_teacher(models) {
                Some(Output::Model { seconds, .. }) => *seconds,
                _ => 0.0,
            },
            role => of_role(models, role).iter().map(|m| m.3).sum(),
        };
    }
    results
}

/// Writes the teacher's and the first seed's student and baseline weights to the run directory;
/// returns every model's training history by stage name.
pub(crate) fn write_models(models: &[ModelOutput], p: &Pipeline, run_dir: &RunDir) -> Result<BTreeMap<String, Vec<EpochStats>>, PipelineError> {
    let mut history = BTreeMap::new();
    match first_teacher(models) {
        Some(Output::Model { trained, .. }) => {
            run_dir.write("teacher.safetensors", &trained.bytes)?;
            history.insert("teacher".to_string(), trained.history.clone());
        }
        Some(Output::External(e)) if e.test.is_some() => {
            history.insert("teacher".to_string(), Vec::new());
        }
        _ => {}
    }
    for role in [Role::Student, Role::Baseline] {
        let found = of_role(models, role);
        for (name, _, trained, _) in &found {
            history.insert(name.to_string(), trained.history.clone());
        }
        if let Some((_, _, first, _)) = found.first() {
            run_dir.write(&format!("{}.safetensors", role.key()), &run_dir_weights(&first.model, role, p)?)?;
        }
    }
    Ok(history)
}

/// The keep rule of `train` and the epoch it kept in each history (none without a history: a
/// model given, not trained).
fn kept<'h>(train: &TrainSpec, histories: impl IntoIterator<Item = &'h Vec<EpochStats>>) -> Option<Kept> {
    let config = TrainConfig::from_spec(train);
    let epochs: Option<Vec<usize>> = histories.into_iter().map(|h| kept_epoch(h, &config)).collect();
    epochs.filter(|e| !e.is_empty()).map(|epochs| Kept { rule: train.effective_keep().as_str().to_string(), epochs })
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
fn teacher_metrics(teacher: &Output, detail: &Detail) -> Result<Option<ModelMetrics>, PipelineError> {
    let data = detail.data;
    match teacher {
        Output::Model { trained, seconds, .. } => {
            let mut m = measure(&trained.model, *seconds, data, None);
            detail.add(&trained.model, trained.bytes.len(), &mut m, false)?;
            Ok(Some(m))
        }
        Output::External(e) => match &e.test {
            Some(test) => {
                let mut m = ModelMetrics::new(test, &data.test.y, data.classes(), 0);
                detail.add_logits(test, &mut m, false)?;
                Ok(Some(m))
            }
            None => {
                tracing::info!("teacher: the external logits have no test rows; no teacher metrics");
                Ok(None)
            }
        },
        Output::Logits(_) | Output::Features(_) | Output::Artifact(_) | Output::Evaluation(_) => Ok(None),
    }
}

/// The targets' results, from the recipe and the run's models.
pub(crate) fn targets(spec: &distill_spec::Targets, models: &ModelResults) -> Result<Vec<TargetResult>, PipelineError> {
    let student = models.get(Role::Student).ok_or_else(|| PipelineError::Graph("the run trained no student"))?;
    Ok(crate::evaluate::evaluate_targets(spec, models.get(Role::Teacher), student))
}
