//! The run's exported models, run back in-process with tract-onnx on the raw test rows (they
//! scale themselves) and measured side by side (accuracy, agreement with distill's own model and
//! the teacher, size, latency, throughput), the accuracy int8 loses, and with
//! `evaluate.targets.checked_on` the student metrics the targets are checked on. The measuring is
//! part of the cached evaluate stage; writing the files to the run directory happens every run.

use serde::{Deserialize, Serialize};

use distill_data::Prepared;
use distill_eval::{measure_latency, measure_throughput, LatencyStats};
use distill_export::OnnxRunner;
use distill_nn::{accuracy, argmax, predict_logits};
use distill_spec::Pipeline;

use crate::evaluate::{evaluate_targets, ModelMetrics};
use crate::rundir::RunDir;
use crate::stages::{Artifact, Output, Role};
use crate::trained::Trained;
use crate::walk::Walked;
use crate::{PipelineError, Summary};

/// `metrics.json` `deployment`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    /// What ran the artifacts here.
    pub runtime: String,
    pub artifacts: Vec<DeployedModel>,
    /// f32 against int8, when both the student's f32 model and its int8 export exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    /// The format `evaluate.targets.checked_on` checks the targets on (set by each run: the
    /// targets are not part of the cached measurement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_on: Option<String>,
}

/// One exported model measured on the test split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployedModel {
    pub role: String,
    pub format: String,
    /// Its file in the run directory.
    pub file: String,
    pub size_bytes: u64,
    pub accuracy: f64,
    /// Fraction of test rows where it predicts what distill's own model of the role predicts.
    pub agreement_with_distill: f64,
    /// Largest difference of a logit from distill's own model's.
    pub max_abs_logit_diff: f64,
    /// Fraction of test rows where it predicts the teacher's class (student artifacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_agreement: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_rows_per_s: Option<f64>,
}

/// What int8 quantization cost the student, measured on the test split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quantization {
    /// The f32 model's accuracy (the ONNX f32 export when there is one, else distill's own).
    pub accuracy_f32: f64,
    pub accuracy_int8: f64,
    /// `accuracy_f32 - accuracy_int8` (negative when int8 happens to do better).
    pub accuracy_drop: f64,
    /// Fraction of test rows where int8 and f32 predict the same class.
    pub agreement: f64,
    /// int8 bytes over f32 bytes (distill's safetensors f32 weights when there is no f32 export).
    pub size_ratio: f64,
}

/// The walk's exported models, written to the run directory.
pub(crate) fn write_files(walked: &Walked, run_dir: &RunDir) -> Result<(), PipelineError> {
    for o in &walked.outputs {
        if let Output::Artifact(a) = &o.output {
            run_dir.write(&a.format.file_name(a.role.key()), &a.bytes)?;
        }
    }
    Ok(())
}

/// Measures every exported model in `artifacts` against the trained models in `models` (the
/// first of each role: the first seed's student); `None` when the recipe exports nothing.
pub(crate) fn measure_all(artifacts: &[&Artifact], models: &[&Output], data: &Prepared, p: &Pipeline) -> Result<Option<Deployment>, PipelineError> {
    if artifacts.is_empty() {
        return Ok(None);
    }
    let own = |role: Role| -> Option<&Trained> {
        models.iter().find_map(|o| match o {
            Output::Model { role: r, trained, .. } if *r == role => Some(trained),
            _ => None,
        })
    };
    let teacher_test = own(Role::Teacher).map(|t| predict_logits(&t.model, &data.test.x));
    let student_test = own(Role::Student).map(|t| predict_logits(&t.model, &data.test.x));
    let mut deployed = Vec::new();
    for a in artifacts {
        let file = a.format.file_name(a.role.key());
        let Some(model) = own(a.role) else { return Err(PipelineError::Graph("an exported model without its trained model")) };
        let distill_logits = if a.role == Role::Student { student_test.clone().unwrap_or_default() } else { predict_logits(&model.model, &data.test.x) };
        let teacher = if a.role == Role::Student { teacher_test.as_deref() } else { None };
        deployed.push(measure(a, file, data, &distill_logits, teacher, p.evaluate.latency)?);
    }
    let student = own(Role::Student).zip(student_test.as_deref());
    let quantization = quantization(&deployed, student, data);
    Ok(Some(Deployment { runtime: "tract-onnx 0.23".into(), artifacts: deployed, quantization, targets_on: None }))
}

fn measure(a: &Artifact, file: String, data: &Prepared, distill: &[f32], teacher: Option<&[f32]>, latency: bool) -> Result<DeployedModel, PipelineError> {
    let failed = |source| PipelineError::Export { what: format!("running {file}"), source };
    let runner = OnnxRunner::from_bytes(&a.bytes).map_err(failed)?;
    let x = &data.test_raw_x;
    let logits = runner.logits(x).map_err(failed)?;
    let classes = data.classes();
    let (ours, theirs) = (predictions(&logits, classes), predictions(distill, classes));
    let agree = |other: &[usize]| ours.iter().zip(other).filter(|(a, b)| a == b).count() as f64 / ours.len().max(1) as f64;
    let (mut lat, mut throughput) = (None, None);
    if latency && !data.test.is_empty() {
        let one = &x[..runner.inputs()];
        lat = Some(measure_latency(
            || {
                let _ = std::hint::black_box(runner.logits(one));
            },
            20,
            200,
        ));
        throughput = Some(measure_throughput(|| std::hint::black_box(runner.logits(x)).map_or(0, |l| l.len() / classes), 0.2));
    }
    Ok(DeployedModel {
        role: a.role.key().to_string(),
        format: a.format.name().to_string(),
        file,
        size_bytes: a.bytes.len() as u64,
        accuracy: accuracy(&logits, &data.test.y, classes),
        agreement_with_distill: agree(&theirs),
        max_abs_logit_diff: logits.iter().zip(distill).fold(0f32, |m, (a, b)| m.max((a - b).abs())) as f64,
        teacher_agreement: teacher.map(|t| agree(&predictions(t, classes))),
        latency: lat,
        throughput_rows_per_s: throughput,
    })
}

/// The predicted class of each row.
pub(crate) fn predictions(logits: &[f32], classes: usize) -> Vec<usize> {
    logits.chunks(classes.max(1)).map(argmax).collect()
}

/// The student's int8 export against its f32 model (`student`: distill's own, with its test logits).
fn quantization(deployed: &[DeployedModel], student: Option<(&Trained, &[f32])>, data: &Prepared) -> Option<Quantization> {
    let find = |format: distill_export::ExportFormat| deployed.iter().find(|d| d.role == "student" && d.format == format.name());
    let int8 = find(distill_export::ExportFormat::OnnxInt8)?;
    let (accuracy_f32, f32_bytes) = match find(distill_export::ExportFormat::Onnx) {
        Some(f) => (f.accuracy, f.size_bytes),
        None => {
            let (own, logits) = student?;
            (accuracy(logits, &data.test.y, data.classes()), own.bytes.len() as u64)
        }
    };
    Some(Quantization {
        accuracy_f32,
        accuracy_int8: int8.accuracy,
        accuracy_drop: accuracy_f32 - int8.accuracy,
        // Against distill's own f32 student: the f32 export predicts the same classes.
        agreement: int8.agreement_with_distill,
        size_ratio: int8.size_bytes as f64 / f32_bytes.max(1) as f64,
    })
}

/// Records the deployment in the summary; with `evaluate.targets.checked_on` the targets are checked on
/// that artifact's accuracy, latency, throughput and size instead of distill's own model.
pub(crate) fn apply(summary: &mut Summary, mut deployment: Option<Deployment>, p: &Pipeline) {
    if let Some(d) = deployment.as_mut() {
        d.targets_on = p.evaluate.targets.checked_on.map(|f| f.name().to_string());
    }
    let on = p.evaluate.targets.checked_on.and_then(|format| deployment.as_ref()?.artifacts.iter().find(|d| d.role == "student" && d.format == format.name()));
    if let (Some(d), Some(student)) = (on, summary.student()) {
        let deployed = ModelMetrics {
            accuracy: d.accuracy,
            latency: d.latency,
            throughput_rows_per_s: d.throughput_rows_per_s,
            size_bytes: d.size_bytes,
            teacher_agreement: d.teacher_agreement,
            ..student.clone()
        };
        summary.targets = evaluate_targets(&p.evaluate.targets, summary.teacher(), &deployed);
        summary.targets_met = summary.targets.iter().all(|t| t.met);
    }
    summary.deployment = deployment;
}

/// The report's Deployment section.
pub(crate) fn report(d: &Deployment) -> distill_eval::DeploymentReport {
    let mut notes = vec![format!("exported models run in-process with {} on the test split (raw feature values; the scaling is in the graph)", d.runtime)];
    if let Some(on) = &d.targets_on {
        let file = d.artifacts.iter().find(|a| a.role == "student" && &a.format == on).map_or(String::new(), |a| a.file.clone());
        notes.push(format!("targets checked on the deployed model: {file} ({on})"));
    }
    if let Some(q) = &d.quantization {
        notes.push(format!(
            "int8 quantization: accuracy {:.4} (f32) → {:.4} (int8), {:.4} lost; {:.2}% of predictions unchanged; {:.2}x the f32 size",
            q.accuracy_f32,
            q.accuracy_int8,
            q.accuracy_drop,
            100.0 * q.agreement,
            q.size_ratio
        ));
    }
    let artifacts = d
        .artifacts
        .iter()
        .map(|a| distill_eval::DeploymentRow {
            file: a.file.clone(),
            format: a.format.to_string(),
            size_bytes: a.size_bytes,
            accuracy: a.accuracy,
            agreement: a.agreement_with_distill,
            latency_p50_ms: a.latency.map(|l| l.p50_ms),
            latency_p95_ms: a.latency.map(|l| l.p95_ms),
            throughput_rows_per_s: a.throughput_rows_per_s,
        })
        .collect();
    distill_eval::DeploymentReport { notes, artifacts }
}
