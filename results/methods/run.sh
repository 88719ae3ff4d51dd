#!/usr/bin/env bash
# The exact commands behind results/methods/ (issue 15: ICM, Disagreement, ProtoRL, SMM, APS).
# Reduced scale: preset=quick (hidden 256, batch 256, 20k pre-training frames, 30k fine-tuning
# frames) on a 2-core CPU shared with other jobs; NOT the paper protocol. One process at a time.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
common="preset=quick device=cpu run_root=runs/methods snapshot_dir=models/methods"
nice -n 10 python pretrain.py -m $common agent=icm,disagreement,proto,smm,aps domain=walker seed=1
# Each method's own objective (start vs end of pre-training) and state coverage.
nice -n 10 python -m urlb.tools.objectives runs/methods/quick/pretrain/states/walker --coverage-steps 2000 \
  | tee results/methods/objectives.txt
