//! Models and training for distill, on dfdx.
//!
//! dfdx's own layers are const-generic, but a pipeline file decides sizes at run time, so this
//! crate keeps runtime-shaped parameters (`Tensor<(usize, usize), f32, Cpu>`) and runs them through
//! dfdx's autograd. Losses are computed on the host as (value, gradient with respect to the
//! logits) and joined to the tape through the surrogate `sum(logits * g)`: one mechanism for
//! built-in losses and plugin losses. With the `cuda` feature, training can run on a GPU instead:
//! a copy of the network on dfdx's `Cuda` device (`device.rs`); the network itself stays on the
//! CPU. Not here: data loading (distill-data) and caching (distill-cache).

pub mod bench;
mod checkpoint;
#[cfg(test)]
mod cnn_tests;
pub mod confidence;
mod conv;
#[cfg(feature = "cuda")]
mod cuda;
#[cfg(any(test, feature = "cuda"))]
mod device;
pub mod ensemble;
mod features;
mod fused;
mod fused_train;
mod gemm;
pub mod hint;
mod job;
mod loss;
mod mlp;
mod optim;
mod pool;
mod resume;
mod soft_targets;
mod tape_op;
mod train;

pub use checkpoint::{load_weights, save_weights, CheckpointError};
pub use job::kept_epoch;
pub use loss::{
    build_loss, build_loss_with, CrossEntropy, Dkd, HintonKd, Loss, LossResult, MseLogits, PluginLossFactory, SmoothedCrossEntropy, SoftBatch,
    SoftTargetCrossEntropy, TeacherHard, WeightedSum, NO_LABEL,
};
pub use mlp::{Layer, Mlp, MlpShape};
pub use optim::{lr_at, EarlyStopping, LrSchedule, OptimizerConfig, TrainConfig};
pub use resume::Checkpointing;
pub use train::{accuracy, argmax, predict_logits, train, EpochStats, TrainOptions, TrainTargets, PREDICT_BLOCK_ROWS};

/// The device of the canonical network and of CPU training (GPU training copies it: `device.rs`).
pub type Dev = dfdx::tensor::Cpu;

/// Sets flush-to-zero and denormals-are-zero on this thread and every rayon worker: Adam's moments
/// decay into denormals, which otherwise halve training speed.
pub fn flush_denormals() {
    fn set_this_thread() {
        #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
        #[allow(deprecated)]
        unsafe {
            #[cfg(target_arch = "x86")]
            use std::arch::x86::{_mm_getcsr, _mm_setcsr};
            #[cfg(target_arch = "x86_64")]
            use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
            // FTZ (bit 15) | DAZ (bit 6)
            _mm_setcsr(_mm_getcsr() | 0x8040);
        }
    }
    set_this_thread();
    rayon::broadcast(|_| set_this_thread());
}
