#!/usr/bin/env bash
# The commands behind results/newer_methods/. Reduced scale: preset=quick (hidden 256, batch 256,
# 2,000 seed frames), 20k reward-free frames on walker, then 30k fine-tuning frames on
# walker_stand from the 20k snapshot; seeds 1-2; one thread per process, two processes at a time
# on a 2-core CPU; NOT the paper protocol. The pre-training runs are also the walker runs of
# results/skills/ (hence the snapshots at 5k-20k). runs/ holds each run's config.yaml, train.csv
# and eval.csv; `python results/newer_methods/table.py` prints the table of README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
out=${OUT:-/work/scratch/q5}
for seed in 1 2; do
  for agent in diayn cic becl; do
    nice -n 15 python pretrain.py preset=quick device=cpu threads=1 use_tb=false seed=$seed agent=$agent domain=walker \
      'pretrain_snapshots=[5000,10000,15000,20000]' run_root=$out/runs snapshot_dir=$out/models
    nice -n 15 python finetune.py preset=quick device=cpu threads=1 use_tb=false seed=$seed agent=$agent task=walker_stand \
      snapshot_ts=20000 run_root=$out/runs snapshot_dir=$out/models
  done
done
# CeSD: the same two commands with agent=cesd (not run: see README.md).
for run in $out/runs/quick/pretrain/states/walker/{diayn,cic,becl}/seed_* \
           $out/runs/quick/finetune/states/walker_stand/{diayn,cic,becl}/snapshot_20000/seed_*; do
  rel=${run#$out/runs/quick/}
  mkdir -p results/newer_methods/runs/$rel
  cp $run/config.yaml $run/train.csv $run/eval.csv results/newer_methods/runs/$rel/ 2>/dev/null || true
done
