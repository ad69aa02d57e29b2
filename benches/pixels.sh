#!/usr/bin/env bash
# The pixel pipeline end to end: synthetic 30 fps video, generated as it is written (never on
# disk), piped as YUV4MPEG2 into `bmn-edge stream --video - --backbone … --model …`.
# Reports the real-time factor of the whole pipeline (decode, preprocessing, backbone, BMN,
# merge) and the resident set sampled every second, first minute against last minute.
#
#   bash benches/pixels.sh [MINUTES] [MODEL] [THREADS] [WxH]
#   BACKBONE=small bash benches/pixels.sh 60        (the test pair: minutes, not hours)
#
# MINUTES of video (default 1; 60 for the hour-long memory check), MODEL a BMN with C = 400
# (default the shipped int8 model), THREADS for both networks (default 2), frame size
# (default 320x240). The backbone is an mmaction2-style TSN ResNet-50 export with a 400-way
# fc and random weights (`tests/reference/pixels_reference.py r50-400`, ~100 MB, generated
# into a scratch folder, never committed): its timings are a real ResNet-50's, its
# proposals mean nothing. Needs python3 with numpy and onnx for the export ($PYTHON,
# default .venv/bin/python: `pip install -r tests/reference/requirements.txt onnx`).
# BACKBONE=small runs the tests' pair instead (tests/golden/pixels/backbone_c32.onnx into
# the tiny BMN fixture, T = 16): the same decode, sampling and stream path, with networks
# small enough that an hour of video takes minutes (no python packages needed).
#
# Memory: the resident set over the run's second tenth (the first is start-up: loading both
# models, the first windows) against its last tenth; with 10 minutes of video or more the
# last may exceed the second by at most 5 %.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MINUTES=${1:-1}
MODEL=${2:-models/bmn_synth_int8.edge.onnx}
THREADS=${3:-2}
SIZE=${4:-320x240}
PYTHON=${PYTHON:-.venv/bin/python}
W=${SIZE%x*}
H=${SIZE#*x}
FRAMES=$((MINUTES * 60 * 30))
cargo build --release --quiet
BIN=target/release/bmn-edge
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "${BACKBONE:-r50}" = small ]; then
  NET=tests/golden/pixels/backbone_c32.onnx
  MODEL=tests/fixtures/onnx/bmn_tiny_pytorch_op17.onnx
else
  "$PYTHON" tests/reference/pixels_reference.py r50-400 --out "$tmp" >/dev/null
  NET=$tmp/tsn_r50_400.onnx
fi
echo "backbone $NET, model $MODEL, $THREADS thread(s), $MINUTES min of ${W}x${H} at 30 fps; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"

# Frames: a textured background with a square moving across it, 4:2:0, written frame by
# frame (32 distinct frames cycled with a drifting offset, so every snippet differs).
mkfifo "$tmp/video"
python3 - "$FRAMES" "$W" "$H" >"$tmp/video" <<'PY' &
import sys
n, w, h = (int(a) for a in sys.argv[1:4])
out = sys.stdout.buffer
out.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
chroma = bytes((64 + (x * 3 + y) % 128) for y in range(h // 2) for x in range(w // 2))
frames = []
for k in range(32):
    cx, cy, r = (k * w) // 32, h // 2, h // 6
    y = bytearray((16 + (x + 2 * yy + 5 * k) % 200) for yy in range(h) for x in range(w))
    for yy in range(max(0, cy - r), min(h, cy + r)):
        y[yy * w + max(0, cx - r): yy * w + min(w, cx + r)] = b"\xeb" * (min(w, cx + r) - max(0, cx - r))
    frames.append(b"FRAME\n" + bytes(y) + chroma + chroma)
for i in range(n):
    out.write(frames[(i + i // 997) % 32])
PY
start=$(date +%s)
"$BIN" stream --model "$MODEL" --backbone "$NET" --video "$tmp/video" --threads "$THREADS" \
  --stats-json "$tmp/stats.json" >"$tmp/out.jsonl" 2>"$tmp/err" &
pid=$!
: >"$tmp/rss"
while kill -0 "$pid" 2>/dev/null; do
  r=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$r" ] && echo "$(($(date +%s) - start)) $r" >>"$tmp/rss"
  sleep 1
done
wait "$pid" || { cat "$tmp/err" >&2; exit 1; }
python3 - "$tmp/stats.json" "$tmp/rss" "$FRAMES" "$(wc -l <"$tmp/out.jsonl")" "$MINUTES" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
samples = [tuple(int(v) for v in l.split()) for l in open(sys.argv[2]) if l.strip()]
frames, lines, minutes = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
v = s["video"]
print(f"video: {v['frames']} frames (sent {frames}) at {v['fps']:g} fps, {s['snippets']} snippets, "
      f"{s['windows']} windows, {s['proposals']} proposals (lines {lines})")
print(f"elapsed {s['elapsed_s']:.1f} s: {v['frames'] / s['elapsed_s']:.0f} frames/s, "
      f"{1e3 * s['elapsed_s'] / max(1, s['snippets']):.1f} ms per snippet, real-time factor {s['real_time_factor']:.2f}")
# Start-up (loading both models, the first windows) excluded: the first tenth of the run.
span = samples[-1][0] if samples else 0
tenth = max(1, span // 10)
steady = [r for t, r in samples if t >= tenth] or [r for _, r in samples]
head = [r for t, r in samples if tenth <= t < 2 * tenth] or steady[:1]
tail = [r for t, r in samples if t >= span - tenth] or steady[-1:]
print(f"RSS (MB): second tenth of the run max {max(head) / 1024:.1f}, last tenth max {max(tail) / 1024:.1f}, "
      f"after start-up min {min(steady) / 1024:.1f} max {max(steady) / 1024:.1f} over {len(samples)} samples "
      f"({span} s); peak (VmHWM) {s['peak_rss_mb']:.1f}")
flat = max(tail) <= 1.05 * max(head)
if minutes < 10:
    print(f"(memory not judged under 10 minutes of video: {'flat' if flat else 'not flat'} within 5 %)")
    flat = True
ok = v["frames"] == frames and s["proposals"] == lines and flat
print("OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
