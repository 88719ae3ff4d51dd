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
# After two changes (grid selection takes turns between candidates; METRA defaults 2-dim skills
# held 50 steps): CIC fine-tuned again from the same snapshot, METRA pre-trained and fine-tuned again.
python finetune.py preset=quick device=cpu seed=1 agent=cic task=quadruped_walk run_root=runs/quadruped_quick_after snapshot_dir=models/quadruped_quick
python pretrain.py preset=quick device=cpu seed=1 agent=metra domain=quadruped run_root=runs/quadruped_quick_after snapshot_dir=models/quadruped_quick_after
python finetune.py preset=quick device=cpu seed=1 agent=metra task=quadruped_walk run_root=runs/quadruped_quick_after snapshot_dir=models/quadruped_quick_after
