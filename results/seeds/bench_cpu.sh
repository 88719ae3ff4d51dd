#!/bin/bash
# Frames per CPU-second, one thread: e5e59b5 (seed-stacked layers) and this code.
# Round 1 ran the two one after the other; round 2 runs them at the same time, so that both see
# the same load from the machine's other jobs (the ratios of round 2 are the ones to read).
BASE=${BASE:-/work/scratch/i22_base}; NEW=${NEW:-$(pwd)}; OUT=${OUT:-$NEW/results/seeds}
export MUJOCO_GL=egl OMP_NUM_THREADS=1
for tree in base:$BASE new:$NEW; do  # round 1: one after the other
  name=${tree%%:*}; dir=${tree#*:}
  (cd $dir && PYTHONPATH=$dir python $NEW/results/seeds/bench_cpu.py $OUT/bench_cpu_${name}_1.json > /dev/null)
done
for tree in base:$BASE new:$NEW; do  # round 2: at the same time
  name=${tree%%:*}; dir=${tree#*:}
  (cd $dir && PYTHONPATH=$dir python $NEW/results/seeds/bench_cpu.py $OUT/bench_cpu_${name}_2.json > /dev/null) &
done
wait
