#!/usr/bin/env bash
# The pixel pipeline on every video of a split, through bmn-edge as a user runs it:
# detect --video (frames -> backbone -> BMN -> proposals), one results file per video,
# merged, scored with bmn-edge eval; beside it the uniform sliding-window baseline.
#   bash models/pixel_eval.sh BACKBONE MODEL DATA_DIR OUT_DIR [THREADS]
# DATA_DIR holds videos/<id>.y4m and ground_truth.json (models/synth_video.py).
set -euo pipefail
BACKBONE=$1; MODEL=$2; DATA=$3; OUT=$4; THREADS=${5:-2}
BIN=${BIN:-target/release/bmn-edge}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT/videos"
: > "$OUT/detect.log"
start=$(date +%s.%N)
for v in "$DATA"/videos/*.y4m; do
  vid=$(basename "$v" .y4m)
  "$BIN" detect --video "$v" --backbone "$BACKBONE" --model "$MODEL" --video-id "$vid" \
    --threads "$THREADS" --out "$OUT/videos/$vid.json" 2>>"$OUT/detect.log"
done
end=$(date +%s.%N)
"$BIN" merge "$OUT"/videos/*.json --out "$OUT/results.json"
"$BIN" eval --ground-truth "$DATA/ground_truth.json" --proposals "$OUT/results.json" --json > "$OUT/metrics.json"
"$PY" - "$DATA" "$OUT" "$start" "$end" <<'PYEOF'
import json, os, sys
sys.path.insert(0, "models")
from evaluate import baseline_proposals, write_results
data, out, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
gt = json.load(open(os.path.join(data, "ground_truth.json")))
write_results(baseline_proposals(gt), os.path.join(out, "baseline_results.json"))
seconds = sum(v["duration_second"] for v in gt["database"].values())
m = json.load(open(os.path.join(out, "metrics.json")))
m["video_seconds"] = seconds
m["wall_seconds"] = round(t1 - t0, 2)
m["real_time_factor"] = round(seconds / (t1 - t0), 1)
json.dump(m, open(os.path.join(out, "metrics.json"), "w"))
PYEOF
"$BIN" eval --ground-truth "$DATA/ground_truth.json" --proposals "$OUT/baseline_results.json" --json > "$OUT/baseline_metrics.json"
echo "pipeline: $(cat "$OUT/metrics.json")"
echo "baseline: $(cat "$OUT/baseline_metrics.json")"
