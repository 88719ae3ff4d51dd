"""DDPGAgent (URLB backbone) with and without the RND plugin, on hand-built random batches."""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pytest
import torch
from conftest import parameters_finite

from urlb.agents import make_plugin
from urlb.agents.rnd import RND
from urlb.ddpg import DDPGAgent, NonFiniteError, schedule
from urlb.nets import Encoder
from urlb.replay import Batch

OBS_DIM, ACT_DIM, B = 24, 6, 16
HIDDEN, FEATURE, REP = 32, 16, 16
PIXEL_SHAPE = (9, 84, 84)


@functools.cache
def pixel_repr_dim() -> int:
    return Encoder(PIXEL_SHAPE).repr_dim


def make_rnd(obs_dim: int = OBS_DIM, **kwargs) -> RND:
    return RND(obs_dim, ACT_DIM, hidden_dim=HIDDEN, rep_dim=REP, **kwargs)


def make_agent(rnd: bool = False, reward_free: bool = False, obs_type: str = "states", **kwargs) -> DDPGAgent:
    obs_shape = PIXEL_SHAPE if obs_type == "pixels" else (OBS_DIM,)
    plugin = None
    if rnd:
        if obs_type == "pixels":
            plugin = make_rnd(pixel_repr_dim())  # pixel plugins see encoder features
        else:
            plugin = make_rnd()
    return DDPGAgent(
        obs_type,
        obs_shape,
        ACT_DIM,
        "cpu",
        hidden_dim=HIDDEN,
        feature_dim=FEATURE,
        plugin=plugin,
        reward_free=reward_free,
        **kwargs,
    )


def random_batch(gen: torch.Generator, batch_size: int = B, pixels: bool = False) -> Batch:
    if pixels:

        def obs():
            return torch.randint(0, 256, (batch_size, *PIXEL_SHAPE), generator=gen, dtype=torch.uint8)
    else:

        def obs():
            return torch.randn(batch_size, OBS_DIM, generator=gen)

    return Batch(
        obs=obs(),
        action=torch.rand(batch_size, ACT_DIM, generator=gen) * 2 - 1,
        reward=torch.rand(batch_size, 1, generator=gen),
        discount=torch.full((batch_size, 1), 0.99**3),
        next_obs=obs(),
        next_obs_1step=obs(),
        skill=None,
    )


def clone_params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def all_equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def any_changed(before, module) -> bool:
    return any(not torch.equal(x, y) for x, y in zip(before, module.parameters(), strict=True))


# --- update -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rnd,reward_free", [(False, False), (True, True), (True, False)], ids=["ddpg", "rnd-reward-free", "rnd-task-reward"]
)
def test_update_returns_finite_metrics(rnd, reward_free):
    torch.manual_seed(0)
    agent = make_agent(rnd=rnd, reward_free=reward_free)
    batch = random_batch(torch.Generator().manual_seed(1))
    for step in range(3):
        metrics = agent.update(batch, step)
    expected = {"critic_loss", "actor_loss", "critic_q1", "critic_target_q", "batch_reward"}
    if reward_free:
        expected |= {"intrinsic_reward", "rnd_loss"}
    assert expected <= set(metrics)
    if not reward_free:
        assert "intrinsic_reward" not in metrics
        # The critic was trained on the task reward stored in the batch.
        assert metrics["batch_reward"] == pytest.approx(batch.reward.mean().item())
    else:
        assert metrics["batch_reward"] == pytest.approx(metrics["intrinsic_reward"])
    for k, v in metrics.items():
        assert isinstance(v, float) and math.isfinite(v), (k, v)
    assert parameters_finite(agent)


def test_reward_free_without_plugin_is_refused():
    agent = make_agent(rnd=False, reward_free=True)
    with pytest.raises(ValueError, match="plugin"):
        agent.update(random_batch(torch.Generator().manual_seed(0)), 0)


@pytest.mark.parametrize("tau", [0.01, 0.2])
def test_critic_target_moves_by_lerp_with_tau(tau):
    torch.manual_seed(0)
    agent = make_agent(critic_target_tau=tau)
    gen = torch.Generator().manual_seed(2)
    agent.update(random_batch(gen), 0)  # after this, target and online critic differ
    for step in (1, 2):
        target_before = clone_params(agent.critic_target)
        online_before = clone_params(agent.critic)
        agent.update(random_batch(gen), step)
        online_after = clone_params(agent.critic)
        assert not all_equal(online_before, online_after), "the critic did not learn"
        for name_p, pre, post, got in zip(
            agent.critic_target.state_dict(), target_before, online_after, agent.critic_target.parameters(), strict=True
        ):
            expected = pre + tau * (post - pre)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=lambda m: f"{name_p}: {m}")
        # The target is not a copy of the online critic.
        assert not all_equal(agent.critic_target.parameters(), online_after)
    assert all(p.grad is None and not p.requires_grad for p in agent.critic_target.parameters())


def test_actor_update_changes_neither_critic_params_nor_grads():
    torch.manual_seed(0)
    agent = make_agent()
    batch = random_batch(torch.Generator().manual_seed(3))
    agent.update(batch, 0)
    agent.critic.zero_grad(set_to_none=True)
    critic_before = clone_params(agent.critic)
    actor_before = clone_params(agent.actor)
    metrics = agent._update_actor(batch.obs, None, step=1)
    assert math.isfinite(metrics["actor_loss"])
    assert any_changed(actor_before, agent.actor), "the actor did not learn"
    assert all_equal(critic_before, agent.critic.parameters()), "the actor update changed critic weights"
    grads = [n for n, p in agent.critic.named_parameters() if p.grad is not None]
    assert grads == [], f"the actor loss built gradients on critic params: {grads}"
    # The critic is trainable again afterwards.
    assert all(p.requires_grad for p in agent.critic.parameters())
    assert all(p.grad is not None for p in agent.actor.parameters())


# --- RND ----------------------------------------------------------------------------------


def test_rnd_target_frozen_predictor_learns():
    torch.manual_seed(0)
    agent = make_agent(rnd=True, reward_free=True)
    plugin = agent.plugin
    target_before = clone_params(plugin.target)
    predictor_before = clone_params(plugin.predictor)
    gen = torch.Generator().manual_seed(4)
    for step in range(5):
        agent.update(random_batch(gen), step)
    assert all_equal(target_before, plugin.target.parameters()), "RND's random target network changed"
    assert any_changed(predictor_before, plugin.predictor), "RND's predictor did not learn"
    assert all(p.grad is None for p in plugin.target.parameters())
    # The backbone optimisers do not own plugin parameters.
    backbone = {id(p) for g in agent.actor_opt.param_groups + agent.critic_opt.param_groups for p in g["params"]}
    assert not backbone & {id(p) for p in plugin.parameters()}


def test_rnd_intrinsic_reward_shape_finite_nonnegative():
    torch.manual_seed(0)
    plugin = make_rnd()
    gen = torch.Generator().manual_seed(5)
    for step in range(3):
        batch = random_batch(gen)
        plugin.update(batch, step)
        reward = plugin.intrinsic_reward(batch)
        assert reward.shape == (B, 1)
        assert not reward.requires_grad
        assert bool(torch.isfinite(reward).all())
        assert bool((reward >= 0).all())
        assert float(reward.max()) > 0


def test_rnd_prediction_error_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    plugin = make_rnd()
    batch = random_batch(torch.Generator().manual_seed(6))
    plugin.update(batch, 0)  # observation statistics settle on this batch
    with torch.no_grad():
        before = plugin.prediction_error(batch.next_obs).mean().item()
    for step in range(1, 101):
        plugin.update(batch, step)
    with torch.no_grad():
        after = plugin.prediction_error(batch.next_obs).mean().item()
    assert after < 0.8 * before, (before, after)


def test_make_plugin_registry():
    plugin = make_plugin("rnd", OBS_DIM, ACT_DIM, hidden_dim=HIDDEN, rep_dim=REP)
    assert isinstance(plugin, RND)
    assert make_plugin("ddpg", OBS_DIM, ACT_DIM) is None
    with pytest.raises(ValueError, match="choose one of:") as info:
        make_plugin("foo", OBS_DIM, ACT_DIM)
    assert "'foo'" in str(info.value)
    assert {"ddpg", "rnd"} <= set(str(info.value).split("choose one of:")[1].replace(",", " ").split())


# --- acting -------------------------------------------------------------------------------


def test_act_shape_dtype_range_and_eval_determinism():
    torch.manual_seed(0)
    agent = make_agent(stddev_schedule=0.5, stddev_clip=0.3)
    rng = np.random.default_rng(0)
    for scale in (1.0, 1e3):  # large inputs saturate the tanh
        obs = (rng.standard_normal(OBS_DIM) * scale).astype(np.float32)
        a1 = agent.act(obs, None, step=0, eval_mode=True)
        a2 = agent.act(obs, None, step=0, eval_mode=True)
        assert a1.shape == (ACT_DIM,) and a1.dtype == np.float32
        np.testing.assert_array_equal(a1, a2)
        assert np.all(np.abs(a1) <= 1.0)
        noisy = np.stack([agent.act(obs, None, step=0, eval_mode=False) for _ in range(20)])
        assert noisy.dtype == np.float32 and noisy.shape == (20, ACT_DIM)
        assert np.all(np.abs(noisy) <= 1.0 - 1e-6 + 1e-7)  # URLB keeps samples inside +-(1 - 1e-6)
        assert not np.allclose(noisy, a1), "training-mode actions carry no exploration noise"
        if scale == 1.0:  # URLB acts with sample(clip=None): noise of std 0.5 often exceeds the 0.3 clip
            assert np.any(np.abs(noisy - a1) > 0.3 + 1e-3), "acting noise was clipped at stddev_clip"


def test_schedule():
    assert schedule("linear(1.0,0.1,100)", 50) == pytest.approx(0.55)
    assert schedule("linear(1.0, 0.1, 100)", 0) == pytest.approx(1.0)
    assert schedule("linear(1.0,0.1,100)", 1000) == pytest.approx(0.1)
    assert schedule("0.2", 7) == pytest.approx(0.2)
    assert schedule(0.3, 7) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        schedule("cosine(1,2)", 3)


# --- determinism and failure --------------------------------------------------------------


def _train_seeded(seed: int, batches: list[Batch]) -> DDPGAgent:
    torch.manual_seed(seed)
    agent = make_agent(rnd=True, reward_free=True)
    for step, batch in enumerate(batches):
        agent.update(batch, step)
    return agent


def test_seed_determinism():
    gen = torch.Generator().manual_seed(7)
    batches = [random_batch(gen) for _ in range(4)]
    a, b = _train_seeded(0, batches), _train_seeded(0, batches)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    c = _train_seeded(1, batches)
    assert not torch.equal(c.actor.trunk[0].weight, a.actor.trunk[0].weight)


def test_nan_reward_raises_non_finite_error_naming_critic_loss_and_step():
    torch.manual_seed(0)
    agent = make_agent()
    batch = random_batch(torch.Generator().manual_seed(8))
    batch.reward[3, 0] = float("nan")
    critic_before = clone_params(agent.critic)
    with pytest.raises(NonFiniteError) as info:
        agent.update(batch, 7)
    message = str(info.value)
    assert "critic loss" in message
    assert re.search(r"\b7\b", message), message
    # Raised before the optimiser step: the weights are not poisoned.
    assert all_equal(critic_before, agent.critic.parameters())
    assert parameters_finite(agent)


# --- pixels and precision -----------------------------------------------------------------


@pytest.mark.parametrize("rnd", [False, True], ids=["ddpg", "rnd-reward-free"])
def test_pixels_update_trains_encoder(rnd):
    torch.manual_seed(0)
    agent = make_agent(rnd=rnd, reward_free=rnd, obs_type="pixels")
    batch = random_batch(torch.Generator().manual_seed(9), batch_size=4, pixels=True)  # 84x84 convs: keep it small
    assert batch.obs.dtype == torch.uint8
    encoder_before = clone_params(agent.encoder)
    metrics = agent.update(batch, 0)
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert any_changed(encoder_before, agent.encoder), "the pixel encoder did not learn"
    if rnd:
        assert math.isfinite(metrics["intrinsic_reward"])
    action = agent.act(batch.obs[0].numpy(), None, step=0, eval_mode=True)
    assert action.shape == (ACT_DIM,) and action.dtype == np.float32


@pytest.mark.parametrize("rnd", [False, True], ids=["ddpg", "rnd-reward-free"])
def test_bf16_update_gives_finite_losses(rnd):
    torch.manual_seed(0)
    agent = make_agent(rnd=rnd, reward_free=rnd, precision="bf16")
    gen = torch.Generator().manual_seed(10)
    for step in range(3):
        metrics = agent.update(random_batch(gen), step)
        for k in ("critic_loss", "actor_loss"):
            assert math.isfinite(metrics[k]), (k, metrics[k])
    assert all(p.dtype == torch.float32 for p in agent.parameters())
    assert parameters_finite(agent)
    action = agent.act(np.zeros(OBS_DIM, np.float32), None, step=0, eval_mode=True)
    assert action.dtype == np.float32


def test_unknown_precision_rejected():
    with pytest.raises(ValueError, match="precision"):
        make_agent(precision="fp16")


# --- torch.compile -------------------------------------------------------------------------


def test_compiled_agent_updates_like_the_eager_one():
    """compile_backend compiles the networks in place: same losses, parameters and state_dict
    keys as eager (aot_eager traces forward and backward without needing a C++ compiler)."""
    agents, metrics = [], []
    for backend in (None, "aot_eager"):
        torch.manual_seed(0)  # the same initial weights and exploration noise for both
        agents.append(make_agent(rnd=True, reward_free=True, compile_backend=backend))
        gen = torch.Generator().manual_seed(3)
        metrics.append([agents[-1].update(random_batch(gen), step) for step in range(2)])
    for eager, compiled in zip(*metrics):
        for key in ("critic_loss", "actor_loss", "intrinsic_reward"):
            assert compiled[key] == pytest.approx(eager[key], rel=1e-4, abs=1e-6), key
    eager_state, compiled_state = agents[0].state_dict(), agents[1].state_dict()
    assert list(compiled_state) == list(eager_state)  # snapshots interchangeable
    for key, value in eager_state.items():
        torch.testing.assert_close(compiled_state[key], value, rtol=1e-4, atol=1e-5)
    obs = np.zeros(OBS_DIM, np.float32)
    np.testing.assert_allclose(
        agents[1].act(obs, None, step=0, eval_mode=True),
        agents[0].act(obs, None, step=0, eval_mode=True),
        rtol=1e-4,
        atol=1e-5,
    )


def test_unknown_compile_backend_rejected():
    with pytest.raises(ValueError, match="compile backend 'fast'.*inductor"):
        make_agent(compile_backend="fast")
