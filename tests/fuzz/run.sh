#!/bin/sh
# Builds the fuzz targets on the stable toolchain and runs each for SECONDS (default 600) under
# `nice -n 19`: libfuzzer-sys links libFuzzer, and rustc-sancov.sh adds the coverage flags
# cargo-fuzz would (no nightly flag is needed once no sanitizer is asked for: cargo-fuzz's
# `-s none`). Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]; targets: recipe load_csv
# load_parquet load_idx (default all, one after the other; PARALLEL=1 runs them together).
# New inputs go to tests/fuzz/corpus/<target>/, crashes to tests/fuzz/artifacts/<target>/;
# the shipped recipes, datasets and tests/fuzz/seeds/ seed them. Exit 1 if any target crashed.
#
# STABLE=1: no libFuzzer build (that one builds polars a second time, 20+ minutes on 2 cores):
# stable_driver.rs, linked in as an example of distill-data for the run and built on the
# workspace's own build, mutates the seeds at random without coverage feedback, restarted after
# an abort with the input that caused it kept as artifacts/<target>/abort-N.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-recipe load_csv load_parquet load_idx}
if [ "${STABLE:-0}" = 1 ]; then
  link="$root/crates/distill-data/examples/fuzz_stable.rs"
  ln -sf ../../../tests/fuzz/stable_driver.rs "$link"
  trap 'rm -f "$link"' EXIT
  (cd "$root" && nice -n 19 cargo build --release --workspace --example fuzz_stable)
  driver="${CARGO_TARGET_DIR:-$root/target}/release/examples/fuzz_stable"
else
  export RUSTC_WRAPPER="$here/rustc-sancov.sh"
  target_dir=${CARGO_TARGET_DIR:-$here/target}
  nice -n 19 cargo build --release --locked --manifest-path "$here/Cargo.toml" --target-dir "$target_dir" --bins
fi

seeds() {
  case $1 in
    recipe) echo "$root/pipelines $root/tests/fixtures/data" ;;
    load_csv) echo "$root/datasets $root/tests/fixtures/data" ;;
    *) echo "" ;;
  esac
}

stable() {
  t=$1; out="$here/artifacts/$t"; end=$(( $(date +%s) + seconds )); n=0
  # shellcheck disable=SC2046
  while [ "$(date +%s)" -lt "$end" ]; do
    if ! nice -n 19 "$driver" "$t" $(( end - $(date +%s) )) "$out" "$here/seeds/$t" $(seeds "$t") >> "$here/artifacts/$t.log" 2>&1; then
      n=$((n + 1)); cp "$out/LAST" "$out/abort-$n"
    fi
  done
  ls "$out" | grep -q -e '^panic-' -e '^abort-' && { echo "$t: CRASH (see $out)"; return 1; }
  tail -1 "$here/artifacts/$t.log"
}

fuzz() {
  t=$1
  mkdir -p "$here/corpus/$t" "$here/artifacts/$t"
  [ "${STABLE:-0}" = 1 ] && { stable "$t"; return; }
  # shellcheck disable=SC2046
  nice -n 19 "$target_dir/release/$t" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -max_len=65536 \
    -artifact_prefix="$here/artifacts/$t/" -print_final_stats=1 "$here/corpus/$t" "$here/seeds/$t" $(seeds "$t") \
    > "$here/artifacts/$t.log" 2>&1 && echo "$t: no crash in ${seconds}s" || { echo "$t: CRASH (see $here/artifacts/$t.log)"; return 1; }
}

status=0
if [ "${PARALLEL:-0}" = 1 ]; then
  pids=""
  for t in $targets; do fuzz "$t" & pids="$pids $!"; done
  for p in $pids; do wait "$p" || status=1; done
else
  for t in $targets; do fuzz "$t" || status=1; done
fi
exit $status
