#!/usr/bin/env bash
# The real launch behind results/launchers/ray.txt: a Ray head that outlives sweeps on one machine
# (docs/runs.md): a head on 127.0.0.1 (`ray start --head`), a two-job sweep joining it
# (hydra.launcher.ray.init.address=auto), then the head stopped with `ray stop`, which also
# removes the address record `auto` reads; the next sweep with address=auto then fails at once
# saying how to start a head. Run from the repository root with
# ray installed (pip install -e ".[ray]"):
#   bash results/launchers/ray.sh /tmp/urlb-launchers > results/launchers/ray.txt 2>&1
set -u
W=${1:-/tmp/urlb-launchers}/ray
rm -rf "$W" && mkdir -p "$W"
RAY=$(dirname "$(command -v python)")/ray
export MUJOCO_GL=egl OMP_NUM_THREADS=1
python -c "import ray, hydra_plugins.hydra_ray_launcher as h, importlib.metadata as m, sys; print('python', sys.version.split()[0], '| ray', ray.__version__, '| hydra-ray-launcher', m.version('hydra-ray-launcher'), '| hydra-core', m.version('hydra-core'), '| cloudpickle', m.version('cloudpickle'))"

echo "$ export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0"
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
HEAD=(start --head --node-ip-address=127.0.0.1 --num-cpus=2 --num-gpus=0 --include-dashboard=false --disable-usage-stats)
echo "$ ray ${HEAD[*]}"
date -u
"$RAY" "${HEAD[@]}" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | grep -E "Local node IP|Ray runtime started"
echo "address record /tmp/ray/ray_current_cluster: $(cat /tmp/ray/ray_current_cluster)"
date -u

ARGS=(-m hydra/launcher=ray hydra.launcher.ray.init.address=auto hydra.launcher.ray.remote.num_gpus=0 hydra.launcher.ray.remote.num_cpus=1
      seed=1,2 preset=quick agent=rnd domain=jaco num_train_frames=500 num_seed_frames=250 eval_every_frames=250
      "snapshots=[500]" agent.hidden_dim=32 batch_size=32 num_eval_episodes=1 device=cpu use_tb=false
      "run_root=$W/runs" "snapshot_dir=$W/models")
echo; echo "$ python pretrain.py ${ARGS[*]}"
START=$(date +%s)
python pretrain.py "${ARGS[@]}" 2>&1 | grep -v -E "ConfigStore schema|deprecated in Hydra|automatic_schema_matching|_run_hydra\(|run_and_report\(|return func\(\)|^$" | sed 's/\x1b\[[0-9;]*m//g'
echo "sweep exit code: ${PIPESTATUS[0]} ($(( $(date +%s) - START )) s)"
for seed in 1 2; do
  d=$W/runs/quick/pretrain/states/jaco/rnd/seed_$seed
  echo "--- seed $seed: $(ls "$d" | tr '\n' ' ')"
  echo "eval.csv:"; cat "$d/eval.csv"
done
ls -l "$W"/models/states/jaco/rnd/*/

echo; echo "$ ray stop"
START=$(date +%s)
"$RAY" stop 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | grep -E "Stopped|stopped|No Ray" | tail -n 2
sleep 2
echo "Ray processes left: $(pgrep -c -f 'raylet|gcs_server|ray::|ray start' || true)"
echo "address record /tmp/ray/ray_current_cluster: $(cat /tmp/ray/ray_current_cluster 2>/dev/null || echo absent)"

echo; echo "$ python pretrain.py ${ARGS[*]}    # again, with no head"
START=$(date +%s)
python pretrain.py "${ARGS[@]}" 2>&1 | grep -E "^error:"
echo "sweep exit code: ${PIPESTATUS[0]} ($(( $(date +%s) - START )) s)"
date -u
