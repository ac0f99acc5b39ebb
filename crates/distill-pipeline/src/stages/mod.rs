//! The stage graph. A stage declares its kind (an entry of [`REGISTRY`]), the stages whose
//! outputs it reads, a fingerprint built from its config subtree and its inputs' identities, how
//! to find its output in the cache and how to compute it. `run` and `plan` walk the same graph
//! with the same loop ([`crate::walk`]); only `run` computes.
//!
//! Adding a stage: a file here with a struct implementing [`Stage`], a [`StageKind`] in
//! [`REGISTRY`] (its name is then a `--force` value, a `lock.json` stage and, when it stores an
//! artifact, a cache kind that `cache ls|verify|gc` know), and a line in [`graph`].

mod baseline;
mod context;
mod ensemble;
mod evaluation;
mod export;
mod features;
mod fit;
mod logits;
pub(crate) mod shards;
mod student;
mod teacher;

use distill_cache::{ArtifactKind, Fingerprint};

pub(crate) use context::Context;
pub(crate) use ensemble::settings as ensemble_settings;
pub(crate) use evaluation::Evaluation;
pub(crate) use export::{export_model, Artifact};
pub(crate) use logits::{Logits, LogitsStage};
pub(crate) use teacher::teacher_name;

use crate::external::ExternalTeacher;
use crate::trained::Trained;
use crate::PipelineError;

/// One kind of stage: its name and, for cached stages, where its artifacts live.
#[derive(Debug, PartialEq, Eq)]
pub struct StageKind {
    /// `teacher`, `logits`, …: the `--force` value, the stage in `lock.json`, the cache kind.
    pub name: &'static str,
    /// What the stage makes, for `--help` and `plan`.
    pub about: &'static str,
    /// The cache artifact kind, for stages whose output is cached.
    pub artifact: Option<ArtifactKind>,
    /// Stages whose `--force` also forces this one (retraining the teacher recomputes its logits).
    pub forced_with: &'static [&'static str],
}

pub const DATA: StageKind = StageKind {
    name: "data",
    about: "load, check, split and scale the data (a snapshot is cached under the source files' bytes)",
    artifact: Some(ArtifactKind { kind: "data", dir: "data", ext: ".snapshot" }),
    forced_with: &[],
};
pub const TEACHER: StageKind = StageKind {
    name: "teacher",
    about: "train the teacher (or take its given weights or logits)",
    artifact: Some(ArtifactKind { kind: "teacher", dir: "teachers", ext: ".safetensors" }),
    forced_with: &[],
};
pub const LOGITS: StageKind = StageKind {
    name: "logits",
    about: "the teacher's logits over every training row",
    artifact: Some(ArtifactKind { kind: "logits", dir: "logits", ext: ".parquet" }),
    forced_with: &["teacher"],
};
pub const FEATURES: StageKind = StageKind {
    name: "features",
    about: "the teacher's hidden-layer features over every training row (a feature hint with `features: cached`)",
    artifact: Some(ArtifactKind { kind: "features", dir: "features", ext: distill_cache::FEATURES_EXT }),
    forced_with: &["teacher"],
};
pub const STUDENT: StageKind = StageKind {
    name: "student",
    about: "distil the student from the logits, once per seed",
    artifact: Some(ArtifactKind { kind: "student", dir: "students", ext: ".safetensors" }),
    forced_with: &[],
};
pub const BASELINE: StageKind = StageKind {
    name: "baseline",
    about: "train the student from scratch on the labels, once per seed",
    artifact: Some(ArtifactKind { kind: "baseline", dir: "baselines", ext: ".safetensors" }),
    forced_with: &[],
};
pub const ENSEMBLE: StageKind = StageKind {
    name: "ensemble",
    about: "combine several teachers' logits into the soft targets (with `teachers`; never stored)",
    artifact: None,
    forced_with: &[],
};
pub const EXPORT: StageKind = StageKind {
    name: "export",
    about: "the student (and with `export.teacher` the teacher) as ONNX, f32 (with `export`)",
    artifact: Some(ArtifactKind { kind: "export", dir: "onnx", ext: ".onnx" }),
    forced_with: &[],
};
pub const QUANTIZE: StageKind = StageKind {
    name: "quantize",
    about: "the student as int8 ONNX, activations calibrated on training rows (with `export`)",
    artifact: Some(ArtifactKind { kind: "quantize", dir: "onnx-int8", ext: ".onnx" }),
    forced_with: &[],
};
pub const EVALUATE: StageKind = StageKind {
    name: "evaluate",
    about: "test metrics and latency of every model (cached; the targets are checked on every run)",
    artifact: Some(ArtifactKind { kind: "evaluate", dir: "evaluations", ext: ".yaml" }),
    forced_with: &[],
};

/// Every stage kind, in graph order.
pub const REGISTRY: &[&StageKind] = &[&DATA, &TEACHER, &LOGITS, &ENSEMBLE, &FEATURES, &STUDENT, &BASELINE, &EXPORT, &QUANTIZE, &EVALUATE];

/// The artifact kinds of the cached stages, for the cache (`ls`, `verify`, `gc`, artifact paths).
pub fn artifact_kinds() -> Vec<ArtifactKind> {
    REGISTRY.iter().filter_map(|k| k.artifact).collect()
}

/// The stage kinds `--force` accepts (the cached ones).
pub fn cached_kinds() -> impl Iterator<Item = &'static StageKind> {
    REGISTRY.iter().copied().filter(|k| k.artifact.is_some())
}

/// What a model stage is for; the run's results list models by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Teacher,
    Student,
    Baseline,
}

impl Role {
    /// The key of its metrics in `metrics.json`.
    pub fn key(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::Student => "student",
            Role::Baseline => "baseline",
        }
    }
}

/// What a stage produced, as later stages and the evaluation use it.
pub(crate) enum Output {
    /// A model (trained here, found in the cache, or given) and its training seconds in this run.
    Model { role: Role, trained: Trained, seconds: f64 },
    /// A teacher given only as logits.
    External(ExternalTeacher),
    /// The teacher's logits over the training rows.
    Logits(Logits),
    /// The teacher's hidden-layer features over the training rows (feature hints).
    Features(features::TeacherFeatures),
    /// An exported model (ONNX).
    Artifact(Artifact),
    /// Every model's test metrics.
    Evaluation(Evaluation),
}

impl Output {
    /// The output's identity as later stages' fingerprints take it: the blake3 of the weights or
    /// the logits file; `external:` + the file's blake3 for an external teacher.
    pub(crate) fn identity(&self) -> String {
        match self {
            Output::Model { trained, .. } => distill_cache::hash_bytes(&trained.bytes),
            Output::External(e) => format!("external:{}", e.blake3),
            Output::Logits(l) => l.blake3.clone(),
            Output::Features(f) => f.blake3.clone(),
            Output::Artifact(a) => a.blake3.clone(),
            Output::Evaluation(e) => e.blake3.clone(),
        }
    }

    /// What `lock.json` records as the stage's artifact.
    pub(crate) fn artifact(&self) -> String {
        self.identity().trim_start_matches("external:").to_string()
    }
}

/// How a stage's output is had without computing it.
pub(crate) enum Found {
    /// From the cache, under the stage's fingerprint.
    Cached(Output),
    /// From the recipe (given weights or logits), with what was given; never cached, never forced.
    Given(Output, String),
}

/// One node of the stage graph.
pub(crate) trait Stage {
    fn kind(&self) -> &'static StageKind;
    /// The stage's name in logs, `plan` and the results: `student@3`.
    fn name(&self) -> String;
    /// Its name in `cache_hits` (kept as scripts know it).
    fn hit_name(&self) -> String {
        self.name()
    }
    /// The seed a per-seed stage is recorded under in `lock.json`.
    fn seed(&self) -> Option<u64> {
        None
    }
    /// The names of the stages whose outputs it reads, in the order `fingerprint` and `compute`
    /// receive them.
    fn inputs(&self) -> Vec<String> {
        Vec::new()
    }
    /// Its cache key: its config subtree and its inputs' identities.
    fn fingerprint(&self, cx: &Context, inputs: &[&Output]) -> Result<Fingerprint, PipelineError>;
    /// Its output when it is had without computing: from the cache (unless forced) or given.
    fn find(&self, cx: &Context, fp: &Fingerprint, inputs: &[&Output], forced: bool) -> Result<Option<Found>, PipelineError>;
    /// What `plan` adds to "not in the cache": work already done in part (logit shards).
    fn pending(&self, _cx: &Context, _fp: &Fingerprint) -> Option<String> {
        None
    }
    /// Computes the output and stores it in the cache.
    fn compute(&self, cx: &Context, fp: &Fingerprint, inputs: &[&Output]) -> Result<Output, PipelineError>;
}

/// The recipe's stage graph in order: each teacher and its logits (with `teachers`, their
/// ensemble), the teacher's features for a cached feature hint, then per seed the student and
/// (when asked) the baseline, the student's exports, then the evaluation of every model. The data
/// stage comes before the graph (its output is the context).
pub(crate) fn graph(cx: &Context) -> Vec<Box<dyn Stage>> {
    let p = cx.pipeline();
    let teachers = 1 + p.teachers.len();
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    for index in 0..teachers {
        stages.push(Box::new(teacher::TeacherStage { index }));
        stages.push(Box::new(logits::LogitsStage { index }));
    }
    if teachers > 1 {
        stages.push(Box::new(ensemble::EnsembleStage { teachers }));
    }
    let hint = p.student.loss.hint().map(|h| h.term);
    if let Some(h) = hint.filter(|h| h.features == distill_spec::HintFeatures::Cached) {
        stages.push(Box::new(features::FeaturesStage { layer: h.teacher_layer }));
    }
    let seeds = p.student.seeds.clone().unwrap_or_else(|| vec![p.seed]);
    let several = seeds.len() > 1;
    let first_student = per_seed_name(&STUDENT, seeds.first().copied().unwrap_or(p.seed), several);
    for seed in seeds {
        let hint_input = hint.map(|h| if h.features == distill_spec::HintFeatures::Cached { "features" } else { "teacher" });
        stages.push(Box::new(student::StudentStage { seed, several, ensemble: teachers > 1, hint: hint_input }));
        if p.student.baseline {
            stages.push(Box::new(baseline::BaselineStage { seed, several }));
        }
    }
    stages.extend(export::stages(p, first_student));
    // Every model stage (the first teacher, the students, the baselines) and every export is measured.
    let models = stages.iter().filter(|s| [&TEACHER, &STUDENT, &BASELINE].contains(&s.kind())).filter(|s| s.kind() != &TEACHER || s.name() == teacher_name(0));
    let models = models.map(|s| (s.name(), s.seed())).collect();
    let exports = stages.iter().filter(|s| [&EXPORT, &QUANTIZE].contains(&s.kind())).map(|s| s.name()).collect();
    stages.push(Box::new(evaluation::EvaluateStage { models, exports }));
    stages
}

/// `student` or `student@7` when trained under several seeds.
fn per_seed_name(kind: &StageKind, seed: u64, several: bool) -> String {
    if several {
        format!("{}@{seed}", kind.name)
    } else {
        kind.name.to_string()
    }
}

/// Which cached stages `--force` recomputes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Force {
    #[default]
    None,
    All,
    Only(Vec<&'static StageKind>),
}

impl Force {
    /// `--force` values (`all` or cached stage names, comma-separated or repeated).
    pub fn parse(values: &[String]) -> Result<Self, String> {
        let names: Vec<&str> = values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|v| !v.is_empty()).collect();
        if names.contains(&"all") {
            return Ok(Force::All);
        }
        let kinds = names
            .iter()
            .map(|n| cached_kinds().find(|k| k.name == *n).ok_or_else(|| format!("unknown stage `{n}` ({})", force_values().join(", "))))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(if kinds.is_empty() { Force::None } else { Force::Only(kinds) })
    }

    /// Whether `kind` is recomputed: named, `all`, or forced with a named stage.
    pub fn includes(&self, kind: &StageKind) -> bool {
        match self {
            Force::None => false,
            Force::All => true,
            Force::Only(kinds) => kinds.iter().any(|k| *k == kind || kind.forced_with.contains(&k.name)),
        }
    }
}

/// The values `--force` accepts: `all` and every cached stage.
pub fn force_values() -> Vec<&'static str> {
    std::iter::once("all").chain(cached_kinds().map(|k| k.name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_comes_from_the_registry() {
        assert_eq!(force_values(), ["all", "data", "teacher", "logits", "features", "student", "baseline", "export", "quantize", "evaluate"]);
        let f = Force::parse(&["teacher".into()]).unwrap();
        assert!(f.includes(&TEACHER) && f.includes(&LOGITS) && !f.includes(&STUDENT));
        assert!(Force::parse(&["logits,student".into()]).unwrap().includes(&STUDENT));
        assert!(Force::parse(&["ensemble".into()])
            .unwrap_err()
            .contains("all, data, teacher, logits, features, student, baseline, export, quantize, evaluate"));
        assert!(Force::parse(&["evaluate".into()]).unwrap().includes(&EVALUATE));
        assert_eq!(Force::parse(&[]).unwrap(), Force::None);
    }

    #[test]
    fn every_cached_kind_has_its_own_directory() {
        let kinds = artifact_kinds();
        let mut dirs: Vec<_> = kinds.iter().map(|k| k.dir).collect();
        dirs.sort();
        dirs.dedup();
        assert_eq!(dirs.len(), kinds.len());
        assert!(kinds.iter().all(|k| REGISTRY.iter().any(|s| s.name == k.kind)));
    }
}
