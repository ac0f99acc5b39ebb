//! # distill-plugin: write custom losses and architectures for distill
//!
//! A distill plugin is a `cdylib` crate that depends on this crate and calls
//! [`export_plugin!`] once. A recipe then names the built library by path and uses its losses
//! (`student.loss.kind`) and architectures (`model.arch`) like the built-in ones.
//!
//! - A **loss** is an ordinary function `fn(&LossInput) -> Result<LossOutput, String>`: it gets
//!   one batch of student logits, teacher logits (if any), labels and its JSON parameters, and
//!   returns the mean loss and its gradient with respect to the student logits. The host joins
//!   that gradient to its own autograd, so the plugin never sees a tensor.
//! - An **architecture** is `fn(&ArchInput) -> Result<Vec<Layer>, String>`: given the input
//!   width, class count and parameters, it describes a network in the host's [layer
//!   vocabulary](layer); the host builds, trains and differentiates it.
//!
//! ```ignore
//! use distill_plugin::{export_plugin, ArchInput, Layer, LossInput, LossOutput};
//!
//! fn my_loss(input: &LossInput) -> Result<LossOutput, String> {
//!     input.check_params(&["temperature"])?;
//!     let t = input.param_f64("temperature", 2.0)?;
//!     // ... value and gradient over input.student / input.teacher / input.labels ...
//!     # Ok(LossOutput { value: t * 0.0, grad: vec![0.0; input.n * input.k] })
//! }
//!
//! export_plugin! {
//!     name: "my-plugin",
//!     version: env!("CARGO_PKG_VERSION"),
//!     losses: [("my_loss", my_loss)],
//!     architectures: [],
//! }
//! ```
//!
//! Build with `cargo build --release`, then point the recipe at
//! `target/release/libmy_plugin.so` (`.dylib` on macOS, `.dll` on Windows).
//!
//! ## What this crate is not
//!
//! It does not load plugins (that is `distill-plugin-host`) and it has no numerical or tensor
//! dependencies: only `serde_json`, so plugins build in seconds. Tensor types (dfdx) must never
//! cross the boundary: each copy of dfdx has its own tensor-id counter, so tensors from two
//! copies would silently corrupt gradients. Everything crosses as plain buffers through the
//! versioned C ABI in [`abi`].
//!
//! ## Rules for plugin functions
//!
//! - Return errors as `Err(String)`; a panic is caught and reported as an error too, but the
//!   message is less helpful.
//! - The host may call a function from several threads at once; plain Rust functions without
//!   `unsafe` global state are fine.
//! - Values and gradients must be finite: the host rejects NaN and infinity.

pub mod abi;
mod authoring;
mod export;
pub mod layer;

pub use abi::ABI_VERSION;
pub use authoring::{check_params, param_f64, param_usize, softmax_t, ArchInput, LossInput, LossOutput};
pub use export::{ArchImpl, LossImpl};
pub use layer::{layers_from_json, layers_to_json, output_width, validate_layers, Activation, Layer};

/// Implementation details of [`export_plugin!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{call_arch, call_loss};
}

/// Re-exported so plugins can use `serde_json::Value` without their own dependency.
pub use serde_json;
