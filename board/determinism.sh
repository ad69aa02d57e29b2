#!/usr/bin/env bash
# The same output for the same model and input: byte for byte across runs, thread counts and
# the int8 arithmetic (tract's integer kernels or exact float) on one machine, and byte for
# byte between x86-64 and aarch64 for the int8 model; the fp32 model's aarch64 output is
# compared byte for byte and, failing that, within a few float32 rounding steps.
#
#   bash board/determinism.sh [SNIPPETS]          (default 100: two windows of T = 100)
#
# Builds the host release binary and the Raspberry Pi 4 release artifact
# (board/build-linux.sh rpi4: the aarch64 tarball CI ships), then runs `bmn-edge stream` on
# the first SNIPPETS snippets of the demo video (raw float32 rows) with both shipped models:
#   x86-64   --threads 1 (the reference), a second run and --threads 2 (byte for byte); for
#            the int8 model also --int8 integer, float and widened (byte for byte)
#   x86-64   under qemu-x86_64 as a Haswell (AVX2 + FMA, no AVX-512: tract's AVX2 kernels;
#            int8 models must choose the widened kernel), 2 threads, against this CPU's bytes;
#            and natively with TRACT_CPU_ISA taking AVX-512 and VNNI away (the same choice)
#   aarch64  under qemu-aarch64 as a Cortex-A72 (no dot product: exact float, 1 thread) and
#            a Cortex-A76 (dot product: tract's integer kernels, 1 and 2 threads)
# and `detect` on the whole demo video at 1 and 2 threads on x86-64 (byte for byte).
#
# int8, byte for byte by construction: its products are exact integer sums (tract's integer
# kernels, or float products of integer levels that stay below 2^24: exact too), requantized
# by the engine's own code (round half to even), dequantized by one multiplication, and the
# sigmoids — tract's are per-CPU approximations (AVX2, AVX-512, NEON differ in the last bits)
# — are the engine's own, on libm's expf, for stage B and for start/end alike (stage A's
# sigmoids are cut out of its graph: engine::onnx::split::sigmoid_tails). Before that cut,
# start/end differed by one float32 step between x86-64 and aarch64.
# fp32: tract's float kernels on x86-64 with FMA (AVX2 or AVX-512) and NEON add each dot
# product in the same order with fused multiply-adds, and so does the engine's own BM kernel
# (FMA / NEON fmla), so the outputs are byte-identical (AVX-512 and AVX2 x86-64 against
# qemu's A72/A76, 2026-11-30 and 2026-12-01). On an x86-64 without FMA (tract's SSE kernels
# and the BM kernel's SSE2 path multiply and add separately) the last bits differ: there
# the check accepts scores within 1e-5 (stage-B sums of up to 1152 products) and says so.
# The same for the shipped pixel pair (backbone and BMN) on the demo video: `detect --video`.
# Needs board/setup.sh's packages (cross gcc, qemu-user).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
N=${1:-100}
say() { printf '[board/determinism] %s\n' "$*"; }

cargo build --release --quiet --bin bmn-edge
X86=$ROOT/target/release/bmn-edge
OUT=${BOARD_OUT:-$ROOT/target/board}
BOARD_OUT=$OUT BOARD_FEATURES= bash board/build-linux.sh rpi4 >/dev/null
ARM=$(ls -d "$OUT"/rpi4/bmn-edge-rpi4-*/bin/bmn-edge | head -n1)
[ -x "$ARM" ] || { say "no aarch64 binary under $OUT/rpi4" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npy=models/demo/features/syn4_00000.npy
hlen=$(od -An -tu2 -j8 -N2 "$npy" | tr -d ' ')
head -c $((10 + hlen + N * 400 * 4)) "$npy" | tail -c +$((10 + hlen + 1)) > "$tmp/rows.f32"
[ "$(stat -c %s "$tmp/rows.f32")" -eq $((N * 400 * 4)) ] || { say "the demo has fewer than $N snippets" >&2; exit 1; }

failures=0
close() { # close <what> <reference file> <file> <tolerance>: same lines, segments, scores within tolerance
  local worst
  if worst=$(awk -v tol="$4" '
      function field(line, key,   m) { if (match(line, "\"" key "\":[^]}]*[]}]?")) return substr(line, RSTART, RLENGTH); return "" }
      function score(line,   f) { f = field(line, "score"); sub(/^"score":/, "", f); sub(/[,}].*$/, "", f); return f + 0 }
      NR == FNR { ref[FNR] = $0; n = FNR; next }
      { m = FNR
        if (field($0, "segment") != field(ref[FNR], "segment")) { print "line " FNR ": segment differs"; bad = 1; exit }
        d = score($0) - score(ref[FNR]); if (d < 0) d = -d; if (d > worst) worst = d
        if (d > tol) { print "line " FNR ": score differs by " d; bad = 1; exit } }
      END { if (bad) exit 1; if (m != n) { print m " lines, expected " n; exit 1 }; printf "%.2g", worst }' "$2" "$3"); then
    say "same proposals: $1 ($(wc -l < "$3") lines, scores within $worst, tolerance $4)"
  else
    say "DIFFERENT: $1: $worst" >&2
    failures=$((failures + 1))
  fi
}
same() { # same <what> <reference file> <file>
  if cmp -s "$2" "$3"; then
    say "identical: $1 ($(wc -l < "$3") lines)"
  else
    say "DIFFERENT: $1" >&2
    diff "$2" "$3" | head -n 6 >&2 || true
    failures=$((failures + 1))
  fi
}
# Between architectures: int8 byte for byte always; fp32 byte for byte when this x86-64 has
# FMA (its kernels then add each dot product in NEON's order with the same fused rounding),
# else within 1e-5.
FMA=0
grep -qw fma /proc/cpuinfo && FMA=1
across() { # across <int8|fp32> <what> <reference file> <file>
  if [ "$1" = int8 ] || [ "$FMA" = 1 ]; then
    same "$2" "$3" "$4"
  else
    close "$2 (no FMA on this x86-64: not byte for byte)" "$3" "$4" 1e-5
  fi
}
qemu() { # qemu <cpu> args...
  local cpu=$1; shift
  qemu-aarch64-static -cpu "$cpu" -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib "$ARM" "$@"
}

qemu_x86() { # qemu_x86 <cpu> args...: the host binary on an emulated x86-64 CPU model
  local cpu=$1; shift
  qemu-x86_64-static -cpu "$cpu" "$X86" "$@"
}

for model in fp32 int8; do
  m=models/bmn_synth_$model.edge.onnx
  run=(stream --model "$m" --input "$tmp/rows.f32" --format raw)
  "$X86" "${run[@]}" --threads 1 > "$tmp/$model.ref" 2>/dev/null
  [ -s "$tmp/$model.ref" ] || { say "no proposals from $model" >&2; exit 1; }
  "$X86" "${run[@]}" --threads 1 > "$tmp/o" 2>/dev/null && same "$model x86-64 second run" "$tmp/$model.ref" "$tmp/o"
  "$X86" "${run[@]}" --threads 2 > "$tmp/o" 2>/dev/null && same "$model x86-64 --threads 2" "$tmp/$model.ref" "$tmp/o"
  if [ "$model" = int8 ]; then
    for a in integer float widened; do
      "$X86" "${run[@]}" --threads 1 --int8 "$a" > "$tmp/o" 2>/dev/null && same "$model x86-64 --int8 $a" "$tmp/$model.ref" "$tmp/o"
    done
  fi
  # An x86-64 with AVX2 + FMA and no AVX-512 (qemu's Haswell): tract's AVX2 kernels, and for
  # int8 models the engine's own widened kernel, chosen automatically.
  if [ "$model" = int8 ]; then
    choice=$(qemu_x86 Haswell inspect "$m" 2>/dev/null | sed -n 's/.*int8 models: \([a-z-]*\).*/\1/p')
    if [ "$choice" = widened ]; then
      say "x86-64 Haswell (AVX2, no AVX-512): int8 arithmetic chosen: widened"
    else
      say "DIFFERENT: x86-64 Haswell chose '$choice' for int8 models, expected widened" >&2
      failures=$((failures + 1))
    fi
  fi
  qemu_x86 Haswell "${run[@]}" --threads 2 > "$tmp/o" 2>/dev/null
  across "$model" "$model x86-64 Haswell (AVX2, no AVX-512, --threads 2) against this CPU" "$tmp/$model.ref" "$tmp/o"
  # The same view natively, on a CPU with AVX-512: TRACT_CPU_ISA takes the features away from
  # tract's dispatch and from the engine's choice alike (the speed comparison's setting,
  # benches/README.md).
  if grep -qw avx2 /proc/cpuinfo; then
    avx2_only=(env TRACT_CPU_ISA=-avx512f,-avx512vnni,-avx512fp16,-avxvnni "$X86")
    if [ "$model" = int8 ]; then
      choice=$("${avx2_only[@]}" inspect "$m" 2>/dev/null | sed -n 's/.*int8 models: \([a-z-]*\).*/\1/p')
      if [ "$choice" = widened ]; then
        say "x86-64 with TRACT_CPU_ISA=-avx512f,-avx512vnni,...: int8 arithmetic chosen: widened"
      else
        say "DIFFERENT: with TRACT_CPU_ISA=-avx512f,-avx512vnni,... the choice was '$choice', expected widened" >&2
        failures=$((failures + 1))
      fi
    fi
    "${avx2_only[@]}" "${run[@]}" --threads 2 > "$tmp/o" 2>/dev/null
    across "$model" "$model x86-64 as AVX2-only (TRACT_CPU_ISA, --threads 2) against this CPU" "$tmp/$model.ref" "$tmp/o"
  fi
  for cpu_threads in cortex-a72:1 cortex-a76:1 cortex-a76:2; do
    cpu=${cpu_threads%:*}
    t=${cpu_threads#*:}
    qemu "$cpu" "${run[@]}" --threads "$t" > "$tmp/o" 2>/dev/null
    across "$model" "$model aarch64 ($cpu, --threads $t) against x86-64" "$tmp/$model.ref" "$tmp/o"
  done
  d=(detect --model "$m" --features "$npy" --duration 200)
  "$X86" "${d[@]}" --threads 1 > "$tmp/d1" 2>/dev/null
  "$X86" "${d[@]}" --threads 2 > "$tmp/d2" 2>/dev/null
  same "$model detect, whole demo video, --threads 1 vs 2" "$tmp/d1" "$tmp/d2"
done
# Pixels to proposals: the shipped pixel pair (backbone and BMN) on the demo video.
video=models/demo/pixels/videos/v_pix_s12_0000.y4m
for model in int8 fp32; do
  p=(detect --video "$video" --backbone "models/pixel_backbone_$model.onnx" --model "models/pixel_bmn_$model.edge.onnx")
  "$X86" "${p[@]}" --threads 1 > "$tmp/p.ref" 2>/dev/null
  [ -s "$tmp/p.ref" ] || { say "no proposals from the $model pixel pair" >&2; exit 1; }
  "$X86" "${p[@]}" --threads 2 > "$tmp/o" 2>/dev/null && same "pixel $model x86-64 --threads 2" "$tmp/p.ref" "$tmp/o"
  for cpu in cortex-a72 cortex-a76; do
    qemu "$cpu" "${p[@]}" --threads 1 > "$tmp/o" 2>/dev/null
    across "$model" "pixel $model aarch64 ($cpu) against x86-64" "$tmp/p.ref" "$tmp/o"
  done
done
if [ "$failures" -gt 0 ]; then
  say "$failures output(s) differ" >&2
  exit 1
fi
say "all outputs as expected"
