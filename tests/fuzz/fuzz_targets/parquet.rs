//! Fuzz target: see `targets::parquet`.
#![no_main]

mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::parquet(data));
