//! The raw, `#[repr(C)]` plugin ABI (version [`ABI_VERSION`]).
//!
//! Plugin authors normally never touch these types: [`export_plugin!`](crate::export_plugin)
//! generates them. They are public so the host can read them and so a plugin written in another
//! language (C, C++, Zig) can implement the same ABI by hand.
//!
//! # The contract
//!
//! A plugin library exports one symbol, [`ENTRY_SYMBOL`] (`distill_plugin_entry`), of type
//! [`EntryFn`]. It returns a pointer to a [`PluginDescriptor`] that lives as long as the library
//! is loaded. `abi_version` is the first field and its offset never changes: the host reads it
//! before anything else and refuses any other version, because every other field may change
//! between versions.
//!
//! All buffers are owned by the host. Plugins read the inputs, write the outputs in place and
//! never keep a pointer after returning. All numbers are native-endian; sizes are `usize`.
//! Every function returns a status code ([`STATUS_OK`], [`STATUS_ERROR`], [`STATUS_PANIC`],
//! [`STATUS_BUFFER_TOO_SMALL`]); on failure it writes a UTF-8 message into the error buffer.
//!
//! The host may call any function from several threads at once, so functions must be
//! thread-safe. A panic must never unwind across the boundary (that aborts the host): the
//! generated functions catch it and report [`STATUS_PANIC`].

use std::os::raw::c_char;

/// The ABI version this crate implements. The host loads only plugins with exactly this version.
pub const ABI_VERSION: u32 = 1;

/// Name of the one exported entry symbol (without the trailing NUL).
pub const ENTRY_SYMBOL: &str = "distill_plugin_entry";

/// The call succeeded; outputs are written.
pub const STATUS_OK: i32 = 0;
/// The plugin reported an error; the message is in the error buffer.
pub const STATUS_ERROR: i32 = 1;
/// The plugin panicked; the panic message is in the error buffer.
pub const STATUS_PANIC: i32 = 2;
/// The output buffer was too small; `*out_len` holds the size needed. Call again with a larger
/// buffer (architecture functions only).
pub const STATUS_BUFFER_TOO_SMALL: i32 = 3;

/// Type of the entry symbol: returns the plugin's descriptor, or null if the plugin cannot
/// describe itself (the host reports that as an error).
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDescriptor;

/// A loss and its gradient with respect to the student logits, over one batch.
///
/// Arguments, in order:
/// - `student`: student logits, `n × k` f32, row-major.
/// - `teacher`: teacher logits, `n × k` f32, row-major, or **null** when the recipe has none.
/// - `labels`: `n` class indices, each `< k`.
/// - `n`, `k`: rows in the batch and classes.
/// - `params`, `params_len`: the loss's parameters from the recipe as a UTF-8 JSON object
///   (`{}` when there are none); not NUL-terminated.
/// - `loss_out`: where to write the mean loss over the batch.
/// - `grad_out`: `n × k` f32 to fill with d(loss)/d(student logits).
/// - `err`, `err_cap`, `err_len`: a UTF-8 error-message buffer of `err_cap` bytes; the plugin
///   writes at most `err_cap` bytes and stores how many in `*err_len`.
///
/// Returns a `STATUS_*` code.
pub type LossFn = unsafe extern "C" fn(
    student: *const f32,
    teacher: *const f32,
    labels: *const u32,
    n: usize,
    k: usize,
    params: *const u8,
    params_len: usize,
    loss_out: *mut f64,
    grad_out: *mut f32,
    err: *mut u8,
    err_cap: usize,
    err_len: *mut usize,
) -> i32;

/// Describes a network for `inputs` features and `classes` outputs as JSON in the host's layer
/// vocabulary (see [`Layer`](crate::Layer)).
///
/// Arguments: `inputs`, `classes`; `params`, `params_len` (UTF-8 JSON object); `out`, `out_cap`,
/// `out_len`: a buffer for the UTF-8 JSON array of layers. If the JSON does not fit, the plugin
/// writes nothing, stores the size needed in `*out_len` and returns
/// [`STATUS_BUFFER_TOO_SMALL`]; the host retries with a buffer that large. `err`, `err_cap`,
/// `err_len` as for [`LossFn`].
pub type ArchFn = unsafe extern "C" fn(
    inputs: usize,
    classes: usize,
    params: *const u8,
    params_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
    err: *mut u8,
    err_cap: usize,
    err_len: *mut usize,
) -> i32;

/// One row of the loss table.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LossEntry {
    /// NUL-terminated UTF-8 name the recipe uses (`student.loss.kind`); unique in the plugin.
    pub name: *const c_char,
    /// The loss function.
    pub func: LossFn,
}

/// One row of the architecture table.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ArchEntry {
    /// NUL-terminated UTF-8 name the recipe uses (`model.arch`); unique in the plugin.
    pub name: *const c_char,
    /// The architecture function.
    pub func: ArchFn,
}

/// What the entry symbol returns. Everything it points to must stay valid while the library is
/// loaded (in practice: statics).
#[repr(C)]
pub struct PluginDescriptor {
    /// Must be [`ABI_VERSION`]. Always the first field, in every ABI version.
    pub abi_version: u32,
    /// NUL-terminated UTF-8 plugin name, e.g. `cosine-kd`.
    pub name: *const c_char,
    /// NUL-terminated UTF-8 plugin version, e.g. `0.1.0`.
    pub version: *const c_char,
    /// Pointer to `n_losses` entries (may be null when `n_losses` is 0).
    pub losses: *const LossEntry,
    /// Number of losses.
    pub n_losses: usize,
    /// Pointer to `n_architectures` entries (may be null when `n_architectures` is 0).
    pub architectures: *const ArchEntry,
    /// Number of architectures.
    pub n_architectures: usize,
}

// SAFETY: descriptors and tables are immutable statics that only point to other immutable
// statics (C strings, functions), so sharing them between threads is sound.
unsafe impl Sync for PluginDescriptor {}
unsafe impl Sync for LossEntry {}
unsafe impl Sync for ArchEntry {}
unsafe impl Send for LossEntry {}
unsafe impl Send for ArchEntry {}
