"""DIAYN, SMM and METRA with the seed dimension (issue 16), beyond the update equivalence of
test_seeds.py: the analysis reward of a stacked agent equals each seed's own (SMM's fixed-seed
VAE noise included, per seed), and METRA's per-seed lambda keeps the single-seed snapshot layout
(a 0-d tensor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_seeds import ACTION_DIM, OBS_DIM, SEEDS, TOL, agent_config, build_pair, random_batch, run_updates

from urlb.agents import build_agent
from urlb.replay import stack_batches


@pytest.mark.parametrize("name", ["diayn", "smm", "metra"])
def test_stacked_intrinsic_reward_equals_single_seed_rewards(name):
    multi, singles = build_pair(name)
    run_updates(multi, singles, "states", updates=2)  # weights that differ from seed to seed
    rng = np.random.default_rng(7)
    per_seed = [random_batch(multi, "states", rng) for _ in SEEDS]
    stream_before = [g.get_state() for g in multi.streams.generators]
    reward = multi.plugin.intrinsic_reward(stack_batches(per_seed))
    assert reward.shape == (len(SEEDS), per_seed[0].obs.shape[0], 1)
    for index, single in enumerate(singles):
        own = single.plugin.intrinsic_reward(stack_batches([per_seed[index]]))
        torch.testing.assert_close(reward[index], own[0], **TOL, msg=f"seed {SEEDS[index]}")
    # Analysis draws nothing from the training streams (SMM uses its own fixed-seed generator).
    assert all(torch.equal(g.get_state(), s) for g, s in zip(multi.streams.generators, stream_before))


def test_smm_analysis_reward_is_the_same_on_every_call_and_for_every_seed_slot():
    """SMM's analysis reward draws its VAE noise from a generator seeded 0 afresh for each seed,
    so the same batch gives the same reward on every call and in whichever slot it sits."""
    multi, _ = build_pair("smm")
    rng = np.random.default_rng(3)
    one = random_batch(multi, "states", rng)
    with torch.no_grad():  # the same weights in every seed slot
        for param in multi.plugin.vae.parameters():
            param.copy_(param[:1].expand_as(param))
        for param in multi.plugin.discriminator.parameters():
            param.copy_(param[:1].expand_as(param))
    first = multi.plugin.intrinsic_reward(stack_batches([one] * len(SEEDS)))
    again = multi.plugin.intrinsic_reward(stack_batches([one] * len(SEEDS)))
    assert torch.equal(first, again)
    for index in range(1, len(SEEDS)):
        torch.testing.assert_close(first[index], first[0], **TOL)


def test_metra_lambda_is_per_seed_and_a_0d_tensor_in_snapshots():
    multi, singles = build_pair("metra")
    assert multi.plugin.log_lambda.shape == (len(SEEDS),)
    run_updates(multi, singles, "states", updates=2)
    for index, single in enumerate(singles):
        state = multi.networks_state(index)["plugin"]["log_lambda"]
        assert state.shape == ()  # the single-seed snapshot layout
        torch.testing.assert_close(state, single.networks_state(0)["plugin"]["log_lambda"], **TOL)
    # A single-seed snapshot (0-d lambda) loads into one slot of a stacked agent and back.
    torch.manual_seed(50)
    fresh = build_agent(agent_config("metra"), (OBS_DIM,), ACTION_DIM, "cpu", True, seeds=[50])
    payload = {"plugin": {**fresh.networks_state(0)["plugin"], "log_lambda": torch.tensor(1.25)}}
    multi.load_networks(payload, ("plugin",), index=2)
    assert multi.plugin.log_lambda[2].item() == 1.25
    assert multi.plugin.log_lambda[0].item() != 1.25
