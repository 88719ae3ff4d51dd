#!/usr/bin/env bash
# Every agent pre-trains on quadruped and fine-tunes on quadruped_walk at the full quick preset
# (hidden 256, batch 256, 20k reward-free frames, then 30k fine-tuning frames from the 20k snapshot).
# Reduced scale on a 2-core CPU; NOT the paper protocol. One process, one thread.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
common="preset=quick device=cpu seed=1 run_root=runs/quadruped_quick snapshot_dir=models/quadruped_quick"
python pretrain.py -m $common agent=rnd,apt,diayn,cic,metra domain=quadruped
python finetune.py -m $common agent=ddpg,rnd,apt,diayn,cic,metra task=quadruped_walk  # 20k snapshot (ddpg: from scratch)
