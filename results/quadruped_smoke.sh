#!/usr/bin/env bash
# Every agent pre-trains and fine-tunes on quadruped (the domain results/quick/ did not cover),
# at the quick preset's network sizes but only 3k + 3k frames: a check that the pipeline runs,
# not a learning result.
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
short="preset=quick device=cpu num_seed_frames=1000 eval_every_frames=3000 num_eval_episodes=2 run_root=runs/quadruped_smoke snapshot_dir=models/quadruped_smoke"
python pretrain.py -m $short agent=rnd,apt,diayn,cic,metra domain=quadruped num_train_frames=3000 snapshots=[3000]
python finetune.py -m $short agent=rnd,apt,diayn,cic,metra task=quadruped_jump num_train_frames=3000 snapshot_ts=3000
