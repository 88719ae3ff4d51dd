#!/usr/bin/env bash
# The agents results/quick/ did not run on jaco (apt, diayn, metra) pre-train on jaco and fine-tune
# on jaco_reach_top_left at the full quick preset (hidden 256, batch 256, 20k reward-free frames,
# then 30k fine-tuning frames from the 20k snapshot). Reduced scale on a 2-core CPU; NOT the paper
# protocol. One process, one thread.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
common="preset=quick device=cpu seed=1 run_root=runs/jaco_quick snapshot_dir=models/jaco_quick"
python pretrain.py -m $common agent=apt,diayn,metra domain=jaco
python finetune.py -m $common agent=apt,diayn,metra task=jaco_reach_top_left
