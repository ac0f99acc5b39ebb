//! Fuzz target: see `targets::csv`.
#![no_main]

mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::csv(data));
