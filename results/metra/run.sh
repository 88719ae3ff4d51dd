#!/usr/bin/env bash
# METRA on walker at the quick preset's network sizes: which skill space learns at a CPU budget?
# Reduced scale (hidden 256, batch 256, 50k-200k reward-free frames) on a 2-core CPU; NOT the paper
# protocol. Runs were started side by side, one thread each. The objective is measured afterwards
# on each snapshot by rolling out 64 random skills (python -m urlb.tools.objectives, see objectives.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
common="preset=quick device=cpu agent=metra domain=walker"
fifty="num_train_frames=50000 snapshots=[10000,25000,50000]"
# skill dimension x skill period (steps a skill is held), 50k frames each
python pretrain.py $common seed=1 agent.skill_dim=2 agent.update_skill_every_step=50 $fifty run_root=runs/metra_d2e50 snapshot_dir=models/metra_d2e50
python pretrain.py $common seed=2 agent.skill_dim=2 agent.update_skill_every_step=50 $fifty run_root=runs/metra_d2e50s2 snapshot_dir=models/metra_d2e50s2
python pretrain.py $common seed=1 agent.skill_dim=2 agent.update_skill_every_step=200 $fifty run_root=runs/metra_d2e200 snapshot_dir=models/metra_d2e200
python pretrain.py $common seed=1 agent.skill_dim=4 agent.update_skill_every_step=50 $fifty run_root=runs/metra_d4e50 snapshot_dir=models/metra_d4e50
python pretrain.py $common seed=1 agent.skill_dim=16 agent.update_skill_every_step=50 $fifty run_root=runs/metra_d16e50 snapshot_dir=models/metra_d16e50
# the previous default (16 dimensions, 200 steps) for longer; this run was stopped at 160k frames
python pretrain.py $common seed=1 agent.skill_dim=16 agent.update_skill_every_step=200 num_train_frames=200000 \
  snapshots=[25000,50000,100000,150000,200000] checkpoint_every_frames=25000 run_root=runs/metra_200k snapshot_dir=models/metra_200k
python -m urlb.tools.objectives runs/metra_d2e50 runs/metra_d2e50s2 runs/metra_d2e200 runs/metra_d4e50 runs/metra_d16e50 runs/metra_200k --coverage-steps 2000
# Fine-tuning from the 2-dim, 50-step snapshots at 50k frames on walker_stand (30k frames)
python finetune.py preset=quick device=cpu agent=metra task=walker_stand seed=1 snapshot_ts=50000 run_root=runs/metra_d2e50 snapshot_dir=models/metra_d2e50
python finetune.py preset=quick device=cpu agent=metra task=walker_stand seed=2 snapshot_ts=50000 run_root=runs/metra_d2e50s2 snapshot_dir=models/metra_d2e50s2
# After the fidelity change (issue 14): METRA's defaults are now its code's (constraint
# 1 - mean over dims of dphi^2, one-step reward after phi's step). The default skill space
# (2 dims, 50 steps) measured again, 50k frames, one run at a time (nice 10, one thread);
# run directory copied to runs_fidelity_mean/, objectives in objectives_fidelity_mean.txt.
python pretrain.py preset=quick device=cpu domain=walker seed=1 agent=metra num_train_frames=50000 snapshots=[10000,25000,50000] run_root=runs/fidelity_metra snapshot_dir=models/fidelity_metra
python -m urlb.tools.objectives runs/fidelity_metra --coverage-steps 2000
