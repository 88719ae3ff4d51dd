#!/usr/bin/env bash
# The exact commands behind results/newer_methods/. Reduced scale: preset=quick (hidden 256,
# batch 256, 20k pre-training frames, 30k fine-tuning frames on walker_stand), seed 1 only, on a
# 2-core CPU shared with other jobs, one process at a time, one thread; NOT the paper protocol.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
out=${OUT:-/work/scratch/i23}
common="preset=quick device=cpu threads=1 seed=1 run_root=$out/runs snapshot_dir=$out/models"
for agent in becl cesd; do
  nice -n 10 python pretrain.py $common agent=$agent domain=walker
done
for agent in becl cesd; do
  nice -n 10 python finetune.py $common agent=$agent task=walker_stand
done
# Each method's own objective at the start and end of pre-training, and the fine-tuning table.
python -m urlb.objectives $out/runs/quick/pretrain/states/walker
urlb-aggregate $out/runs/quick/finetune --out results/newer_methods/aggregate --published
