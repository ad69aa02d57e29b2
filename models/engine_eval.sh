#!/usr/bin/env bash
# Run bmn-edge detect on every video of a split and score it with bmn-edge eval.
#   bash models/engine_eval.sh MODEL DATA_DIR OUT_DIR [THREADS]
set -euo pipefail
MODEL=$1; DATA=$2; OUT=$3; THREADS=${4:-2}
BIN=${BIN:-target/release/bmn-edge}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT/videos"
"$PY" - "$DATA" > "$OUT/videos.txt" <<'PYEOF'
import json, sys
db = json.load(open(sys.argv[1] + "/ground_truth.json"))["database"]
for vid, info in db.items():
    print(vid, info["duration_second"])
PYEOF
while read -r vid dur; do
  "$BIN" detect --model "$MODEL" --features "$DATA/features/$vid.npy" --duration "$dur" \
    --video-id "$vid" --threads "$THREADS" --out "$OUT/videos/$vid.json" 2>>"$OUT/detect.log"
done < "$OUT/videos.txt"
"$PY" - "$OUT" <<'PYEOF'
import glob, json, sys
res = {}
for p in sorted(glob.glob(sys.argv[1] + "/videos/*.json")):
    res.update(json.load(open(p))["results"])
json.dump({"version": "VERSION 1.3", "results": res, "external_data": {}},
          open(sys.argv[1] + "/results.json", "w"))
PYEOF
"$BIN" eval --ground-truth "$DATA/ground_truth.json" --proposals "$OUT/results.json" --json | tee "$OUT/metrics.json"
