#!/bin/bash
# Speed of several seeds in one process: this code against e5e59b5 (seed-stacked layers), the same
# commands back to back on the same machine. BASE: a worktree of e5e59b5; NEW: this checkout.
BASE=${BASE:-/work/scratch/i22_base}; NEW=${NEW:-$(pwd)}; OUT=${OUT:-$NEW/results/seeds}
export MUJOCO_GL=egl
lscpu | grep -E "Model name|^CPU\(s\)|Thread|Flags" | sed 's/Flags:.*avx512f.*/Flags: ... avx512f ... (AVX-512)/' > $OUT/bench_machine.txt
for tree in base:$BASE new:$NEW; do
  name=${tree%%:*}; dir=${tree#*:}
  (cd $dir && PYTHONPATH=$dir python -m urlb.tools.bench_seeds --agents ddpg,rnd --sizes tiny,quick --seeds 5 --seconds 8 \
     --json $OUT/bench_seeds_$name.json > $OUT/bench_seeds_$name.txt 2>/dev/null)
done
for round in 1 2; do  # the single-seed update, alternating trees
  for tree in base:$BASE new:$NEW; do
    name=${tree%%:*}; dir=${tree#*:}
    (cd $dir && PYTHONPATH=$dir python -m urlb.tools.bench --agents ddpg,rnd,cic --sizes quick --seconds 8 \
       > $OUT/bench_single_${name}_$round.txt 2>/dev/null)
  done
done
