//! What [`export_plugin!`](crate::export_plugin) expands to: the C-ABI trampolines that turn raw
//! buffers into [`LossInput`]/[`ArchInput`], call the plugin's safe function inside
//! `catch_unwind`, and write results and error messages back. Not a stable API: use the macro.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;

use crate::abi::{STATUS_BUFFER_TOO_SMALL, STATUS_ERROR, STATUS_OK, STATUS_PANIC};
use crate::authoring::{ArchInput, LossInput, LossOutput};
use crate::layer::{layers_to_json, Layer};

/// The safe signature of a plugin loss.
pub type LossImpl = fn(&LossInput<'_>) -> Result<LossOutput, String>;
/// The safe signature of a plugin architecture.
pub type ArchImpl = fn(&ArchInput) -> Result<Vec<Layer>, String>;

/// Writes `msg` into the host's error buffer, truncated at a UTF-8 boundary to fit.
///
/// # Safety
/// `err` must be null or valid for `cap` bytes; `err_len` null or valid for one write.
unsafe fn write_error(msg: &str, err: *mut u8, cap: usize, err_len: *mut usize) {
    let mut len = msg.len().min(cap);
    while !msg.is_char_boundary(len) {
        len -= 1;
    }
    if err.is_null() {
        len = 0;
    } else {
        // SAFETY: the caller guarantees `err` holds `cap >= len` bytes.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), err, len) };
    }
    if !err_len.is_null() {
        // SAFETY: the caller guarantees `err_len` is writable.
        unsafe { *err_len = len };
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked (no message)".to_string()
    }
}

/// Turns the outcome of a guarded call into a status code, writing any message.
unsafe fn finish(outcome: std::thread::Result<Result<i32, String>>, err: *mut u8, err_cap: usize, err_len: *mut usize) -> i32 {
    match outcome {
        Ok(Ok(status)) => status,
        Ok(Err(msg)) => {
            // SAFETY: forwarded from the host's call.
            unsafe { write_error(&msg, err, err_cap, err_len) };
            STATUS_ERROR
        }
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            // Dropping a panic payload can itself panic; forgetting it cannot.
            std::mem::forget(payload);
            // SAFETY: forwarded from the host's call.
            unsafe { write_error(&msg, err, err_cap, err_len) };
            STATUS_PANIC
        }
    }
}

/// A slice from a host pointer, treating null as empty only when `len` is 0.
unsafe fn host_slice<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T], String> {
    if ptr.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(format!("the host passed a null `{what}` buffer"));
    }
    // SAFETY: the ABI requires `ptr` to hold `len` elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

unsafe fn parse_params(ptr: *const u8, len: usize) -> Result<Value, String> {
    // SAFETY: forwarded from the host's call.
    let bytes = unsafe { host_slice(ptr, len, "params") }?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(bytes).map_err(|e| format!("parameters are not valid JSON: {e}"))
}

/// Implements [`LossFn`](crate::abi::LossFn) on top of a safe [`LossImpl`].
///
/// # Safety
/// The arguments must satisfy the [`LossFn`](crate::abi::LossFn) contract.
#[allow(clippy::too_many_arguments)]
pub unsafe fn call_loss(
    f: LossImpl,
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
) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<i32, String> {
        let len = n.checked_mul(k).ok_or_else(|| format!("batch shape {n} × {k} overflows"))?;
        if loss_out.is_null() || (grad_out.is_null() && len > 0) {
            return Err("the host passed a null output buffer".to_string());
        }
        // SAFETY (all three): the LossFn contract sizes these buffers.
        let student = unsafe { host_slice(student, len, "student") }?;
        let teacher = if teacher.is_null() { None } else { Some(unsafe { host_slice(teacher, len, "teacher") }?) };
        let labels = unsafe { host_slice(labels, n, "labels") }?;
        if let Some((row, label)) = labels.iter().enumerate().find(|(_, &y)| y as usize >= k) {
            return Err(format!("label {label} in row {row} is out of range for {k} classes"));
        }
        let params = unsafe { parse_params(params, params_len) }?;
        let input = LossInput { student, teacher, labels, n, k, params };
        let out = f(&input)?;
        if out.grad.len() != len {
            return Err(format!("the loss returned {} gradient values for a {n} × {k} batch (expected {len})", out.grad.len()));
        }
        // SAFETY: `grad_out` holds `len` f32s and `loss_out` one f64 (LossFn contract).
        unsafe {
            if len > 0 {
                std::ptr::copy_nonoverlapping(out.grad.as_ptr(), grad_out, len);
            }
            *loss_out = out.value;
        }
        Ok(STATUS_OK)
    }));
    // SAFETY: forwarded from the host's call.
    unsafe { finish(outcome, err, err_cap, err_len) }
}

/// Implements [`ArchFn`](crate::abi::ArchFn) on top of a safe [`ArchImpl`].
///
/// # Safety
/// The arguments must satisfy the [`ArchFn`](crate::abi::ArchFn) contract.
#[allow(clippy::too_many_arguments)]
pub unsafe fn call_arch(
    f: ArchImpl,
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
) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<i32, String> {
        if out_len.is_null() {
            return Err("the host passed a null `out_len`".to_string());
        }
        let params = unsafe { parse_params(params, params_len) }?;
        let layers = f(&ArchInput { inputs, classes, params })?;
        let json = layers_to_json(&layers);
        // SAFETY: `out_len` is writable and `out` holds `out_cap` bytes (ArchFn contract).
        unsafe {
            *out_len = json.len();
            if json.len() > out_cap || out.is_null() {
                return Ok(STATUS_BUFFER_TOO_SMALL);
            }
            std::ptr::copy_nonoverlapping(json.as_ptr(), out, json.len());
        }
        Ok(STATUS_OK)
    }));
    // SAFETY: forwarded from the host's call.
    unsafe { finish(outcome, err, err_cap, err_len) }
}

/// Exports a plugin: generates the `distill_plugin_entry` symbol, its descriptor, and one C-ABI
/// function per loss and architecture, each calling your safe function inside `catch_unwind`.
///
/// Use it once, at the root of a `cdylib` crate:
///
/// ```ignore
/// use distill_plugin::{export_plugin, ArchInput, Layer, LossInput, LossOutput};
///
/// fn my_loss(input: &LossInput) -> Result<LossOutput, String> { /* ... */ }
/// fn my_arch(input: &ArchInput) -> Result<Vec<Layer>, String> { /* ... */ }
///
/// export_plugin! {
///     name: "my-plugin",
///     version: env!("CARGO_PKG_VERSION"),
///     losses: [("my_loss", my_loss)],
///     architectures: [("my_arch", my_arch)],
/// }
/// ```
///
/// Names are string literals; both lists may be empty (`losses: []`). A panic in your function
/// becomes an error in the host naming the plugin and the function, never an abort, so the
/// plugin must be built with `panic = "unwind"` (the default; `panic = "abort"` fails to
/// compile).
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        losses: [ $( ($lname:expr, $lfn:path) ),* $(,)? ],
        architectures: [ $( ($aname:expr, $afn:path) ),* $(,)? ] $(,)?
    ) => {
        #[cfg(panic = "abort")]
        compile_error!("distill plugins must be built with panic = \"unwind\": the host relies on catching panics at the boundary");

        #[doc(hidden)]
        const __DISTILL_PLUGIN_LOSSES: &[$crate::abi::LossEntry] = &[$(
            $crate::abi::LossEntry {
                name: concat!($lname, "\0").as_ptr() as *const ::std::os::raw::c_char,
                func: {
                    #[allow(clippy::too_many_arguments)]
                    unsafe extern "C" fn trampoline(
                        student: *const f32, teacher: *const f32, labels: *const u32, n: usize, k: usize,
                        params: *const u8, params_len: usize, loss_out: *mut f64, grad_out: *mut f32,
                        err: *mut u8, err_cap: usize, err_len: *mut usize,
                    ) -> i32 {
                        // SAFETY: the host upholds the LossFn contract.
                        unsafe {
                            $crate::__private::call_loss(
                                $lfn, student, teacher, labels, n, k, params, params_len,
                                loss_out, grad_out, err, err_cap, err_len,
                            )
                        }
                    }
                    trampoline
                },
            }
        ),*];

        #[doc(hidden)]
        const __DISTILL_PLUGIN_ARCHS: &[$crate::abi::ArchEntry] = &[$(
            $crate::abi::ArchEntry {
                name: concat!($aname, "\0").as_ptr() as *const ::std::os::raw::c_char,
                func: {
                    #[allow(clippy::too_many_arguments)]
                    unsafe extern "C" fn trampoline(
                        inputs: usize, classes: usize, params: *const u8, params_len: usize,
                        out: *mut u8, out_cap: usize, out_len: *mut usize,
                        err: *mut u8, err_cap: usize, err_len: *mut usize,
                    ) -> i32 {
                        // SAFETY: the host upholds the ArchFn contract.
                        unsafe {
                            $crate::__private::call_arch(
                                $afn, inputs, classes, params, params_len, out, out_cap, out_len,
                                err, err_cap, err_len,
                            )
                        }
                    }
                    trampoline
                },
            }
        ),*];

        #[doc(hidden)]
        static __DISTILL_PLUGIN_DESCRIPTOR: $crate::abi::PluginDescriptor = $crate::abi::PluginDescriptor {
            abi_version: $crate::abi::ABI_VERSION,
            name: concat!($name, "\0").as_ptr() as *const ::std::os::raw::c_char,
            version: concat!($version, "\0").as_ptr() as *const ::std::os::raw::c_char,
            losses: __DISTILL_PLUGIN_LOSSES.as_ptr(),
            n_losses: __DISTILL_PLUGIN_LOSSES.len(),
            architectures: __DISTILL_PLUGIN_ARCHS.as_ptr(),
            n_architectures: __DISTILL_PLUGIN_ARCHS.len(),
        };

        /// The distill plugin entry point (generated by `distill_plugin::export_plugin!`).
        #[unsafe(no_mangle)]
        pub extern "C" fn distill_plugin_entry() -> *const $crate::abi::PluginDescriptor {
            // Returning a static's address cannot panic, so no catch_unwind is needed here.
            &__DISTILL_PLUGIN_DESCRIPTOR
        }
    };
}
