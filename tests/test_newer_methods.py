"""BeCL and CeSD pinned to their public code's formulas (Rooshy-yang/BeCL agent/becl.py;
Baichenjia/CeSD agent/cesd.py and agent/ensemble_ddpg.py).

Expected values are computed here in float64 numpy from the networks' weights and the public
formulas, never by calling the function under test.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from urlb.agents import make_plugin, plugin_class
from urlb.agents.cesd import EnsembleLinear
from urlb.ddpg import DDPGAgent
from urlb.replay import Batch
from urlb.skill_schedule import selection_mode

OBS, ACT, HID = 5, 2, 16


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def np_(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def np_forward(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """float64 forward of a Sequential of Linear / EnsembleLinear / ReLU / Tanh / LayerNorm."""
    x = np.asarray(x, dtype=np.float64)
    for layer in module:
        if isinstance(layer, nn.Linear):
            x = x @ np_(layer.weight).T + (0.0 if layer.bias is None else np_(layer.bias))
        elif isinstance(layer, EnsembleLinear):
            x = x @ np_(layer.weight) + np_(layer.bias)
        elif isinstance(layer, nn.ReLU):
            x = np.maximum(x, 0.0)
        elif isinstance(layer, nn.Tanh):
            x = np.tanh(x)
        elif isinstance(layer, nn.LayerNorm):
            mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
            x = (x - mu) / np.sqrt(var + layer.eps) * np_(layer.weight) + np_(layer.bias)
        else:
            raise TypeError(f"no numpy reference for {layer}")
    return x


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def one_hots(labels, k: int) -> torch.Tensor:
    return torch.eye(k)[torch.as_tensor(labels)]


def make_batch(skill: torch.Tensor, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    n = len(skill)
    obs = torch.randn(n, OBS, generator=g) * 2.0 + 1.0
    return Batch(
        obs=obs,
        action=torch.rand(n, ACT, generator=g) * 2 - 1,
        reward=torch.randn(n, 1, generator=g),
        discount=torch.full((n, 1), 0.97),
        next_obs=obs + torch.randn(n, OBS, generator=g),
        next_obs_1step=obs,
        skill=skill,
    )


# --------------------------------------------------------------------------- BeCL (agent/becl.py)


def becl_nce(features: np.ndarray, labels: np.ndarray, temperature: float) -> np.ndarray:
    """compute_info_nce_loss: (B, 1)."""
    f = unit(features)
    sim = f @ f.T
    n = len(labels)
    off = ~np.eye(n, dtype=bool)
    sim = sim[off].reshape(n, n - 1) / temperature
    same = (labels[:, None] == labels[None, :])[off].reshape(n, n - 1)
    sim = np.exp(sim - sim.max(1, keepdims=True))
    positive = sim[np.arange(n), same.argmax(1)]  # first positive; column 0 when there is none
    return -np.log(positive / (sim.sum(1) + 1e-6) + 1e-6)[:, None]


def becl_features(p, next_obs) -> np.ndarray:
    return np_forward(p.becl.project_head, np_forward(p.becl.embed, np_(next_obs)))


def test_becl_loss_closed_form_including_a_skill_without_positive():
    torch.manual_seed(0)
    p = make_plugin("becl", OBS, ACT, hidden_dim=HID, skill_dim=4)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 3, 0, 1, 2])  # skill 3 has no other sample
    batch = make_batch(one_hots(labels, 4))
    expected = becl_nce(becl_features(p, batch.next_obs), labels, 0.5)
    np.testing.assert_allclose(np_(p.contrastive_loss(batch.next_obs, batch.skill)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np_(p.intrinsic_reward(batch)), np.exp(-expected), rtol=1e-5, atol=1e-7)


def test_becl_update_steps_once_per_batch_and_rewards_the_last_after_its_steps():
    torch.manual_seed(1)
    p = make_plugin("becl", OBS, ACT, hidden_dim=HID, skill_dim=4)
    assert p.batches_per_update == 3
    parts = [make_batch(one_hots(np.arange(10) % 4, 4), seed=s) for s in range(3)]
    batch = Batch(*(torch.cat(ts) for ts in zip(*parts)))
    reward, metrics = p.update(batch, step=0)
    assert reward.shape == (10, 1)
    assert all(state["step"] == 3 for state in p.optimizer.state.values())
    last = parts[-1]
    expected = becl_nce(becl_features(p, last.next_obs), np.arange(10) % 4, 0.5)
    np.testing.assert_allclose(np_(reward), np.exp(-expected), rtol=1e-5, atol=1e-7)
    assert set(metrics) == {"becl_contrastive_loss", "becl_contrastive_reward"}


def test_becl_finetune_skill_random_by_default_or_the_given_one_hot():
    assert selection_mode(make_plugin("becl", OBS, ACT, hidden_dim=HID), None) == "random"
    fixed = make_plugin("becl", OBS, ACT, hidden_dim=HID, finetune_skill=5)
    assert selection_mode(fixed, None) == "fixed"
    np.testing.assert_array_equal(fixed.default_skill(), np.eye(16, dtype=np.float32)[5])
    with pytest.raises(ValueError, match="finetune_skill=16"):
        make_plugin("becl", OBS, ACT, hidden_dim=HID, finetune_skill=16)


# --------------------------------------------------------------------------- CeSD (agent/cesd.py)


def cesd_plugin(seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return make_plugin("cesd", OBS, ACT, hidden_dim=HID, ensemble_size=3, **kwargs)


def test_cesd_cic_loss_closed_form():
    p = cesd_plugin()
    batch = make_batch(one_hots(np.arange(20) % 3, 3))
    f = lambda x: np_forward(p.cic.state_net, np_(x))  # noqa: E731
    query = unit(np_forward(p.cic.skill_net, np_(batch.skill)))
    key = unit(np_forward(p.cic.pred_net, np.concatenate([f(batch.obs), f(batch.next_obs)], 1)))
    negatives = np.maximum(np.exp(query @ key.T / 0.5).sum(1) - math.e ** (1 / 0.5), 1e-6)
    positives = np.exp((query * key).sum(1) / 0.5)
    expected = -np.log(positives / (negatives + 1e-6))
    np.testing.assert_allclose(np_(p.cic.loss(batch.obs, batch.next_obs, batch.skill, 0.5)), expected, rtol=1e-5)


def test_cesd_prototype_loss_closed_form():
    p = cesd_plugin(proto_num_iters={"walker": 4})
    batch = make_batch(one_hots(np.arange(20) % 3, 3))
    protos = unit(np_(p.protos.weight))

    def scores(x):
        return unit(np_forward(p.cic.state_net, np_(x))) @ protos.T / 0.1

    s = scores(batch.obs)
    log_p = s - s.max(1, keepdims=True) - np.log(np.exp(s - s.max(1, keepdims=True)).sum(1, keepdims=True))
    q = np.exp(scores(batch.next_obs) - scores(batch.next_obs).max()).T  # ProtoRL's Sinkhorn, 4 iterations
    q /= q.sum()
    for _ in range(4):
        q *= (1 / q.shape[0]) / q.sum(1, keepdims=True)
        q *= (1 / q.shape[1]) / q.sum(0, keepdims=True)
    q = (q / q.sum(0, keepdims=True)).T
    np.testing.assert_allclose(
        p.prototype_loss(batch.obs, batch.next_obs).item(), -(q * log_p).sum(1).mean(), rtol=1e-5
    )
    np.testing.assert_allclose(np.linalg.norm(np_(p.protos.weight), axis=1), 1.0, rtol=1e-6)


def test_cesd_cluster_reward_closed_form():
    """Per cluster of more than 16 states: 16 averaged neighbours within the cluster (self
    included), divided by CeSD's RMS variance updated with that cluster's distances first (in
    cluster order), clipped at 5e-4, log(1 + mean), plus constrain_factor / (1 + states of the
    cluster collected by other skills). Smaller clusters: 0; every cluster's member learns."""
    p = cesd_plugin(constrain_factor={"walker": 0.7})
    cluster = torch.tensor([0] * 30 + [1] * 10 + [2] * 20)[
        torch.randperm(60, generator=torch.Generator().manual_seed(3))
    ]
    labels = np.random.default_rng(4).integers(3, size=60)
    batch = make_batch(one_hots(labels, 3), seed=5)
    reward, mask = p.cluster_reward(batch.next_obs, batch.skill, cluster)
    features = np_forward(p.cic.state_net, np_(batch.next_obs))
    mean, var, count = 0.0, 1.0, 1e-4
    expected = np.zeros(60)
    for member in range(3):
        rows = np.flatnonzero(cluster.numpy() == member)
        if len(rows) <= 16:
            continue
        f = features[rows]
        knn = np.sort(np.sqrt(((f[:, None] - f[None]) ** 2).sum(-1)), axis=1)[:, :16]
        n, delta = knn.size, knn.mean() - mean
        var = (var * count + knn.var(ddof=1) * n + delta**2 * count * n / (count + n)) / (count + n)
        mean, count = mean + delta * n / (count + n), count + n
        entropy = np.log(1.0 + np.maximum(knn / var - 5e-4, 0.0).mean(1))
        expected[rows] = entropy + 0.7 / (1.0 + (labels[rows] != member).sum())
    np.testing.assert_allclose(np_(reward)[:, 0], expected, rtol=1e-4, atol=1e-6)
    assert (expected[cluster.numpy() == 1] == 0).all()
    np.testing.assert_allclose(p.distance_var.item(), var, rtol=1e-5)
    np.testing.assert_array_equal(
        mask[:, :, 0].numpy(), (cluster.numpy()[None] == np.arange(3)[:, None]).astype(np.float32)
    )


def test_cesd_clusters_follow_the_prototype_softmax():
    """Prototypes equal to the embeddings of three states and a cold temperature: each copy of
    a state is drawn into its own prototype's cluster."""
    p = cesd_plugin(proto_T=1e-3)
    states = torch.randn(3, OBS)
    with torch.no_grad():
        p.protos.weight.copy_(nn.functional.normalize(p.cic.state_net(states), dim=1))
    cluster = p.assign_clusters(states.repeat(20, 1))
    np.testing.assert_array_equal(cluster.numpy(), np.tile(np.arange(3), 20))


def cesd_agent(**kwargs) -> DDPGAgent:
    torch.manual_seed(0)
    plugin = make_plugin("cesd", OBS, ACT, hidden_dim=HID, ensemble_size=3, **kwargs)
    # stddev 0: the backbone's action noise is zero, so its losses have a closed form
    return DDPGAgent("states", (OBS,), ACT, hidden_dim=HID, stddev_schedule=0.0, plugin=plugin, reward_free=True)


def ensemble_q(critic, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    h = np_forward(critic.trunk, np.concatenate([obs, action], 1))
    return np.minimum(np_forward(critic.q1, h[None]), np_forward(critic.q2, h[None]))  # (E, B, 1)


def test_cesd_ensemble_critic_and_actor_losses_through_the_backbone():
    """ensemble_ddpg.py: target_Q (E,B,1) = r + d * min of the target members; critic loss
    mse(Q*mask, target*mask) for both heads; actor loss -mean over (E, B) of skill^T * min Q."""
    agent = cesd_agent()
    labels = np.arange(24) % 3
    batch = make_batch(one_hots(labels, 3))
    seen = {}
    update = agent.plugin.update
    agent.plugin.update = lambda b, s: seen.setdefault("out", update(b, s))
    before = copy.deepcopy(agent)
    metrics = agent.update(batch, step=0)
    reward, mask = np_(seen["out"][0]), np_(agent.plugin.critic_mask())
    obs, skill = np_(batch.obs), np_(batch.skill)
    clamp = lambda a: np.clip(a, -1 + 1e-6, 1 - 1e-6)  # noqa: E731
    next_in = np.concatenate([np_(batch.next_obs), skill], 1)
    next_action = clamp(np.tanh(np_forward(before.actor.policy, np_forward(before.actor.trunk, next_in))))
    target = reward + np_(batch.discount) * ensemble_q(before.critic_target, np_(batch.next_obs), next_action)
    h = np_forward(before.critic.trunk, np.concatenate([obs, np_(batch.action)], 1))[None]
    loss = sum(((np_forward(q, h) * mask - target * mask) ** 2).mean() for q in (before.critic.q1, before.critic.q2))
    np.testing.assert_allclose(metrics["critic_loss"], loss, rtol=1e-4)
    action = clamp(
        np.tanh(np_forward(before.actor.policy, np_forward(before.actor.trunk, np.concatenate([obs, skill], 1))))
    )
    value = ensemble_q(agent.critic, obs, action)  # the critic after its step, as the actor sees it
    np.testing.assert_allclose(metrics["actor_loss"], -(skill.T[..., None] * value).mean(), rtol=1e-4)
    assert mask.shape == (3, 24, 1) and (mask.sum(0) == 1).all()


def test_cesd_finetuning_copies_trunk_holds_a_random_skill_and_trains_every_member():
    pre = cesd_agent()
    fine = cesd_agent()
    with torch.no_grad():
        for p in pre.critic.parameters():
            p.add_(1.0)
    fine.reward_free = False
    fine.init_from(pre.networks_state())
    for name, value in fine.critic.state_dict().items():
        copied = torch.equal(value, pre.critic.state_dict()[name])
        assert copied == name.startswith("trunk."), name
    assert selection_mode(fine.plugin, None) == "random"
    batch = make_batch(one_hots(np.zeros(12, int), 3))
    heads = {k: v.clone() for k, v in fine.critic.state_dict().items() if not k.startswith("trunk.")}
    fine.update(batch, step=0)
    for name, value in heads.items():  # with the task reward every member learns from every sample
        changed = (fine.critic.state_dict()[name] != value).flatten(1).any(1)
        assert changed.all(), name


def test_cesd_refuses_pixels_and_unknown_domains():
    from urlb.errors import ConfigError

    with pytest.raises(ConfigError, match="obs_type=states"):
        DDPGAgent("pixels", (9, 84, 84), ACT, hidden_dim=HID, plugin=cesd_plugin())
    with pytest.raises(ConfigError, match="no entry for domain 'cheetah'"):
        cesd_plugin(domain="cheetah")


def test_ensemble_linear_initialised_as_vectorized_linear():
    """VectorizedLinear: kaiming-uniform on each (in, out) slice, whose torch fan-in is ``out``."""
    layer = EnsembleLinear(64, 8, 5)
    bound = 1 / math.sqrt(8)  # kaiming_uniform(a=sqrt(5)) and the bias: 1/sqrt(fan-in), fan-in 8
    assert 2 / math.sqrt(64) < layer.weight.abs().max() <= bound
    assert layer.bias.abs().max() <= bound
    assert not torch.equal(layer.weight[0], layer.weight[1])


# --------------------------------------------------------------------------- defaults (the public yaml files)

PUBLIC_DEFAULTS = {
    "becl": {
        "skill_dim": 16,
        "update_skill_every_step": 50,
        "contrastive_update_rate": 3,
        "temperature": 0.5,
        "finetune_skill": -1,
        "hidden_dim": 1024,
        "lr": 1e-4,
    },
    "cesd": {
        "ensemble_size": 16,
        "update_skill_every_step": 50,
        "project_skill": True,
        "update_rep": True,
        "temp": 0.5,
        "proto_T": 0.1,
        "knn_k": 16,
        "knn_clip": 0.0005,
        "hidden_dim": 1024,
        "lr": 1e-4,
        "proto_num_iters": {"walker": 6, "quadruped": 5, "jaco": 4},
        "constrain_factor": {"walker": 1.0, "quadruped": 1.0, "jaco": 0.1},
    },
}


@pytest.mark.parametrize("name", sorted(PUBLIC_DEFAULTS))
def test_defaults_are_the_public_yaml(name):
    import inspect

    config = OmegaConf.load(Path(__file__).parents[1] / "configs" / "agent" / f"{name}.yaml")
    ddpg = OmegaConf.load(Path(__file__).parents[1] / "configs" / "agent" / "ddpg.yaml")
    plugin = plugin_class(name)(OBS, ACT)
    signature = inspect.signature(plugin_class(name).__init__).parameters
    for key, value in PUBLIC_DEFAULTS[name].items():
        configured = config[key] if key in config else ddpg[key]
        configured = OmegaConf.to_object(configured) if OmegaConf.is_config(configured) else configured
        assert configured == value, key
        default = signature[key].default
        if default is None:  # the per-domain tables: the constructor fills them in
            table = {"proto_num_iters": plugin.proto_num_iters, "constrain_factor": plugin.constrain_factor}[key]
            assert table == value["walker"], key
        else:
            assert default == value, key


def test_becl_backbone_learns_from_the_last_of_its_batches():
    """A reward-free BeCL update samples contrastive_update_rate batches; the critic's target
    uses the reward of the last one, and only its rows."""
    torch.manual_seed(0)
    plugin = make_plugin("becl", OBS, ACT, hidden_dim=HID, skill_dim=4)
    agent = DDPGAgent("states", (OBS,), ACT, hidden_dim=HID, stddev_schedule=0.0, plugin=plugin, reward_free=True)
    assert agent.batch_rows(10) == 30 and DDPGAgent("states", (OBS,), ACT, hidden_dim=HID).batch_rows(10) == 10
    parts = [make_batch(one_hots(np.arange(10) % 4, 4), seed=s) for s in range(3)]
    batch = Batch(*(torch.cat(ts) for ts in zip(*parts)))
    seen = {}
    update = agent.plugin.update
    agent.plugin.update = lambda b, s: seen.setdefault("out", update(b, s))
    before = copy.deepcopy(agent)
    metrics = agent.update(batch, step=0)
    last = parts[-1]
    obs_in = np.concatenate([np_(last.obs), np_(last.skill)], 1)
    next_in = np.concatenate([np_(last.next_obs), np_(last.skill)], 1)
    next_action = np.clip(
        np.tanh(np_forward(before.actor.policy, np_forward(before.actor.trunk, next_in))), -1 + 1e-6, 1 - 1e-6
    )
    target = np_(seen["out"][0]) + np_(last.discount) * ensemble_q(before.critic_target, next_in, next_action)[0]
    h = np_forward(before.critic.trunk, np.concatenate([obs_in, np_(last.action)], 1))
    loss = sum(((np_forward(q, h) - target) ** 2).mean() for q in (before.critic.q1, before.critic.q2))
    np.testing.assert_allclose(metrics["critic_loss"], loss, rtol=1e-4)
    np.testing.assert_allclose(metrics["batch_reward"], np_(seen["out"][0]).mean(), rtol=1e-5)
