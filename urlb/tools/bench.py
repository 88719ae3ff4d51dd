"""Speed and memory benchmark: ``python -m urlb.tools.bench`` (also the ``urlb-bench`` script).

For each agent it runs the real training loop on walker (states) after a warm-up and prints
frames/s, where the time goes (environment, acting, replay sampling, the update and its parts),
peak resident memory, and the update's floating-point rate against this machine's matrix-multiply
rate measured in the same run (only for the precisions asked for). It reports whether this CPU
has native bf16 (see urlb.hardware) and measures replay sampling and replay bytes per transition.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from urlb import envs
from urlb.agents import agent_names, build_seed_agents
from urlb.config import resolve_device
from urlb.ddpg import COMPILE_BACKENDS
from urlb.hardware import bf16_support
from urlb.replay import ReplayBuffer
from urlb.seeds import SeedAgents
from urlb.tools.bench_replay import bench_replay, fill_replay, sync_device

SIZES = {  # name -> (hidden_dim, batch_size); update every 2 steps in both
    "paper": (1024, 1024),
    "quick": (256, 256),
    "tiny": (32, 32),  # for checking that the command works (tests), not for figures
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
UPDATE_PARTS = {  # timed part -> (object attribute path, method)
    "plugin": ("plugin", "update"),  # its own training step and the batch reward
    "critic": (None, "_update_critic"),
    "actor": (None, "_update_actor"),
    "target": (None, "_soft_update_target"),
}


class Timer:
    """Accumulates wall time per named section (synchronising CUDA so GPU time is counted)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)

    @contextmanager
    def section(self, name: str):
        sync_device(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            sync_device(self.device)
            self.totals[name] += time.perf_counter() - start

    def wrap(self, obj, method: str, name: str) -> None:
        original = getattr(obj, method)

        def timed(*args, **kwargs):
            with self.section(name):
                return original(*args, **kwargs)

        setattr(obj, method, timed)


def matmul_gflops(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Measured rate of an n x n matrix product in GFLOP/s for ``dtype``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    sync_device(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync_device(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def update_seeds(agents: SeedAgents, replays: list[ReplayBuffer], batch_size: int, timer: Timer | None = None) -> None:
    """One update of every seed, each on a batch of its own replay (as the training loop does);
    ``timer`` times the sampling as ``sample``."""

    def sample(index: int):
        with timer.section("sample") if timer is not None else contextlib.nullcontext():
            return replays[index].sample(batch_size)

    agents.update(sample, step=10_000)


def update_flops(agents: SeedAgents, replays: list[ReplayBuffer], batch_size: int) -> float:
    """Floating-point operations of one update of every seed (matrix products, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        update_seeds(agents, replays, batch_size)
    return float(counter.get_total_flops())


def build(agent_name: str, hidden: int, device: torch.device, precision: str, capacity: int, seeds: int = 1):
    """Per seed an environment, a replay and an agent (stepped together: urlb.seeds)."""
    env_list = [envs.make("walker_stand", "states", seed=1 + i) for i in range(seeds)]
    obs_dim = int(env_list[0].observation_spec().shape[0])
    action_dim = int(env_list[0].action_spec().shape[0])
    cfg = OmegaConf.create(
        {"agent": {"name": agent_name, "hidden_dim": hidden}, "obs_type": "states", "precision": precision}
    )
    seed_list = list(range(1, seeds + 1))
    agents = build_seed_agents(cfg, (obs_dim,), action_dim, device, agent_name != "ddpg", seed_list)
    replays = [ReplayBuffer((obs_dim,), action_dim, capacity, agents.skill_dim, device=device) for _ in range(seeds)]
    return env_list, agents, replays


def bench_agent(
    agent_name: str,
    size: str,
    device: torch.device,
    precision: str,
    seconds: float,
    warmup_updates: int = 3,
    compile_backend: str | None = None,
    fill_steps: int = 4_000,
    seeds: int = 1,
) -> dict:
    """The training loop's speed for ``seeds`` seeds in one process (frames/s counts every
    seed's frames; per-step and per-update times are per process step, every seed's included)."""
    hidden, batch_size = SIZES[size]
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    env_list, agents, replays = build(agent_name, hidden, device, precision, capacity=100_000, seeds=seeds)
    for env, replay, agent in zip(env_list, replays, agents.agents):
        fill_replay(env, replay, agent, fill_steps, rng)
    flops = update_flops(agents, replays, batch_size)  # counted eagerly: the work is the same compiled
    if compile_backend is not None:
        for agent in agents.agents:
            agent.compile_networks(compile_backend)
    skill = [agents.plugin.sample_skill(rng) if agents.skill_dim else None for _ in range(seeds)]
    for _ in range(warmup_updates):  # also absorbs compilation time
        agents.act([replay.sample(1).obs[0].cpu().numpy() for replay in replays], skill, 10_000, eval_mode=False)
        update_seeds(agents, replays, batch_size)
    timer = Timer(device)
    for agent in agents.agents:
        for part, (owner, method) in UPDATE_PARTS.items():
            target = agent if owner is None else getattr(agent, owner)
            if target is not None:
                timer.wrap(target, method, part)
    time_steps, steps, updates = [env.reset() for env in env_list], 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or updates < 2:
        if time_steps[0].last():
            time_steps = [env.reset() for env in env_list]
        with timer.section("act"):
            actions = agents.act([ts.observation for ts in time_steps], skill, 10_000, eval_mode=False)
        if steps % 2 == 0:
            with timer.section("update"):  # each seed samples inside its random state: sampling nested
                update_seeds(agents, replays, batch_size, timer)
            updates += 1
        with timer.section("env"):
            time_steps = [env.step(action) for env, action in zip(env_list, actions)]
        with timer.section("replay_add"):
            for replay, ts, i in zip(replays, time_steps, range(seeds)):
                replay.add(ts, skill[i])
        steps += 1
    elapsed = time.perf_counter() - start
    update_time = (timer.totals["update"] - timer.totals["sample"]) / updates
    return {
        "agent": agent_name,
        "size": size,
        "hidden_dim": hidden,
        "batch_size": batch_size,
        "precision": precision,
        "compile": compile_backend,
        "device": str(device),
        "seeds": seeds,
        "frames_per_s": steps * seeds / elapsed,
        "measured_s": elapsed,
        "steps": steps,
        "updates": updates,
        "ms_per_step": {k: 1e3 * v / steps for k, v in timer.totals.items() if k in ("env", "act", "replay_add")},
        "ms_per_update": {
            "sample": 1e3 * timer.totals["sample"] / updates,
            "update": 1e3 * update_time,
            **{p: 1e3 * timer.totals[p] / updates for p in UPDATE_PARTS if p in timer.totals},
        },
        "update_gflop": flops / 1e9,
        "update_gflops_per_s": flops / 1e9 / update_time,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def format_table(rows: list[dict], machine: dict) -> str:
    rates = ", ".join(
        f"{p} {machine[f'matmul_gflops_{p}']:.0f} GFLOP/s" for p in DTYPES if f"matmul_gflops_{p}" in machine
    )
    n = machine["matmul_size"]
    lines = [
        f"matmul rate here: {rates} ({n}^3, {machine['threads']} threads)",
        f"bf16 here: {'native' if machine['bf16_native'] else 'NOT native (emulated, much slower than fp32)'} "
        f"({machine['bf16_found']})",
        "",
    ]
    header = (
        "agent",
        "size",
        "prec",
        "frames/s",
        "env ms",
        "act ms",
        "sample ms",
        "update ms",
        "parts ms (plugin, critic, actor)",
        "GFLOP/upd",
        "GFLOP/s",
        "% matmul",
        "peak MB",
    )
    lines.append(" | ".join(header))
    for r in rows:
        u = r["ms_per_update"]
        rate = machine[f"matmul_gflops_{r['precision']}"]
        parts = "/".join(f"{u.get(p, 0):.0f}" for p in ("plugin", "critic", "actor"))
        lines.append(
            " | ".join(
                [
                    r["agent"],
                    r["size"],
                    r["precision"] + (f"+{r['compile']}" if r.get("compile") else ""),
                    f"{r['frames_per_s']:.1f}",
                    f"{r['ms_per_step']['env']:.2f}",
                    f"{r['ms_per_step']['act']:.2f}",
                    f"{u['sample']:.2f}",
                    f"{u['update']:.1f}",
                    parts,
                    f"{r['update_gflop']:.1f}",
                    f"{r['update_gflops_per_s']:.0f}",
                    f"{100 * r['update_gflops_per_s'] / rate:.0f}",
                    f"{r['peak_rss_mb']:.0f}",
                ]
            )
        )
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, measure, print the table; returns the results (what --json writes)."""
    parser = argparse.ArgumentParser(prog="python -m urlb.tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="ddpg,rnd,apt,diayn,cic,metra", help="comma-separated agents")
    parser.add_argument("--sizes", default="paper,quick", help=f"comma-separated, of: {', '.join(SIZES)}")
    parser.add_argument("--precision", default="fp32", help="comma-separated, of: fp32, bf16")
    parser.add_argument(
        "--compile",
        default="none",
        help=f"comma-separated, of: none, {', '.join(COMPILE_BACKENDS)} (torch.compile the networks)",
    )
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per configuration")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n^3 reference matrix product")
    parser.add_argument(
        "--fill-steps",
        type=int,
        default=4_000,
        help="environment steps put in each agent's replay before timing (the replay benchmark uses 5x)",
    )
    parser.add_argument("--replay-seconds", type=float, default=2.0, help="measured window of replay sampling")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="N > 1: also compare N seeds in one process with N single-seed processes (urlb.tools.bench_seeds)",
    )
    args = parser.parse_args(argv)
    agents = [a for a in args.agents.split(",") if a]
    sizes = [s for s in args.sizes.split(",") if s]
    precisions = [p for p in args.precision.split(",") if p]
    compiles = [c for c in args.compile.split(",") if c]
    for name, values, valid in (
        ("agent", agents, agent_names()),
        ("size", sizes, list(SIZES)),
        ("precision", precisions, ["fp32", "bf16"]),
        ("compile", compiles, ["none", *COMPILE_BACKENDS]),
    ):
        bad = [v for v in values if v not in valid]
        if bad:
            parser.error(f"unknown {name} {', '.join(bad)}; valid: {', '.join(valid)}")
    device = resolve_device(args.device)
    support = bf16_support(device)
    print(
        f"bf16 here: {'native' if support.native else 'NOT native'} ({support.description})",
        file=sys.stderr,
        flush=True,
    )
    # Only the precisions asked for: an emulated bf16 2048^3 product takes minutes on an AVX2-only CPU.
    machine = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "matmul_size": args.matmul_size,
        "bf16_native": support.native,
        "bf16_found": support.description,
        **{f"matmul_gflops_{p}": matmul_gflops(DTYPES[p], device, args.matmul_size) for p in precisions},
    }
    rows = []
    for size in sizes:
        for precision in precisions:
            for backend in compiles:
                for agent in agents:
                    print(
                        f"benchmarking {agent} size={size} precision={precision} compile={backend} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    rows.append(
                        bench_agent(
                            agent,
                            size,
                            device,
                            precision,
                            args.seconds,
                            compile_backend=None if backend == "none" else backend,
                            fill_steps=args.fill_steps,
                        )
                    )
    replay = bench_replay(device, seconds=args.replay_seconds, fill_steps=5 * args.fill_steps)
    result = {"machine": machine, "agents": rows, "replay": replay}
    print(format_table(rows, machine))
    print(
        f"\nreplay: {replay['sample_transitions_per_s']:.0f} n-step transitions/s sampled (batch 1024); "
        f"states {replay['states_bytes_per_transition']:.0f} B stored per transition "
        f"({replay['states_bytes_per_transition'] / replay['states_raw_transition_bytes']:.2f}x raw); "
        f"pixels {replay['pixels_bytes_per_transition']:.0f} B "
        f"({replay['pixels_bytes_per_transition'] / replay['pixels_raw_transition_bytes']:.2f}x raw stacked)"
    )
    if args.seeds > 1:
        from urlb.tools import bench_seeds

        result["seeds"] = bench_seeds.run(agents, sizes, args.seeds, args.seconds, device, args.fill_steps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``urlb-bench``): exit code 0 on success, 2 on bad arguments."""
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
