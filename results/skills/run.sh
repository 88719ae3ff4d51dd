#!/usr/bin/env bash
# The commands behind results/skills/. Reduced scale: preset=quick (hidden 256, batch 256, 20k
# pre-training frames; snapshots here at 5k, 10k, 15k and 20k) on a shared 2-core CPU; NOT the
# paper protocol. Snapshots (1.8-3.7 MB each) stay outside the repository ($out/models); each
# run's config.yaml, train.csv and console log are copied to runs/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl OMP_NUM_THREADS=1
out=/work/scratch/i26
snapshots='pretrain_snapshots=[5000,10000,15000,20000]'

# 1. Pre-training, one run at a time (nice 10, one thread): seed 1 of each method on both domains.
#    APS on quadruped was not run: the shared CPU (load average 10-16) left no time for it.
for run in walker:diayn walker:metra walker:cic walker:aps quadruped:diayn quadruped:metra quadruped:cic; do
  domain=${run%%:*} agent=${run##*:}
  nice -n 10 python pretrain.py preset=quick device=cpu agent=$agent domain=$domain seed=1 threads=1 use_tb=false \
    "$snapshots" run_root=$out/runs snapshot_dir=$out/models > $out/log_${domain}_${agent}_s1.txt 2>&1
done

# 2. The gallery, one call per domain (walker's while quadruped pre-trained): 16 skills per
#    snapshot, one episode each, all from the first reset of the domain's primal task with seed 0;
#    the comparison page is gallery_<domain>/index.html.
for domain in walker quadruped; do
  nice -n 10 python -m urlb.tools.skills $out/runs/quick/pretrain/states/$domain --out results/skills/gallery_$domain --html \
    > results/skills/${domain}_console.txt 2>&1
done

# 3. Videos of the walker runs' last snapshots: fixed camera, every 8th step, labelled tiles.
nice -n 10 python -m urlb.tools.skills $out/runs/quick/pretrain/states/walker/{diayn,metra}/seed_1 --snapshots 20000 \
  --video --camera fixed --every 8 --out results/skills/videos --html > results/skills/videos_console.txt 2>&1

# 4. Same snapshot and skill, same end point: CIC seed 1 on walker at 20k frames alone, twice
#    (two calls), against the same run's rows in step 2's walker call (where it came after APS's run).
for call in a b; do
  nice -n 10 python -m urlb.tools.skills $out/runs/quick/pretrain/states/walker/cic/seed_1 --snapshots 20000 \
    --out $out/repro_$call > /dev/null 2>&1
done
python - > results/skills/reproducible.txt <<EOF
import csv
def ends(path):
    with open(path) as f:
        return [(r["skill_label"], r["start_state"], r["final_torso_x"], r["final_torso_height"])
                for r in csv.DictReader(f) if r["snapshot_frames"] == "20000"]
a, b = ends("$out/repro_a/walker/cic/seed_1/skills.csv"), ends("$out/repro_b/walker/cic/seed_1/skills.csv")
g = ends("results/skills/gallery_walker/walker/cic/seed_1/skills.csv")
print("cic on walker, seed 1, snapshot 20000: final torso x and height (m) per skill, start seed 0")
print("skill      start     call A (x, height)   call B (x, height)   walker gallery call, after APS's run")
for (s, st, xa, ha), (_, _, xb, hb), (_, _, xg, hg) in zip(a, b, g):
    print(f"{s:<10} {st}  {xa:>9} {ha:>8}   {xb:>9} {hb:>8}   {xg:>9} {hg:>8}")
print("identical in all three:", a == b == g)
EOF

# 5. finetune.py snapshot_ts=N as typed, in a folder whose models/ holds one quick-preset snapshot
#    (METRA, walker, seed 1, 10k frames); stopped after 100 s (the paper preset's 100k frames).
mkdir -p $out/typed/models/states/walker/metra/1
cp $out/models/states/walker/metra/1/snapshot_10000.pt $out/typed/models/states/walker/metra/1/
(cd $out/typed && nice -n 10 timeout 100 python "$OLDPWD/finetune.py" snapshot_ts=10000) \
  > results/skills/finetune_as_typed.txt 2>&1 || true

# 6. Run records.
for run in $out/runs/quick/pretrain/states/*/*/seed_*; do
  rel=${run#$out/runs/quick/pretrain/states/}
  mkdir -p results/skills/runs/$rel
  cp $run/config.yaml $run/train.csv results/skills/runs/$rel/
  cp $out/log_$(dirname $rel | tr / _)_s1.txt results/skills/runs/$rel/pretrain_console.txt
done

# tensorboard_hook/: the TensorBoard hook's cost, measured on a METRA walker run made with an
# earlier backbone (before the fidelity defaults) and an earlier gallery; kept for that measurement:
#   nice -n 10 /usr/bin/time -v python pretrain.py preset=quick device=cpu agent=metra domain=walker seed=1 \
#     threads=1 use_tb=true run_root=$out/runs snapshot_dir=$out/models
