#!/usr/bin/env bash
# Re-measurement after issue 14 (public code's behaviour by default). Reduced scale:
# preset=quick (hidden 256, batch 256, 2k seed frames) on a shared 2-core CPU, one run at a time,
# one thread, nice 10; NOT the paper protocol. (Run in this order: rnd, metra, apt, cic, diayn.)
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
common="preset=quick device=cpu domain=walker seed=1"
run() { python pretrain.py $common agent=$1 run_root=runs/fidelity snapshot_dir=models/fidelity; }
[ "${SKIP_RND:-0}" = 1 ] || run rnd
# METRA's default skill space (2 dims, 50 steps) under the mean constraint, 50k frames
python pretrain.py $common agent=metra num_train_frames=50000 snapshots=[10000,25000,50000] run_root=runs/fidelity_metra snapshot_dir=models/fidelity_metra
for agent in apt cic diayn; do run $agent; done
python -m urlb.tools.objectives runs/fidelity/quick/pretrain/states/walker --coverage-steps 2000
python -m urlb.tools.objectives runs/fidelity_metra --coverage-steps 2000
# APT with only the rewarded state changed back to s_{t+n} (agent.reward_obs=next_obs): is the
# low coverage above from rewarding s_t?
python pretrain.py $common agent=apt agent.reward_obs=next_obs run_root=runs/fidelity_apt_next snapshot_dir=models/fidelity_apt_next
python -m urlb.tools.objectives runs/fidelity_apt_next --coverage-steps 2000
# Fine-tuning with URLB's init_from (encoder, actor, critic trunk) from the rnd 20k snapshot, walker_stand, 30k frames
python finetune.py preset=quick device=cpu seed=1 agent=rnd task=walker_stand snapshot_ts=20000 run_root=runs/fidelity snapshot_dir=models/fidelity
# APT with URLB's knn_rms on (running mean), and with every earlier APT setting (running std,
# reward on s_{t+n}, ICM on one-step pairs) on the new backbone; objectives of the three variants
python pretrain.py $common agent=apt agent.knn_rms=true run_root=runs/fidelity_apt_rms snapshot_dir=models/fidelity_apt_rms
python pretrain.py $common agent=apt agent.knn_rms=true agent.knn_rms_stat=std agent.reward_obs=next_obs agent.icm_next=one_step run_root=runs/fidelity_apt_old snapshot_dir=models/fidelity_apt_old
python -m urlb.tools.objectives runs/fidelity_apt_rms runs/fidelity_apt_old --coverage-steps 2000
