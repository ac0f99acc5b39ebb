#!/bin/sh
# RUSTC_WRAPPER for the fuzz build: libFuzzer's coverage instrumentation (stable rustc flags,
# the ones cargo-fuzz passes) for distill's crates, the YAML parsers and the fuzz targets only;
# polars and the rest are built as usual (instrumenting them rebuilds polars: 20+ minutes).
rustc="$1"; shift
case " $* " in
  *" --crate-name distill_"*|*" --crate-name serde_yaml "*|*" --crate-name unsafe_libyaml "*|*" --crate-name yaml_rust2 "*|\
  *" --crate-name recipe "*|*" --crate-name load_"*)
    exec "$rustc" "$@" -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
      -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
      -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks ;;
  *) exec "$rustc" "$@" ;;
esac
