//! `export_plugin!` in a test binary: the generated descriptor and trampolines, called through
//! the raw ABI exactly as a host would, without loading a library.

use std::ffi::CStr;

use distill_plugin::abi::{PluginDescriptor, ABI_VERSION, STATUS_BUFFER_TOO_SMALL, STATUS_ERROR, STATUS_OK, STATUS_PANIC};
use distill_plugin::{export_plugin, layers_from_json, ArchInput, Layer, LossInput, LossOutput};

fn sum_loss(input: &LossInput) -> Result<LossOutput, String> {
    let scale = input.param_f64("scale", 1.0)?;
    let value = input.student.iter().map(|&v| v as f64 * scale).sum::<f64>() + input.teacher.map_or(0.0, |t| t.iter().map(|&v| v as f64).sum());
    Ok(LossOutput { value, grad: vec![scale as f32; input.n * input.k] })
}

fn panics(_: &LossInput) -> Result<LossOutput, String> {
    panic!("boom")
}

fn wide(input: &ArchInput) -> Result<Vec<Layer>, String> {
    let blocks = input.param_usize("blocks", 1)?;
    let mut layers = vec![Layer::Dense(4)];
    layers.extend((0..blocks).map(|_| Layer::Residual(vec![Layer::Dense(4)])));
    layers.push(Layer::Dense(input.classes));
    Ok(layers)
}

export_plugin! {
    name: "test-plugin",
    version: "1.2.3",
    losses: [("sum", sum_loss), ("panics", panics)],
    architectures: [("wide", wide)],
}

fn descriptor() -> &'static PluginDescriptor {
    // SAFETY: the generated entry returns a pointer to a static.
    unsafe { &*distill_plugin_entry() }
}

fn cstr(p: *const std::os::raw::c_char) -> &'static str {
    // SAFETY: the macro emits NUL-terminated string literals.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}

/// Calls loss `i` of the descriptor; returns (status, loss, grad, error message).
fn call_loss(i: usize, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize, params: &str, err_cap: usize) -> (i32, f64, Vec<f32>, String) {
    let entry = unsafe { &*descriptor().losses.add(i) };
    let (mut loss, mut grad) = (f64::NAN, vec![f32::NAN; student.len()]);
    let (mut err, mut err_len) = (vec![0u8; err_cap], 0usize);
    let status = unsafe {
        (entry.func)(
            student.as_ptr(),
            teacher.map_or(std::ptr::null(), |t| t.as_ptr()),
            labels.as_ptr(),
            labels.len(),
            k,
            params.as_ptr(),
            params.len(),
            &mut loss,
            grad.as_mut_ptr(),
            err.as_mut_ptr(),
            err.len(),
            &mut err_len,
        )
    };
    (status, loss, grad, String::from_utf8(err[..err_len].to_vec()).unwrap())
}

#[test]
fn descriptor_lists_what_the_macro_declared() {
    let d = descriptor();
    assert_eq!(d.abi_version, ABI_VERSION);
    assert_eq!((cstr(d.name), cstr(d.version)), ("test-plugin", "1.2.3"));
    assert_eq!((d.n_losses, d.n_architectures), (2, 1));
    let names: Vec<&str> = (0..d.n_losses).map(|i| cstr(unsafe { &*d.losses.add(i) }.name)).collect();
    assert_eq!(names, ["sum", "panics"]);
    assert_eq!(cstr(unsafe { &*d.architectures }.name), "wide");
}

#[test]
fn loss_trampoline_passes_buffers_and_params() {
    let (status, loss, grad, _) = call_loss(0, &[1.0, 2.0, 3.0, 4.0], Some(&[1.0; 4]), &[0, 1], 2, r#"{"scale": 2}"#, 64);
    assert_eq!(status, STATUS_OK);
    assert_eq!(loss, 2.0 * 10.0 + 4.0);
    assert_eq!(grad, [2.0; 4]);
    // Null teacher and empty params.
    let (status, loss, _, _) = call_loss(0, &[1.0, 2.0], None, &[1], 2, "", 64);
    assert_eq!((status, loss), (STATUS_OK, 3.0));
}

#[test]
fn loss_trampoline_reports_errors_and_panics() {
    let (status, _, _, msg) = call_loss(0, &[1.0, 2.0], None, &[1], 2, "{not json", 256);
    assert_eq!(status, STATUS_ERROR);
    assert!(msg.starts_with("parameters are not valid JSON"), "{msg}");
    let (status, _, _, msg) = call_loss(0, &[1.0, 2.0], None, &[2], 2, "{}", 256);
    assert_eq!(status, STATUS_ERROR);
    assert_eq!(msg, "label 2 in row 0 is out of range for 2 classes");
    let (status, _, _, msg) = call_loss(1, &[1.0, 2.0], None, &[1], 2, "{}", 256);
    assert_eq!((status, msg.as_str()), (STATUS_PANIC, "panicked: boom"));
    // Messages are truncated to the host's buffer, at a character boundary.
    let (status, _, _, msg) = call_loss(1, &[1.0, 2.0], None, &[1], 2, "{}", 5);
    assert_eq!((status, msg.as_str()), (STATUS_PANIC, "panic"));
}

#[test]
fn arch_trampoline_asks_for_a_larger_buffer() {
    let entry = unsafe { &*descriptor().architectures };
    let params = r#"{"blocks": 50}"#;
    let call = |cap: usize| {
        let (mut out, mut out_len) = (vec![0u8; cap], 0usize);
        let (mut err, mut err_len) = (vec![0u8; 256], 0usize);
        let status = unsafe { (entry.func)(3, 2, params.as_ptr(), params.len(), out.as_mut_ptr(), cap, &mut out_len, err.as_mut_ptr(), 256, &mut err_len) };
        (status, out, out_len)
    };
    let (status, _, needed) = call(16);
    assert_eq!(status, STATUS_BUFFER_TOO_SMALL);
    assert!(needed > 16);
    let (status, out, len) = call(needed);
    assert_eq!((status, len), (STATUS_OK, needed));
    let layers = layers_from_json(std::str::from_utf8(&out[..len]).unwrap()).unwrap();
    assert_eq!(layers.len(), 52);
    distill_plugin::validate_layers(3, 2, &layers).unwrap();
}
