#!/usr/bin/env bash
# Instructions per window under valgrind, bmn-edge against onnxruntime, on an AVX2-only view
# of the CPU: valgrind presents an x86-64 with AVX2 + FMA and no AVX-512 whatever the host
# has, so tract, the engine (which then chooses its widened int8 kernel) and onnxruntime's
# MLAS all take the code paths an AVX2-only CPU runs. A cost proxy that does not depend on
# the machine or its load; not a timing (an instruction is not a cycle).
#
#   bash benches/instruction_counts.sh
#
# Needs valgrind (apt), the release binary (cargo build --release), and the models
# benches/onnxruntime_compare.py --int8 writes into bench/ of the work directory
# ($BMN_EDGE_WORK, default models/work/) with its .venv. Per window = (count of a run with
# 1 + 2 windows − count with 1 window) / 2, so loading and start-up cancel out. One thread
# (valgrind runs threads one at a time anyway). Two runs at once on a 2-core machine:
# ~10 minutes. (onnxruntime's fp32 reassociated export is left out: loading and running its
# 148 MB under valgrind took over 10 minutes and did not finish.)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WORK=${BMN_EDGE_WORK:-$ROOT/models/work}/bench
BIN=${BMN_EDGE_BIN:-$ROOT/target/release/bmn-edge}
PY=${PYTHON:-$ROOT/.venv/bin/python}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt install valgrind)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release" >&2; exit 1; }
for f in bmn_paper_pytorch_int8c3_edge.onnx bmn_paper_pytorch_edge.onnx bmn_paper_pytorch_reassociated_int8_qdq_u8.onnx; do
  [ -f "$WORK/$f" ] || { echo "no $WORK/$f: run benches/onnxruntime_compare.py --int8 first" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/ort.py" <<'EOF'
import sys
import numpy as np, onnxruntime as ort
path, iters = sys.argv[1], int(sys.argv[2])
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
so.log_severity_level = 3
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, 400, 100)).astype(np.float32)
for _ in range(iters):
    sess.run(None, {"x": x})
EOF

refs() { sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$1" | tr -d , ; }
n_runs=0
per_window() { # per_window <name> <command, @N@ standing for the number of windows>...
  local name=$1 log one three
  shift
  n_runs=$((n_runs + 1))
  log=$tmp/run$n_runs
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "${@//@N@/1}" > "$log.1" 2>&1 &
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "${@//@N@/3}" > "$log.3" 2>&1 || true
  wait || true
  one=$(refs "$log.1")
  three=$(refs "$log.3")
  if [ -z "$one" ] || [ -z "$three" ]; then
    echo "$name: valgrind failed:" >&2
    tail -n 5 "$log.1" "$log.3" >&2
    exit 1
  fi
  awk -v a="$one" -v b="$three" -v n="$name" 'BEGIN { printf "| %s | %.3f G |\n", n, (b - a) / 2 / 1e9 }'
}

echo "| per window, 1 thread, valgrind's AVX2 + FMA CPU | instructions |"
echo "|---|---|"
# `bench --iterations I` runs I windows after two warm-up windows, the script I: I = 1 and 3.
per_window "bmn-edge int8 (edge, all-int8; widened)" "$BIN" bench --model "$WORK/bmn_paper_pytorch_int8c3_edge.onnx" --threads 1 --iterations @N@
per_window "bmn-edge fp32 (edge)" "$BIN" bench --model "$WORK/bmn_paper_pytorch_edge.onnx" --threads 1 --iterations @N@
per_window "onnxruntime int8 QDQ (reassociated dense)" "$PY" "$tmp/ort.py" "$WORK/bmn_paper_pytorch_reassociated_int8_qdq_u8.onnx" @N@
echo
echo "($(date -u '+%Y-%m-%d %H:%M UTC'); valgrind $(valgrind --version | sed 's/valgrind-//'); host: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1))"
