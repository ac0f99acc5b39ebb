//! What every stage of one run (or plan) reads: the recipe, the prepared data, the cache, the
//! plugins, both networks' shapes, the student's loss and the training checkpoints.

use distill_cache::{Cache, KeyBuilder};
use distill_data::{LabelState, Prepared};
use distill_nn::{Loss, MlpShape};
use distill_plugin_host::PluginRegistry;
use distill_spec::{Pipeline, TeacherSpec};

use super::fit::Checkpoints;
use crate::keys;
use crate::load::{student_loss, Loaded};
use crate::models::model_shape;
use crate::PipelineError;

pub(crate) struct Context<'a> {
    pub loaded: &'a Loaded,
    pub data: &'a Prepared,
    pub cache: &'a Cache,
    /// blake3 over the plugin libraries (part of the trained models' keys).
    pub plugins_hash: String,
    /// Absent when the teacher is external logits.
    pub teacher_shape: Option<MlpShape>,
    /// The networks of `teachers` (absent for external logits), in order.
    pub extra_teacher_shapes: Vec<Option<MlpShape>>,
    pub student_shape: MlpShape,
    pub student_loss: Box<dyn Loss>,
    pub checkpoints: Checkpoints,
}

impl<'a> Context<'a> {
    /// Builds both networks and the loss first, so a bad plugin architecture or loss fails
    /// before anything trains.
    pub(crate) fn new(loaded: &'a Loaded, data: &'a Prepared, cache: &'a Cache, plugins: &'a PluginRegistry, resume: bool) -> Result<Self, PipelineError> {
        let p = &loaded.pipeline;
        let student_loss = student_loss(p, plugins, data.classes())?;
        let teacher_shape = p.teacher.model.as_ref().map(|m| model_shape(m, "teacher.model", plugins, data)).transpose()?;
        let student_shape = model_shape(&p.student.model, "student.model", plugins, data)?;
        let extra_teacher_shapes = p
            .teachers
            .iter()
            .enumerate()
            .map(|(i, t)| t.model.as_ref().map(|m| model_shape(m, &format!("teachers[{i}].model"), plugins, data)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let resolved = serde_yaml::to_string(p).map_err(PipelineError::Resolved)?;
        let checkpoints = Checkpoints {
            dir: cache.root.join("checkpoints"),
            recipe: KeyBuilder::new("checkpoint/v1").part("recipe", resolved.as_bytes()).part("data", data.fingerprint.as_bytes()).finish(),
            resume,
        };
        let plugins_hash = keys::plugins_hash(p, &loaded.base_dir);
        Ok(Self { loaded, data, cache, plugins_hash, teacher_shape, extra_teacher_shapes, student_shape, student_loss, checkpoints })
    }

    pub(crate) fn pipeline(&self) -> &'a Pipeline {
        &self.loaded.pipeline
    }

    /// The teacher at `index` (0: `teacher`, then `teachers` in order): its spec, its recipe key
    /// (`teacher`, `teachers[0]`, …) and its network (none for external logits).
    pub(crate) fn teacher_at(&self, index: usize) -> (&'a TeacherSpec, String, Option<&MlpShape>) {
        let p = self.pipeline();
        match index {
            0 => (&p.teacher, "teacher".into(), self.teacher_shape.as_ref()),
            i => (&p.teachers[i - 1], format!("teachers[{}]", i - 1), self.extra_teacher_shapes[i - 1].as_ref()),
        }
    }

    /// The rows the teacher trains on: the labelled ones, and the hidden ones when it may see them.
    pub(crate) fn teacher_sees(&self, state: LabelState) -> bool {
        state == LabelState::Labelled || (keys::teacher_sees_hidden(self.pipeline()) && state == LabelState::Hidden)
    }
}
