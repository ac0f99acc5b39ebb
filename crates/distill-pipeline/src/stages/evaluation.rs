//! The evaluation: every model's test metrics, agreement with the teacher, latency and
//! throughput, and every exported model run back (`deploy.rs`), cached under the models' and
//! exports' identities (the blake3 of their weights, logit file or ONNX bytes), the data's
//! fingerprint and the evaluation settings. The targets are not in the key: they are
//! checked on every run against these metrics, so changing a target never re-measures, and a
//! warm run exits 3 like the cold one. Latency is measured again only with `--force evaluate`
//! (or when a model or the test rows change).

use std::collections::BTreeMap;

use distill_cache::{hash_bytes, Fingerprint, FingerprintBuilder};

use serde::{Deserialize, Serialize};

use super::{Artifact, Context, Found, Output, Role, Stage, StageKind, EVALUATE};
use crate::deploy::Deployment;
use crate::evaluate::ModelMetrics;
use crate::results::{measure_models, ModelOutput, ModelResult, ModelResults};
use crate::PipelineError;

/// The evaluate stage over the model stages `models` (name, seed), in graph order, and the
/// export stages `exports`.
pub(crate) struct EvaluateStage {
    pub models: Vec<(String, Option<u64>)>,
    pub exports: Vec<String>,
}

/// The evaluation's output: every model's metrics by role (`train_seconds` as measured when
/// they were computed; the run sets its own), the exported models' measurements, and the blake3
/// of their stored form.
pub(crate) struct Evaluation {
    pub models: ModelResults,
    pub deployment: Option<Deployment>,
    pub blake3: String,
}

impl EvaluateStage {
    fn outputs<'a>(&'a self, inputs: &[&'a Output]) -> Vec<ModelOutput<'a>> {
        self.models.iter().zip(inputs).map(|((name, seed), output)| (name.as_str(), *seed, *output)).collect()
    }
}

/// The stored form, in YAML so every float reads back to the same bits.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// Metrics by role key.
    models: BTreeMap<String, ModelMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deployment: Option<Deployment>,
}

fn encode(models: &ModelResults, deployment: &Option<Deployment>) -> Result<Vec<u8>, PipelineError> {
    let models = models.0.iter().map(|m| (m.role.key().to_string(), m.metrics.clone())).collect();
    let stored = Stored { models, deployment: deployment.clone() };
    serde_yaml::to_string(&stored).map(String::into_bytes).map_err(PipelineError::Resolved)
}

fn decode(bytes: &[u8]) -> Result<(ModelResults, Option<Deployment>), String> {
    let stored: Stored = serde_yaml::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut models = Vec::new();
    for (key, metrics) in stored.models {
        let role = [Role::Teacher, Role::Student, Role::Baseline].into_iter().find(|r| r.key() == key).ok_or_else(|| format!("unknown role `{key}`"))?;
        models.push(ModelResult { role, metrics });
    }
    models.sort_by_key(|m| m.role);
    Ok((ModelResults(models), stored.deployment))
}

impl Stage for EvaluateStage {
    fn kind(&self) -> &'static StageKind {
        &EVALUATE
    }

    fn name(&self) -> String {
        EVALUATE.name.to_string()
    }

    fn inputs(&self) -> Vec<String> {
        self.models.iter().map(|(name, _)| name.clone()).chain(self.exports.iter().cloned()).collect()
    }

    fn fingerprint(&self, cx: &Context, inputs: &[&Output]) -> Result<Fingerprint, PipelineError> {
        let e = &cx.pipeline().evaluate;
        let settings = format!("top_k={} ece_bins={} latency={}", e.top_k, e.ece_bins, e.latency);
        let mut fp = FingerprintBuilder::new("evaluate/v2");
        for (name, output) in self.exports.iter().zip(&inputs[self.models.len()..]) {
            fp = fp.part(name, output.identity().as_bytes());
        }
        for ((name, _), output) in self.models.iter().zip(inputs) {
            fp = fp.part(name, output.identity().as_bytes());
            // Given weights have no history (no `kept`), trained ones with the same bytes do.
            if let Output::Model { trained, .. } = output {
                // Numbers only: serialising cannot fail.
                fp = fp.part(&format!("{name}.history"), &serde_json::to_vec(&trained.history).unwrap_or_default());
            }
        }
        // The run directory's student weights carry the model spec, and their size is a metric.
        let student = serde_yaml::to_string(&cx.pipeline().student.model).map_err(PipelineError::Resolved)?;
        Ok(fp
            .part("data", cx.data.fingerprint.as_bytes())
            .part("evaluate", settings.as_bytes())
            .part("student.model", student.as_bytes())
            .part("version", env!("CARGO_PKG_VERSION").as_bytes())
            .finish())
    }

    fn find(&self, cx: &Context, fp: &Fingerprint, _: &[&Output], forced: bool) -> Result<Option<Found>, PipelineError> {
        if forced {
            tracing::info!("evaluate: --force, measuring again");
            return Ok(None);
        }
        let path = cx.cache.artifact(EVALUATE.name, &fp.key);
        let bytes = match cx.cache.load_verified(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(problem) => {
                tracing::warn!(path = %path.display(), %problem, "the cached evaluation is unusable; measuring again");
                return Ok(None);
            }
        };
        match decode(&bytes) {
            Ok((models, deployment)) => {
                tracing::info!(key = %super::fit::short(&fp.key), "evaluate: cache hit, metrics and latency from the cache");
                Ok(Some(Found::Cached(Output::Evaluation(Evaluation { models, deployment, blake3: hash_bytes(&bytes) }))))
            }
            Err(why) => {
                tracing::warn!(path = %path.display(), problem = %why, "the cached evaluation does not read; measuring again");
                Ok(None)
            }
        }
    }

    fn compute(&self, cx: &Context, fp: &Fingerprint, inputs: &[&Output]) -> Result<Output, PipelineError> {
        let models = measure_models(&self.outputs(inputs), cx.data, cx.pipeline())?;
        let (trained, exported) = inputs.split_at(self.models.len());
        let artifacts: Vec<&Artifact> = exported.iter().filter_map(|o| if let Output::Artifact(a) = o { Some(a) } else { None }).collect();
        let deployment = crate::deploy::measure_all(&artifacts, trained, cx.data, cx.pipeline())?;
        let bytes = encode(&models, &deployment)?;
        let path = cx.cache.artifact(EVALUATE.name, &fp.key);
        // A forced evaluation replaces what an earlier one stored (new latencies, same key).
        cx.cache.replace(EVALUATE.name, &fp.key, &path, &bytes, &cx.pipeline().name)?;
        Ok(Output::Evaluation(Evaluation { models, deployment, blake3: hash_bytes(&bytes) }))
    }
}
