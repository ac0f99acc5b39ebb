//! Fuzz target: see `targets::idx`.
#![no_main]

mod targets;

libfuzzer_sys::fuzz_target!(init: targets::crashes_are_escaped_panics(), |data: &[u8]| targets::idx(data));
