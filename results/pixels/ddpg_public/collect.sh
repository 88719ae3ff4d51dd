#!/bin/bash
# Copy each finished pixel run's evaluation log into eval/<group>/seed_N.csv (groups ours1, pub1).
# Usage: results/pixels/ddpg_public/collect.sh RUNS   (RUNS/ours: our run root; RUNS/pub/seed_N: public run dirs)
runs=$1; here=$(dirname "$0")
for f in "$runs"/ours/paper/finetune/pixels/walker_stand/ddpg/snapshot_0/seed_*/eval.csv "$runs"/pub/seed_*/eval.csv; do
  [ -e "$f" ] || continue
  group=ours1; case $f in "$runs"/pub/*) group=pub1;; esac
  [ "$(wc -l < "$f")" -ge 4 ] && mkdir -p "$here/eval/$group" && cp "$f" "$here/eval/$group/$(basename "$(dirname "$f")").csv"
done
