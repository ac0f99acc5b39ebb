//! Fuzz target: see `targets::parquet`.
#![no_main]

mod targets;

libfuzzer_sys::fuzz_target!(init: targets::crashes_are_escaped_panics(), |data: &[u8]| targets::parquet(data));
