#!/usr/bin/env bash
# Stream throughput and memory: `bmn-edge stream` on the demo video's features repeated
# end to end as one long stream (raw float32 rows through a pipe), for the shipped fp32 and
# int8 models at 1 and 2 threads, after 10^4 and 10^5 snippets.
#
#   bash benches/stream.sh [SNIPPETS...]      (default: 10000 100000)
#
# Prints one table row per run: snippets/s, the real-time factor at ActivityNet's 16/30 s
# per snippet, the median delay from a proposal's end to its line, and peak RSS. Needs
# python3 (no packages) to repeat the features.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
BIN=target/release/bmn-edge
FEATURES=models/demo/features/syn4_00000.npy
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The .npy's float32 rows, repeated until N snippets have been written.
feed() {
  python3 - "$FEATURES" "$1" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
header_len = int.from_bytes(data[8:10], "little")
rows = data[10 + header_len:]
c = 400
row_bytes = 4 * c
n = int(sys.argv[2])
per = len(rows) // row_bytes
out = sys.stdout.buffer
while n > 0:
    k = min(n, per)
    out.write(rows[: k * row_bytes])
    n -= k
PY
}

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| model | threads | snippets | snippets/s | real-time factor | delay median (snippets) | delay median (ms) | proposals | peak RSS (MB) |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in "${SIZES[@]}"; do
  for m in fp32 int8; do
    for t in 1 2; do
      feed "$n" | "$BIN" stream --model "models/bmn_synth_$m.edge.onnx" --threads "$t" --format raw \
        --stats-json "$tmp/s.json" >"$tmp/out.jsonl" 2>"$tmp/err"
      python3 - "$tmp/s.json" "$m" "$t" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
l = s["latency"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {s['snippets']} | {s['snippets_per_s']:.0f} | {s['real_time_factor']:.0f} | "
      f"{l['snippets_median']} | {l['wall_ms_median']} | {s['proposals']} | {s['peak_rss_mb']:.1f} |")
PY
    done
  done
done
