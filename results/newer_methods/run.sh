#!/usr/bin/env bash
# The exact commands behind results/newer_methods/. Reduced scale: preset=quick (hidden 256,
# batch 256, 20k pre-training frames, 30k fine-tuning frames on walker_stand), seed 1 only, on a
# 2-core CPU shared with other jobs, one process at a time, one thread; NOT the paper protocol.
# BeCL's two commands produced runs/ (run directories copied from $out/runs, config, train.csv
# and eval.csv only). CeSD's were started after them and did not finish in the time available.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
out=${OUT:-/work/scratch/i23}
common="preset=quick device=cpu threads=1 seed=1 run_root=$out/runs snapshot_dir=$out/models"
nice -n 10 python pretrain.py $common agent=becl domain=walker
nice -n 10 python finetune.py $common agent=becl task=walker_stand
nice -n 10 python pretrain.py $common agent=cesd domain=walker
nice -n 10 python finetune.py $common agent=cesd task=walker_stand
