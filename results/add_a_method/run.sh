#!/bin/bash
# The checker on every built-in method, on the worked example of docs/add-a-method.md and on
# broken variants of it; then the example pre-trained and fine-tuned through agent= at tiny sizes.
# Run from the repository root: bash results/add_a_method/run.sh
R=$(pwd); OUT=$R/results/add_a_method; W=${W:-/work/scratch/add_a_method}
export MUJOCO_GL=egl OMP_NUM_THREADS=1 PYTHONPATH=$R:$OUT
for agent in rnd apt diayn cic metra icm disagreement proto smm aps; do
  python -m urlb.tools.check_agent $agent; echo "exit code $?"
done > $OUT/check_builtin.txt 2>&1
python -m urlb.tools.check_agent my_package.my_method:MyAgent > $OUT/check_my_method.txt 2>&1; echo "exit code $?" >> $OUT/check_my_method.txt
for cls in ShapeBug NanLoss MissingKey FlatReward MutatesBatch NumpyNoise; do
  echo "\$ urlb-check-agent my_package.broken:$cls --obs-types=states"
  python -m urlb.tools.check_agent my_package.broken:$cls --obs-types=states; echo "exit code $?"
done > $OUT/check_broken.txt 2>&1
O="preset=quick device=cpu use_tb=false agent.hidden_dim=32 batch_size=32 replay_buffer_size=3000 num_seed_frames=500 num_eval_episodes=1 threads=1 run_root=$W/runs snapshot_dir=$W/models"
rm -rf $W; mkdir -p $W; cd $W
python $R/pretrain.py agent=my_package.my_method:MyAgent domain=walker $O num_train_frames=2000 eval_every_frames=1000 snapshots=[2000] > $OUT/pretrain.txt 2>&1
python $R/finetune.py agent=my_package.my_method:MyAgent task=walker_stand $O num_train_frames=2000 eval_every_frames=1000 snapshot_ts=2000 > $OUT/finetune.txt 2>&1
python $R/pretrain.py agent=my_package.broken:FlatReward domain=walker $O num_train_frames=2000 snapshots=[2000] > $OUT/pretrain_broken.txt 2>&1; echo "exit code $?" >> $OUT/pretrain_broken.txt
mkdir -p $OUT/runs && cp -r $W/runs/* $OUT/runs/ && rm -rf $(find $OUT/runs -name .hydra) && find $OUT/runs -type f ! -name eval.csv ! -name train.csv ! -name config.yaml -delete && find $OUT/runs -type d -empty -delete
