#!/usr/bin/env bash
# Rebuild the shipped pixel-to-proposal model from a clean clone: synthetic videos, the
# backbone, features through bmn-edge itself, BMN on them, int8, the demo video, and the
# held-out evaluation (models/README.md, "The pixel model", has the timings).
#   bash models/rebuild_pixel.sh                 # CPU; BMN_MINUTES=30 by default
#   TRAIN_ARGS="--device cuda" bash models/rebuild_pixel.sh
# Needs .venv with models/requirements.txt (python3 -m venv .venv && .venv/bin/pip install -r models/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
W=${BMN_EDGE_WORK:-models/work}   # generated files (models/paths.py)
P=$W/pixel
export BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/bmn-edge}
THREADS=${THREADS:-2}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

stamp "videos"
"$PY" models/synth_video.py --seed 1 --videos 120 --out "$P/train"
"$PY" models/synth_video.py --seed 2 --videos 16 --out "$P/val"
"$PY" models/synth_video.py --seed 3 --videos 24 --out "$P/test"
"$PY" models/synth_video.py --seed 12 --videos 1 --min-snippets 120 --out models/demo/pixels --subset testing

stamp "backbone"
"$PY" models/pixel_backbone.py train --data "$P/train" --val "$P/val" --checkpoint "$P/backbone.pt" --epochs 8
"$PY" models/pixel_backbone.py export --checkpoint "$P/backbone.pt" --calib-data "$P/train" --val "$P/val"

stamp "features (bmn-edge features, the fp32 backbone)"
cargo build --release --bin bmn-edge
for split in train val test; do
  mkdir -p "$P/$split/features" "$P/$split/sidecars"
  for v in "$P/$split"/videos/*.y4m; do
    id=$(basename "$v" .y4m)
    "$BIN" features --video "$v" --backbone models/pixel_backbone_fp32.onnx --threads "$THREADS" \
      --out "$P/$split/features/$id.npy" --sidecar "$P/$split/sidecars/$id.json" 2>/dev/null
  done
done

stamp "BMN"
"$PY" models/train.py --train-data "$P/train" --val-data "$P/val" --out "$P/bmn" --variant paddle \
  --minutes "${BMN_MINUTES:-30}" --threads "$THREADS" ${TRAIN_ARGS:-}
"$PY" models/export.py --checkpoint "$P/bmn/last.pt" --out "$P/onnx/pixel_bmn_op17.onnx"
"$PY" models/quantize.py --onnx "$P/onnx/pixel_bmn_op17.onnx" --calib-data "$P/train" \
  --quantize-conv3d --methods minmax --no-eval
"$BIN" convert "$P/onnx/pixel_bmn_op17.onnx" -o models/pixel_bmn_fp32.edge.onnx
"$BIN" convert "$P/onnx/pixel_bmn_op17_int8_minmax.onnx" -o models/pixel_bmn_int8.edge.onnx

stamp "held-out evaluation (seed 3)"
bash models/pixel_eval.sh models/pixel_backbone_fp32.onnx models/pixel_bmn_fp32.edge.onnx "$P/test" "$P/eval_fp32" "$THREADS"
bash models/pixel_eval.sh models/pixel_backbone_int8.onnx models/pixel_bmn_int8.edge.onnx "$P/test" "$P/eval_int8" "$THREADS"
stamp "done"
