#!/usr/bin/env bash
# The real launch behind results/launchers/slurm_local.txt: a two-job sweep through the submitit
# launcher's local executor (preset slurm_local). Mid-run, seed 1's job gets SIGUSR2 (SLURM's
# time-limit / pre-emption signal for submitit) and seed 2's job SIGTERM; then the same sweep is
# submitted again. Run from the repository root:
#   bash results/launchers/slurm_local.sh /tmp/urlb-launchers > results/launchers/slurm_local.txt 2>&1
set -u
W=${1:-/tmp/urlb-launchers}/slurm_local
rm -rf "$W" && mkdir -p "$W"
export MUJOCO_GL=egl OMP_NUM_THREADS=1
ARGS=(-m hydra/launcher=slurm_local seed=1,2 preset=quick agent=rnd domain=jaco num_train_frames=1000
      num_seed_frames=250 eval_every_frames=500 "snapshots=[1000]" checkpoint_every_frames=250
      agent.hidden_dim=32 batch_size=32 replay_buffer_size=5000 num_eval_episodes=1 device=cpu use_tb=false
      "run_root=$W/runs" "snapshot_dir=$W/models")
RUNS=$W/runs/quick/pretrain/states/jaco/rnd
SUBMITIT=$W/runs/quick/pretrain/.submitit
last_frame() { tail -n 1 "$1/train.csv" 2>/dev/null | cut -d, -f1; }
job_id() { sed -n "s/^    id: '\([0-9]*\)'$/\1/p" "$1/.hydra/hydra.yaml" 2>/dev/null; }

echo "$ python pretrain.py ${ARGS[*]}    # sweep 1, in the background"
date -u
python pretrain.py "${ARGS[@]}" > "$W/sweep1.log" 2>&1 &
SWEEP=$!
declare -A SIG=([1]=USR2 [2]=TERM) DONE=()
for _ in $(seq 2400); do
  for seed in 1 2; do
    [ -n "${DONE[$seed]:-}" ] && continue
    d=$RUNS/seed_$seed; f=$(last_frame "$d"); jid=$(job_id "$d")
    if [[ "$f" =~ ^[0-9]+$ ]] && [ "$f" -ge 500 ] && [ -f "$d/checkpoint.pt" ] && [ -n "$jid" ]; then
      task=$(cat /proc/$jid/task/$jid/children)
      cp "$d/train.csv" "$W/seed_${seed}_train_before.csv"
      if [ "${SIG[$seed]}" = USR2 ]; then target=$task; what="its submitit task"; else target=$jid; what="its controller, which forwards it to the task"; fi
      echo "$ kill -${SIG[$seed]} $target    # seed $seed: submitit job $jid, $what; train.csv at frame $f"
      kill -"${SIG[$seed]}" "$target"
      DONE[$seed]=1
    fi
  done
  [ ${#DONE[@]} -eq 2 ] && break
  sleep 0.1
done
wait $SWEEP; echo "sweep 1 exit code: $?"
date -u
echo "--- sweep 1: why it failed"; grep -A1 "UncompletedJobError:" "$W/sweep1.log"
for seed in 1 2; do
  jid=$(job_id "$RUNS/seed_$seed")
  echo "--- seed $seed: submitit job $jid stdout (.submitit/$jid/${jid}_0_log.out), submitit's duplicate log lines dropped"
  grep -v '^\[20' "$SUBMITIT/$jid/${jid}_0_log.out"
done

echo; echo "$ python pretrain.py ${ARGS[*]}    # sweep 2: the same command again"
md5sum "$RUNS/seed_1/train.csv" "$RUNS/seed_1/eval.csv" > "$W/seed_1.md5"
python pretrain.py "${ARGS[@]}" > "$W/sweep2.log" 2>&1; echo "sweep 2 exit code: $?"
date -u
echo "--- seed 1 files unchanged by sweep 2:"; md5sum -c "$W/seed_1.md5"
jid=$(job_id "$RUNS/seed_2")
echo "--- seed 2: submitit job $jid stdout"; grep -v '^\[20' "$SUBMITIT/$jid/${jid}_0_log.out"
for seed in 1 2; do
  echo "--- seed $seed: train.csv seen when the signal was sent (frame, step, episode, buffer_size)"
  python - "$W/seed_${seed}_train_before.csv" "$RUNS/seed_$seed/train.csv" "$RUNS/seed_$seed/eval.csv" <<'EOF'
import csv, sys
def rows(p):
    with open(p, newline="") as f:
        return list(csv.DictReader(f))
before, train, evals = rows(sys.argv[1]), rows(sys.argv[2]), rows(sys.argv[3])
show = lambda rs: [(r["frame"], r["step"], r["episode"], r["buffer_size"]) for r in rs]
print(show(before))
print("--- final train.csv (frame, step, episode, buffer_size)")
print(show(train))
frames = [int(float(r["frame"])) for r in train]
print("rows before the signal kept unchanged:", train[:len(before)] == before,
      "| frames strictly increasing (no row twice):", all(a < b for a, b in zip(frames, frames[1:])))
print("--- final eval.csv frames:", [int(float(r["frame"])) for r in evals])
EOF
done
