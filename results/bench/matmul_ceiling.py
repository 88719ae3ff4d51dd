"""How close to the 2048^3 matmul rate can an update get on this machine? For every matrix
product of one update (shapes recorded by the profiler), time that product alone and sum:
the update could not be faster than that sum even if nothing but its matrix products took
time. Usage: PYTHONPATH=. python results/bench/matmul_ceiling.py [agent ...]  (paper sizes,
fp32, CPU; PYTHONPATH only if the project is not pip-installed)."""

from __future__ import annotations

import sys
import time
from collections import Counter

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from urlb.tools.bench_core import build, fill_replay, matmul_gflops

BATCH, HIDDEN = 1024, 1024


def recorded_products(agent, replay) -> Counter:
    """(op, input shapes) -> calls, for aten::mm and aten::addmm in one update."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        agent.update(replay.sample(BATCH), step=10_000)
    calls = Counter()
    for event in prof.events():
        if event.name in ("aten::mm", "aten::addmm"):
            shapes = tuple(tuple(s) for s in event.input_shapes if s)
            calls[(event.name, shapes)] += 1
    return calls


def product_time(op: str, shapes: tuple, repeats: int = 30) -> tuple[float, float]:
    """Median seconds and FLOPs of one product with these shapes."""
    mats = [torch.randn(*s) for s in shapes]
    if op == "aten::addmm":
        bias, a, b = mats
        run = lambda: torch.addmm(bias, a, b)  # noqa: E731
    else:
        a, b = mats
        run = lambda: torch.mm(a, b)  # noqa: E731
    for _ in range(3):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), 2.0 * a.shape[0] * a.shape[1] * b.shape[1]


def main(agents: list[str]) -> None:
    peak = matmul_gflops(torch.float32, torch.device("cpu"))
    print(f"2048^3 fp32 matmul rate: {peak:.0f} GFLOP/s ({torch.get_num_threads()} threads)")
    for name in agents:
        torch.manual_seed(0)
        env, agent, replay = build(name, HIDDEN, torch.device("cpu"), "fp32", capacity=10_000)
        fill_replay(env, replay, agent, 2_000, np.random.default_rng(0))
        for _ in range(2):
            agent.update(replay.sample(BATCH), step=10_000)
        total_time = total_flops = 0.0
        for (op, shapes), count in recorded_products(agent, replay).items():
            seconds, flops = product_time(op, shapes)
            total_time += count * seconds
            total_flops += count * flops
        rate = total_flops / total_time / 1e9
        print(f"{name}: {total_flops / 1e9:.1f} GFLOP in matrix products; each product alone at its own "
              f"shape takes {1e3 * total_time:.0f} ms in sum = {rate:.0f} GFLOP/s = {100 * rate / peak:.0f}% "
              f"of the 2048^3 rate (the ceiling for % matmul)")


if __name__ == "__main__":
    main(sys.argv[1:] or ["ddpg", "cic", "metra"])
