"""Training-loop speed in frames per CPU-second (one torch thread), for a checkout given on
PYTHONPATH: ``PYTHONPATH=TREE python results/seeds/bench_cpu.py OUT.json``.

The machine these figures come from was shared with other jobs (load average 8-13 on 2 cores),
so wall-clock rates were not usable; CPU time of a one-thread process counts the work itself.
urlb.tools.bench's loop is run with its clock replaced by this process's CPU clock."""

import json
import sys
import time
import types

import torch

import urlb.tools.bench as bench

torch.set_num_threads(1)
bench.time = types.SimpleNamespace(perf_counter=time.process_time)
rows = []
for size in ("tiny", "quick"):
    for agent in ("ddpg", "rnd", "cic"):
        for seeds in (1, 5):
            r = bench.bench_agent(agent, size, torch.device("cpu"), "fp32", seconds=6.0, fill_steps=2000, seeds=seeds)
            row = {
                "agent": agent,
                "size": size,
                "seeds": seeds,
                "frames_per_cpu_s": r["frames_per_s"],
                "update_cpu_ms": r["ms_per_update"]["update"],
                "act_cpu_ms": r["ms_per_step"]["act"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
