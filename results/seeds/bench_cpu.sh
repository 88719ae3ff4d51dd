#!/bin/bash
# Frames per CPU-second, one thread: e5e59b5 (seed-stacked layers) and this code, alternating.
BASE=${BASE:-/work/scratch/i22_base}; NEW=${NEW:-$(pwd)}; OUT=${OUT:-$NEW/results/seeds}
export MUJOCO_GL=egl OMP_NUM_THREADS=1
for round in 1 2; do
  for tree in base:$BASE new:$NEW; do
    name=${tree%%:*}; dir=${tree#*:}
    (cd $dir && PYTHONPATH=$dir python $NEW/results/seeds/bench_cpu.py $OUT/bench_cpu_${name}_$round.json > /dev/null)
  done
done
