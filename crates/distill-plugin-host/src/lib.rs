//! # distill-plugin-host: load distill plugins and call them safely
//!
//! The host side of the plugin ABI defined in [`distill_plugin`]. It loads a plugin library
//! (`.so` / `.dylib` / `.dll`) named by path, checks it, and exposes its losses and
//! architectures as ordinary Rust values:
//!
//! ```no_run
//! use distill_plugin_host::PluginRegistry;
//! use serde_json::json;
//!
//! # fn main() -> Result<(), distill_plugin_host::PluginError> {
//! let mut plugins = PluginRegistry::new();
//! plugins.load("plugins/cosine-kd/target/release/libcosine_kd.so")?;
//! let loss = plugins.require_loss("cosine_kd")?;
//! let (student, teacher, labels) = (vec![0.1f32, 0.9, -0.3, 0.2], vec![1.0f32, 0.0, 0.0, 1.0], vec![1u32, 0]);
//! let (value, grad) = loss.value_and_grad(&student, Some(&teacher), &labels, 2, &json!({"temperature": 4.0}))?;
//! # Ok(()) }
//! ```
//!
//! What it guarantees:
//!
//! - **Checked loading.** [`Plugin::load`] refuses a missing file, a path that is not a regular
//!   file, and a truncated or corrupt library (its ELF headers and segments are checked to lie
//!   within the file; the loader maps a private copy, so a library rewritten meanwhile cannot
//!   fault the process), a library without the
//!   `distill_plugin_entry` symbol, another ABI version, malformed names and names declared
//!   twice. [`PluginRegistry`] also refuses a name declared by two plugins.
//! - **Checked calls.** Inputs are checked against the batch shape before the call; a plugin
//!   error or panic (caught inside the plugin) comes back as a [`PluginError`]; NaN or infinite
//!   loss values and gradients are errors; architectures are checked with
//!   [`distill_plugin::validate_layers`].
//! - **Clear errors.** Every error names the plugin (its name and library path) and the symbol.
//! - **Lifetime.** The library stays loaded while any [`Plugin`], [`PluginLoss`] or
//!   [`PluginArch`] from it is alive.
//!
//! What it is not: it does not build networks or run training (the caller turns the returned
//! gradient into its autograd surrogate and the layer list into a model), and it does not
//! sandbox plugins. Loading a library runs its code: load only libraries you trust.

mod elf;
mod error;
mod file;
mod plugin;

pub use distill_plugin::{validate_layers, Activation, Layer, ABI_VERSION};
pub use error::{FileProblem, PluginError, PluginId};
pub use plugin::{inspect, Plugin, PluginArch, PluginInfo, PluginLoss, PluginRegistry};
