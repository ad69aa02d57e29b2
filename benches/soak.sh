#!/usr/bin/env bash
# Soak: N snippets (default 10^6) through `bmn-edge stream` from a pipe, snippets in and
# windows out counted, the resident set sampled every second over the run.
#
#   bash benches/soak.sh [SNIPPETS] [MODEL]
#
# MODEL defaults to the small fixture model (T = D = 16, C = 32), so that 10^6 snippets take
# minutes; with models/bmn_synth_int8.edge.onnx (C = 400) plan for ~25 minutes per 10^6.
# Prints the RSS samples' first, last, min and max after the first 10 % of the run (start-up
# excluded), and fails if the last differs from the first by more than 5 % or if a snippet
# or window is missing. Needs python3 (no packages).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${1:-1000000}
MODEL=${2:-tests/fixtures/onnx/bmn_tiny_pytorch_op17.onnx}
cargo build --release --quiet
BIN=target/release/bmn-edge
C=$("$BIN" inspect "$MODEL" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["channels"])')
T=$("$BIN" inspect "$MODEL" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["tscale"])')
HOP=$((T / 2))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Deterministic snippets generated as they are written (never all in memory).
mkfifo "$tmp/in"
python3 - "$N" "$C" >"$tmp/in" <<'PY' &
import math, struct, sys
n, c = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
block = 1000
for b0 in range(0, n, block):
    rows = []
    for i in range(b0, min(n, b0 + block)):
        rows.extend(math.sin(i / 7.0 + ch) for ch in range(c))
    out.write(struct.pack(f"<{len(rows)}f", *rows))
PY
"$BIN" stream --model "$MODEL" --input "$tmp/in" --format raw --threads 1 --hop "$HOP" \
  --stats-json "$tmp/stats.json" >"$tmp/out.jsonl" 2>"$tmp/err" &
pid=$!
: >"$tmp/rss"
while kill -0 "$pid" 2>/dev/null; do
  awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null >>"$tmp/rss" || true
  sleep 1
done
wait "$pid"
python3 - "$tmp/stats.json" "$tmp/rss" "$N" "$T" "$HOP" "$(wc -l <"$tmp/out.jsonl")" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rss = [int(x) for x in open(sys.argv[2]) if x.strip()]
n, t, hop, lines = (int(v) for v in sys.argv[3:7])
complete = (n - t) // hop + 1 if n >= t else 0
windows = complete + (1 if (complete - 1) * hop + t < n else 0) if complete else 1
steady = rss[len(rss) // 10:] or rss
first, last = steady[0] / 1024, steady[-1] / 1024
print(f"snippets in {s['snippets']} (sent {n}), windows {s['windows']} (expected {windows}), "
      f"proposals {s['proposals']} (lines {lines}), flushes {s['flushes']}")
print(f"RSS over {len(rss)} samples: after start-up first {first:.1f} MB, last {last:.1f} MB, "
      f"min {min(steady) / 1024:.1f}, max {max(steady) / 1024:.1f} MB; "
      f"{s['snippets_per_s']:.0f} snippets/s")
ok = s["snippets"] == n and s["windows"] == windows and s["proposals"] == lines and abs(last - first) <= 0.05 * first
print("OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
