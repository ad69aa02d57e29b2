#!/usr/bin/env bash
# The shipped pixel model end to end, int8 and fp32 side by side: a synthetic video of the
# model's own kind (models/synth_video.py, 64x64 at 8 fps, generated into a scratch folder),
# `detect --video` with each pair, alternately, ROUNDS times; the real-time factor of the
# whole pipeline (model loading, decode, preprocessing, backbone, BMN, post-processing) is
# the video's seconds over the median wall time.
#
#   bash benches/pixel_model.sh [MINUTES] [THREADS] [ROUNDS]      (defaults 20, 2, 3)
#
# Needs python3 with numpy ($PYTHON, default .venv/bin/python) for the video.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MINUTES=${1:-20}
THREADS=${2:-2}
ROUNDS=${3:-3}
PYTHON=${PYTHON:-.venv/bin/python}
cargo build --release --quiet
BIN=target/release/bmn-edge
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
SNIPPETS=$((MINUTES * 120))
"$PYTHON" models/synth_video.py --seed 5 --videos 1 --min-snippets "$SNIPPETS" --out "$tmp/v" >/dev/null
VIDEO=$(ls "$tmp"/v/videos/*.y4m)
echo "$MINUTES min of 64x64 video at 8 fps ($SNIPPETS snippets), $THREADS thread(s), $ROUNDS rounds;$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); $(grep -o -m1 -w 'avx512_vnni\|avx_vnni' /proc/cpuinfo || echo 'no VNNI')"
declare -A times
for r in $(seq "$ROUNDS"); do
  for kind in int8 fp32; do
    s=$(date +%s.%N)
    "$BIN" detect --video "$VIDEO" --backbone "models/pixel_backbone_$kind.onnx" \
      --model "models/pixel_bmn_$kind.edge.onnx" --threads "$THREADS" --out "$tmp/$kind.json" 2>/dev/null
    e=$(date +%s.%N)
    times[$kind]="${times[$kind]:-} $s:$e"
  done
done
for kind in int8 fp32; do
  python3 - "$kind" "$MINUTES" ${times[$kind]} <<'PY'
import statistics, sys
kind, minutes = sys.argv[1], float(sys.argv[2])
ts = [float(t.split(":")[1]) - float(t.split(":")[0]) for t in sys.argv[3:]]
m = statistics.median(ts)
print(f"{kind}: median {m:.2f} s for {minutes * 60:.0f} s of video -> {minutes * 60 / m:.0f}x real time (runs: {', '.join(f'{t:.2f}' for t in ts)})")
PY
done
