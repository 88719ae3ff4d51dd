"""Several seeds in one agent (urlb.seeds): an update of the stacked agent equals the separate
single-seed updates on the same batches and random streams, for the backbone and every method;
per-seed state round trips between multi-seed and single-seed agents; a NaN names its seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from urlb.agents import agent_names, build_agent
from urlb.ddpg import NonFiniteError
from urlb.replay import Batch, stack_batches
from urlb.seeds import SeedStreams, load_optimizer_seed_state, optimizer_seed_state, stack_seeds

SEEDS = [1, 2, 3]
BATCH, OBS_DIM, ACTION_DIM = 32, 24, 6
PIXELS = (9, 84, 84)
TOL = dict(atol=1e-5, rtol=1e-5)

# Small networks; methods with sizes of their own get small ones too.
SMALL = {
    "hidden_dim": 32,
    "rnd": {"rep_dim": 16},
    "apt": {"rep_dim": 16, "knn_k": 4},
    "cic": {"skill_dim": 8, "knn_k": 4},
    "aps": {"knn_k": 4},
    "proto": {"pred_dim": 16, "proj_dim": 32, "num_protos": 8, "queue_size": 32, "topk": 3},
    "smm": {"vae_code_dim": 8, "vae_hidden_dim": 16},
}


def agent_config(name: str, obs_type: str = "states"):
    agent = {"name": name, "hidden_dim": SMALL["hidden_dim"], **SMALL.get(name, {})}
    if obs_type == "pixels":
        agent["feature_dim"] = 16
    return OmegaConf.create({"agent": agent, "obs_type": obs_type, "seed": SEEDS[0]})


def own_stream(agent) -> None:
    """A single-seed agent draws from torch's default generator; the test gives each its own
    copy of the state it was built with, so several single-seed agents can live side by side."""
    agent.streams.generators = [torch.Generator().set_state(torch.get_rng_state())]


def build_pair(name: str, obs_type: str = "states"):
    """(agent holding SEEDS, [single-seed agent per seed]) with the same initial weights."""
    cfg = agent_config(name, obs_type)
    obs_shape = PIXELS if obs_type == "pixels" else (OBS_DIM,)
    reward_free = name != "ddpg"
    multi = build_agent(cfg, obs_shape, ACTION_DIM, "cpu", reward_free, seeds=SEEDS)
    singles = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        singles.append(build_agent(cfg, obs_shape, ACTION_DIM, "cpu", reward_free, seeds=[seed]))
        own_stream(singles[-1])
    return multi, singles


def random_batch(agent, obs_type: str, rng: np.random.Generator) -> Batch:
    """A per-seed batch of plausible transitions (skills drawn from the method's prior)."""

    def obs():
        if obs_type == "pixels":
            return torch.as_tensor(rng.integers(0, 256, (BATCH, *PIXELS)), dtype=torch.uint8)
        return torch.as_tensor(rng.standard_normal((BATCH, OBS_DIM)), dtype=torch.float32)

    plugin = agent.plugin
    skill = None
    if agent.skill_dim:
        skill = torch.as_tensor(np.stack([plugin.sample_skill(rng) for _ in range(BATCH)]), dtype=torch.float32)
    return Batch(
        obs=obs(),
        action=torch.as_tensor(rng.uniform(-1, 1, (BATCH, ACTION_DIM)), dtype=torch.float32),
        reward=torch.as_tensor(rng.standard_normal((BATCH, 1)), dtype=torch.float32),
        discount=torch.full((BATCH, 1), 0.99**3),
        next_obs=obs(),
        next_obs_1step=obs(),
        skill=skill,
    )


# Adam divides each gradient by its running RMS: an element whose gradient is ~0 can move by
# up to lr in either direction on a rounding difference of the batched matrix products (seen
# with pixel encoders: 39200 inputs to the trunk). So parameters must agree to 1e-5 except for
# at most 0.5% of elements (CPUs round differently), and those within the Adam steps taken; losses and metrics to 1e-5.
LR = 1e-4


def assert_states_close(multi, singles, updates: int = 0) -> None:
    for index, single in enumerate(singles):
        ours, theirs = multi.networks_state(index), single.networks_state(0)
        assert ours.keys() == theirs.keys()
        for part, state in theirs.items():
            if part.endswith("_opt"):
                continue  # compared in test_optimizer_state_round_trip
            for key, value in state.items():
                where = f"seed {SEEDS[index]} {part}.{key}"
                assert ours[part][key].shape == value.shape, where
                if not value.is_floating_point() or updates == 0:
                    torch.testing.assert_close(ours[part][key], value, **TOL, msg=where)
                    continue
                diff = (ours[part][key] - value).abs()
                off = (diff > TOL["atol"] + TOL["rtol"] * value.abs()).float().mean().item()
                assert off <= 5e-3, f"{where}: {off:.2%} of elements differ by more than 1e-5"
                assert diff.max().item() <= 2 * LR * updates + 1e-5, f"{where}: max difference {diff.max().item()}"


def run_updates(multi, singles, obs_type: str, updates: int = 3) -> None:
    rng = np.random.default_rng(0)
    for step in range(updates):
        per_seed = [random_batch(multi, obs_type, rng) for _ in SEEDS]
        metrics = multi.update(stack_batches(per_seed), 1000 + step)
        for index, single in enumerate(singles):
            single_metrics = single.update(stack_batches([per_seed[index]]), 1000 + step)
            assert metrics.keys() == single_metrics.keys()
            for key, value in single_metrics.items():
                assert value.shape == (1,) and metrics[key].shape == (len(SEEDS),)
                torch.testing.assert_close(metrics[key][index], value[0], **TOL, msg=f"seed {SEEDS[index]} {key}")


@pytest.mark.parametrize("name", agent_names())
def test_stacked_update_equals_single_seed_updates(name):
    multi, singles = build_pair(name)
    assert_states_close(multi, singles)  # the same initial weights, seed by seed
    run_updates(multi, singles, "states")
    assert_states_close(multi, singles, updates=3)


@pytest.mark.parametrize("name", ["ddpg", "rnd"])
def test_stacked_update_equals_single_seed_updates_pixels(name):
    multi, singles = build_pair(name, "pixels")
    run_updates(multi, singles, "pixels", updates=2)
    assert_states_close(multi, singles, updates=2)


def test_actions_equal_single_seed_actions():
    multi, singles = build_pair("ddpg")
    obs = np.random.default_rng(1).standard_normal((len(SEEDS), OBS_DIM)).astype(np.float32)
    for eval_mode in (True, False):
        actions = multi.act_seeds(obs, None, 5000, eval_mode)
        assert actions.shape == (len(SEEDS), ACTION_DIM)
        for index, single in enumerate(singles):
            np.testing.assert_allclose(actions[index], single.act(obs[index], None, 5000, eval_mode), atol=1e-6)


def test_seed_state_round_trip_between_multi_and_single():
    """A multi-seed agent's seed loads into a single-seed agent (and back) with every network,
    buffer and optimiser state intact: snapshots and checkpoints are interchangeable."""
    multi, singles = build_pair("rnd")
    run_updates(multi, singles, "states", updates=2)
    torch.manual_seed(99)
    fresh = build_agent(agent_config("rnd"), (OBS_DIM,), ACTION_DIM, "cpu", True, seeds=[99])
    state = multi.networks_state(1)
    fresh.load_networks(state, tuple(state))
    back = fresh.networks_state(0)
    for part in state:
        if part.endswith("_opt"):
            continue
        for key in state[part]:
            assert torch.equal(back[part][key], state[part][key]), (part, key)
    # ... and a single seed's state into slot 0 of the multi-seed agent
    multi.load_networks(back, tuple(back), index=0)
    assert torch.equal(multi.networks_state(0)["actor"]["trunk.0.weight"], back["actor"]["trunk.0.weight"])


def test_optimizer_state_round_trip():
    multi, singles = build_pair("ddpg")
    run_updates(multi, singles, "states", updates=2)
    for index, single in enumerate(singles):
        ours, theirs = optimizer_seed_state(multi.critic_opt, index), optimizer_seed_state(single.critic_opt, 0)
        for pid, entry in theirs["state"].items():
            for key, value in entry.items():
                torch.testing.assert_close(ours["state"][pid][key], value, **TOL)
    # writing seed 2's optimiser state into seed 0 of another stacked agent reproduces it there
    other, _ = build_pair("ddpg")
    load_optimizer_seed_state(other.critic_opt, 0, optimizer_seed_state(multi.critic_opt, 2))
    moved = optimizer_seed_state(other.critic_opt, 0)["state"]
    for pid, entry in optimizer_seed_state(multi.critic_opt, 2)["state"].items():
        for key, value in entry.items():
            assert torch.equal(moved[pid][key], value)


def test_non_finite_loss_names_its_seed():
    multi, _ = build_pair("ddpg")
    with torch.no_grad():
        multi.critic.q1[0].weight[1].fill_(float("nan"))  # seed index 1 = seed 2
    rng = np.random.default_rng(0)
    with pytest.raises(NonFiniteError, match="seed 2: non-finite critic loss") as info:
        multi.update(stack_batches([random_batch(multi, "states", rng) for _ in SEEDS]), 10)
    assert info.value.seed == 2


def test_stack_seeds_joins_parameters_and_buffers():
    layers = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        layers.append(build_agent(agent_config("rnd"), (OBS_DIM,), ACTION_DIM, "cpu", True, seeds=[seed]).plugin)
    joined = stack_seeds(layers)
    assert joined.predictor[0].weight.shape[0] == len(SEEDS)
    assert joined.error_rms.count.shape == (len(SEEDS),)
    for index, layer in enumerate(layers):
        assert torch.equal(joined.predictor[0].weight[index], layer.predictor[0].weight[0])
    assert joined.optimizer.param_groups[0]["params"][0] is joined.predictor[0].weight


def test_streams_are_independent_per_seed():
    """A seed's draws do not depend on which other seeds share its process."""
    alone = SeedStreams([7, 8]).randn(5)
    with_more = SeedStreams([7, 8, 9]).randn(5)
    assert torch.equal(alone, with_more[:2])
    assert not torch.equal(with_more[0], with_more[1])
