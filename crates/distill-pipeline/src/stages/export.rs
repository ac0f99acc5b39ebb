//! The export and quantize stages: a trained model as an ONNX file (f32, or int8 with its
//! activations calibrated on training rows), cached under a key of the weights, the scaling, the
//! names and the recipe. `deploy.rs` writes them to the run directory and measures them.

use distill_cache::{hash_bytes, Fingerprint, FingerprintBuilder};
use distill_data::Prepared;
use distill_export::{ExportFormat, Network, Scaling};
use distill_nn::MlpShape;
use distill_spec::Pipeline;

use super::{Context, Found, Output, Role, Stage, StageKind, EXPORT, QUANTIZE};
use crate::PipelineError;

/// An exported model: its format, whose it is, and its bytes.
pub(crate) struct Artifact {
    pub format: ExportFormat,
    pub role: Role,
    pub bytes: Vec<u8>,
    pub blake3: String,
}

/// Exports (f32) or quantizes (int8) the model of the stage `input` (`student`, `student@7`,
/// `teacher`).
pub(crate) struct ExportStage {
    pub format: ExportFormat,
    pub role: Role,
    pub input: String,
}

/// The training rows int8 activations are calibrated on.
fn calibration_rows(p: &Pipeline, data: &Prepared) -> usize {
    p.export.as_ref().map_or(512, |e| e.calibration_rows).min(data.train.len())
}

/// The recipe's blake3 without its `evaluate` section: targets and evaluation settings do not
/// change the exported model, so changing them neither re-exports nor re-measures it.
fn recipe_blake3(p: &Pipeline) -> String {
    let model_part = Pipeline { evaluate: Default::default(), ..p.clone() };
    hash_bytes(serde_yaml::to_string(&model_part).unwrap_or_default().as_bytes())
}

/// The model's ONNX metadata: names, label, version, and the recipe's and weights' hashes.
fn props(p: &Pipeline, data: &Prepared, role: Role, format: ExportFormat, weights: &[u8]) -> Vec<(String, String)> {
    let json = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
    let mut props = vec![
        (distill_export::meta::FEATURES.to_string(), json(&data.feature_names)),
        (distill_export::meta::CLASSES.to_string(), json(&data.class_names)),
        (distill_export::meta::LABEL.to_string(), p.data.label.clone()),
        ("distill.version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("distill.recipe_blake3".to_string(), recipe_blake3(p)),
        ("distill.weights_blake3".to_string(), hash_bytes(weights)),
        ("distill.role".to_string(), role.key().to_string()),
        ("distill.format".to_string(), format.name().to_string()),
    ];
    if format == ExportFormat::OnnxInt8 {
        props.push(("distill.calibration_rows".to_string(), calibration_rows(p, data).to_string()));
    }
    props
}

/// `shape` with `weights` (its safetensors bytes) as ONNX in `format`, scaled and named as the
/// data; int8 calibrated on the first training rows.
pub(crate) fn export_model(
    p: &Pipeline,
    data: &Prepared,
    role: Role,
    format: ExportFormat,
    shape: &MlpShape,
    weights: &[u8],
) -> Result<Vec<u8>, PipelineError> {
    let net = Network { layers: shape.layers(), inputs: shape.inputs(), image: shape.image(), weights };
    let scaling = data.scaling.as_ref().map(|s| Scaling { offset: &s.offset, factor: &s.factor });
    let rows = calibration_rows(p, data) * shape.inputs();
    let exported = distill_export::export(&net, scaling, &props(p, data, role, format, weights), format, &data.train.x[..rows])
        .map_err(|source| PipelineError::Export { what: format!("exporting the {} as {}", role.key(), format.name()), source })?;
    tracing::info!(role = role.key(), format = format.name(), bytes = exported.bytes.len(), activations = exported.activations.len(), "exported");
    Ok(exported.bytes)
}

impl Stage for ExportStage {
    fn kind(&self) -> &'static StageKind {
        match self.format {
            ExportFormat::Onnx => &EXPORT,
            ExportFormat::OnnxInt8 => &QUANTIZE,
        }
    }

    fn name(&self) -> String {
        match self.role {
            Role::Student => self.kind().name.to_string(),
            role => format!("{}_{}", self.kind().name, role.key()),
        }
    }

    fn inputs(&self) -> Vec<String> {
        vec![self.input.clone()]
    }

    fn fingerprint(&self, cx: &Context, inputs: &[&Output]) -> Result<Fingerprint, PipelineError> {
        let scaling = cx.data.scaling.as_ref().map(|s| s.offset.iter().chain(&s.factor).flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap_or_default();
        let mut fp = FingerprintBuilder::new("export/v1")
            .part("format", self.format.name().as_bytes())
            .part("model", inputs[0].identity().as_bytes())
            .part("scaling", &scaling)
            .part("props", format!("{:?}", props(cx.pipeline(), cx.data, self.role, self.format, &[])).as_bytes())
            .part("version", env!("CARGO_PKG_VERSION").as_bytes());
        if self.format == ExportFormat::OnnxInt8 {
            fp = fp.part("data", cx.data.fingerprint.as_bytes());
        }
        Ok(fp.finish())
    }

    fn find(&self, cx: &Context, fp: &Fingerprint, _: &[&Output], forced: bool) -> Result<Option<Found>, PipelineError> {
        let kind = self.kind().name;
        if forced {
            return Ok(None);
        }
        let path = cx.cache.artifact(kind, &fp.key);
        Ok(match cx.cache.load_verified(&path) {
            Ok(Some(bytes)) => Some(Found::Cached(self.output(bytes))),
            Ok(None) => None,
            Err(problem) => {
                tracing::warn!(path = %path.display(), %problem, "cached {kind} model is unusable; exporting again");
                None
            }
        })
    }

    fn compute(&self, cx: &Context, fp: &Fingerprint, inputs: &[&Output]) -> Result<Output, PipelineError> {
        let Output::Model { trained, .. } = inputs[0] else { return Err(PipelineError::Graph("the export's input is not a model")) };
        let bytes = export_model(cx.pipeline(), cx.data, self.role, self.format, &trained.model.shape, &trained.bytes)?;
        let kind = self.kind().name;
        cx.cache.store(kind, &fp.key, &cx.cache.artifact(kind, &fp.key), &bytes, &cx.pipeline().name)?;
        Ok(self.output(bytes))
    }
}

impl ExportStage {
    fn output(&self, bytes: Vec<u8>) -> Output {
        Output::Artifact(Artifact { format: self.format, role: self.role, blake3: hash_bytes(&bytes), bytes })
    }
}

/// The recipe's export stages: each format of the first seed's student, and with
/// `export.teacher` of the teacher.
pub(crate) fn stages(p: &Pipeline, student: String) -> Vec<Box<dyn Stage>> {
    let Some(spec) = &p.export else { return Vec::new() };
    let mut formats = spec.formats.clone();
    formats.sort();
    formats.dedup();
    let mut roles = vec![(Role::Student, student)];
    if spec.teacher {
        roles.push((Role::Teacher, super::TEACHER.name.to_string()));
    }
    roles
        .into_iter()
        .flat_map(|(role, input)| formats.iter().map(move |&format| Box::new(ExportStage { format, role, input: input.clone() }) as Box<dyn Stage>))
        .collect()
}
