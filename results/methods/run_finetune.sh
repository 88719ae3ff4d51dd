#!/usr/bin/env bash
# Fine-tuning of the five new methods from their 20k-frame quick snapshots (results/methods/run.sh)
# on walker_stand, seed 1, then the aggregation of these runs together with the earlier
# quick-preset runs (results/quick/runs: rnd, apt, diayn, cic, metra, ddpg), published rows beside.
# Reduced scale (preset=quick: 30k fine-tuning frames, hidden 256, batch 256); one process at a time.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
common="preset=quick device=cpu run_root=runs/methods snapshot_dir=models/methods"
nice -n 10 python finetune.py -m $common agent=icm,disagreement,proto,smm,aps task=walker_stand seed=1
nice -n 10 python -m urlb.tools.aggregate results/quick/runs runs/methods --out results/methods/aggregate \
  --published | tee results/methods/aggregate_console.txt
