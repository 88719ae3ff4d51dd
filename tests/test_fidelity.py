"""Each method and the backbone pinned to the public code's formulas.

Expected values are computed here in float64 numpy from the networks' weights and the
formulas of rll-research/url_benchmark (URLB), rll-research/cic and seohongpark/METRA, never
by calling the function under test. Rewards are checked with the weights *after* the plugin's
optimiser step (where the public code computes them) and losses with the weights before it.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from urlb.agents import make_plugin
from urlb.ddpg import DDPGAgent, noisy_action, straight_through_clamp
from urlb.replay import Batch

OBS, ACT, HID, B = 5, 2, 16, 12


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- numpy references


def np_forward(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """float64 forward pass of a Sequential of Linear / ReLU / Tanh / LayerNorm / Identity."""
    x = np.asarray(x, dtype=np.float64)
    for layer in module if isinstance(module, nn.Sequential) else [module]:
        if isinstance(layer, nn.Sequential):
            x = np_forward(layer, x)
        elif isinstance(layer, nn.Linear):
            x = x @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()
        elif isinstance(layer, nn.ReLU):
            x = np.maximum(x, 0.0)
        elif isinstance(layer, nn.Tanh):
            x = np.tanh(x)
        elif isinstance(layer, nn.LayerNorm):
            mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
            x = (x - mu) / np.sqrt(
                var + layer.eps
            ) * layer.weight.detach().double().numpy() + layer.bias.detach().double().numpy()
        elif isinstance(layer, nn.Identity):
            pass
        else:
            raise TypeError(f"no numpy reference for {layer}")
    return x


class URLBRms:
    """URLB utils.RMS: M=0, S=1, n=1e-4; S takes torch.var's unbiased batch variance."""

    def __init__(self) -> None:
        self.M, self.S, self.n = 0.0, 1.0, 1e-4

    def __call__(self, x: np.ndarray) -> tuple[float, float]:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        bs = len(x)
        delta = x.mean() - self.M
        self.M = self.M + delta * bs / (self.n + bs)
        self.S = (self.S * self.n + x.var(ddof=1) * bs + delta**2 * self.n * bs / (self.n + bs)) / (self.n + bs)
        self.n += bs
        return self.M, self.S


def pbe(rep: np.ndarray, k: int, clip: float, normalise) -> np.ndarray:
    """URLB utils.PBE / CIC compute_apt_reward with knn_avg: the k smallest distances (the
    point itself first), all B*k through ``normalise``, minus clip floored at 0, mean, log(1+.)."""
    d = np.sqrt(((rep[:, None, :] - rep[None, :, :]) ** 2).sum(-1))
    knn = np.sort(d, axis=1)[:, :k]
    knn = normalise(knn)
    knn = np.maximum(knn - clip, 0.0)
    return np.log(1.0 + knn.mean(1, keepdims=True))


def batch_of(plugin, seed: int = 0, batch_size: int = B, skill: np.ndarray | None = None) -> Batch:
    g = torch.Generator().manual_seed(seed)

    def obs():
        return torch.randn(batch_size, OBS, generator=g) * 2.0 + 1.0

    if skill is None and plugin.skill_dim:
        rng = np.random.default_rng(seed)
        skill = np.stack([plugin.sample_skill(rng) for _ in range(batch_size)])
    return Batch(
        obs=obs(),
        action=torch.rand(batch_size, ACT, generator=g) * 2 - 1,
        reward=torch.zeros(batch_size, 1),
        discount=torch.ones(batch_size, 1),
        next_obs=obs(),
        next_obs_1step=obs(),
        skill=None if skill is None else torch.as_tensor(skill, dtype=torch.float32),
    )


def plugin(name: str, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return make_plugin(name, OBS, ACT, hidden_dim=HID, **kwargs)


def np_(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


# --------------------------------------------------------------------------- RND (URLB rnd.py)


def rnd_error(p, obs: np.ndarray) -> np.ndarray:
    # BatchNorm1d(affine=False) in training mode: batch mean, biased batch variance, eps 1e-5.
    x = (obs - obs.mean(0)) / np.sqrt(obs.var(0) + 1e-5)
    x = np.clip(x, -5.0, 5.0)
    return ((np_forward(p.target, x) - np_forward(p.predictor, x)) ** 2).mean(-1, keepdims=True)


def test_rnd_loss_and_reward_with_batch_norm_statistics():
    p = plugin("rnd", rep_dim=8)
    rms = URLBRms()
    for step in range(3):  # the running std of errors accumulates over updates
        batch = batch_of(p, seed=step)
        obs = np_(batch.obs)  # URLB trains and rewards s_t, not s_{t+n}
        expected_loss = rnd_error(p, obs).mean()
        reward, metrics = p.update(batch, step)
        assert metrics["rnd_loss"] == pytest.approx(expected_loss, rel=1e-4)
        error = rnd_error(p, obs)  # the predictor after its step
        _, var = rms(error)
        np.testing.assert_allclose(np_(reward), error / (np.sqrt(var) + 1e-8), rtol=1e-4)
    assert not np.allclose(rnd_error(p, obs), rnd_error(p, np_(batch.next_obs)))  # s_t vs s_{t+n} matters


def test_rnd_reward_before_step_option():
    p = plugin("rnd", rep_dim=8, reward_after_update=False)
    batch = batch_of(p)
    error = rnd_error(p, np_(batch.obs))  # before the step
    reward, _ = p.update(batch, 0)
    _, var = URLBRms()(error)
    np.testing.assert_allclose(np_(reward), error / (np.sqrt(var) + 1e-8), rtol=1e-4)


# --------------------------------------------------------------------------- APT (URLB icm_apt.py)


@pytest.mark.parametrize("knn_rms", [False, True])
def test_apt_reward_knn_rms_off_and_on(knn_rms):
    k = 4
    p = plugin("apt", rep_dim=8, knn_k=k, knn_rms=knn_rms)
    rms = URLBRms()
    for step in range(2):
        batch = batch_of(p, seed=step)
        s, a, s_n = np_(batch.obs), np_(batch.action), np_(batch.next_obs)
        # ICM loss on the sampled (s_t, a_t, s_{t+n}), before the step: L2 norms, not squared.
        h, h_n = np_forward(p.icm.trunk, s), np_forward(p.icm.trunk, s_n)
        forward = np.linalg.norm(h_n - np_forward(p.icm.forward_net, np.concatenate([h, a], 1)), axis=1)
        inverse = np.linalg.norm(a - np_forward(p.icm.inverse_net, np.concatenate([h, h_n], 1)), axis=1)
        reward, metrics = p.update(batch, step)
        assert metrics["icm_forward_error"] == pytest.approx(forward.mean(), rel=1e-4)
        assert metrics["icm_inverse_error"] == pytest.approx(inverse.mean(), rel=1e-4)
        # Reward: particle entropy of the ICM trunk of s_t after the step; knn_rms divides by
        # the running MEAN of the distances (URLB PBE), clip 0.
        rep = np_forward(p.icm.trunk, s)
        normalise = (lambda d: d / rms(d)[0]) if knn_rms else (lambda d: d)
        np.testing.assert_allclose(np_(reward), pbe(rep, k, 0.0, normalise), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- CIC (cic.py)


def cic_loss(p, s, s_n, z, temperature=0.5) -> float:
    def unit(v):
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    query = unit(np_forward(p.skill_net, z))
    key = unit(np_forward(p.pred_net, np.concatenate([np_forward(p.state_net, s), np_forward(p.state_net, s_n)], 1)))
    sim = np.exp(query @ key.T / temperature)
    neg = np.maximum(sim.sum(1) - math.e ** (1 / temperature), 1e-6)
    pos = np.exp((query * key).sum(1) / temperature)
    return float(np.mean(-np.log(pos / (neg + 1e-6))))


def test_cic_loss_and_reward_with_variance_normaliser():
    k = 4
    p = plugin("cic", skill_dim=4, knn_k=k)
    rms = URLBRms()
    for step in range(2):
        batch = batch_of(p, seed=step, batch_size=16)
        s, s_n, z = np_(batch.obs), np_(batch.next_obs), np_(batch.skill)
        expected_loss = cic_loss(p, s, s_n, z)
        reward, metrics = p.update(batch, step)
        assert metrics["cic_contrastive_loss"] == pytest.approx(expected_loss, rel=1e-4)
        # Reward: kNN of f(s_{t+n}) after the step, distances divided by the running VARIANCE
        # S (what the code calls moving_std), clip 5e-4.
        rep = np_forward(p.state_net, s_n)
        np.testing.assert_allclose(np_(reward), pbe(rep, k, 0.0005, lambda d: d / rms(d)[1]), rtol=1e-4, atol=1e-6)


def test_cic_denominator_differs_from_full_nce():
    p = plugin("cic", skill_dim=4)
    batch = batch_of(p, batch_size=16)
    with torch.no_grad():
        logits, _ = p.contrastive_logits(batch.obs, batch.next_obs, batch.skill)
        full = torch.nn.functional.cross_entropy(logits, torch.arange(16)).item()
    expected = cic_loss(p, np_(batch.obs), np_(batch.next_obs), np_(batch.skill))
    assert p.contrastive_loss(logits).item() == pytest.approx(expected, rel=1e-5)
    assert abs(expected - full) > 1e-3  # the option is a different loss
    p.nce = "full"
    assert p.contrastive_loss(logits).item() == pytest.approx(full, rel=1e-6)


# --------------------------------------------------------------------------- DIAYN (URLB diayn.py)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


@pytest.mark.parametrize("after", [True, False])
def test_diayn_loss_and_reward(after):
    p = plugin("diayn", skill_dim=4, reward_after_update=after)
    batch = batch_of(p)
    s_n, label = np_(batch.next_obs), np_(batch.skill).argmax(1)
    before = log_softmax(np_forward(p.discriminator, s_n))
    reward, metrics = p.update(batch, 0)
    assert metrics["diayn_loss"] == pytest.approx(-before[np.arange(B), label].mean(), rel=1e-4)
    # URLB's df_accuracy comes from the discriminator's output before its step.
    assert metrics["diayn_accuracy"] == pytest.approx((before.argmax(1) == label).mean(), abs=1e-7)
    logp = log_softmax(np_forward(p.discriminator, s_n)) if after else before
    expected = logp[np.arange(B), label][:, None] - math.log(1 / 4)
    np.testing.assert_allclose(np_(reward), expected, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- METRA (iod/metra.py)


@pytest.mark.parametrize("discrete, constraint", [(False, "mean"), (True, "mean"), (False, "sum")])
def test_metra_three_terms(discrete, constraint):
    d = 4 if discrete else 3
    p = plugin("metra", skill_dim=d, discrete=discrete, constraint=constraint)
    batch = batch_of(p)
    s, s1, z = np_(batch.obs), np_(batch.next_obs_1step), np_(batch.skill)
    # METRA: discrete one-hots enter as (z - mean z) * D/(D-1); continuous z as is.
    direction = (z - z.mean(1, keepdims=True)) * d / (d - 1) if discrete else z
    delta = np_forward(p.phi, s1) - np_forward(p.phi, s)
    along = (delta * direction).sum(1)
    squared = (delta**2).mean(1) if constraint == "mean" else (delta**2).sum(1)
    cst = np.minimum(1.0 - squared, 1e-3)
    lam = 30.0
    reward, metrics = p.update(batch, 0)
    # (1) the representation objective, (2) the clipped constraint term, (3) the dual step:
    # Adam's first step moves log(lambda) by lr against the sign of the mean constraint.
    assert metrics["metra_phi_loss"] == pytest.approx(-(along + lam * cst).mean(), rel=1e-4)
    assert metrics["metra_constraint"] == pytest.approx(cst.mean(), rel=1e-4, abs=1e-7)
    expected_lambda = math.exp(math.log(lam) - 1e-4 * np.sign(cst.mean()))
    assert metrics["metra_lambda"] == pytest.approx(expected_lambda, rel=1e-6)
    # The policy's reward: one step (s_t, s_{t+1}), phi after its step.
    delta_after = np_forward(p.phi, s1) - np_forward(p.phi, s)
    np.testing.assert_allclose(np_(reward), (delta_after * direction).sum(1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_metra_nstep_reward_option_telescopes_to_s_t_plus_n():
    p = plugin("metra", skill_dim=2, reward_steps="nstep")
    batch = batch_of(p)
    reward, _ = p.update(batch, 0)
    delta = np_forward(p.phi, np_(batch.next_obs)) - np_forward(p.phi, np_(batch.obs))
    np.testing.assert_allclose(np_(reward), (delta * np_(batch.skill)).sum(1, keepdims=True), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- defaults


PUBLIC_DEFAULTS = {
    "rnd": {"obs_norm": "batch", "reward_obs": "obs", "reward_after_update": True, "clip_obs": 5.0},
    "apt": {
        "knn_rms": False,
        "knn_rms_stat": "mean",
        "knn_k": 12,
        "knn_avg": True,
        "knn_clip": 0.0,
        "reward_obs": "obs",
        "icm_next": "nstep",
        "rep": "icm",
    },
    "cic": {
        "knn_rms": True,
        "knn_rms_stat": "var",
        "knn_k": 16,
        "knn_clip": 0.0005,
        "nce": "cic",
        "reward_after_update": True,
        "temperature": 0.5,
        "skill_dim": 64,
    },
    "diayn": {"reward_after_update": True, "skill_dim": 16, "update_skill_every_step": 50},
    "metra": {
        "constraint": "mean",
        "reward_steps": "one",
        "reward_after_update": True,
        "dual_slack": 1e-3,
        "dual_lambda_init": 30.0,
    },
}


@pytest.mark.parametrize("name", sorted(PUBLIC_DEFAULTS))
def test_defaults_are_the_public_codes(name):
    """Both the constructor's defaults and configs/agent/<name>.yaml select the public code's behaviour."""
    import inspect
    from pathlib import Path

    from omegaconf import OmegaConf

    from urlb.agents import plugin_class

    signature = inspect.signature(plugin_class(name).__init__).parameters
    config = OmegaConf.load(Path(__file__).parents[1] / "configs" / "agent" / f"{name}.yaml")
    for key, value in PUBLIC_DEFAULTS[name].items():
        assert signature[key].default == value, f"{name}.{key} constructor default"
        assert config[key] == value, f"configs/agent/{name}.yaml {key}"


# --------------------------------------------------------------------------- backbone (URLB ddpg.py, utils.py)


def test_straight_through_clamp_value_and_gradient():
    x = torch.tensor([1.5, -2.0, 0.3, 1.0], requires_grad=True)
    y = straight_through_clamp(x)
    np.testing.assert_array_equal(y.detach().numpy(), np.array([1 - 1e-6, -1 + 1e-6, 0.3, 1 - 1e-6], np.float32))
    weights = torch.tensor([2.0, -3.0, 0.5, 7.0])
    (y * weights).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), weights.numpy())  # identity gradient, saturated or not


def test_actor_gradient_for_saturated_actions_is_the_critic_gradient():
    torch.manual_seed(0)
    agent = DDPGAgent("states", (OBS,), ACT, "cpu", hidden_dim=HID, stddev_schedule=0.2, stddev_clip=0.3)
    obs = torch.randn(64, OBS)
    mean = torch.full((64, ACT), 0.95, requires_grad=True)  # most noisy samples land beyond 1
    torch.manual_seed(1)
    action = noisy_action(mean, 0.2, 0.3)
    saturated = action.detach().abs() >= 1 - 1e-6
    assert saturated.float().mean() > 0.2, "setup: many samples should saturate"
    q1, q2 = agent.critic(obs, action)
    (-torch.min(q1, q2).mean()).backward()
    # Independently: the critic's gradient at the clamped action, passed straight to the mean.
    torch.manual_seed(1)
    noise = (torch.randn(64, ACT) * 0.2).clamp(-0.3, 0.3)
    leaf = (0.95 + noise).clamp(-1 + 1e-6, 1 - 1e-6).requires_grad_(True)
    r1, r2 = agent.critic(obs, leaf)
    (-torch.min(r1, r2).mean()).backward()
    torch.testing.assert_close(mean.grad, leaf.grad)
    assert bool((mean.grad[saturated] != 0).all()), "saturated samples must pass a gradient"


def test_actor_update_moves_a_policy_saturated_at_the_clamp():
    torch.manual_seed(0)
    agent = DDPGAgent("states", (OBS,), ACT, "cpu", hidden_dim=HID, stddev_schedule=1e-8, stddev_clip=0.3)
    with torch.no_grad():
        agent.actor.policy[-1].weight.zero_()
        agent.actor.policy[-1].bias.fill_(8.0)  # mean tanh(8) = 1 - 2e-7: every sample clamps at 1 - 1e-6
    agent._update_actor(torch.randn(32, OBS), None, step=0)
    grad = agent.actor.policy[-1].bias.grad
    assert grad is not None and bool((grad != 0).all()), "a hard clamp would give zero gradient here"


def test_acting_noise_is_not_clipped():
    torch.manual_seed(0)
    agent = DDPGAgent("states", (OBS,), ACT, "cpu", hidden_dim=HID, stddev_schedule=0.3, stddev_clip=0.3)
    obs = np.zeros(OBS, np.float32)
    mean = agent.act(obs, None, step=0, eval_mode=True)
    noise = np.stack([agent.act(obs, None, step=0, eval_mode=False) for _ in range(200)]) - mean
    # Clipped noise would stay within 0.3; N(0, 0.3) exceeds it in about a third of the draws.
    assert (np.abs(noise) > 0.3 + 1e-4).mean() > 0.15


def test_finetune_init_copies_encoder_actor_and_critic_trunk_only():
    torch.manual_seed(0)
    pre = DDPGAgent("states", (OBS,), ACT, "cpu", hidden_dim=HID, plugin=plugin("diayn", skill_dim=4, seed=0))
    snapshot = copy.deepcopy(pre.networks_state())
    torch.manual_seed(1)
    fine = DDPGAgent("states", (OBS,), ACT, "cpu", hidden_dim=HID, plugin=plugin("diayn", skill_dim=4, seed=1))
    fresh = copy.deepcopy(fine.networks_state())
    fine.init_from(snapshot)
    state = fine.networks_state()

    def same(a: dict, b: dict, prefix: str = "") -> bool:
        return all(torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))

    assert same(state["actor"], snapshot["actor"])
    assert same(state["critic"], snapshot["critic"], "trunk.")  # Linear + LayerNorm of the trunk
    for head in ("q1.", "q2."):  # heads stay freshly initialised, unlike the snapshot's
        assert same(state["critic"], fresh["critic"], head)
        assert not same(state["critic"], snapshot["critic"], head)
    assert same(state["critic_target"], fresh["critic_target"])  # the target is untouched
    assert not same(state["critic_target"], state["critic"], "trunk.")
    for opt in ("actor_opt", "critic_opt"):
        assert state[opt]["state"] == {}  # fresh optimisers
    # The plugin comes along for skill selection; it never reaches the actor or critic.
    assert same(state["plugin"], snapshot["plugin"])


def test_proto_finetune_init_copies_the_whole_critic_but_not_the_target():
    """URLB's ProtoAgent.init_from copies the whole critic (heads too); the target stays fresh."""
    torch.manual_seed(0)
    pre = DDPGAgent("states", (OBS,), ACT, "cpu", hidden_dim=HID, plugin=make_plugin("proto", OBS, ACT))
    snapshot = copy.deepcopy(pre.networks_state())
    torch.manual_seed(1)
    fine = DDPGAgent("states", (OBS,), ACT, "cpu", hidden_dim=HID, plugin=make_plugin("proto", OBS, ACT))
    fresh_target = copy.deepcopy(fine.critic_target.state_dict())
    fine.init_from(snapshot)
    for key, value in snapshot["critic"].items():
        assert torch.equal(fine.critic.state_dict()[key], value), key
    for key, value in fresh_target.items():
        assert torch.equal(fine.critic_target.state_dict()[key], value), key
    assert not torch.equal(fine.critic_target.state_dict()["q1.0.weight"], snapshot["critic"]["q1.0.weight"])


# --------------------------------------------------------------------------- DIAYN fine-tuning skill (URLB finetune.py)


def test_diayn_finetuning_redraws_a_one_hot_every_period_and_at_episode_start():
    from urlb.skill_schedule import finetune_schedule

    p = plugin("diayn", skill_dim=16)
    assert p.finetune_skill_selection == "resample"
    said: list[str] = []
    schedule = finetune_schedule(
        p, None, 10, from_snapshot=True, seed_steps=100, rng=np.random.default_rng(0), say=said.append
    )
    period = p.update_skill_every_step
    assert period == 50 and said
    per_period = []
    for start in range(0, 20 * period, period):
        skills = [schedule.skill_at(t) for t in range(start, start + period)]
        assert all(np.array_equal(z, skills[0]) for z in skills)  # held within the period
        assert skills[0].sum() == 1.0 and set(np.unique(skills[0])) == {0.0, 1.0}  # a one-hot
        per_period.append(int(skills[0].argmax()))
    assert len(set(per_period)) > 5  # redrawn at each period (16 skills, 20 draws)
    starts = {int(schedule.episode_start().argmax()) for _ in range(20)}
    assert len(starts) > 5  # and at each episode start


@pytest.mark.parametrize(
    "name, key",
    [
        ("rnd", "obs_norm"),
        ("rnd", "reward_obs"),
        ("apt", "reward_obs"),
        ("apt", "icm_next"),
        ("apt", "knn_rms_stat"),
        ("cic", "nce"),
        ("cic", "knn_rms_stat"),
        ("metra", "constraint"),
        ("metra", "reward_steps"),
    ],
)
def test_unknown_option_value_is_a_clear_error(name, key):
    with pytest.raises(ValueError, match=f"{key}='bogus'; valid: "):
        make_plugin(name, OBS, ACT, hidden_dim=HID, **{key: "bogus"})
