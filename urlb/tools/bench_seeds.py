"""Several seeds in one process against the same seeds as separate processes:
``python -m urlb.tools.bench --seeds 5`` (or ``python -m urlb.tools.bench_seeds``).

For one agent and size it measures the training loop's aggregate frames/s (all seeds' frames)
of: one single-seed process; S seeds in one process (one agent per seed, stepped together:
urlb.seeds); and S
single-seed processes run the best way this machine allows: one after the other with every
core, or side by side as separate processes with the cores split between them (measured by
running them at once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from urlb.config import resolve_device
from urlb.tools.bench import SIZES, bench_agent, build, fill_replay, matmul_gflops, update_seeds


def _worker_command(agent: str, size: str, seconds: float, threads: int, fill_steps: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "urlb.tools.bench_seeds",
        "--worker",
        f"--agent={agent}",
        f"--size={size}",
        f"--seconds={seconds}",
        f"--threads={threads}",
        f"--fill-steps={fill_steps}",
    ]


def separate_processes(agent: str, size: str, processes: int, threads: int, seconds: float, fill_steps: int) -> float:
    """Summed frames/s of ``processes`` single-seed bench processes started together."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = _worker_command(agent, size, seconds, threads, fill_steps)
    running = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) for _ in range(processes)]
    rates = []
    for proc in running:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"bench worker failed with exit code {proc.returncode}")
        rates.append(json.loads(out.strip().splitlines()[-1])["frames_per_s"])
    return sum(rates)


def compare(agent: str, size: str, seeds: int, seconds: float, device: torch.device, fill_steps: int) -> dict:
    """The three ways of training ``seeds`` seeds, as aggregate frames/s, and the ratios."""
    cores = len(os.sched_getaffinity(0))
    threads = torch.get_num_threads()
    print(f"  {agent} {size}: 1 seed in this process ({threads} threads) ...", file=sys.stderr, flush=True)
    single = bench_agent(agent, size, device, "fp32", seconds, fill_steps=fill_steps)
    print(f"  {agent} {size}: {seeds} seeds in this process ...", file=sys.stderr, flush=True)
    one_process = bench_agent(agent, size, device, "fp32", seconds, fill_steps=fill_steps, seeds=seeds)
    ways = {"one after the other": single["frames_per_s"]}
    processes = min(seeds, cores)
    if processes > 1 and device.type == "cpu":
        split = max(1, cores // processes)
        print(f"  {agent} {size}: {processes} single-seed processes x {split} thread(s) ...", file=sys.stderr)
        ways[f"{processes} at once x {split} thread(s)"] = separate_processes(
            agent, size, processes, split, seconds, fill_steps
        )
    best_way = max(ways, key=ways.get)
    return {
        "agent": agent,
        "size": size,
        "seeds": seeds,
        "cores": cores,
        "single_frames_per_s": single["frames_per_s"],
        "one_process_frames_per_s": one_process["frames_per_s"],
        "separate_frames_per_s": ways,
        "best_separate": best_way,
        "vs_single": one_process["frames_per_s"] / single["frames_per_s"],
        "vs_best_separate": one_process["frames_per_s"] / ways[best_way],
        "update_ms": {
            "single": single["ms_per_update"]["update"],
            "one_process": one_process["ms_per_update"]["update"],
        },
        # the update's floating-point rate: near the machine's matrix-product rate, an update is
        # bound by arithmetic; far below it, by per-operation overhead
        "update_gflops_per_s": {
            "single": single["update_gflops_per_s"],
            "one_process": one_process["update_gflops_per_s"],
        },
        "ops_per_update": {
            "single": ops_per_update(agent, size, 1, device),
            "one_process": ops_per_update(agent, size, seeds, device),
        },
    }


class _OpCounter(TorchDispatchMode):
    """Counts the ATen operations dispatched (on a GPU, roughly the kernels launched)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_update(agent: str, size: str, seeds: int, device: torch.device) -> int:
    """ATen operations of one update of ``seeds`` seeds (optimiser steps and replay sampling
    included): what one process step costs in launches, whatever the seeds' matrix sizes."""
    hidden, batch_size = SIZES[size]
    env_list, agents, replays = build(agent, hidden, device, "fp32", capacity=5_000, seeds=seeds)
    rng = np.random.default_rng(0)
    for env, replay, one in zip(env_list, replays, agents.agents):
        fill_replay(env, replay, one, 1_200, rng)
    update_seeds(agents, replays, batch_size)  # optimiser state exists from here on
    with _OpCounter() as counter:
        update_seeds(agents, replays, batch_size)
    return counter.count


def format_rows(rows: list[dict]) -> str:
    header = (
        "agent | size | seeds | 1 seed frames/s | S in 1 process | S separately (best way) | x 1 seed | x best"
        " | update ms (1 seed, S seeds) | update GFLOP/s (1 seed, S seeds) | ATen ops/update (1 seed, S seeds)"
    )
    lines = [header]
    for r in rows:
        best = r["separate_frames_per_s"][r["best_separate"]]
        lines.append(
            f"{r['agent']} | {r['size']} | {r['seeds']} | {r['single_frames_per_s']:.1f} | "
            f"{r['one_process_frames_per_s']:.1f} | {best:.1f} ({r['best_separate']}) | "
            f"{r['vs_single']:.2f} | {r['vs_best_separate']:.2f} | "
            f"{r['update_ms']['single']:.1f}, {r['update_ms']['one_process']:.1f} | "
            f"{r['update_gflops_per_s']['single']:.0f}, {r['update_gflops_per_s']['one_process']:.0f} | "
            f"{r['ops_per_update']['single']}, {r['ops_per_update']['one_process']}"
        )
    return "\n".join(lines)


def run(agents: list[str], sizes: list[str], seeds: int, seconds: float, device, fill_steps: int) -> list[dict]:
    rows = [compare(a, s, seeds, seconds, device, fill_steps) for s in sizes for a in agents]
    rate = matmul_gflops(torch.float32, device)
    for row in rows:
        row["matmul_gflops"] = rate
    print(
        f"\nseeds side by side ({rows[0]['cores'] if rows else '?'} cores; "
        f"fp32 2048^3 matrix product: {rate:.0f} GFLOP/s):"
    )
    print(format_rows(rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m urlb.tools.bench_seeds", description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="ddpg", help="comma-separated agents")
    parser.add_argument("--sizes", default="quick,paper", help=f"comma-separated, of: {', '.join(SIZES)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fill-steps", type=int, default=4_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    # one single-seed measurement printed as JSON (what separate_processes starts)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--agent", default="ddpg", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="quick", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if args.worker:
        torch.set_num_threads(args.threads)
        row = bench_agent(args.agent, args.size, device, "fp32", args.seconds, fill_steps=args.fill_steps)
        print(json.dumps({"frames_per_s": row["frames_per_s"]}))
        return 0
    if args.seeds < 2:
        parser.error(f"--seeds={args.seeds}: compare at least 2 seeds")
    rows = run(args.agents.split(","), args.sizes.split(","), args.seeds, args.seconds, device, args.fill_steps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
