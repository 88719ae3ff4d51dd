"""Closed-form tests of ICM, Disagreement, ProtoRL, SMM and APS.

Every expected value is computed here in numpy from the formulas of the public URLB code
(rll-research/url_benchmark, agent/{icm,disagreement,proto,smm,aps}.py), reading the plugin's
weights before and after its optimiser step, never by calling the function under test.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from urlb.agents import make_plugin, plugin_class
from urlb.agents.aps import SuccessorFeatureCritic, infer_task
from urlb.agents.proto import sinkhorn_knopp
from urlb.ddpg import DDPGAgent
from urlb.replay import Batch
from urlb.runs.snapshots import snapshot_path
from urlb.skill_schedule import PriorSkills, RegressSkills, finetune_schedule

OBS, ACT, HID, B = 5, 2, 16, 24


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(name: str, **kwargs):
    torch.manual_seed(0)
    if "hidden_dim" in inspect.signature(plugin_class(name)).parameters:  # ProtoRL has no hidden width
        kwargs = {"hidden_dim": HID, **kwargs}
    return make_plugin(name, OBS, ACT, **kwargs)


def fixed_batch(skill: np.ndarray | None = None, seed: int = 1) -> Batch:
    rng = np.random.default_rng(seed)

    def t(a):
        return torch.as_tensor(a, dtype=torch.float32)

    return Batch(
        obs=t(rng.normal(size=(B, OBS))),
        action=t(rng.uniform(-1, 1, (B, ACT))),
        reward=t(rng.normal(size=(B, 1))),
        discount=t(np.ones((B, 1))),
        next_obs=t(rng.normal(size=(B, OBS))),
        next_obs_1step=t(rng.normal(size=(B, OBS))),
        skill=None if skill is None else t(skill),
    )


def weights(module) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(W, b) of every Linear layer of ``module`` in order, as float64 numpy."""
    out = []
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            b = None if m.bias is None else m.bias.detach().double().numpy().copy()
            out.append((m.weight.detach().double().numpy().copy(), b))
    return out


def np_mlp(layers, x: np.ndarray, final=None) -> np.ndarray:
    """Linear layers with ReLU between them (what every URLB MLP here is)."""
    for i, (w, b) in enumerate(layers):
        x = x @ w.T + (0.0 if b is None else b)
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return final(x) if final is not None else x


def n(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy()


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


# --------------------------------------------------------------------------- ICM


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_icm_loss_and_reward_closed_form(scale):
    plugin, batch = make("icm", icm_scale=scale, lr=1e-2), fixed_batch()
    s, a, s_n = n(batch.obs), n(batch.action), n(batch.next_obs)  # URLB: the n-step next_obs
    fwd, inv = weights(plugin.forward_net), weights(plugin.inverse_net)
    f_err = np.linalg.norm(s_n - np_mlp(fwd, np.concatenate([s, a], 1)), axis=1)
    i_err = np.linalg.norm(a - np_mlp(inv, np.concatenate([s, s_n], 1), np.tanh), axis=1)
    reward, metrics = plugin.update(batch, step=0)
    assert metrics["icm_loss"] == pytest.approx(f_err.mean() + i_err.mean(), rel=1e-5)
    # The reward is computed with the forward model after the optimiser step.
    f_err_after = np.linalg.norm(s_n - np_mlp(weights(plugin.forward_net), np.concatenate([s, a], 1)), axis=1)
    assert not np.allclose(f_err_after, f_err)
    np.testing.assert_allclose(n(reward)[:, 0], np.log1p(scale * f_err_after), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(n(plugin.intrinsic_reward(batch)), n(reward), rtol=1e-6)


def test_icm_one_step_option_uses_next_obs_1step():
    plugin, batch = make("icm", transition="1step"), fixed_batch()
    s, a, s1 = n(batch.obs), n(batch.action), n(batch.next_obs_1step)
    f_err = np.linalg.norm(s1 - np_mlp(weights(plugin.forward_net), np.concatenate([s, a], 1)), axis=1)
    np.testing.assert_allclose(n(plugin.intrinsic_reward(batch))[:, 0], np.log1p(f_err), rtol=1e-5)
    with pytest.raises(ValueError, match="transition"):
        make("icm", transition="2step")


# --------------------------------------------------------------------------- Disagreement


def test_disagreement_loss_and_reward_closed_form():
    plugin, batch = make("disagreement", lr=1e-2), fixed_batch()
    assert len(plugin.ensemble) == 5
    s, a, s_n = n(batch.obs), n(batch.action), n(batch.next_obs)
    x = np.concatenate([s, a], 1)
    preds = np.stack([np_mlp(weights(m), x) for m in plugin.ensemble])
    loss = np.linalg.norm(s_n[None] - preds, axis=2).mean()
    reward, metrics = plugin.update(batch, step=0)
    assert metrics["disagreement_loss"] == pytest.approx(loss, rel=1e-5)
    preds_after = np.stack([np_mlp(weights(m), x) for m in plugin.ensemble])
    expected = preds_after.var(axis=0, ddof=1).mean(axis=1)  # torch.var is unbiased
    np.testing.assert_allclose(n(reward)[:, 0], expected, rtol=1e-4, atol=1e-7)


def test_disagreement_models_are_not_orthogonally_initialised():
    # URLB keeps PyTorch's default init here; orthogonal rows would have unit norm.
    w = make("disagreement").ensemble[0][0].weight.detach()
    assert not torch.allclose(w @ w.T, torch.eye(w.shape[0]), atol=1e-3)


# --------------------------------------------------------------------------- ProtoRL


def np_sinkhorn(scores: np.ndarray, iterations: int) -> np.ndarray:
    q = np.exp(scores - scores.max()).T
    q /= q.sum()
    k, b = q.shape
    for _ in range(iterations):
        q *= (1.0 / k) / q.sum(axis=1, keepdims=True)
        q *= (1.0 / b) / q.sum(axis=0, keepdims=True)
    return (q / q.sum(axis=0, keepdims=True)).T


@pytest.mark.parametrize("shape", [(8, 5), (32, 16)])
def test_sinkhorn_matches_formula_and_marginals(shape):
    scores = torch.as_tensor(np.random.default_rng(0).normal(size=shape) / 0.1, dtype=torch.float64)
    q = sinkhorn_knopp(scores, 3)
    np.testing.assert_allclose(q.numpy(), np_sinkhorn(scores.numpy(), 3), rtol=1e-10)
    np.testing.assert_allclose(q.sum(1).numpy(), 1.0, atol=1e-12)  # every sample's assignment
    # Per-prototype mass B/K is approached as the iterations grow.
    balanced = sinkhorn_knopp(scores, 500)
    np.testing.assert_allclose(balanced.sum(0).numpy(), shape[0] / shape[1], rtol=1e-4)
    assert (q >= 0).all()


def proto_weights(plugin):
    return weights(plugin.predictor), weights(plugin.projector), weights(plugin.protos)[0][0]


def test_proto_loss_reward_queue_and_target_closed_form():
    plugin = make("proto", pred_dim=8, proj_dim=12, num_protos=4, queue_size=12, topk=3, lr=1e-2)
    batch = fixed_batch()
    s, s_n = n(batch.obs), n(batch.next_obs)
    pred, proj, _ = proto_weights(plugin)
    protos = l2n(weights(plugin.protos)[0][0])  # normalised before use
    target = weights(plugin.predictor_target)
    log_p = log_softmax(l2n(np_mlp(proj, np_mlp(pred, s))) @ protos.T / 0.1, axis=1)
    q_t = np_sinkhorn(l2n(np_mlp(target, s_n)) @ protos.T / 0.1, 3)
    torch.manual_seed(3)
    reward, metrics = plugin.update(batch, step=0)
    assert metrics["proto_loss"] == pytest.approx(-(q_t * log_p).sum(1).mean(), rel=1e-5)
    # Prototypes are unit vectors after the update.
    np.testing.assert_allclose(np.linalg.norm(n(plugin.protos.weight), axis=1), 1.0, rtol=1e-6)
    # The queue received one candidate per prototype, each an embedding of a batch state.
    z = l2n(np_mlp(weights(plugin.predictor), s_n))
    queue = n(plugin.queue)
    assert int(plugin.queue_ptr) == 4
    for row in queue[:4]:
        assert np.abs(z - row).max(axis=1).min() < 1e-5
    np.testing.assert_array_equal(queue[4:], 0.0)  # the rest still holds URLB's zeros
    # Reward: the topk-th smallest distance of z to the queue (zeros included).
    dist = np.linalg.norm(z[:, None] - queue[None], axis=2)
    np.testing.assert_allclose(n(reward)[:, 0], np.sort(dist, axis=1)[:, 2], rtol=1e-4, atol=1e-5)
    # Target predictor: an EMA with rate encoder_target_tau = 0.05 towards the updated predictor.
    for (wt, bt), (w0, b0), (w1, b1) in zip(weights(plugin.predictor_target), target, weights(plugin.predictor)):
        np.testing.assert_allclose(wt, 0.95 * w0 + 0.05 * w1, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(bt, 0.95 * b0 + 0.05 * b1, rtol=1e-5, atol=1e-7)


def test_proto_queue_wraps_and_analysis_reward_leaves_it_alone():
    plugin = make("proto", pred_dim=8, proj_dim=12, num_protos=4, queue_size=8, topk=2)
    for step in range(3):
        plugin.update(fixed_batch(seed=step), step)
    assert int(plugin.queue_ptr) == 4  # 3 * 4 mod 8
    before = plugin.queue.clone()
    plugin.intrinsic_reward(fixed_batch())
    assert torch.equal(plugin.queue, before)
    assert plugin.predictor_target.weight.requires_grad is False
    with pytest.raises(ValueError, match="multiple of num_protos"):
        make("proto", num_protos=4, queue_size=10)


# --------------------------------------------------------------------------- SMM


def one_hot_skills(z_dim: int, seed: int = 2) -> np.ndarray:
    return np.eye(z_dim, dtype=np.float32)[np.random.default_rng(seed).integers(z_dim, size=B)]


def test_smm_losses_and_reward_closed_form():
    plugin = make("smm")
    assert plugin.skill_dim == 4
    z = one_hot_skills(4)
    batch = fixed_batch(z)
    s = n(batch.obs)
    x = np.concatenate([s, z], 1)
    enc = weights(plugin.vae.enc)
    mu_w, lv_w, dec = weights(plugin.vae.enc_mu)[0], weights(plugin.vae.enc_logvar)[0], weights(plugin.vae.dec)
    h = np.maximum(np_mlp(enc, x), 0.0)  # the encoder ends with a ReLU
    mu, logvar = h @ mu_w[0].T + mu_w[1], h @ lv_w[0].T + lv_w[1]
    torch.manual_seed(7)
    eps = torch.randn(B, 128).double().numpy()  # the VAE's noise draw, replayed
    sq = (x - np_mlp(dec, eps * np.exp(0.5 * logvar) + mu)) ** 2
    kl = (-0.5 * (1 + logvar - mu**2 - np.exp(logvar)).sum(1)).mean()
    ce = -log_softmax(np_mlp(weights(plugin.discriminator), s), axis=1)[np.arange(B), z.argmax(1)]
    torch.manual_seed(7)
    reward, metrics = plugin.update(batch, step=0)
    assert metrics["smm_vae_loss"] == pytest.approx(0.5 * kl + sq.mean(), rel=1e-4)
    assert metrics["smm_pred_loss"] == pytest.approx(ce.mean(), rel=1e-5)
    # Reward from the same forward pass, before the steps (URLB's order), rewarding s_t.
    np.testing.assert_allclose(n(reward)[:, 0], sq.sum(1) + math.log(4) + ce, rtol=1e-4)


def test_smm_skills_one_hot_and_fixed_within_episodes():
    plugin = make("smm")
    rng = np.random.default_rng(0)
    skills = np.stack([plugin.sample_skill(rng) for _ in range(200)])
    assert set(skills.sum(1)) == {1.0} and set(np.unique(skills)) == {0.0, 1.0}
    assert len(np.unique(skills.argmax(1))) == 4
    assert plugin.update_skill_every_step == 0  # resampled at episode starts only


# --------------------------------------------------------------------------- APS


def test_aps_loss_and_reward_closed_form():
    plugin = make("aps", knn_k=5, lr=1e-2)
    rng = np.random.default_rng(4)
    task = l2n(rng.normal(size=(B, 10))).astype(np.float32)
    batch = fixed_batch(task)
    s_n = n(batch.next_obs)
    loss = -(task * l2n(np_mlp(weights(plugin.phi), s_n))).sum(1).mean()
    reward, metrics = plugin.update(batch, step=0)
    assert metrics["aps_loss"] == pytest.approx(loss, rel=1e-5)
    rep = np_mlp(weights(plugin.phi), s_n)  # after the step, unnormalised for the entropy term
    dist = np.sort(np.linalg.norm(rep[:, None] - rep[None], axis=2), axis=1)[:, :5]
    running_mean = dist.mean() * dist.size / (1e-4 + dist.size)  # URLB's RMS: M0 = 0, n0 = 1e-4
    ent = np.log1p(np.maximum(dist / running_mean - 1e-4, 0.0).mean(1))
    sf = (task * l2n(rep)).sum(1)
    np.testing.assert_allclose(n(reward)[:, 0], ent + sf, rtol=1e-4, atol=1e-5)


def test_aps_defaults_and_skills():
    plugin = make("aps")
    assert (plugin.skill_dim, plugin.update_skill_every_step, plugin.num_init_steps, plugin.lstsq_batch_size) == (
        10,
        5,
        4096,
        4096,
    )
    assert (plugin.entropy.knn_k, plugin.entropy.knn_clip, plugin.entropy.normaliser) == (12, 1e-4, "mean")
    w = plugin.sample_skill(np.random.default_rng(0))
    assert w.shape == (10,) and w.dtype == np.float32 and abs(np.linalg.norm(w) - 1) < 1e-6


def test_aps_least_squares_recovers_linear_task():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(4096, 10))
    w = l2n(rng.normal(size=10))
    reward = features @ w
    got = infer_task(torch.as_tensor(features), torch.as_tensor(reward), "reward_on_features")
    np.testing.assert_allclose(got, w, atol=1e-4)


def test_aps_urlb_regression_is_feature_projection():
    rng = np.random.default_rng(6)
    features, reward = rng.normal(size=(256, 10)), rng.normal(size=256)
    got = infer_task(torch.as_tensor(features), torch.as_tensor(reward), "features_on_reward")
    np.testing.assert_allclose(got, l2n(features.T @ reward), atol=1e-6)  # lstsq(r, phi) in URLB
    # With orthogonal, equal-norm feature columns the two regressions agree and recover w.
    ortho = np.linalg.qr(rng.normal(size=(256, 10)))[0] * 3.0
    w = l2n(rng.normal(size=10))
    got = infer_task(torch.as_tensor(ortho), torch.as_tensor(ortho @ w), "features_on_reward")
    np.testing.assert_allclose(got, w, atol=1e-6)


def test_aps_regress_skill_uses_normalised_features_of_obs():
    plugin = make("aps", regress_features="pretrained")
    batch = fixed_batch()
    rep = l2n(np_mlp(weights(plugin.phi), n(batch.obs)))
    r = n(batch.reward)[:, 0]
    np.testing.assert_allclose(plugin.regress_skill(batch.obs, batch.reward), l2n(rep.T @ r), atol=1e-5)


def test_aps_default_regression_uses_freshly_initialised_features_as_urlb():
    """URLB's fine-tuning agent does not copy phi from the snapshot: its regression sees phi as
    initialised. A snapshot load (here: trained weights) must not change that phi."""
    plugin, batch = make("aps", lr=1e-2), fixed_batch()
    initial = weights(plugin.phi)
    task = l2n(np.random.default_rng(4).normal(size=(B, 10))).astype(np.float32)
    trained = make("aps", lr=1e-2)
    for step in range(3):
        trained.update(fixed_batch(task, seed=10 + step), step)
    plugin.load_state_dict(trained.state_dict())
    assert not np.allclose(weights(plugin.phi)[0][0], initial[0][0])
    rep = l2n(np_mlp(initial, n(batch.obs)))
    np.testing.assert_allclose(
        plugin.regress_skill(batch.obs, batch.reward), l2n(rep.T @ n(batch.reward)[:, 0]), atol=1e-5
    )
    assert not any(k.startswith("_initial") for k in plugin.state_dict())


# --------------------------------------------------------------------------- skill schedules


class _Replay:
    """Stands in for the replay buffer: fixed observations whose task reward is linear in phi."""

    def __init__(self, plugin, w: np.ndarray, size: int = 256) -> None:
        self.obs = torch.as_tensor(np.random.default_rng(8).normal(size=(size, OBS)), dtype=torch.float32)
        with torch.no_grad():
            self.reward = plugin.features(self.obs) @ torch.as_tensor(w, dtype=torch.float32)[:, None]
        self.samples = 0

    def __len__(self) -> int:
        return len(self.obs)

    def sample(self, batch_size: int) -> Batch:
        self.samples += 1
        idx = torch.randint(len(self.obs), (batch_size,))
        return fixed_batch()._replace(obs=self.obs[idx], reward=self.reward[idx])


def test_regress_schedule_random_until_init_steps_then_regressed_and_held():
    plugin = make(
        "aps",
        num_init_steps=20,
        lstsq_batch_size=128,
        task_regression="reward_on_features",
        regress_features="pretrained",
    )
    w = l2n(np.random.default_rng(9).normal(size=10))
    replay, said = _Replay(plugin, w), []
    schedule = finetune_schedule(plugin, None, 10, True, 0, np.random.default_rng(0), said.append, replay=replay)
    assert isinstance(schedule, RegressSkills)  # APS's reference choice
    first = schedule.episode_start()
    skills = [schedule.skill_at(t) for t in range(21)]
    # Up to num_init_steps: prior samples renewed every update_task_every_step (5) steps.
    assert np.array_equal(skills[0], skills[4]) and not np.array_equal(skills[4], skills[5])
    assert not np.array_equal(first, skills[0]) and replay.samples == 0
    assert schedule.skill_at(25) is not None and replay.samples == 1  # first step > 20 divisible by 5
    np.testing.assert_allclose(schedule.skill_at(26), w, atol=1e-4)
    np.testing.assert_allclose(schedule.eval_skill(), w, atol=1e-4)
    np.testing.assert_allclose(schedule.episode_start(), w, atol=1e-4)
    assert replay.samples == 1 and any("regressed" in s for s in said)
    np.testing.assert_allclose(schedule.state_dict()["fixed_skill"], w, atol=1e-4)


def test_regress_needs_a_method_that_regresses():
    with pytest.raises(ValueError, match="regress"):
        finetune_schedule(make("smm"), "regress", 10, True, 0, np.random.default_rng(0), print, replay=object())


def test_smm_resample_schedule_draws_a_skill_per_episode_only():
    plugin = make("smm")
    schedule = finetune_schedule(plugin, None, 10, True, 100, np.random.default_rng(0), print)
    assert isinstance(schedule, PriorSkills)
    episodes = []
    for _ in range(12):
        start = schedule.episode_start()
        within = [schedule.skill_at(t) for t in range(0, 300, 7)]
        assert all(np.array_equal(start, s) for s in within)
        episodes.append(int(start.argmax()))
    assert len(set(episodes)) > 1


# --------------------------------------------------------------------------- APS critic


def test_aps_critic_is_successor_features_dotted_with_task():
    plugin = make("aps")
    agent = DDPGAgent("states", (OBS,), ACT, "cpu", hidden_dim=HID, plugin=plugin)
    assert isinstance(agent.critic, SuccessorFeatureCritic) and isinstance(agent.critic_target, SuccessorFeatureCritic)
    critic = agent.critic
    batch = fixed_batch()
    task = l2n(np.random.default_rng(3).normal(size=(B, 10)))
    x = np.concatenate([n(batch.obs), task, n(batch.action)], 1)
    trunk = weights(critic.trunk)
    h = x @ trunk[0][0].T + trunk[0][1]
    ln = critic.trunk[1]
    h = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + ln.eps)
    h = np.tanh(h * ln.weight.detach().double().numpy() + ln.bias.detach().double().numpy())
    q1, q2 = critic(torch.cat([batch.obs, torch.as_tensor(task, dtype=torch.float32)], 1), batch.action)
    for head, q in ((critic.q1, q1), (critic.q2, q2)):
        psi = np_mlp(weights(head), h)
        assert psi.shape == (B, 10)
        np.testing.assert_allclose(n(q)[:, 0], (task * psi).sum(1), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- end to end

# Jaco episodes are 250 steps: short runs with a snapshot, updates and two evaluations.
E2E = [
    "preset=quick",
    "num_train_frames=500",
    "num_seed_frames=250",
    "eval_every_frames=250",
    "num_eval_episodes=1",
    "agent.hidden_dim=32",
    "batch_size=32",
    "replay_buffer_size=2000",
    "device=cpu",
    "use_tb=false",
]


def _run(script: str, work: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MUJOCO_GL="egl", OMP_NUM_THREADS="1")
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, script, *overrides, *E2E, f"run_root={work / 'runs'}", f"snapshot_dir={work / 'models'}"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.pipeline
@pytest.mark.slow  # every agent end to end, like test_pipeline.py's: run with -m slow
@pytest.mark.parametrize("agent", ["icm", "disagreement", "proto", "smm", "aps", "becl", "cesd"])
def test_method_pretrains_snapshots_and_finetunes(tmp_path, agent):
    pre = _run("pretrain.py", tmp_path, f"agent={agent}", "domain=jaco", "snapshots=[500]")
    assert pre.returncode == 0, pre.stdout[-2000:] + pre.stderr[-2000:]
    assert snapshot_path(tmp_path / "models", "states", "jaco", agent, 1, 500).is_file()
    # The objectives tool scores both policies' transitions with the snapshot's reward model.
    from urlb.tools.objectives import rollout_intrinsic_reward

    pre_dir = tmp_path / "runs" / "quick" / "pretrain" / "states" / "jaco" / agent / "seed_1"
    rewards = rollout_intrinsic_reward(pre_dir, 60)
    assert set(rewards) == {"pretrained", "random"} and all(math.isfinite(v) for v in rewards.values())
    # APS: infer the task after 300 frames from 64 transitions, so the tiny run regresses.
    extra = ["agent.num_init_steps=300", "agent.lstsq_batch_size=64"] if agent == "aps" else []
    fine = _run("finetune.py", tmp_path, f"agent={agent}", "task=jaco_reach_bottom_right", "snapshot_ts=500", *extra)
    assert fine.returncode == 0, fine.stdout[-2000:] + fine.stderr[-2000:]
    assert "loaded snapshot" in fine.stdout
    run_dir = tmp_path / "runs" / "quick" / "finetune" / "states" / "jaco_reach_bottom_right" / agent
    with (run_dir / "snapshot_500" / "seed_1" / "eval.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["frame"])) for r in rows] == [0, 250, 500]
    assert all(math.isfinite(float(r["episode_reward"])) for r in rows)
    if agent == "aps":
        assert "regressed fine-tuning skill" in fine.stdout, fine.stdout[-2000:]


# --------------------------------------------------------------------------- published names


def test_every_published_method_pairs_with_a_registered_agent():
    from urlb.agents import REGISTRY
    from urlb.tools.aggregate.stats import load_published, method_name

    published = set(load_published()["method"])
    assert {"ICM", "Disagreement", "ProtoRL", "SMM", "APS"} <= published
    names = {method_name(agent): agent for agent in REGISTRY}
    assert published <= set(names), published - set(names)
    assert names["ProtoRL"] == "proto" and names["Disagreement"] == "disagreement"
