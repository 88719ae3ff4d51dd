#!/bin/bash
# Copy each finished run's evaluation log into eval/<group>/seed_<n>.csv.
# Usage: results/ddpg_public/collect.sh RUNS (the run roots of run_queue.sh)
runs=$1; here=$(dirname "$0")
for g in 1 4; do
  for f in "$runs"/ours$g/paper/finetune/states/walker_stand/ddpg/snapshot_0/seed_*/eval.csv; do
    [ -e "$f" ] || continue; s=$(basename "$(dirname "$f")")
    [ "$(wc -l < "$f")" -ge 8 ] && mkdir -p "$here/eval/ours$g" && cp "$f" "$here/eval/ours$g/$s.csv"
  done
  for f in "$runs"/pub$g/seed_*/eval.csv; do
    [ -e "$f" ] || continue; s=$(basename "$(dirname "$f")")
    [ "$(wc -l < "$f")" -ge 8 ] && mkdir -p "$here/eval/pub$g" && cp "$f" "$here/eval/pub$g/$s.csv"
  done
done
