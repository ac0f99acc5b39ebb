//! Fuzz target: see `targets::idx`.
#![no_main]

mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::idx(data));
