//! Measures what calling a loss through the plugin ABI costs per batch: the built-in Hinton KD
//! against the same loss re-implemented in the cosine-kd example plugin (`plugin_hinton_kd`),
//! on identical inputs, in the same process.
//!
//! ```text
//! cargo build --release --manifest-path plugins/cosine-kd/Cargo.toml
//! cargo run --release --example plugin_overhead -- plugins/cosine-kd/target/release/libcosine_kd.so
//! ```
//!
//! The difference per call is the overhead: serialising the parameters to JSON, the C call,
//! the host's checks of the returned gradient (finite, right length) and the copy back.

use std::time::Instant;

use distill_nn::{HintonKd, Loss};
use distill_plugin_host::PluginRegistry;

fn main() -> Result<(), String> {
    let path = std::env::args().nth(1).ok_or("usage: plugin_overhead PATH/TO/libcosine_kd.so")?;
    let mut registry = PluginRegistry::new();
    registry.load(&path).map_err(|e| e.to_string())?;
    let plugin = registry.require_loss("plugin_hinton_kd").map_err(|e| e.to_string())?;
    let params = serde_json::json!({"temperature": 2.0, "alpha": 0.5});
    let built_in = HintonKd { temperature: 2.0, alpha: 0.5 };
    println!("{:>6} {:>5} {:>14} {:>14} {:>14}", "batch", "k", "built-in µs", "plugin µs", "overhead µs");
    for (n, k) in [(32, 10), (128, 10), (128, 100), (1024, 10)] {
        let student: Vec<f32> = (0..n * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let teacher: Vec<f32> = (0..n * k).map(|i| ((i * 53 % 97) as f32 - 48.0) / 20.0).collect();
        let labels: Vec<u32> = (0..n).map(|i| (i % k) as u32).collect();
        let calls = (2_000_000 / (n * k)).clamp(200, 20_000);
        let time = |f: &mut dyn FnMut()| {
            for _ in 0..calls / 10 {
                f();
            }
            let t0 = Instant::now();
            for _ in 0..calls {
                f();
            }
            t0.elapsed().as_secs_f64() * 1e6 / calls as f64
        };
        let a = time(&mut || {
            std::hint::black_box(built_in.value_and_grad(&student, Some(&teacher), &labels, k).unwrap());
        });
        let b = time(&mut || {
            std::hint::black_box(plugin.value_and_grad(&student, Some(&teacher), &labels, k, &params).unwrap());
        });
        println!("{n:>6} {k:>5} {a:>14.2} {b:>14.2} {:>14.2}", b - a);
    }
    Ok(())
}
