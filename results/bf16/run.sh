#!/usr/bin/env bash
# bf16 versus fp32 learning check at the quick preset (reduced scale, 2-core CPU).
# fp32 counterparts are the runs of results/quick/run.sh (ddpg walker_stand seeds 1,2;
# diayn walker pre-training seed 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
common="preset=quick device=cpu precision=bf16 run_root=runs_bf16 snapshot_dir=models_bf16 hydra/launcher=local hydra.launcher.n_jobs=2"
python finetune.py -m $common agent=ddpg task=walker_stand seed=1,2
python pretrain.py $common agent=diayn domain=walker seed=1
