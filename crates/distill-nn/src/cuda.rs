//! The CUDA device (`--features cuda`): opens the GPU a recipe's `device: cuda:N` names as dfdx's
//! `Cuda` and trains there through `device.rs`. Built without the CUDA toolkit only as a compile
//! check (`dfdx/ci-check`).

use std::panic::{catch_unwind, AssertUnwindSafe};

use dfdx::tensor::Cuda;

use crate::train::{EpochStats, Job};
use crate::Mlp;

/// Trains `model` for `job` on GPU `ordinal`; a missing GPU or driver, or a CUDA failure while
/// training, is an error naming the device.
pub(crate) fn train(model: &mut Mlp, ordinal: usize, job: &Job<'_>) -> Result<Vec<EpochStats>, String> {
    let name = format!("cuda:{ordinal}");
    // dfdx unwraps some CUDA results itself (host copies, `Cuda::seed_from_u64`-style helpers):
    // such a failure becomes this job's error rather than a crash. `model` changes only at the end.
    catch_unwind(AssertUnwindSafe(|| {
        let dev = Cuda::try_build(ordinal, job.options.seed).map_err(|e| format!("device `{name}`: cannot open the GPU: {e}"))?;
        tracing::info!(model = %job.options.name, device = %name, "training on the GPU");
        crate::device::train_on(model, dev, &name, job)
    }))
    .unwrap_or_else(|panic| {
        let why = panic.downcast_ref::<String>().map(String::as_str).or_else(|| panic.downcast_ref::<&str>().copied()).unwrap_or("unknown error");
        Err(format!("device `{name}`: CUDA failure: {why}"))
    })
}
