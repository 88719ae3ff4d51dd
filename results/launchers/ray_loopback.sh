#!/usr/bin/env bash
# The real launch behind results/launchers/ray_loopback.txt: the Ray preset as it is
# (hydra.launcher.ray.init.address=null): a two-job sweep that starts Ray for itself on
# 127.0.0.1; `ss -ltnp` sampled while it runs, the Ray processes listed after it; then a sweep
# pointed at a head that is gone (an address record left behind, as a head killed by a signal
# leaves it) fails at once. Run from the repository root with ray installed (pip install -e ".[ray]"):
#   bash results/launchers/ray_loopback.sh /tmp/urlb-launchers > results/launchers/ray_loopback.txt 2>&1
set -u
W=${1:-/tmp/urlb-launchers}/ray_loopback
rm -rf "$W" && mkdir -p "$W"
export MUJOCO_GL=egl OMP_NUM_THREADS=1
python -c "import ray, importlib.metadata as m, sys; print('python', sys.version.split()[0], '| ray', ray.__version__, '| hydra-ray-launcher', m.version('hydra-ray-launcher'))"
ARGS=(-m hydra/launcher=ray hydra.launcher.ray.remote.num_gpus=0 hydra.launcher.ray.remote.num_cpus=1
      seed=1,2 preset=quick agent=rnd domain=jaco num_train_frames=500 num_seed_frames=250 eval_every_frames=250
      "snapshots=[500]" agent.hidden_dim=32 batch_size=32 num_eval_episodes=1 device=cpu use_tb=false
      "run_root=$W/runs" "snapshot_dir=$W/models")
echo "$ python pretrain.py ${ARGS[*]}"
date -u
python pretrain.py "${ARGS[@]}" > "$W/sweep.log" 2>&1 &
SWEEP=$!
: > "$W/ss.txt"
while kill -0 "$SWEEP" 2>/dev/null; do ss -ltnpH | grep -E 'raylet|gcs_server|ray::' >> "$W/ss.txt"; sleep 0.5; done
wait "$SWEEP"; echo "sweep exit code: $?"
grep -E "Started a local Ray instance|Ray Launcher is launching|Initializing ray" "$W/sweep.log" | sed 's/\x1b\[[0-9;]*m//g'
echo; echo "listening sockets of Ray's processes seen during the sweep (local address, process; ss -ltnp):"
awk '{print $4, $6}' "$W/ss.txt" | sed -E 's/users:\(\("([^"]+)",pid=[0-9]+,fd=[0-9]+\)\)/\1/' | sort -u
echo "of which not on the loopback address: $(awk '{print $4}' "$W/ss.txt" | grep -v -E '^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]|\[::1\]):' | sort -u | wc -l)"
# Idle workers notice the raylet is gone and exit on their own, slower on a loaded machine.
for i in $(seq 0 180); do [ "$(pgrep -c -f 'raylet|gcs_server|ray::')" = 0 ] && break; sleep 1; done
echo "Ray processes left after the sweep: $(pgrep -c -f 'raylet|gcs_server|ray::') (checked until none, $i s)"
for seed in 1 2; do echo "seed $seed eval.csv frames: $(cut -d, -f1 "$W/runs/quick/pretrain/states/jaco/rnd/seed_$seed/eval.csv" | tail -n +2 | tr '\n' ' ')"; done

echo; echo "# a head that is gone: its address record left behind (RAY_TMPDIR=$W/tmp)"
mkdir -p "$W/tmp/ray" && echo "127.0.0.1:6399" > "$W/tmp/ray/ray_current_cluster"
echo "$ RAY_TMPDIR=$W/tmp python pretrain.py ${ARGS[*]} hydra.launcher.ray.init.address=auto"
START=$(date +%s)
RAY_TMPDIR=$W/tmp python pretrain.py "${ARGS[@]}" hydra.launcher.ray.init.address=auto 2>&1 | grep -E "^error:"
echo "sweep exit code: ${PIPESTATUS[0]} ($(( $(date +%s) - START )) s)"
date -u
