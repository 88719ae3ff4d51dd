"""Several seeds in one process (urlb.seed_agents.SeedAgents): every method, built and stepped for
seeds [1, 2, 3] side by side, computes exactly what each seed computes alone (same initial
weights, actions, metrics, weights and buffers after updates, random draws included: SMM's VAE,
ProtoRL's candidates, pixel shifts); the caller's random state is left alone; checkpoints'
random states round trip; a NaN names its seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from urlb.agents import agent_names, build_agent, build_seed_agents
from urlb.agents.contract import random_batch as contract_batch
from urlb.ddpg import NonFiniteError
from urlb.replay import Batch

SEEDS = [1, 2, 3]
BATCH, OBS_DIM, ACTION_DIM = 32, 24, 6
PIXELS = (9, 84, 84)

# Small networks; methods with sizes of their own get small ones too.
SMALL = {
    "hidden_dim": 32,
    "rnd": {"rep_dim": 16},
    "apt": {"rep_dim": 16, "knn_k": 4},
    "cic": {"skill_dim": 8, "knn_k": 4},
    "aps": {"knn_k": 4},
    "proto": {"pred_dim": 16, "proj_dim": 32, "num_protos": 8, "queue_size": 32, "topk": 3},
    "smm": {"vae_code_dim": 8, "vae_hidden_dim": 16},
    "cesd": {"ensemble_size": 4, "knn_k": 4},
}


def agent_config(name: str, obs_type: str = "states"):
    agent = {"name": name, "hidden_dim": SMALL["hidden_dim"], **SMALL.get(name, {})}
    if obs_type == "pixels":
        agent["feature_dim"] = 16
    return OmegaConf.create({"agent": agent, "obs_type": obs_type, "seed": SEEDS[0]})


def random_batch(plugin, obs_type: str, rng: np.random.Generator, batch: int = BATCH) -> Batch:
    """A batch of plausible transitions (skills drawn from the method's prior)."""
    return contract_batch(plugin, PIXELS if obs_type == "pixels" else (OBS_DIM,), rng, batch)


def trajectory(name: str, obs_type: str, steps: int, batch: int):
    """Per seed, the observations, skills and batches of ``steps`` act-then-update steps."""
    rng = np.random.default_rng(0)
    plugin = None if name == "ddpg" else build_agent(agent_config(name), (OBS_DIM,), ACTION_DIM, "cpu", True).plugin
    shape = PIXELS if obs_type == "pixels" else (OBS_DIM,)
    out = []
    for _ in SEEDS:
        obs = [
            rng.integers(0, 256, shape).astype(np.uint8)
            if obs_type == "pixels"
            else rng.standard_normal(shape).astype(np.float32)
            for _ in range(steps)
        ]
        skills = [None if plugin is None or not plugin.skill_dim else plugin.sample_skill(rng) for _ in range(steps)]
        rows = batch * (plugin.batches_per_update if plugin is not None else 1)  # BeCL: several batches
        out.append((obs, skills, [random_batch(plugin, obs_type, rng, rows) for _ in range(steps)]))
    return out


def run_alone(name: str, obs_type: str, seed: int, data, steps: int):
    """A single-seed run of ``seed``: seeded, built, then act and update in turn on torch's
    global random state. Returns (agent, actions, metrics)."""
    torch.manual_seed(seed)
    shape = PIXELS if obs_type == "pixels" else (OBS_DIM,)
    agent = build_agent(agent_config(name, obs_type), shape, ACTION_DIM, "cpu", name != "ddpg")
    obs, skills, batches = data
    actions, metrics = [], []
    for step in range(steps):
        actions.append(agent.act(obs[step], skills[step], 5000 + step, eval_mode=False))
        metrics.append(agent.update(batches[step], 5000 + step))
    return agent, actions, metrics


def run_together(name: str, obs_type: str, data, steps: int):
    shape = PIXELS if obs_type == "pixels" else (OBS_DIM,)
    agents = build_seed_agents(agent_config(name, obs_type), shape, ACTION_DIM, "cpu", name != "ddpg", SEEDS)
    actions, metrics = [], []
    for step in range(steps):
        obs = [d[0][step] for d in data]
        skills = [d[1][step] for d in data]
        actions.append(agents.act(obs, skills, 5000 + step, eval_mode=False))
        metrics.append(agents.update(lambda index: data[index][2][step], 5000 + step))
    return agents, actions, metrics


def assert_same_optimizer(ours: dict, theirs: dict, where: str) -> None:
    for pid, entry in theirs["state"].items():
        for key, value in entry.items():
            assert torch.equal(ours["state"][pid][key], value), f"{where}[{pid}].{key}"


def assert_same_states(ours: dict, theirs: dict, where: str) -> None:
    assert ours.keys() == theirs.keys(), where
    for part, state in theirs.items():
        if part == "plugin_opt":
            for name, opt_state in state.items():
                assert_same_optimizer(ours[part][name], opt_state, f"{where} {part}.{name}")
        elif part.endswith("_opt"):
            assert_same_optimizer(ours[part], state, f"{where} {part}")
        else:
            for key, value in state.items():
                assert torch.equal(ours[part][key], value), f"{where} {part}.{key}"


def check_together_equals_alone(name: str, obs_type: str, steps: int, batch: int) -> None:
    data = trajectory(name, obs_type, steps, batch)
    agents, actions, metrics = run_together(name, obs_type, data, steps)
    for index, seed in enumerate(SEEDS):
        alone, alone_actions, alone_metrics = run_alone(name, obs_type, seed, data[index], steps)
        for step in range(steps):
            np.testing.assert_array_equal(actions[step][index], alone_actions[step], err_msg=f"seed {seed} action")
            assert metrics[step][index] == alone_metrics[step], f"seed {seed} metrics at step {step}"
        assert_same_states(agents[index].networks_state(), alone.networks_state(), f"seed {seed}")
    # the seeds did differ from one another (the test would pass trivially otherwise)
    first, second = agents[0].networks_state()["actor"], agents[1].networks_state()["actor"]
    assert not torch.equal(first["trunk.0.weight"], second["trunk.0.weight"])


@pytest.mark.parametrize("name", agent_names())
def test_seeds_in_one_process_equal_each_seed_alone(name):
    check_together_equals_alone(name, "states", steps=3, batch=BATCH)


@pytest.mark.parametrize("name", ["ddpg", "rnd"])
def test_seeds_in_one_process_equal_each_seed_alone_pixels(name):
    """Pixels: the random shifts of augmentation are draws too."""
    check_together_equals_alone(name, "pixels", steps=2, batch=4)


def test_the_callers_random_state_is_left_alone():
    agents = build_seed_agents(agent_config("smm"), (OBS_DIM,), ACTION_DIM, "cpu", True, SEEDS)
    data = trajectory("smm", "states", 1, 8)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    agents.act([d[0][0] for d in data], [d[1][0] for d in data], 5000, eval_mode=False)
    agents.update(lambda index: data[index][2][0], 5000)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_seeds_random_state_round_trips_through_get_and_set():
    """What a checkpoint stores of a seed's random state continues that seed's draws."""
    agents = build_seed_agents(agent_config("ddpg"), (OBS_DIM,), ACTION_DIM, "cpu", False, SEEDS)
    saved = agents.get_state(1)
    obs = np.zeros(OBS_DIM, np.float32)
    with agents.seed_rng(1):
        first = agents[1].act(obs, None, 5000, eval_mode=False)
    agents.set_state(1, saved)
    with agents.seed_rng(1):
        again = agents[1].act(obs, None, 5000, eval_mode=False)
    np.testing.assert_array_equal(first, again)
    with agents.seed_rng(2):  # another seed's stream draws other noise
        other = agents[1].act(obs, None, 5000, eval_mode=False)
    assert not np.array_equal(first, other)


def test_one_seed_draws_from_the_global_random_state():
    """A single seed takes the plain path: no state of its own, torch's global one is used."""
    torch.manual_seed(5)
    agents = build_seed_agents(agent_config("ddpg"), (OBS_DIM,), ACTION_DIM, "cpu", False, [5])
    assert torch.equal(agents.get_state(0), torch.get_rng_state())
    with agents.seed_rng(0):
        agents[0].act(np.zeros(OBS_DIM, np.float32), None, 5000, eval_mode=False)
    assert torch.equal(agents.get_state(0), torch.get_rng_state())


def test_non_finite_loss_names_its_seed():
    agents = build_seed_agents(agent_config("ddpg"), (OBS_DIM,), ACTION_DIM, "cpu", False, SEEDS)
    with torch.no_grad():
        agents[1].critic.q1[0].weight[1].fill_(float("nan"))  # seed index 1 = seed 2
    rng = np.random.default_rng(0)
    with pytest.raises(NonFiniteError, match="seed 2: non-finite critic loss") as info:
        agents.update(lambda index: random_batch(None, "states", rng), 10)
    assert info.value.seed == 2
