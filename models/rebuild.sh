#!/usr/bin/env bash
# Rebuild the shipped model files from a clean clone (see models/README.md for timings).
#   bash models/rebuild.sh            # CPU; add e.g. "--device cuda" via TRAIN_ARGS
# Needs .venv with models/requirements.txt (python3 -m venv .venv && .venv/bin/pip install -r models/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
W=${BMN_EDGE_WORK:-models/work}   # generated files (models/paths.py)
"$PY" models/synth.py --seed 3 --videos 30 --out "$W/data/test"
"$PY" models/train.py ${TRAIN_ARGS:-}                      # train seed 1, val seed 2 (auto)
"$PY" models/export.py                                      # $W/onnx/bmn_pytorch_op17.onnx
"$PY" models/quantize.py                                    # ..._int8.onnx + report + test metrics (Conv3d float)
"$PY" models/quantize.py --quantize-conv3d --methods minmax --no-eval   # ..._int8_minmax.onnx, all convolutions int8
cargo build --release --bin bmn-edge
target/release/bmn-edge convert "$W"/onnx/bmn_pytorch_op17.onnx -o models/bmn_synth_fp32.edge.onnx
target/release/bmn-edge convert "$W"/onnx/bmn_pytorch_op17_int8_minmax.onnx -o models/bmn_synth_int8.edge.onnx
