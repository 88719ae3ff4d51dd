"""What the bench measures, shared by :mod:`urlb.tools.bench` and :mod:`urlb.tools.bench_seeds`:
the sizes, a timer of the training loop's parts, the matrix-multiply ceiling, and one agent's
training loop timed after a warm-up."""

from __future__ import annotations

import contextlib
import resource
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from urlb import envs
from urlb.agents import build_seed_agents
from urlb.replay import ReplayBuffer
from urlb.seed_agents import SeedAgents
from urlb.tools.bench_replay import fill_replay, sync_device

SIZES = {  # name -> (hidden_dim, batch_size); update every 2 steps in both
    "paper": (1024, 1024),
    "quick": (256, 256),
    "tiny": (32, 32),  # for checking that the command works (tests), not for figures
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
PIXEL_ACTION_REPEAT, PIXEL_FRAME_STACK = 2, 3  # the protocol's pixels (configs/common.yaml)
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

    rows = agents[0].batch_rows(batch_size)  # BeCL trains on several batches per update

    def sample(index: int):
        with timer.section("sample") if timer is not None else contextlib.nullcontext():
            return replays[index].sample(rows)

    agents.update(sample, step=10_000)


def update_flops(agents: SeedAgents, replays: list[ReplayBuffer], batch_size: int) -> float:
    """Floating-point operations of one update of every seed (matrix products, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        update_seeds(agents, replays, batch_size)
    return float(counter.get_total_flops())


def build(
    agent_name: str,
    hidden: int,
    device: torch.device,
    precision: str,
    capacity: int,
    seeds: int = 1,
    obs_type: str = "states",
):
    """Per seed an environment, a replay and an agent (stepped together: urlb.seed_agents).
    Pixels as the protocol has them: 3 stacked 84x84 frames, action repeat 2."""
    action_repeat, frame_stack = (PIXEL_ACTION_REPEAT, PIXEL_FRAME_STACK) if obs_type == "pixels" else (1, 1)
    env_list = [
        envs.make("walker_stand", obs_type, frame_stack=frame_stack, action_repeat=action_repeat, seed=1 + i)
        for i in range(seeds)
    ]
    obs_shape = tuple(int(n) for n in env_list[0].observation_spec().shape)
    action_dim = int(env_list[0].action_spec().shape[0])
    cfg = OmegaConf.create(
        {"agent": {"name": agent_name, "hidden_dim": hidden}, "obs_type": obs_type, "precision": precision}
    )
    seed_list = list(range(1, seeds + 1))
    agents = build_seed_agents(cfg, obs_shape, action_dim, device, agent_name != "ddpg", seed_list)
    replays = [
        ReplayBuffer(obs_shape, action_dim, capacity, agents.skill_dim, frame_stack=frame_stack, device=device)
        for _ in range(seeds)
    ]
    return env_list, agents, replays


# Only the pixel encoder convolves, and only the random shift samples a grid: the profiler's time
# in these operators (forward and backward) is the encoder's and the augmentation's share.
ENCODER_OPS = ("conv",)
SHIFT_OPS = ("grid_sampler", "pad")


def update_op_shares(agents: SeedAgents, replays: list[ReplayBuffer], batch_size: int, updates: int = 3) -> dict:
    """Fractions of the update's operator time spent in the encoder's convolutions and in the
    random shift, from torch.profiler over a few updates (CPU operator self-time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(updates):
            update_seeds(agents, replays, batch_size)
    totals = {"encoder": 0.0, "shift": 0.0, "all": 0.0}
    for event in prof.key_averages():
        name = event.key.lower()
        totals["all"] += event.self_cpu_time_total
        if any(op in name for op in ENCODER_OPS):
            totals["encoder"] += event.self_cpu_time_total
        elif any(op in name for op in SHIFT_OPS):
            totals["shift"] += event.self_cpu_time_total
    return {part: totals[part] / max(totals["all"], 1e-9) for part in ("encoder", "shift")}


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
    obs_type: str = "states",
    batch_size: int | None = None,
) -> dict:
    """The training loop's speed for ``seeds`` seeds in one process (frames/s counts every
    seed's frames; per-step and per-update times are per process step, every seed's included)."""
    hidden, size_batch = SIZES[size]
    batch_size = batch_size or size_batch
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    capacity = 100_000 if obs_type == "states" else fill_steps + 10_000
    env_list, agents, replays = build(agent_name, hidden, device, precision, capacity, seeds, obs_type)
    for env, replay, agent in zip(env_list, replays, agents.agents):
        fill_replay(env, replay, agent, fill_steps, rng)
    flops = update_flops(agents, replays, batch_size)  # counted eagerly: the work is the same compiled
    shares = update_op_shares(agents, replays, batch_size) if obs_type == "pixels" else None
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
        "obs_type": obs_type,
        "size": size,
        "hidden_dim": hidden,
        "batch_size": batch_size,
        "precision": precision,
        "compile": compile_backend,
        "device": str(device),
        "seeds": seeds,
        "frames_per_s": steps * seeds * (PIXEL_ACTION_REPEAT if obs_type == "pixels" else 1) / elapsed,
        "measured_s": elapsed,
        "steps": steps,
        "updates": updates,
        "ms_per_step": {k: 1e3 * v / steps for k, v in timer.totals.items() if k in ("env", "act", "replay_add")},
        "ms_per_update": {
            "sample": 1e3 * timer.totals["sample"] / updates,
            "update": 1e3 * update_time,
            **{p: 1e3 * timer.totals[p] / updates for p in UPDATE_PARTS if p in timer.totals},
        },
        "update_op_shares": shares,
        "update_gflop": flops / 1e9,
        "update_gflops_per_s": flops / 1e9 / update_time,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
