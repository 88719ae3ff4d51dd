"""Tests of the pre-training plugins (agents/*), their contract with the DDPG backbone and
the skill-selection helpers. Everything runs on CPU with tiny networks (hidden_dim 32)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from urlb.agents import REGISTRY, agent_names, config_keys, make_plugin, plugin_class
from urlb.agents.base import Plugin
from urlb.agents.rewards import ParticleEntropy, RunningMeanStd, nearest_distances
from urlb.ddpg import DDPGAgent
from urlb.replay import Batch
from urlb.skill_schedule import GridSkills

OBS_DIM, ACTION_DIM, HIDDEN = 24, 6, 32

# id -> (registered name, constructor kwargs). Every registered plugin appears at least once.
VARIANTS: dict[str, tuple[str, dict]] = {
    "rnd": ("rnd", {"rep_dim": 16}),
    "apt": ("apt", {"rep_dim": 16, "knn_k": 8}),
    "apt-state": ("apt", {"rep": "state", "knn_k": 8, "knn_rms": True}),  # running stats to round-trip
    "diayn": ("diayn", {}),
    "cic": ("cic", {"skill_dim": 16, "knn_k": 8}),
    "metra": ("metra", {}),
    "metra-discrete": ("metra", {"discrete": True, "skill_dim": 16}),
    "icm": ("icm", {}),
    "disagreement": ("disagreement", {}),
    "proto": ("proto", {"pred_dim": 16, "proj_dim": 32, "num_protos": 8, "queue_size": 16}),
    "smm": ("smm", {}),
    "aps": ("aps", {"knn_k": 8}),
    # one contrastive batch per update: these tests hand every plugin a single batch
    "becl": ("becl", {"contrastive_update_rate": 1}),
    "cesd": ("cesd", {"ensemble_size": 4, "knn_k": 8}),
}
VARIANT_IDS = list(VARIANTS)
SKILL_VARIANTS = [v for v in VARIANT_IDS if VARIANTS[v][0] in ("diayn", "cic", "metra", "smm", "aps", "becl", "cesd")]
EXPLORATION_VARIANTS = [v for v in VARIANT_IDS if VARIANTS[v][0] in ("rnd", "apt", "icm", "disagreement", "proto")]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny networks: intra-op threads only add overhead (and stall badly on a busy 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(variant: str, seed: int = 0, **overrides) -> Plugin:
    name, kwargs = VARIANTS[variant]
    torch.manual_seed(seed)
    kwargs = {"hidden_dim": HIDDEN, "lr": 1e-3, **kwargs, **overrides}
    takes = config_keys(plugin_class(name))  # e.g. ProtoRL has no hidden width
    plugin = make_plugin(name, OBS_DIM, ACTION_DIM, **{k: v for k, v in kwargs.items() if k in takes})
    assert plugin is not None
    return plugin


def skills_for(plugin: Plugin, n: int, seed: int = 0) -> torch.Tensor | None:
    if plugin.skill_dim == 0:
        return None
    rng = np.random.default_rng(seed)
    return torch.as_tensor(np.stack([plugin.sample_skill(rng) for _ in range(n)]))


def make_batch(plugin: Plugin, batch_size: int = 32, seed: int = 0, **fields) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(batch_size, OBS_DIM, generator=g)
    values = dict(
        obs=obs,
        action=torch.rand(batch_size, ACTION_DIM, generator=g) * 2 - 1,
        reward=torch.randn(batch_size, 1, generator=g),
        discount=torch.full((batch_size, 1), 0.99),
        next_obs=obs + 0.3 * torch.randn(batch_size, OBS_DIM, generator=g),
        next_obs_1step=obs + 0.1 * torch.randn(batch_size, OBS_DIM, generator=g),
        skill=skills_for(plugin, batch_size, seed),
    )
    values.update(fields)
    return Batch(**values)


def make_agent(plugin: Plugin | None, reward_free: bool) -> DDPGAgent:
    torch.manual_seed(123)
    return DDPGAgent(
        "states",
        (OBS_DIM,),
        ACTION_DIM,
        "cpu",
        hidden_dim=HIDDEN,
        feature_dim=16,
        plugin=plugin,
        reward_free=reward_free,
    )


def param_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def state_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    now = dict(module.named_parameters())
    return {n for n, p in before.items() if not torch.equal(p, now[n].detach())}


def np_mlp(seq: nn.Module, x) -> np.ndarray:
    """Float64 numpy forward pass through a Sequential of Linear/ReLU (or an Identity)."""
    x = np.asarray(x, dtype=np.float64)
    modules = [seq] if isinstance(seq, nn.Identity) else list(seq)
    for m in modules:
        if isinstance(m, nn.Linear):
            x = x @ m.weight.detach().double().numpy().T + m.bias.detach().double().numpy()
        elif isinstance(m, nn.ReLU):
            x = np.maximum(x, 0.0)
        elif isinstance(m, nn.Identity):
            pass
        else:  # pragma: no cover - a new layer type would need a new branch here
            raise TypeError(f"np_mlp does not know {type(m).__name__}")
    return x


def assert_finite_metrics(metrics: dict[str, float]) -> None:
    assert metrics, "no metrics returned"
    for key, value in metrics.items():
        assert isinstance(value, float), (key, value)
        assert math.isfinite(value), (key, value)


# --------------------------------------------------------------------------- registry


def test_variants_cover_every_registered_plugin():
    with_plugin = {n for n, target in REGISTRY.items() if target is not None}
    assert with_plugin == {name for name, _ in VARIANTS.values()}
    assert agent_names() == sorted(REGISTRY)


def test_ddpg_has_no_plugin():
    assert "ddpg" in REGISTRY
    assert plugin_class("ddpg") is None
    assert make_plugin("ddpg", OBS_DIM, ACTION_DIM, hidden_dim=HIDDEN) is None


def test_unknown_agent_raises_listing_valid_agents():
    with pytest.raises(ValueError) as info:
        plugin_class("not_an_agent")
    message = str(info.value)
    assert "not_an_agent" in message
    for name in REGISTRY:
        assert name in message
    with pytest.raises(ValueError):
        make_plugin("not_an_agent", OBS_DIM, ACTION_DIM)


@pytest.mark.parametrize("variant", VARIANT_IDS)
def test_registry_builds_plugin_subclass(variant):
    name, _ = VARIANTS[variant]
    plugin = make(variant)
    assert isinstance(plugin, Plugin)
    assert isinstance(plugin, plugin_class(name))
    assert plugin.name == name
    assert (plugin.obs_dim, plugin.action_dim) == (OBS_DIM, ACTION_DIM)


def test_apt_unknown_representation_is_rejected():
    with pytest.raises(ValueError, match="icm"):
        make_plugin("apt", OBS_DIM, ACTION_DIM, hidden_dim=HIDDEN, rep="pixels")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_agent_configs_build_plugins(name):
    """Every agent yaml, split by the registry, gives kwargs the plugin's constructor accepts."""
    from hydra import compose, initialize_config_dir

    import urlb.runs.config  # noqa: F401  (registers the resolvers the configs use)
    from urlb.agents import split_agent_config

    config_dir = str(Path(__file__).resolve().parents[1] / "configs")
    overrides = [f"agent={name}", f"agent.hidden_dim={HIDDEN}"]
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose(config_name="pretrain", overrides=overrides)
    _, kwargs = split_agent_config(cfg.agent)
    assert "name" not in kwargs and "update_every_steps" not in kwargs
    if "rep_dim" in kwargs:
        kwargs["rep_dim"] = 16
    plugin = make_plugin(cfg.agent.name, OBS_DIM, ACTION_DIM, **kwargs)
    if name == "ddpg":
        assert plugin is None
        return
    # URLB's own key names: APS sizes its task by sf_dim, SMM its skill by z_dim; CeSD has a skill
    # per critic member (Disagreement's ensemble_size counts forward models, not skills).
    keys = ("skill_dim", "sf_dim", "z_dim") + (("ensemble_size",) if name == "cesd" else ())
    size_key = next((k for k in keys if k in kwargs), None)
    assert plugin.skill_dim == kwargs.get(size_key, 0)
    period_key = next((k for k in ("update_skill_every_step", "update_task_every_step") if k in kwargs), None)
    if plugin.skill_dim and period_key:
        assert plugin.update_skill_every_step == kwargs[period_key]


# --------------------------------------------------------------------------- intrinsic reward contract


@pytest.mark.parametrize("variant", VARIANT_IDS)
def test_intrinsic_reward_shape_dtype_finite(variant):
    plugin = make(variant)
    for batch_size in (32, 7):
        batch = make_batch(plugin, batch_size)
        reward = plugin.intrinsic_reward(batch)
        assert reward.shape == (batch_size, 1)
        assert reward.dtype == torch.float32
        assert not reward.requires_grad
        assert torch.isfinite(reward).all()


@pytest.mark.parametrize("variant", VARIANT_IDS)
def test_state_dict_round_trip(variant):
    plugin = make(variant, seed=0)
    for step in range(3):  # non-trivial weights and running statistics
        train_batch = make_batch(plugin, seed=10 + step)
        plugin.update(train_batch, step)
        plugin.intrinsic_reward(train_batch)
    state = copy.deepcopy(plugin.state_dict())
    batch = make_batch(plugin, seed=99)

    loaded_a, loaded_b = make(variant, seed=1), make(variant, seed=2)
    loaded_a.load_state_dict(state)
    loaded_b.load_state_dict(state)
    fresh = make(variant, seed=1)

    reward_original = plugin.intrinsic_reward(batch)  # its state still equals `state` here
    reward_a = loaded_a.intrinsic_reward(batch)
    reward_b = loaded_b.intrinsic_reward(batch)
    torch.testing.assert_close(reward_a, reward_original, rtol=0, atol=0)
    torch.testing.assert_close(reward_b, reward_original, rtol=0, atol=0)
    # ... and the round trip is what made them equal: an unloaded plugin disagrees.
    assert not torch.allclose(fresh.intrinsic_reward(batch), reward_original)
    # Running statistics travel with the state dict.
    rms_keys = [k for k in state if k.endswith((".mean", ".var", ".count"))]
    if variant in ("rnd", "apt", "apt-state", "cic"):
        assert rms_keys


# --------------------------------------------------------------------------- DDPG backbone paths


@pytest.mark.parametrize("variant", VARIANT_IDS)
def test_reward_free_update_trains_plugin(variant):
    plugin = make(variant)
    agent = make_agent(plugin, reward_free=True)
    batch = make_batch(plugin, 32)
    before = param_snapshot(plugin)
    metrics = agent.update(batch, step=0)
    assert_finite_metrics(metrics)
    assert "intrinsic_reward" in metrics
    assert metrics["batch_reward"] == pytest.approx(metrics["intrinsic_reward"])
    if variant == "apt-state":
        assert not list(plugin.parameters())
        assert not plugin.optimizers()
        return
    assert changed(before, plugin), "reward-free update left every plugin parameter unchanged"
    if variant.startswith("metra"):
        assert "log_lambda" in changed(before, plugin)


@pytest.mark.parametrize("variant", VARIANT_IDS)
def test_finetune_update_uses_task_reward_and_freezes_plugin(variant):
    plugin = make(variant)
    agent = make_agent(plugin, reward_free=False)
    batch = make_batch(plugin, 32)
    state_before = state_snapshot(plugin)
    metrics = agent.update(batch, step=0)
    assert_finite_metrics(metrics)
    assert "intrinsic_reward" not in metrics
    assert metrics["batch_reward"] == pytest.approx(batch.reward.mean().item(), rel=1e-6, abs=1e-7)
    state_after = plugin.state_dict()
    for key, value in state_before.items():
        assert torch.equal(value, state_after[key]), f"fine-tuning changed plugin state {key}"
    optimizer = getattr(plugin, "optimizer", None)
    if optimizer is not None:
        assert not optimizer.state, "fine-tuning stepped the plugin optimizer"


def test_ddpg_without_plugin_finetunes_and_refuses_reward_free():
    class _NoSkill:
        skill_dim = 0

    batch = make_batch(_NoSkill(), 32)
    metrics = make_agent(None, reward_free=False).update(batch, step=0)
    assert_finite_metrics(metrics)
    assert metrics["batch_reward"] == pytest.approx(batch.reward.mean().item(), rel=1e-6, abs=1e-7)
    with pytest.raises(ValueError, match="plugin"):
        make_agent(None, reward_free=True).update(batch, step=0)


class _RecordingPlugin(Plugin):
    """Constant intrinsic reward; records the order of the backbone's calls."""

    name = "recording"

    def __init__(self, value: float) -> None:
        super().__init__(OBS_DIM, ACTION_DIM)
        self.value, self.calls, self.batches = value, [], []

    def update(self, batch, step):
        self.calls.append("update")
        self.batches.append(batch)
        return torch.full((batch.obs.shape[0], 1), self.value), {"recording_metric": 1.0}

    def intrinsic_reward(self, batch):
        self.calls.append("intrinsic_reward")
        return torch.full((batch.obs.shape[0], 1), self.value)


def test_reward_free_updates_plugin_then_relabels_batch():
    plugin = _RecordingPlugin(value=3.25)
    agent = make_agent(plugin, reward_free=True)
    batch = make_batch(plugin, 16)
    metrics = agent.update(batch, step=0)
    assert plugin.calls == ["update"]  # the update returns the reward: one call per batch
    assert all(b is batch for b in plugin.batches)  # state observations reach the plugin as they are
    assert metrics["recording_metric"] == 1.0
    assert metrics["intrinsic_reward"] == pytest.approx(3.25)
    assert metrics["batch_reward"] == pytest.approx(3.25)  # the task reward is ignored


# --------------------------------------------------------------------------- skills


@pytest.mark.parametrize("variant", EXPLORATION_VARIANTS)
def test_exploration_methods_have_no_skill(variant):
    plugin = make(variant)
    rng = np.random.default_rng(0)
    assert plugin.skill_dim == 0
    assert plugin.sample_skill(rng) is None
    assert plugin.default_skill() is None
    assert make_agent(plugin, reward_free=True).skill_dim == 0


@pytest.mark.parametrize("variant", SKILL_VARIANTS)
def test_sample_skill_shape_dtype(variant):
    plugin = make(variant)
    rng = np.random.default_rng(0)
    assert plugin.skill_dim > 0
    skills = [plugin.sample_skill(rng) for _ in range(50)]
    for z in skills:
        assert isinstance(z, np.ndarray)
        assert z.shape == (plugin.skill_dim,)
        assert z.dtype == np.float32
    # The prior is not degenerate.
    assert len({z.tobytes() for z in skills}) > 1
    assert make_agent(plugin, reward_free=True).skill_dim == plugin.skill_dim


def test_diayn_skills_are_one_hot():
    plugin = make("diayn")
    assert plugin.skill_dim == 16
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        z = plugin.sample_skill(rng)
        assert set(np.unique(z)) <= {0.0, 1.0} and z.sum() == 1.0
        seen.add(int(z.argmax()))
    assert seen == set(range(16))
    np.testing.assert_array_equal(plugin.default_skill(), np.eye(16, dtype=np.float32)[0])
    candidates = plugin.candidate_skills(5, rng)  # discrete: all skills, whatever num asks
    assert candidates.shape == (16, 16) and candidates.dtype == np.float32
    np.testing.assert_array_equal(candidates, np.eye(16, dtype=np.float32))


def test_cic_skills_in_unit_cube():
    plugin = make("cic", skill_dim=64)
    rng = np.random.default_rng(0)
    zs = np.stack([plugin.sample_skill(rng) for _ in range(200)])
    assert zs.shape == (200, 64)
    assert zs.min() >= 0.0 and zs.max() <= 1.0
    assert 0.45 < zs.mean() < 0.55  # uniform on [0, 1]
    default = plugin.default_skill()
    assert default.shape == (64,) and default.dtype == np.float32
    np.testing.assert_array_equal(default, np.full(64, 0.5, np.float32))
    candidates = plugin.candidate_skills(10, rng)
    assert candidates.shape == (10, 64)
    assert candidates.min() >= 0.0 and candidates.max() <= 1.0


def test_metra_continuous_skills_unit_norm():
    plugin = make("metra")
    rng = np.random.default_rng(0)
    zs = np.stack([plugin.sample_skill(rng) for _ in range(200)])
    np.testing.assert_allclose(np.linalg.norm(zs, axis=1), 1.0, atol=1e-5)
    assert np.abs(zs.mean(0)).max() < 0.2  # directions spread over the sphere
    default = plugin.default_skill()
    assert plugin.skill_dim == 2  # the default (see configs/agent/metra.yaml)
    assert default.shape == (2,) and default.dtype == np.float32
    assert np.linalg.norm(default) == pytest.approx(1.0)
    candidates = plugin.candidate_skills(10, rng)
    assert candidates.shape == (10, 2) and candidates.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(candidates, axis=1), 1.0, atol=1e-5)
    # Grid candidates in 2-D are evenly spaced directions: consecutive ones 36 degrees apart.
    angles = np.sort(np.arctan2(candidates[:, 1], candidates[:, 0]))
    gaps = np.diff(np.append(angles, angles[0] + 2 * np.pi))
    np.testing.assert_allclose(gaps, 2 * np.pi / 10, atol=1e-5)


def test_metra_discrete_skills_are_one_hots():
    # METRA's policy sees the plain one-hot; the centring is in the reward (test_fidelity).
    plugin = make("metra-discrete")
    n = plugin.skill_dim
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        z = plugin.sample_skill(rng)
        hot = int(z.argmax())
        np.testing.assert_array_equal(z, np.eye(n, dtype=np.float32)[hot])
        seen.add(hot)
    assert seen == set(range(n))
    default = plugin.default_skill()
    assert default.dtype == np.float32 and default.argmax() == 0 and default.sum() == 1.0
    candidates = plugin.candidate_skills(3, rng)
    assert candidates.shape == (n, n) and candidates.dtype == np.float32
    np.testing.assert_array_equal(candidates, np.eye(n, dtype=np.float32))


# --------------------------------------------------------------------------- METRA


def _metra_dual_step(next_offset: float) -> tuple[float, float, dict, torch.Tensor]:
    plugin = make("metra", dual_lr=1e-2)
    base = make_batch(plugin, 32)
    moved = base.obs + next_offset
    batch = base._replace(next_obs=moved, next_obs_1step=moved)
    with torch.no_grad():
        _, constraint, _ = plugin.objective_terms(batch.obs, batch.next_obs_1step, batch.skill)
    before = plugin.dual_lambda.item()
    _, metrics = plugin.update(batch, 0)
    return before, plugin.dual_lambda.item(), metrics, constraint


def test_metra_lambda_grows_when_constraint_violated():
    before, after, metrics, constraint = _metra_dual_step(100.0)
    assert (constraint < 0).all(), "setup: ||phi(s')-phi(s)|| should exceed 1"
    assert after > before
    assert metrics["metra_lambda"] == pytest.approx(after)
    assert metrics["metra_constraint"] < 0


def test_metra_lambda_shrinks_when_constraint_satisfied():
    before, after, metrics, constraint = _metra_dual_step(0.0)
    # delta = 0: min(eps, 1 - 0) = eps > 0.
    torch.testing.assert_close(constraint, torch.full_like(constraint, 1e-3))
    assert metrics["metra_constraint"] == pytest.approx(1e-3)
    assert metrics["metra_step_norm"] == 0.0
    assert after < before


@pytest.mark.parametrize("variant", ["metra", "metra-discrete"])
def test_metra_intrinsic_reward_is_phi_displacement_along_skill(variant):
    plugin = make(variant, scale=1.0)
    plugin.update(make_batch(plugin, seed=3), 0)  # away from the initial weights
    batch = make_batch(plugin, 16, seed=4)
    phi_s = np_mlp(plugin.phi, batch.obs.numpy())
    phi_next = np_mlp(plugin.phi, batch.next_obs_1step.numpy())  # METRA: one step's reward
    z = batch.skill.double().numpy()
    if plugin.discrete:  # METRA's code: the one-hot centred and scaled by D/(D-1)
        d = z.shape[1]
        z = (z - z.mean(1, keepdims=True)) * d / (d - 1)
    expected = np.array([[(phi_next[i] - phi_s[i]) @ z[i]] for i in range(len(z))])
    reward = plugin.intrinsic_reward(batch)
    np.testing.assert_allclose(reward.double().numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("constraint, bound", [("sum", 1.0), ("mean", 2.0)])  # ||dphi||^2 <= 1 or <= D
def test_metra_learns_displacement_along_skill_within_constraint(constraint, bound):
    torch.manual_seed(0)
    plugin = make("metra", skill_dim=4, constraint=constraint)
    g = torch.Generator().manual_seed(5)
    displacement_map = 0.5 * torch.randn(4, OBS_DIM, generator=g)

    def skill_batch(batch_size=64):
        z = F.normalize(torch.randn(batch_size, 4, generator=g), dim=1)
        obs = torch.randn(batch_size, OBS_DIM, generator=g)
        step = obs + z @ displacement_map + 0.05 * torch.randn(batch_size, OBS_DIM, generator=g)
        return make_batch(plugin, batch_size, obs=obs, next_obs=step, next_obs_1step=step, skill=z)

    def evaluate():
        b = skill_batch(256)
        with torch.no_grad():
            along_z, _, delta = plugin.objective_terms(b.obs, b.next_obs_1step, b.skill)
        return along_z.mean().item(), delta.norm(dim=-1).mean().item()

    along_before, _ = evaluate()
    norms = []
    for step in range(300):
        norms.append(plugin.update(skill_batch(), step)[1]["metra_step_norm"])
    along_after, norm_after = evaluate()
    assert along_after > along_before + 0.3
    assert along_after > 0.4
    assert norm_after < 1.2 * bound  # the temporal-distance constraint holds (nearly)
    assert max(norms) < 1.5 * bound


# --------------------------------------------------------------------------- DIAYN


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_diayn_reward_on_hand_built_discriminator(scale):
    plugin = make("diayn", scale=scale)
    logits = torch.tensor([2.0, -1.0, 0.5, 0.0, 3.0, -2.0, 1.0, 0.25, -0.5, 0.75, 1.5, -3.0, 0.1, 2.5, -1.5, 0.0])
    with torch.no_grad():
        plugin.discriminator[-1].weight.zero_()
        plugin.discriminator[-1].bias.copy_(logits)
    idx = np.array([0, 4, 11, 15, 7, 4, 2, 13])
    skill = torch.as_tensor(np.eye(16, dtype=np.float32)[idx])
    batch = make_batch(plugin, len(idx), skill=skill)
    reward = plugin.intrinsic_reward(batch)

    lg = logits.double().numpy()
    log_q = lg - np.log(np.exp(lg).sum())
    expected = scale * (log_q[idx] + np.log(16.0))
    np.testing.assert_allclose(reward.numpy()[:, 0], expected, rtol=1e-5, atol=1e-5)


def test_diayn_discriminator_learns_skill_clusters():
    torch.manual_seed(0)
    plugin = make("diayn")
    g = torch.Generator().manual_seed(1)
    embedding = torch.randn(16, OBS_DIM, generator=g)

    def cluster_batch(batch_size=64):
        idx = torch.randint(16, (batch_size,), generator=g)
        z = F.one_hot(idx, 16).float()
        next_obs = z @ embedding + 0.1 * torch.randn(batch_size, OBS_DIM, generator=g)
        return make_batch(plugin, batch_size, next_obs=next_obs, skill=z)

    def accuracy(b):
        with torch.no_grad():
            return (plugin.discriminator(b.next_obs).argmax(-1) == b.skill.argmax(-1)).float().mean().item()

    held_out = cluster_batch(256)
    reward_before = plugin.intrinsic_reward(held_out).mean().item()
    for step in range(200):
        plugin.update(cluster_batch(), step)
    assert accuracy(held_out) > 0.5  # chance is 1/16
    reward_after = plugin.intrinsic_reward(held_out).mean().item()
    assert reward_after > reward_before + 1.0
    assert reward_after > 1.0  # log q(z|s') well above log p(z)


# --------------------------------------------------------------------------- CIC


def test_cic_full_contrastive_loss_matches_direct_computation():
    # nce=full: the paper's NCE (the default, CIC's code, is pinned in test_fidelity).
    plugin = make("cic", skill_dim=8, nce="full")
    assert plugin.temperature == 0.5
    g = torch.Generator().manual_seed(7)
    obs = torch.randn(4, OBS_DIM, generator=g)
    next_obs = torch.randn(4, OBS_DIM, generator=g)
    skill = torch.rand(4, 8, generator=g)

    def unit(v):
        return v / np.linalg.norm(v)

    state = np_mlp(plugin.state_net, obs.numpy())
    next_state = np_mlp(plugin.state_net, next_obs.numpy())
    query = [unit(q) for q in np_mlp(plugin.skill_net, skill.numpy())]
    key = [unit(np_mlp(plugin.pred_net, np.concatenate([state[i], next_state[i]])[None])[0]) for i in range(4)]
    temperature = 0.5
    losses = []
    for i in range(4):
        positive = math.exp(float(query[i] @ key[i]) / temperature)
        total = sum(math.exp(float(query[i] @ key[j]) / temperature) for j in range(4))
        losses.append(-math.log(positive / total))
    expected = sum(losses) / 4

    logits, embedding = plugin.contrastive_logits(obs, next_obs, skill)
    assert logits.shape == (4, 4)
    np.testing.assert_allclose(embedding.detach().numpy(), next_state, rtol=1e-4, atol=1e-5)
    loss = plugin.contrastive_loss(logits)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


# CIC's denominator (sum - e^{1/T}) has a degenerate optimum (every cosine -1) that small batches
# fall into: at 64 it scores 2 + log(64 e^-2 - e^2) = 2.24, and the code's run stalls there with
# chance accuracy; at 256 and more (CIC uses 1024) learning separates the transitions.
@pytest.mark.parametrize("nce, batch_size", [("cic", 256), ("full", 64)])
def test_cic_contrastive_loss_falls_on_skill_dependent_transitions(nce, batch_size):
    torch.manual_seed(0)
    plugin = make("cic", skill_dim=8, nce=nce)
    g = torch.Generator().manual_seed(2)
    skill = torch.rand(batch_size, 8, generator=g)
    obs = torch.randn(batch_size, OBS_DIM, generator=g)
    next_obs = obs + skill @ torch.randn(8, OBS_DIM, generator=g)
    batch = make_batch(plugin, batch_size, obs=obs, next_obs=next_obs, skill=skill)

    def loss():
        with torch.no_grad():
            return plugin.contrastive_loss(plugin.contrastive_logits(obs, next_obs, skill)[0]).item()

    initial = loss()
    assert initial == pytest.approx(math.log(batch_size), abs=0.5)  # near chance at init
    for step in range(200):
        _, metrics = plugin.update(batch, step)
    final = loss()
    assert final < 0.75 * initial
    assert metrics["cic_logits_accuracy"] > 0.5


def test_cic_reward_is_particle_entropy_of_next_state_embedding():
    plugin = make("cic", skill_dim=8)
    batch = make_batch(plugin, 32)
    reference = copy.deepcopy(plugin.entropy)
    with torch.no_grad():
        expected = reference(plugin.state_net(batch.next_obs), update_stats=False)
    torch.testing.assert_close(plugin.intrinsic_reward(batch), expected)


# --------------------------------------------------------------------------- APT


@pytest.mark.parametrize("variant", ["apt", "apt-state"])
def test_apt_reward_is_particle_entropy_of_state_representation(variant):
    plugin = make(variant)
    batch = make_batch(plugin, 32)
    reference = copy.deepcopy(plugin.entropy)
    with torch.no_grad():  # URLB rewards s_t (reward_obs=obs)
        rep = plugin.icm.trunk(batch.obs) if variant == "apt" else batch.obs
        expected = reference(rep, update_stats=False)
    torch.testing.assert_close(plugin.intrinsic_reward(batch), expected)


@pytest.mark.parametrize("icm_next", ["nstep", "one_step"])
def test_apt_icm_trains_on_chosen_next_state(icm_next):
    # nstep (URLB): the sampled (s_t, a_t, s_{t+n}); one_step: (s_t, a_t, s_{t+1}).
    plugin = make("apt", icm_next=icm_next)
    batch = make_batch(plugin, 32)
    next_obs = batch.next_obs if icm_next == "nstep" else batch.next_obs_1step
    with torch.no_grad():
        forward_error, inverse_error = plugin.icm.loss(batch.obs, batch.action, next_obs)
    _, metrics = plugin.update(batch, 0)
    assert metrics["icm_forward_error"] == pytest.approx(forward_error.item(), rel=1e-5)
    assert metrics["icm_inverse_error"] == pytest.approx(inverse_error.item(), rel=1e-5)


# --------------------------------------------------------------------------- particle entropy


POINTS = torch.tensor([[0.0], [1.0], [3.0], [7.0]])


@pytest.mark.parametrize(
    "knn_avg, knn_clip, expected",
    [
        # neighbours incl. self: {0,1}, {0,1}, {0,2}, {0,4}
        (True, 0.0, [1.5, 1.5, 2.0, 3.0]),  # 1 + mean
        (False, 0.0, [2.0, 2.0, 3.0, 5.0]),  # 1 + 2nd-nearest only
        (True, 0.5, [1.25, 1.25, 1.75, 2.75]),  # 1 + mean(max(d - 0.5, 0))
    ],
)
def test_particle_entropy_hand_computed(knn_avg, knn_clip, expected):
    entropy = ParticleEntropy(knn_k=2, knn_avg=knn_avg, normaliser="none", knn_clip=knn_clip)
    reward = entropy(POINTS)
    assert reward.shape == (4, 1)
    np.testing.assert_allclose(reward.numpy()[:, 0], np.log(expected), rtol=1e-6)


def test_particle_entropy_running_std_normalisation():
    entropy = ParticleEntropy(knn_k=2, knn_avg=True, normaliser="std", knn_clip=0.0)
    reward = entropy(POINTS)
    distances = np.array([0, 1, 0, 1, 0, 2, 0, 4], dtype=np.float64)
    std = distances.std(ddof=1)  # a fresh running std (prior weight 1e-4): the batch's unbiased std
    expected = np.log(1.0 + np.array([0.5, 0.5, 1.0, 2.0]) / std)
    np.testing.assert_allclose(reward.numpy()[:, 0], expected, rtol=1e-4)


@pytest.mark.parametrize("batch_size", [16, 64])
@pytest.mark.parametrize("offset", [0.0, 10.0])
def test_knn_distances_match_brute_force(batch_size, offset):
    """Exact kNN: every point's nearest particle is itself at distance 0, and the k smallest
    distances equal a float64 brute-force computation up to float32 rounding."""
    g = torch.Generator().manual_seed(0)
    rep = torch.randn(batch_size, OBS_DIM, generator=g) + offset
    entropy = ParticleEntropy(knn_k=5)
    got = entropy.knn_distances(rep).numpy()
    x = rep.double().numpy()
    brute = np.empty((batch_size, batch_size))
    for i in range(batch_size):
        for j in range(batch_size):
            brute[i, j] = math.sqrt(((x[i] - x[j]) ** 2).sum())
    brute = np.sort(brute, axis=1)[:, :5]
    assert got.shape == (batch_size, 5)
    assert np.all(np.diff(got, axis=1) >= 0)
    np.testing.assert_allclose(got[:, 0], 0.0, atol=1e-5, err_msg="self-distance is not 0")
    np.testing.assert_allclose(got, brute, rtol=1e-4, atol=1e-4)


def difference_distances(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """The public code's distances (norms of differences), in float64, k smallest per row."""
    d = np.sqrt(((x[:, None, :].astype(np.float64) - y[None, :, :]) ** 2).sum(-1))
    return np.sort(d, axis=1)[:, :k]


@pytest.mark.parametrize("rows, dim, offset", [(300, 64, 0.0), (300, 512, 50.0), (1024, 16, 1000.0)])
def test_nearest_distances_are_exact_where_matrix_products_round(rows, dim, offset):
    """Rows repeated (as sampling with replacement repeats them) are at distance exactly 0, and
    every distance matches the float64 differences even far from the origin, where the
    |a|^2 + |b|^2 - 2ab form loses digits (the reason for the difference-based values)."""
    g = torch.Generator().manual_seed(1)
    rep = torch.randn(rows, dim, generator=g) + offset
    rep[rows // 2 :] = rep[: rows - rows // 2]  # every row appears twice
    got = nearest_distances(rep, rep, 12).numpy()
    assert got.shape == (rows, 12)
    assert np.all(got[:, :2] == 0.0), "a repeated row must be at distance exactly 0"
    np.testing.assert_allclose(
        got, difference_distances(rep.numpy(), rep.numpy(), 12), rtol=2e-6, atol=2e-6 * (1 + offset)
    )
    naive = torch.cdist(rep, rep).topk(12, dim=1, largest=False).values  # the fast form alone
    if offset >= 50.0:
        assert float(naive[:, :2].max()) > 0.0, "the fast form was expected to miss exact zeros here"


def test_nearest_distances_recompute_rows_whose_candidates_may_be_wrong():
    """Near-ties beyond the candidate margin: the rounding of the fast form could swap which
    points are nearest, so those rows are recomputed from differences and still come out exact."""
    g = torch.Generator().manual_seed(2)
    centre = torch.full((1, 32), 500.0)
    # 40 points on a thin shell around the centre: distances differ by far less than the rounding.
    shell = centre + 1e-3 * F.normalize(torch.randn(40, 32, generator=g), dim=1) * (
        1 + 1e-4 * torch.rand(40, 1, generator=g)
    )
    got = nearest_distances(centre, shell, 3).numpy()
    np.testing.assert_allclose(got, difference_distances(centre.numpy(), shell.numpy(), 3), rtol=1e-5)


def test_proto_reward_uses_exact_distances_to_the_queue():
    p = make_plugin(
        "proto", obs_dim=OBS_DIM, action_dim=ACTION_DIM, pred_dim=16, proj_dim=8, num_protos=4, queue_size=16, topk=3
    )
    z = F.normalize(torch.randn(10, 8), dim=1)
    queue = torch.cat([z[:6], F.normalize(torch.randn(10, 8), dim=1)])  # the batch's own candidates are queued
    expected = difference_distances(z.numpy(), queue.numpy(), 3)[:, -1:]
    np.testing.assert_allclose(p.knn_reward(z, queue).numpy(), expected, rtol=1e-6, atol=1e-7)


def test_knn_k_larger_than_batch_uses_whole_batch():
    entropy = ParticleEntropy(knn_k=12, normaliser="none")
    assert entropy.knn_distances(POINTS).shape == (4, 4)
    expected = np.log(1.0 + np.array([11, 9, 9, 17]) / 4.0)  # sums of distances to all points
    np.testing.assert_allclose(entropy(POINTS).numpy()[:, 0], expected, rtol=1e-6)


def test_running_mean_std_matches_numpy():
    # URLB's utils.RMS recursion, each chunk entering with its unbiased variance (a single
    # sample with 0), computed here in float64.
    rms = RunningMeanStd((3,), epsilon=1e-12)
    rng = np.random.default_rng(0)
    chunks = [rng.normal(loc=2.0, scale=3.0, size=(n, 3)) for n in (5, 17, 1, 40)]
    mean, var, count = np.zeros(3), np.ones(3), 1e-12
    for chunk in chunks:
        rms.update(torch.as_tensor(chunk, dtype=torch.float32))
        n = len(chunk)
        delta = chunk.mean(0) - mean
        chunk_var = chunk.var(0, ddof=1) if n > 1 else np.zeros(3)
        mean = mean + delta * n / (count + n)
        var = (var * count + chunk_var * n + delta**2 * count * n / (count + n)) / (count + n)
        count += n
    data = np.concatenate(chunks)
    np.testing.assert_allclose(rms.mean.numpy(), data.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(rms.var.numpy(), var, rtol=1e-4)
    np.testing.assert_allclose(rms.std.numpy(), np.sqrt(var), rtol=1e-4)
    assert rms.count.item() == pytest.approx(len(data))
    assert set(rms.state_dict()) == {"mean", "var", "count"}


# --------------------------------------------------------------------------- RND


def test_rnd_target_network_is_frozen():
    plugin = make("rnd")
    assert all(not p.requires_grad for p in plugin.target.parameters())
    assert all(p.requires_grad for p in plugin.predictor.parameters())
    optimised = {id(p) for group in plugin.optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in plugin.target.parameters()}

    target_before = param_snapshot(plugin.target)
    predictor_before = param_snapshot(plugin.predictor)
    for step in range(5):
        plugin.update(make_batch(plugin, seed=step), step)
    make_agent(plugin, reward_free=True).update(make_batch(plugin, seed=50), step=5)
    assert not changed(target_before, plugin.target)
    assert changed(predictor_before, plugin.predictor)


def test_rnd_prediction_error_falls_on_repeated_states():
    plugin = make("rnd")
    batch = make_batch(plugin, 32)
    first = plugin.update(batch, 0)[1]["rnd_loss"]
    for step in range(1, 100):
        last = plugin.update(batch, step)[1]["rnd_loss"]
    assert last < 0.5 * first


# --------------------------------------------------------------------------- grid skill search


def test_grid_skill_search_picks_highest_mean_reward():
    candidates = np.eye(3, dtype=np.float32)
    seed_steps = 32  # blocks of 5 steps taken in turns: 0,1,2 | 1,2,0 | 2 (2 steps)
    messages: list[str] = []
    grid = GridSkills(candidates, seed_steps, block_steps=5, default=candidates[0], say=messages.append)
    reward_of = {0: 0.2, 1: 1.0, 2: 0.9}  # candidate 2 has the largest sum but a lower mean
    for step in range(seed_steps):
        assert grid.acts_in_seed_frames(step)
        skill = grid.skill_at(step)
        grid.record(step, reward_of[int(np.argmax(skill))])
    np.testing.assert_array_equal(grid.counts, [10, 10, 12])
    np.testing.assert_allclose(grid.scores(), [0.2, 1.0, 0.9])
    # The last seed step chose; the chosen skill is then held for acting and evaluation.
    np.testing.assert_array_equal(grid.chosen, candidates[1])
    np.testing.assert_array_equal(grid.skill_at(seed_steps + 7), candidates[1])
    np.testing.assert_array_equal(grid.eval_skill(), candidates[1])
    text = "\n".join(messages)
    for score in ("0.2000", "1.0000", "0.9000"):
        assert score in text
    assert "chose candidate 1" in messages[-1]


def test_grid_skill_search_scores_every_candidate_in_every_episode():
    """Quadruped episodes can start upside down: a whole episode then scores ~0 for any skill.
    Equal candidates must still get equal scores (consecutive blocks gave the first half 1.0
    and the second half 0.0)."""
    candidates = np.eye(10, dtype=np.float32)
    seed_steps, episode_steps = 2000, 1000
    grid = GridSkills(candidates, seed_steps, block_steps=200, default=candidates[0], say=lambda _: None)
    assert grid.block == 100  # two turns per candidate
    for step in range(seed_steps):
        grid.skill_at(step)
        grid.record(step, 1.0 if step < episode_steps else 0.0)  # the 2nd episode scores 0
    np.testing.assert_array_equal(grid.counts, [200] * 10)
    np.testing.assert_allclose(grid.scores(), [0.5] * 10)
    # Each candidate's two turns fall at different places in their episodes.
    starts = {
        i: [s % episode_steps for s in range(0, seed_steps, grid.block) if grid._index(s) == i] for i in range(10)
    }
    assert all(len(set(v)) == 2 for v in starts.values()), starts


def test_grid_skill_search_with_noisy_rewards():
    rng = np.random.default_rng(3)
    candidates = rng.uniform(size=(5, 4)).astype(np.float32)
    messages: list[str] = []
    grid = GridSkills(candidates, 50, block_steps=50, default=candidates[0], say=messages.append)
    np.testing.assert_array_equal(grid.eval_skill(), candidates[0])  # the default until chosen
    per_candidate = {i: [] for i in range(5)}
    for step in range(50):
        skill = grid.skill_at(step)
        i = int(np.flatnonzero((candidates == skill).all(1))[0])
        reward = float(rng.normal(loc=i % 3, scale=0.5))
        per_candidate[i].append(reward)
        grid.record(step, reward)
    means = [np.mean(per_candidate[i]) for i in range(5)]
    np.testing.assert_array_equal(grid.chosen, candidates[int(np.argmax(means))])
    assert len(messages) == 6
