"""Where the pixel encoder learns, method by method (``agent.encoder_update``).

With ``urlb`` (the default) the backbone follows URLB's agents: plain DDPG trains the encoder
through the critic; a method's agent hands the critic detached features and trains the encoder
with the method's own loss (RND's and ProtoRL's optimisers hold it; CIC encodes without
gradient, so it never moves); fine-tuning a method leaves it frozen. With ``critic`` the encoder
learns through the critic in every agent and phase and methods see detached features.

The count of optimiser steps the encoder takes is read off Adam's first step: each parameter
moves by lr * g / (|g| + eps), i.e. by lr wherever its gradient is not tiny (and not at all
where it is zero), once per optimiser
that steps it. So after one update from fresh optimisers the typical |change| / lr is the number
of Adam steps the encoder took.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from urlb.agents import build_agent
from urlb.agents.contract import random_batch

PIXELS = (9, 32, 32)  # three stacked RGB frames, small so that the convolutions are quick
ACTION_DIM, BATCH, LR = 6, 16, 1e-4  # random_batch draws 6-dimensional actions
SMALL = {
    "rnd": {"rep_dim": 16},
    "apt": {"rep_dim": 16, "knn_k": 4},
    "cic": {"skill_dim": 8, "knn_k": 4},
    "aps": {"knn_k": 4},
    "proto": {"pred_dim": 16, "proj_dim": 32, "num_protos": 8, "queue_size": 32, "topk": 3},
    "smm": {"vae_code_dim": 8, "vae_hidden_dim": 16},
    "becl": {"contrastive_update_rate": 1},
}
# Adam steps the encoder takes in one reward-free update with encoder_update=urlb, as URLB's agents.
PRETRAIN_ENCODER_STEPS = {
    "icm": 1,  # ICM's loss, with URLB's encoder_opt
    "disagreement": 1,
    "apt": 1,  # the ICM representation's loss (URLB's icm_apt)
    "smm": 1,  # the VAE's loss only; the discriminator sees detached features
    "diayn": 1,  # the discriminator on s'
    "aps": 1,  # phi(s')
    "metra": 1,  # phi (no public pixel code on this backbone: the documented choice)
    "becl": 1,  # one contrastive step per batch (contrastive_update_rate=1 here)
    "rnd": 2,  # RND's optimiser holds the predictor's encoder, and the encoder optimiser steps too
    "proto": 1,  # ProtoRL's optimiser holds the encoder; the encoder optimiser gets no gradient
    "cic": 0,  # CIC encodes without gradient
}
METHODS = sorted(PRETRAIN_ENCODER_STEPS)


def build(name: str, reward_free: bool, encoder_update: str = "urlb", seed: int = 0):
    torch.manual_seed(seed)
    agent_cfg = {"name": name, "hidden_dim": 32, "feature_dim": 16, "lr": LR, "encoder_update": encoder_update}
    cfg = OmegaConf.create({"agent": {**agent_cfg, **SMALL.get(name, {})}, "obs_type": "pixels"})
    return build_agent(cfg, PIXELS, ACTION_DIM, "cpu", reward_free)


def batch_for(agent, seed: int = 1):
    rows = BATCH * (agent.plugin.batches_per_update if agent.plugin is not None and agent.reward_free else 1)
    return random_batch(agent.plugin, PIXELS, np.random.default_rng(seed), rows)


def encoder_steps(agent) -> float:
    """The median over moved encoder weights of |change| / lr after one update (0 if none moved):
    the Adam steps taken. Weights behind inactive ReLUs get no gradient and do not move."""
    before = [p.detach().clone() for p in agent.encoder.parameters()]
    agent.update(batch_for(agent), step=100)
    change = torch.cat([(p.detach() - b).abs().flatten() for p, b in zip(agent.encoder.parameters(), before)])
    moved = change[change > 0]
    return float(moved.median() / LR) if len(moved) else 0.0


@pytest.mark.parametrize("name", METHODS)
def test_pretraining_trains_the_encoder_with_the_method_loss_only(name):
    steps = encoder_steps(build(name, reward_free=True))
    assert abs(steps - PRETRAIN_ENCODER_STEPS[name]) < 0.05, f"{name}: the encoder took {steps:.3f} Adam steps"


@pytest.mark.parametrize("name", ["ddpg", *METHODS])
def test_fine_tuning_freezes_a_methods_encoder_and_plain_ddpg_trains_it(name):
    steps = encoder_steps(build(name, reward_free=False))
    assert abs(steps - (1 if name == "ddpg" else 0)) < 0.05, f"{name}: {steps:.3f} encoder steps when fine-tuning"


@pytest.mark.parametrize("name", ["icm", "rnd", "cic"])
@pytest.mark.parametrize("reward_free", [True, False])
def test_encoder_update_critic_trains_the_encoder_through_the_critic(name, reward_free):
    agent = build(name, reward_free, encoder_update="critic")
    seen = []
    plugin_update = agent.plugin.update
    agent.plugin.update = lambda batch, step: (seen.append(batch.obs.requires_grad), plugin_update(batch, step))[1]
    assert abs(encoder_steps(agent) - 1) < 0.05
    assert seen == ([False] if reward_free else []), "the method must see detached features"


@pytest.mark.parametrize("name,grad", [("icm", True), ("diayn", True), ("cic", False), ("metra", True)])
def test_methods_see_features_with_gradient_where_urlb_has_it(name, grad):
    agent = build(name, reward_free=True)
    seen = {}
    plugin_update = agent.plugin.update

    def spy(batch, step):
        seen.update(obs=batch.obs.requires_grad, next_obs=batch.next_obs.requires_grad)
        return plugin_update(batch, step)

    agent.plugin.update = spy
    agent.update(batch_for(agent), step=100)
    key = "next_obs" if name in ("diayn", "aps") else "obs"
    assert seen[key] is grad


def test_rnd_on_frames_normalises_each_channel_over_the_batch():
    """RND's error on raw frames: shifted, each channel standardised by its batch mean and biased
    variance over (batch, height, width) (BatchNorm2d without affine parameters, eps 1e-5),
    clipped to +-5, then the shared encoder + predictor against the target's encoder + head."""
    agent = build("rnd", reward_free=True)
    rnd = agent.plugin
    frames = batch_for(agent).obs
    torch.manual_seed(7)
    shifted = agent.aug(frames.float())
    mean = shifted.mean(dim=(0, 2, 3), keepdim=True)
    var = shifted.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    x = ((shifted - mean) / torch.sqrt(var + 1e-5)).clamp(-5.0, 5.0)
    with torch.no_grad():
        expected = (rnd.predictor(agent.encoder(x)) - rnd.target(rnd.target_encoder(x))).pow(2).mean(-1, keepdim=True)
        torch.manual_seed(7)
        got = rnd.prediction_error(frames)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # The target's encoder is an independent random copy, never trained.
    assert not torch.equal(rnd.target_encoder.convnet[0].weight, agent.encoder.convnet[0].weight)
    assert not any(p.requires_grad for p in rnd.target_encoder.parameters())


def test_proto_critic_takes_the_updated_encoders_features_of_the_same_shifted_frames():
    agent = build("proto", reward_free=True)
    proto = agent.plugin
    target_before = [p.detach().clone() for p in proto.encoder_target.parameters()]
    critic_inputs = []
    agent.critic.register_forward_hook(lambda module, args, out: critic_inputs.append(args[0].detach()))
    agent.update(batch_for(agent), step=100)
    with torch.no_grad():
        expected = agent.encoder(proto._shifted[0])
    torch.testing.assert_close(critic_inputs[0], expected)
    # The encoder's target moves towards the encoder by encoder_target_tau (0.05), as the predictor's.
    for target, before, online in zip(proto.encoder_target.parameters(), target_before, agent.encoder.parameters()):
        torch.testing.assert_close(target.detach(), before + 0.05 * (online.detach() - before))


def test_fine_tuning_copies_the_pretrained_encoder_and_keeps_it():
    pre = build("icm", reward_free=True, seed=1)
    pre.update(batch_for(pre), step=100)
    fine = build("icm", reward_free=False, seed=2)
    fine.init_from(pre.networks_state())
    for _ in range(2):
        fine.update(batch_for(fine, seed=3), step=100)
    for a, b in zip(pre.encoder.parameters(), fine.encoder.parameters()):
        assert torch.equal(a, b)


def test_an_unknown_encoder_update_is_refused():
    with pytest.raises(ValueError, match="encoder_update 'both'.*urlb, critic"):
        build("icm", reward_free=True, encoder_update="both")


def test_snapshot_state_round_trips_with_the_encoder_optimiser():
    agent = build("rnd", reward_free=True)
    agent.update(batch_for(agent), step=100)
    state = agent.networks_state()
    assert "encoder_opt" in state and "target_encoder.convnet.0.weight" in state["plugin"]
    fresh = build("rnd", reward_free=True, seed=5)
    fresh.load_networks(state, tuple(state))
    for a, b in zip(fresh.parameters(), agent.parameters()):
        assert torch.equal(a, b)
    assert fresh.encoder_opt.state_dict()["state"].keys() == agent.encoder_opt.state_dict()["state"].keys()


@pytest.mark.parametrize(
    "name,options,shifted",
    [
        ("icm", {}, ["obs", "next_obs"]),  # URLB's agents shift and encode obs and next_obs only
        ("diayn", {}, ["obs", "next_obs"]),
        ("icm", {"transition": "1step"}, ["obs", "next_obs", "next_obs_1step"]),
        ("metra", {}, ["obs", "next_obs", "next_obs_1step"]),  # phi learns on (s_t, s_{t+1})
    ],
)
@pytest.mark.parametrize("encoder_update", ["urlb", "critic"])
def test_a_pixel_update_shifts_and_encodes_only_the_frames_the_method_reads(name, options, shifted, encoder_update):
    torch.manual_seed(0)
    agent_cfg = {"name": name, "hidden_dim": 32, "feature_dim": 16, "encoder_update": encoder_update, **options}
    agent = build_agent(OmegaConf.create({"agent": agent_cfg, "obs_type": "pixels"}), PIXELS, ACTION_DIM, "cpu", True)
    batch = batch_for(agent)
    fields = {key: getattr(batch, key).float() for key in ("obs", "next_obs", "next_obs_1step")}
    calls = []
    agent.aug.register_forward_pre_hook(
        lambda module, args: calls.append(next(k for k, v in fields.items() if torch.equal(v, args[0].float())))
    )
    seen = []
    plugin_update = agent.plugin.update
    agent.plugin.update = lambda batch, step: (seen.append(batch.next_obs_1step), plugin_update(batch, step))[1]
    agent.update(batch, step=100)
    assert calls == shifted
    assert (seen[0] is None) is ("next_obs_1step" not in shifted)


def test_a_pixel_ddpg_agent_draws_its_encoder_first_as_urlb_does():
    """URLB's DDPG builds the encoder first from the seeded stream, so the same seed gives the same
    initial weights on both sides; nothing of ours may draw before it (sizes are computed)."""
    from urlb.nets import Encoder, encoder_repr_dim

    agent = build("ddpg", reward_free=False, seed=3)
    torch.manual_seed(3)
    first = Encoder(PIXELS)
    for key, value in first.state_dict().items():
        assert torch.equal(agent.encoder.state_dict()[key], value), key
    assert encoder_repr_dim(PIXELS) == first.convnet(torch.zeros(1, *PIXELS)).numel()
    assert encoder_repr_dim((9, 84, 84)) == 32 * 35 * 35
