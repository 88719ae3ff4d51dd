#!/usr/bin/env bash
# The commands behind results/skills/. Reduced scale: preset=quick (hidden 256, batch 256, 20k
# pre-training frames, snapshots at 10k and 20k) on the shared 2-core CPU; NOT the paper protocol.
# The committed quick-preset runs (results/quick, quadruped_quick, jaco_quick) have no snapshot
# files (snapshot_dir=/work/main/models was never committed), so the gallery refuses them
# (committed_runs.txt) and two fresh walker runs were made, one at a time, in the background.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
out=/work/scratch/gallery
# 1. The committed runs: exit 2, one line listing the runs without snapshots.
python -m urlb.tools.skills results/quick/runs results/quadruped_quick/runs results/quadruped_quick/runs_after \
  results/jaco_quick/runs > results/skills/committed_runs.txt 2>&1 || true
# 2. Fresh pre-training (nice 10). METRA with use_tb=true: the TensorBoard hook's cost is in its log.
nice -n 10 python pretrain.py preset=quick device=cpu agent=diayn domain=walker seed=1 threads=1 \
  run_root=$out/runs snapshot_dir=$out/models
nice -n 10 /usr/bin/time -v python pretrain.py preset=quick device=cpu agent=metra domain=walker seed=1 threads=1 use_tb=true \
  run_root=$out/runs snapshot_dir=$out/models
# 3. The run directories (config, CSVs, logs; no checkpoint, no TensorBoard events) are copied here:
mkdir -p results/skills/runs
for agent in diayn metra; do
  src=$out/runs/quick/pretrain/states/walker/$agent/seed_1
  dst=results/skills/runs/walker_$agent
  mkdir -p $dst && cp $src/config.yaml $src/train.csv $src/eval.csv $dst/
done
cp $out/diayn_walker.log results/skills/runs/walker_diayn/pretrain_console.txt
cp $out/metra_walker.log results/skills/runs/walker_metra/pretrain_console.txt  # ends with /usr/bin/time -v
cp -r $out/runs/quick/pretrain/states/walker/metra/seed_1/tb results/skills/runs/walker_metra/
# (tensorboard_skills.txt lists the skills/ tags of those events, read with tensorboard's EventAccumulator)
# 4. The gallery over both runs (snapshots read from snapshot_dir in each config.yaml): 16 skills,
#    figures, CSVs, one tiled video per snapshot (every 8th step) and the HTML pages.
/usr/bin/time -f "wall %e s, cpu %U+%S s" python -m urlb.tools.skills results/skills/runs --video --every 8 --html \
  > results/skills/gallery_console.txt 2>&1  # progress-bar updates thinned afterwards to every 10%
