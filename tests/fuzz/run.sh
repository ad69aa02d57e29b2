#!/usr/bin/env bash
# Fuzzes bmn-edge's input readers with cargo-fuzz (libFuzzer, nightly): builds every target
# of tests/fuzz, then runs each for SECONDS_PER_TARGET (default 45), one after another, on a
# scratch copy of its committed seed corpus (tests/fuzz/corpus/<target>/; the committed
# corpus never grows). Fails if any target crashes, leaks, runs out of memory or time;
# prints the executions per target.
#
#   bash tests/fuzz/run.sh [SECONDS_PER_TARGET]
#
# Environment: FUZZ_BUILD="--dev -s none" builds and runs with those cargo-fuzz options
# (CI's debug build without AddressSanitizer); FUZZ_TARGETS="npy y4m" runs only those;
# FUZZ_RUNS=N stops each target after N executions instead of (or before) the time limit
# (the documented long run: FUZZ_RUNS=1000000 bash tests/fuzz/run.sh 100000). Crash inputs
# go to tests/fuzz/artifacts/<target>/, the working corpora and logs to tests/fuzz/work/
# (both ignored by git).
set -euo pipefail

secs=${1:-45}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

# target:max_len (bytes). The model target's inputs include the ~0.6 MB test fixtures.
all_targets=(
  npy:4096
  features_csv:4096
  ground_truth_json:8192
  results_json:8192
  snippet_stream:4096
  y4m:65536
  resume_log:8192
  merge_input:8192
  frame_image:65536
  onnx_convert:1048576
  onnx_model:1048576
)
wanted=${FUZZ_TARGETS:-}

# One run at a time in a checkout: the working corpora, logs and artifacts are shared.
mkdir -p "$here/target"
exec 9>"$here/target/.run.lock"
if ! flock -n 9; then
  echo "another tests/fuzz/run.sh is running in this checkout; wait for it to end"
  exit 1
fi

work=$here/work
rm -rf "$work"
mkdir -p "$work"
# The npy and csv targets write each input to a file here (the library reads those formats
# from paths only): in memory where /dev/shm exists, removed at the end.
scratch=$(mktemp -d /dev/shm/bmn-edge-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export BMN_EDGE_FUZZ_SCRATCH=$scratch

echo "cargo-fuzz: $(cargo +nightly fuzz --version)"
echo "toolchain:  $(rustc +nightly -V)"
# FUZZ_BUILD="--dev -s none" (what CI passes): a debug build without AddressSanitizer —
# minutes instead of the 10-25 of the release ASan build, for a smoke run where a panic,
# a hang or a leak of memory is what is looked for (the crate has one audited unsafe call).
read -r -a build_args <<< "${FUZZ_BUILD:-}"
cargo +nightly fuzz build --fuzz-dir tests/fuzz "${build_args[@]}"

declare -a results=()
failed=0
for entry in "${all_targets[@]}"; do
  target=${entry%%:*}
  max_len=${entry##*:}
  if [ -n "$wanted" ] && ! [[ " $wanted " == *" $target "* ]]; then
    continue
  fi
  corpus=$work/corpus/$target
  mkdir -p "$corpus" "$here/artifacts/$target"
  cp "$here/corpus/$target/"* "$corpus/"
  if [ "$target" = onnx_model ] || [ "$target" = onnx_convert ]; then
    # The test fixtures join the working corpus at run time only (they are not committed here).
    cp tests/fixtures/onnx/*.onnx tests/fixtures/onnx_int8/*.onnx "$corpus/"
  fi
  runs=()
  if [ -n "${FUZZ_RUNS:-}" ]; then
    runs=(-runs="$FUZZ_RUNS")
  fi
  # FUZZ_SEED=N (CI: 1): libFuzzer's random seed, so a run mutates in the same order each
  # time (how far it gets still depends on the machine's speed).
  if [ -n "${FUZZ_SEED:-}" ]; then
    runs+=(-seed="$FUZZ_SEED")
  fi
  log=$work/$target.log
  echo
  echo "---- $target: ${secs}s, -max_len=$max_len, $(ls "$corpus" | wc -l) seeds"
  t0=$SECONDS
  rc=0
  # -timeout: one input taking longer is a hang (a finding); -rss_limit_mb: memory too.
  cargo +nightly fuzz run --fuzz-dir tests/fuzz "${build_args[@]}" "$target" "$corpus" -- \
    -max_total_time="$secs" "${runs[@]}" -max_len="$max_len" -rss_limit_mb=2048 -timeout=60 \
    -print_final_stats=1 -close_fd_mask=1 >"$log" 2>&1 || rc=$?
  dt=$((SECONDS - t0))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n1 || true)
  if [ "$rc" -eq 0 ]; then
    line=$(printf '%-18s ok      %10s execs in %4ds  (%s)' "$target" "${execs:-?}" "$dt" "${cov:-cov: ?}")
  else
    failed=1
    line=$(printf '%-18s FAILED  rc=%d after %ds, %s execs; log %s' "$target" "$rc" "$dt" "${execs:-?}" "$log")
    # What libFuzzer said, and where it left the input.
    grep -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY|Test unit written|out-of-memory|timeout" "$log" | head -n 20 || true
  fi
  echo "$line"
  results+=("$line")
done

echo
echo "==== fuzz summary (${secs}s per target) ===="
for l in "${results[@]}"; do echo "$l"; done
if [ "$failed" -ne 0 ]; then
  echo "fuzzing FAILED: crash inputs are in tests/fuzz/artifacts/<target>/ (see tests/fuzz/README.md)"
  exit 1
fi
