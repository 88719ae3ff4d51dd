#!/usr/bin/env bash
# The commands behind results/skills/. Reduced scale: preset=quick (hidden 256, batch 256, 20k
# pre-training frames; snapshots here at 5k, 10k, 15k and 20k) on a 2-core CPU, one process per
# core, one thread each; NOT the paper protocol. Snapshots (1.8-3.7 MB each) stay outside the
# repository ($out/models); each run's config.yaml, train.csv and console log are copied to runs/.
#
#   results/skills/run.sh [STEP...]     steps 1-6 below (default: all)
#
# The walker runs of DIAYN, CIC and BeCL are also the pre-training of results/newer_methods/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
out=${OUT:-/work/scratch/q5}
steps=${*:-1 2 3 4 5 6}
walker_agents="diayn metra cic aps becl"
quadruped_agents="diayn metra cic aps"
runs_of() {  # runs_of DOMAIN "AGENTS" "SEEDS": the pre-training run directories
  for a in $2; do for s in $3; do echo $out/runs/quick/pretrain/states/$1/$a/seed_$s; done; done
}

for step in $steps; do case $step in
1)  # Pre-training: seeds 1-2 of each method on walker (DIAYN, CIC and BeCL also seed 3, for
    # results/newer_methods/), seed 1 on quadruped; two processes at a time, one per core.
    for domain in walker quadruped; do
      agents=$walker_agents seeds="1 2"; [ $domain = quadruped ] && agents=$quadruped_agents seeds=1
      for agent in $agents; do for seed in $seeds; do
        nice -n 15 python pretrain.py preset=quick device=cpu threads=1 use_tb=false seed=$seed agent=$agent domain=$domain \
          'pretrain_snapshots=[5000,10000,15000,20000]' run_root=$out/runs snapshot_dir=$out/models \
          > $out/logs/pre_${domain}_${agent}_s$seed.log 2>&1
      done; done
    done ;;
2)  # The galleries, one call per domain: 16 skills per snapshot, one episode each, every rollout
    # from the first reset of the domain's primal task with seed 0; comparison page index.html.
    # (The quadruped call wrote to $out/gallery_quadruped, copied here; its console lists those paths.)
    nice -n 15 python -m urlb.tools.skills $(runs_of walker "$walker_agents" "1 2") --out results/skills/gallery_walker --html \
      > results/skills/walker_console.txt 2>&1
    nice -n 15 python -m urlb.tools.skills $(runs_of quadruped "$quadruped_agents" 1) --out results/skills/gallery_quadruped \
      --html > results/skills/quadruped_console.txt 2>&1 ;;
3)  # Videos of DIAYN's and METRA's 20k-frame walker snapshots: fixed camera, every 8th step, labelled tiles.
    nice -n 15 python -m urlb.tools.skills $out/runs/quick/pretrain/states/walker/{diayn,metra}/seed_1 --snapshots 20000 \
      --video --camera fixed --every 8 --out results/skills/videos --html > results/skills/videos_console.txt 2>&1 ;;
4)  # Same snapshot and skill, same end point: CIC seed 1 on walker at 20k frames alone, in two
    # calls, against the same run's rows in step 2's walker call (where it came after other runs).
    for call in a b; do
      nice -n 15 python -m urlb.tools.skills $out/runs/quick/pretrain/states/walker/cic/seed_1 --snapshots 20000 \
        --out $out/repro_$call > /dev/null 2>&1
    done
    python results/skills/same_end_points.py $out/repro_a $out/repro_b results/skills/gallery_walker \
      > results/skills/reproducible.txt ;;
5)  # finetune.py snapshot_ts=N as typed, in a folder whose models/ holds one quick-preset snapshot
    # (METRA, walker, seed 1, 10k frames); stopped after 100 s (the paper preset's 100k frames).
    rm -rf $out/typed && mkdir -p $out/typed/models/states/walker/metra/1
    cp $out/models/states/walker/metra/1/snapshot_10000.pt $out/typed/models/states/walker/metra/1/
    (cd $out/typed && echo "\$ cd $out/typed   # models/: one quick-preset snapshot (METRA, walker, seed 1, 10k frames)" \
      && echo "\$ timeout 100 python finetune.py snapshot_ts=10000" \
      && nice -n 15 timeout 100 python "$OLDPWD/finetune.py" snapshot_ts=10000) > results/skills/finetune_as_typed.txt 2>&1 || true ;;
6)  # Run records.
    for run in $(runs_of walker "$walker_agents" "1 2") $(runs_of quadruped "$quadruped_agents" 1); do
      rel=${run#$out/runs/quick/pretrain/states/}
      domain=${rel%%/*} agent=$(basename $(dirname $rel)) seed=${rel##*seed_}
      mkdir -p results/skills/runs/$rel
      cp $run/config.yaml $run/train.csv results/skills/runs/$rel/
      cp $out/logs/pre_${domain}_${agent}_s$seed.log results/skills/runs/$rel/pretrain_console.txt
    done ;;
esac; done
