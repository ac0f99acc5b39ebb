//! Fuzz target: see `targets::recipe`.
#![no_main]

mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::recipe(data));
