#!/usr/bin/env bash
# The exact commands behind results/quick/. Reduced scale: preset=quick (hidden 256, batch 256,
# 20k pre-training frames, 30k fine-tuning frames) on a 2-core CPU; NOT the paper protocol.
# Two processes at a time (joblib launcher), one thread each.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
common="preset=quick device=cpu hydra/launcher=local hydra.launcher.n_jobs=2"
python pretrain.py -m $common agent=rnd,cic domain=walker,jaco seed=1,2
python pretrain.py -m $common agent=apt,diayn,metra domain=walker seed=1
python finetune.py -m $common agent=rnd,cic,ddpg task=walker_stand,jaco_reach_top_left seed=1,2
python finetune.py -m $common agent=apt,diayn,metra task=walker_stand seed=1
# APT on raw states (agent.rep=state): the variant whose reward is the state-space kNN distance.
python pretrain.py preset=quick device=cpu agent=apt agent.rep=state domain=walker seed=1 run_root=runs/apt_state snapshot_dir=models/apt_state
# Each method's own objective and state coverage, from the pre-training runs above.
python -m urlb.tools.objectives runs/quick/pretrain/states/walker runs/apt_state --coverage-steps 2000
# METRA for 100k frames (5x the quick budget): does phi's displacement along z grow with time?
python pretrain.py preset=quick device=cpu agent=metra domain=walker seed=1 num_train_frames=100000 snapshots=[100000] run_root=runs/metra_100k snapshot_dir=models/metra_100k
# APT (ICM representation): coverage in raw states and in its own learned representation
# (run later, over the copied run directory; its snapshot is read from snapshot_dir in config.yaml).
python -m urlb.tools.objectives results/quick/runs/pretrain/states/walker/apt --coverage-steps 2000
