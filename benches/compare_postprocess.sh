#!/usr/bin/env bash
# Window post-processing, Rust (criterion) against the Python reference, side by side in one
# run on the same inputs (benches/data/window_{random,realistic}.npy, T = D = 100,
# mmaction2 convention). Prints a markdown table of medians and ratios.
#
#   bash benches/compare_postprocess.sh
#
# Needs the Python venv with numpy: python3 -m venv .venv && .venv/bin/pip install -r tests/reference/requirements.txt
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
py_out=$(mktemp)
rs_out=$(mktemp)
trap 'rm -f "$py_out" "$rs_out"' EXIT
"$PY" benches/reference/postprocess_ref_bench.py >"$py_out"
cargo bench --no-default-features --features std --bench postprocess -- --output-format bencher 'mmaction2' >"$rs_out" 2>/dev/null
"$PY" - "$py_out" "$rs_out" <<'PYEOF'
import json, re, sys
py = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rs = {}
for line in open(sys.argv[2]):
    m = re.match(r"test postprocess/(\w+)/mmaction2 \.\.\. bench:\s+([\d,]+) ns/iter", line)
    if m:
        rs[m.group(1)] = int(m.group(2).replace(",", "")) / 1e6
print("| window (T = D = 100, mmaction2) | pairs | Python upstream-style loops (ms) | Python reference loops (ms) | bmn-edge (ms) | speed-up vs upstream-style |")
print("|---|---|---|---|---|---|")
for case in sorted(rs):
    up = next(p for p in py if p["case"] == case and p["impl"] == "upstream_style")
    ref = next(p for p in py if p["case"] == case and p["impl"] == "reference_loops")
    print(f"| {case} | {up['num_pairs']} | {up['median_ms']:.1f} | {ref['median_ms']:.1f} | {rs[case]:.3f} | {up['median_ms'] / rs[case]:.0f}x |")
PYEOF
