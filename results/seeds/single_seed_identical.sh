#!/bin/bash
# Single-seed runs of the plain-PyTorch methods against e5e59b5 (seed-stacked methods), and two
# seeds in one process against the same seeds alone: tiny pre-train -> fine-tune, CSVs compared.
# BASE: a worktree of e5e59b5 (git worktree add BASE e5e59b5); NEW: this checkout.
BASE=${BASE:-/work/scratch/i22_base}; NEW=${NEW:-$(pwd)}; OUT=${OUT:-/work/scratch/i22/same}
export MUJOCO_GL=egl OMP_NUM_THREADS=1
O="preset=quick device=cpu use_tb=false agent.hidden_dim=32 batch_size=32 replay_buffer_size=3000 num_seed_frames=500 num_eval_episodes=1 threads=1"
P="num_train_frames=2000 eval_every_frames=1000 snapshots=[2000]"; F="num_train_frames=2000 eval_every_frames=1000 snapshot_ts=2000"
run() {  # tree out agent seeds-args...
  local dir=$1 out=$2 agent=$3; shift 3
  (cd $dir && PYTHONPATH=$dir python pretrain.py agent=$agent domain=walker $O $P "$@" run_root=$out/runs snapshot_dir=$out/models > $out.$agent.pre.log 2>&1)
  (cd $dir && PYTHONPATH=$dir python finetune.py agent=$agent task=walker_stand $O $F "$@" run_root=$out/runs snapshot_dir=$out/models > $out.$agent.ft.log 2>&1)
}
rm -rf $OUT; mkdir -p $OUT
for agent in rnd cic; do
  run $BASE $OUT/base $agent seed=1
  run $NEW $OUT/new $agent seed=1
  run $NEW $OUT/alone $agent seed=2
  run $NEW $OUT/together $agent 'seeds=[1,2]'
done
cmp_runs() {  # a b: eval.csv byte for byte; train.csv without the wall-clock columns fps, total_time
  for f in $(cd $OUT/$1 && find . -name eval.csv | sort); do
    cmp -s $OUT/$1/$f $OUT/$2/$f && echo "identical $f" || echo "DIFFERENT $f"
  done
  for f in $(cd $OUT/$1 && find . -name train.csv | sort); do
    a=$(python -c "import pandas as p,sys; print(p.read_csv(sys.argv[1]).drop(columns=['fps','total_time']).to_csv())" $OUT/$1/$f | md5sum)
    b=$(python -c "import pandas as p,sys; print(p.read_csv(sys.argv[1]).drop(columns=['fps','total_time']).to_csv())" $OUT/$2/$f | md5sum)
    [ "$a" == "$b" ] && echo "identical but fps/total_time $f" || echo "DIFFERENT $f"
  done
}
echo "== seed 1 alone: e5e59b5 against this code"; cmp_runs base new
echo "== seeds=[1,2] in one process against each seed alone (this code)"
mkdir -p $OUT/alone_both && cp -r $OUT/new/runs $OUT/alone_both/ && cp -r $OUT/alone/runs $OUT/alone_both/
cmp_runs together alone_both
