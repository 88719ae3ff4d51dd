"""ReplayBuffer: n-step targets against a plain-Python closed form, episode boundaries,
ring-buffer wraparound, pixel frame stacking, checkpoint round trip and seeded sampling.

Hand-made episodes encode (episode, step) in every observation, so each sampled item can be
decoded back to the time step it starts from and compared with what was written.
"""

from __future__ import annotations

import collections
import functools
import io
import math

import numpy as np
import pytest
import torch

from urlb.replay import Batch, ReplayBuffer

# The sampler that also draws the running episode and shortened windows near an episode's end
# (urlb_sampling=False); the closed-form tests below enumerate every such start. URLB's rule
# (the default) has its own tests under "URLB sampling".
Permissive = functools.partial(ReplayBuffer, urlb_sampling=False)

SKILL_DIM = 2
ACTION_DIM = 2
FRAME_STACK = 3
PIX = 8


class FakeStep:
    """The parts of a TimeStep the buffer reads."""

    def __init__(self, observation, action, reward, discount, is_first, is_last=False):
        self.observation, self.action = observation, action
        self.reward, self.discount = reward, discount
        self._first, self._last = is_first, is_last

    def first(self) -> bool:
        return self._first

    def last(self) -> bool:
        return self._last


def reward_of(ep: int, t: int) -> float:
    return 1.0 + 0.1 * t + 10.0 * ep


def action_of(ep: int, t: int) -> np.ndarray:
    return np.array([ep + 0.01 * t, -float(t)], np.float32)


def skill_of(ep: int, t: int) -> np.ndarray:
    return np.array([float(ep), 0.5 * t], np.float32)


def state_obs(ep: int, t: int) -> np.ndarray:
    return np.array([ep, t, 1000 * ep + t], np.float32)


def pixel_frame(ep: int, t: int) -> np.ndarray:
    """One RGB frame (3, 8, 8) whose first channel encodes (ep, t)."""
    base = 20 * ep + t
    assert base < 256
    return np.stack(
        [
            np.full((PIX, PIX), base, np.uint8),
            np.full((PIX, PIX), 255 - base, np.uint8),
            (np.arange(PIX * PIX).reshape(PIX, PIX) + base).astype(np.uint8),
        ]
    )


class Recorder:
    """Writes hand-made episodes to buffers and keeps the reference of what was written."""

    def __init__(self, *buffers: ReplayBuffer, pixels: bool = False) -> None:
        self.buffers = list(buffers)
        self.pixels = pixels
        self.steps: dict[tuple[int, int], dict] = {}
        self.order: list[tuple[int, int]] = []  # write order
        self.last_t: dict[int, int] = {}
        self.finished: set[int] = set()  # episodes whose last step was written
        self._ep = -1
        self._t = 0
        self._stack: collections.deque | None = None

    def _obs(self, ep: int, t: int) -> np.ndarray:
        if not self.pixels:
            return state_obs(ep, t)
        frame = pixel_frame(ep, t)
        if t == 0:  # an env frame stacker repeats the first frame
            self._stack = collections.deque([frame] * FRAME_STACK, maxlen=FRAME_STACK)
        else:
            self._stack.append(frame)
        return np.concatenate(list(self._stack), axis=0)

    def add_step(self, discount: float = 1.0, first: bool = False, last: bool = False) -> None:
        if first:
            self._ep += 1
            self._t = 0
        ep, t = self._ep, self._t
        obs = self._obs(ep, t)
        if first:
            action, reward, discount = np.zeros(ACTION_DIM, np.float32), 0.0, 1.0
        else:
            action, reward = action_of(ep, t), reward_of(ep, t)
        skill = skill_of(ep, t)
        for rb in self.buffers:
            rb.add(FakeStep(obs, action, reward, discount, first, last), skill if rb.skill_dim else None)
        if last:
            self.finished.add(ep)
        self.steps[(ep, t)] = dict(obs=obs, action=action, reward=reward, discount=discount, skill=skill)
        self.order.append((ep, t))
        self.last_t[ep] = t
        self._t += 1

    def add_episode(self, length: int, discounts: dict[int, float] | None = None, terminal: bool = False) -> None:
        """``length`` time steps (first included); ``terminal`` ends with discount 0."""
        discounts = dict(discounts or {})
        if terminal:
            discounts[length - 1] = 0.0
        self.add_step(first=True, last=length == 1)
        for t in range(1, length):
            self.add_step(discount=discounts.get(t, 1.0), last=t == length - 1)

    def retained(self, capacity: int) -> set[tuple[int, int]]:
        return set(self.order[-capacity:])

    def valid_starts(self, capacity: int) -> set[tuple[int, int]]:
        kept = self.retained(capacity)
        return {(ep, t) for ep, t in kept if (ep, t + 1) in kept}

    def urlb_starts(self, capacity: int, nstep: int) -> set[tuple[int, int]]:
        """URLB's samplable starts: finished episodes, full n-step windows."""
        kept = self.retained(capacity)
        return {(ep, t) for ep, t in kept if ep in self.finished and (ep, t + nstep) in kept}

    def expected(self, ep: int, t: int, nstep: int, gamma: float) -> dict:
        """The closed form of the n-step transition that starts at (ep, t)."""
        m = min(nstep, self.last_t[ep] - t)
        assert m >= 1
        ret, survive = 0.0, 1.0
        for k in range(1, m + 1):
            ret += gamma ** (k - 1) * survive * self.steps[(ep, t + k)]["reward"]
            survive *= self.steps[(ep, t + k)]["discount"]
        return dict(m=m, reward=ret, discount=gamma**m * survive)


def decode_state(row) -> tuple[int, int]:
    return int(round(float(row[0]))), int(round(float(row[1])))


def decode_pixels(stack: torch.Tensor) -> tuple[int, int]:
    base = int(stack[-3, 0, 0])  # newest frame, first channel
    return base // 20, base % 20


def check_batch(rec: Recorder, batch: Batch, nstep: int, gamma: float, capacity: int) -> set[tuple[int, int]]:
    """Compare every sampled item with the closed form; return the set of sampled starts."""
    kept = rec.retained(capacity)
    decode = decode_pixels if rec.pixels else decode_state
    starts = set()
    for b in range(batch.obs.shape[0]):
        ep, t = decode(batch.obs[b])
        starts.add((ep, t))
        assert (ep, t) in kept, f"item {b} starts at overwritten step {(ep, t)}"
        exp = rec.expected(ep, t, nstep, gamma)
        m = exp["m"]
        where = f"item {b}, start (episode {ep}, step {t}), m={m}"
        # Observations: exactly what was written, never from another episode or overwritten.
        np.testing.assert_array_equal(batch.obs[b].cpu().numpy(), rec.steps[(ep, t)]["obs"], err_msg=where)
        assert decode(batch.next_obs[b]) == (ep, t + m), where
        assert decode(batch.next_obs_1step[b]) == (ep, t + 1), where
        assert (ep, t + m) in kept and (ep, t + 1) in kept, where
        np.testing.assert_array_equal(batch.next_obs[b].cpu().numpy(), rec.steps[(ep, t + m)]["obs"], err_msg=where)
        np.testing.assert_array_equal(
            batch.next_obs_1step[b].cpu().numpy(), rec.steps[(ep, t + 1)]["obs"], err_msg=where
        )
        np.testing.assert_array_equal(batch.action[b].cpu().numpy(), rec.steps[(ep, t + 1)]["action"], err_msg=where)
        if batch.skill is not None:
            np.testing.assert_array_equal(batch.skill[b].cpu().numpy(), rec.steps[(ep, t + 1)]["skill"], err_msg=where)
        assert float(batch.reward[b, 0]) == pytest.approx(exp["reward"], rel=1e-5, abs=1e-5), where
        assert float(batch.discount[b, 0]) == pytest.approx(exp["discount"], rel=1e-5, abs=1e-7), where
    return starts


def check_shapes(batch: Batch, n: int, obs_shape: tuple[int, ...], skill_dim: int) -> None:
    assert batch.obs.shape == (n, *obs_shape)
    assert batch.next_obs.shape == (n, *obs_shape)
    assert batch.next_obs_1step.shape == (n, *obs_shape)
    assert batch.action.shape == (n, ACTION_DIM)
    assert batch.reward.shape == (n, 1) and batch.discount.shape == (n, 1)
    assert batch.reward.dtype == torch.float32 and batch.discount.dtype == torch.float32
    if skill_dim:
        assert batch.skill.shape == (n, skill_dim)
    else:
        assert batch.skill is None


def fill_mixed(rec: Recorder) -> None:
    """Episodes of several lengths: time-limit ends, terminal ends, fractional discounts."""
    rec.add_episode(6)
    rec.add_episode(4, terminal=True)
    rec.add_episode(2, terminal=True)  # a single transition
    rec.add_episode(9, discounts={2: 0.5, 3: 0.8, 6: 0.9})
    rec.add_episode(3)
    rec.add_episode(5, discounts={1: 0.7}, terminal=True)


# --- n-step closed form -------------------------------------------------------------------


@pytest.mark.parametrize("nstep", [1, 3, 5])
def test_every_sample_matches_closed_form(nstep):
    gamma = 0.9
    rb = Permissive((3,), ACTION_DIM, capacity=1000, skill_dim=SKILL_DIM, nstep=nstep, discount=gamma)
    rec = Recorder(rb)
    fill_mixed(rec)
    assert len(rb) == len(rec.order)
    valid = rec.valid_starts(1000)
    assert rb.num_transitions == len(valid)
    batch = rb.sample(3000, torch.Generator().manual_seed(nstep))
    check_shapes(batch, 3000, (3,), SKILL_DIM)
    starts = check_batch(rec, batch, nstep, gamma, 1000)
    # Uniform over valid starts: with 3000 draws over ~30 starts, every one appears.
    assert starts == valid


def test_never_crosses_episode_boundary_nor_starts_at_final_step():
    rb = Permissive((3,), ACTION_DIM, capacity=500, nstep=4, discount=0.95)
    rec = Recorder(rb)
    for length in (3, 2, 7, 4, 2, 5):
        rec.add_episode(length)
    batch = rb.sample(2000, torch.Generator().manual_seed(1))
    obs_ep = batch.obs[:, 0].round().long()
    obs_t = batch.obs[:, 1].round().long()
    assert torch.equal(batch.next_obs[:, 0].round().long(), obs_ep)
    assert torch.equal(batch.next_obs_1step[:, 0].round().long(), obs_ep)
    final_t = torch.tensor([rec.last_t[int(e)] for e in obs_ep])
    assert bool((obs_t < final_t).all()), "a start at the final step of an episode was sampled"
    assert bool((batch.next_obs[:, 1].round().long() <= final_t).all())
    check_batch(rec, batch, 4, 0.95, 500)


def test_terminal_stops_bootstrap_and_time_limit_bootstraps():
    gamma = 0.9
    rb = Permissive((3,), ACTION_DIM, capacity=100, nstep=3, discount=gamma)
    rec = Recorder(rb)
    rec.add_episode(4, terminal=True)  # episode 0: rewards r1, r2, r3; step 3 is terminal (discount 0)
    rec.add_episode(4)  # episode 1: same length, ends on the time limit (discount 1)
    rec.add_episode(4, discounts={2: 0.0})  # episode 2: discount 0 mid-way; rewards after it must not count
    r = {(ep, t): reward_of(ep, t) for ep in range(3) for t in range(1, 4)}
    batch = rb.sample(1000, torch.Generator().manual_seed(2))
    seen = set()
    for b in range(1000):
        ep, t = decode_state(batch.obs[b])
        seen.add((ep, t))
        rew, disc = float(batch.reward[b, 0]), float(batch.discount[b, 0])
        left = [r[(ep, k)] for k in range(t + 1, 4)][:3]
        if ep == 0:  # terminal: no bootstrap at all, only the episode's own rewards
            assert disc == 0.0
            assert rew == pytest.approx(sum(gamma**k * x for k, x in enumerate(left)), rel=1e-6)
        elif ep == 1:  # time limit: bootstraps with gamma^m from the last observation
            assert disc == pytest.approx(gamma ** len(left), rel=1e-6)
            assert rew == pytest.approx(sum(gamma**k * x for k, x in enumerate(left)), rel=1e-6)
            assert decode_state(batch.next_obs[b]) == (1, 3)
        else:
            if t <= 1:  # the window reaches the discount-0 step 2: step 3's reward is excluded
                expected = r[(2, 1)] + gamma * r[(2, 2)] if t == 0 else r[(2, 2)]
                assert rew == pytest.approx(expected, rel=1e-6)
                assert disc == 0.0
            else:
                assert rew == pytest.approx(r[(2, 3)], rel=1e-6)
                assert disc == pytest.approx(gamma, rel=1e-6)
    assert seen == {(ep, t) for ep in range(3) for t in range(3)}
    # Hand-computed numbers for episode 0 started at step 0: 11.1 + .9*11.2 + .81*11.3
    first = [b for b in range(1000) if decode_state(batch.obs[b]) == (0, 0)][0]
    assert float(batch.reward[first, 0]) == pytest.approx(1.1 + 0.9 * 1.2 + 0.81 * 1.3, rel=1e-6)


def test_sampling_before_any_transition_raises():
    rb = ReplayBuffer((3,), ACTION_DIM, capacity=10)
    with pytest.raises(RuntimeError):
        rb.sample(4)
    rec = Recorder(rb)
    rec.add_step(first=True)
    with pytest.raises(RuntimeError):
        rb.sample(4)


# --- ring buffer ----------------------------------------------------------------------------


def test_wraparound_keeps_samples_consistent():
    gamma, nstep, capacity = 0.9, 3, 23
    rb = Permissive((3,), ACTION_DIM, capacity=capacity, skill_dim=SKILL_DIM, nstep=nstep, discount=gamma)
    rec = Recorder(rb)
    gen = torch.Generator().manual_seed(3)
    for round_ in range(3):  # the write head moves through several positions
        for length, terminal in ((7, False), (5, True), (9, False), (6, True), (8, False), (4, False)):
            rec.add_episode(length, terminal=terminal)
        assert len(rec.order) > capacity
        assert len(rb) == capacity
        valid = rec.valid_starts(capacity)
        assert rb.num_transitions == len(valid)
        batch = rb.sample(2000, gen)
        starts = check_batch(rec, batch, nstep, gamma, capacity)
        assert starts == valid, f"round {round_}: sampled starts differ from the valid retained starts"


def test_wraparound_episode_longer_than_capacity_never_reads_across_write_head():
    """One episode longer than the buffer: the newest step's successor position holds the
    episode's *oldest* retained step (same episode id). Samples must not wrap from the newest
    step to the oldest (that would pair step 24 with step 15)."""
    gamma, nstep, capacity = 0.9, 3, 10
    rb = Permissive((3,), ACTION_DIM, capacity=capacity, nstep=nstep, discount=gamma)
    rec = Recorder(rb)
    rec.add_episode(25)
    batch = rb.sample(1000, torch.Generator().manual_seed(4))
    # Time only moves forward within a transition.
    backwards = batch.next_obs[:, 1] <= batch.obs[:, 1]
    pairs = torch.stack([batch.obs[:, 1], batch.next_obs[:, 1]], 1)[backwards][:3].tolist()
    assert not bool(backwards.any()), (
        f"{int(backwards.sum())}/1000 transitions read across the write head, e.g. (obs step, next_obs step) = {pairs}"
    )
    starts = check_batch(rec, batch, nstep, gamma, capacity)
    assert starts == rec.valid_starts(capacity)


# --- pixels ---------------------------------------------------------------------------------


def test_pixels_store_one_frame_per_step_and_rebuild_stacks():
    gamma, nstep, capacity = 0.99, 3, 100
    rb = Permissive(
        (3 * FRAME_STACK, PIX, PIX), ACTION_DIM, capacity=capacity, frame_stack=FRAME_STACK, nstep=nstep, discount=gamma
    )
    assert rb.frames.shape == (capacity, 3, PIX, PIX)
    assert rb.frames.dtype == torch.uint8
    rec = Recorder(rb, pixels=True)
    for length in (5, 2, 7, 3):
        rec.add_episode(length)
    # Only the newest frame of each step is stored.
    for i, (ep, t) in enumerate(rec.order):
        np.testing.assert_array_equal(rb.frames[i].numpy(), pixel_frame(ep, t))
    batch = rb.sample(1500, torch.Generator().manual_seed(5))
    check_shapes(batch, 1500, (3 * FRAME_STACK, PIX, PIX), 0)
    assert batch.obs.dtype == torch.uint8 and batch.next_obs.dtype == torch.uint8
    starts = check_batch(rec, batch, nstep, gamma, capacity)
    assert starts == rec.valid_starts(capacity)
    # The episode start (first frame repeated) and step 1 (first frame twice) were both checked.
    assert {(0, 0), (0, 1), (2, 0), (2, 1)} <= starts


def test_pixel_wraparound_never_stacks_overwritten_frames():
    """After wraparound the oldest retained step of an episode has lost its earlier frames;
    a sampled stack must still be the one the environment produced (never frames written
    later at the overwritten positions)."""
    capacity = 10
    rb = Permissive(
        (3 * FRAME_STACK, PIX, PIX), ACTION_DIM, capacity=capacity, frame_stack=FRAME_STACK, nstep=1, discount=0.99
    )
    rec = Recorder(rb, pixels=True)
    for _ in range(5):
        rec.add_episode(4)
    batch = rb.sample(1000, torch.Generator().manual_seed(6))
    check_batch(rec, batch, 1, 0.99, capacity)


# --- checkpointing and determinism ----------------------------------------------------------


def test_state_dict_round_trip_gives_identical_batches():
    gamma, nstep, capacity = 0.9, 3, 30
    kwargs = dict(
        obs_shape=(3,), action_dim=ACTION_DIM, capacity=capacity, skill_dim=SKILL_DIM, nstep=nstep, discount=gamma
    )
    rb = ReplayBuffer(**kwargs)
    rec = Recorder(rb)
    for length in (8, 6, 9, 7, 5, 8):  # 43 steps: wrapped
        rec.add_episode(length, terminal=length == 6)
    rec.add_step(first=True)  # an episode in progress at checkpoint time
    rec.add_step()
    # Through bytes with weights_only=True, as checkpoints are read.
    buf = io.BytesIO()
    torch.save(rb.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    rb2 = ReplayBuffer(**kwargs)
    rb2.load_state_dict(state)
    assert len(rb2) == len(rb) and rb2.num_transitions == rb.num_transitions
    a = rb.sample(500, torch.Generator().manual_seed(7))
    b = rb2.sample(500, torch.Generator().manual_seed(7))
    for name, x, y in zip(Batch._fields, a, b):
        assert torch.equal(x, y), name
    # Both continue identically: the in-progress episode goes on, then a new one starts.
    rec.buffers.append(rb2)
    for _ in range(3):
        rec.add_step()
    rec.add_episode(4)
    a = rb.sample(800, torch.Generator().manual_seed(8))
    b = rb2.sample(800, torch.Generator().manual_seed(8))
    for name, x, y in zip(Batch._fields, a, b):
        assert torch.equal(x, y), name
    check_batch(rec, b, nstep, gamma, capacity)


def test_seeded_sampling_is_deterministic():
    rb = ReplayBuffer((3,), ACTION_DIM, capacity=200, skill_dim=SKILL_DIM, nstep=3, discount=0.99)
    rec = Recorder(rb)
    fill_mixed(rec)
    a = rb.sample(256, torch.Generator().manual_seed(11))
    b = rb.sample(256, torch.Generator().manual_seed(11))
    c = rb.sample(256, torch.Generator().manual_seed(12))
    for name, x, y in zip(Batch._fields, a, b):
        assert torch.equal(x, y), name
    assert not torch.equal(a.obs, c.obs)
    assert math.isfinite(float(a.reward.sum()))


# --- URLB sampling (the default): finished episodes, full n-step windows -------------------


@pytest.mark.parametrize("nstep", [1, 3])
def test_urlb_sampling_draws_finished_episodes_and_full_windows_only(nstep):
    gamma = 0.9
    rb = ReplayBuffer((3,), ACTION_DIM, capacity=1000, skill_dim=SKILL_DIM, nstep=nstep, discount=gamma)
    assert rb.urlb_sampling
    rec = Recorder(rb)
    fill_mixed(rec)
    rec.add_step(first=True)  # episode 6 is running: 7 steps, no last step yet
    for _ in range(6):
        rec.add_step()
    expected = rec.urlb_starts(1000, nstep)
    assert 6 not in {ep for ep, _ in expected}
    assert rb.num_transitions == len(expected)
    batch = rb.sample(3000, torch.Generator().manual_seed(nstep))
    starts = check_batch(rec, batch, nstep, gamma, 1000)
    assert starts == expected  # every one drawn, nothing else
    # Every window is full: next_obs is exactly n steps later (episode ends included in it).
    assert torch.equal(batch.next_obs[:, 1] - batch.obs[:, 1], torch.full((3000,), float(nstep)))
    # Once the running episode ends, its full windows join.
    rec.add_step(last=True)
    starts = check_batch(rec, rb.sample(3000, torch.Generator().manual_seed(9)), nstep, gamma, 1000)
    assert starts == rec.urlb_starts(1000, nstep) and any(ep == 6 for ep, _ in starts)


def test_urlb_sampling_falls_back_before_any_finished_episode():
    # URLB cannot sample at all here (it updates after whole seed episodes); tiny runs that
    # update earlier draw the running episode's transitions instead of failing.
    rb = ReplayBuffer((3,), ACTION_DIM, capacity=100, nstep=3, discount=0.9)
    rec = Recorder(rb)
    rec.add_step(first=True)
    with pytest.raises(RuntimeError):
        rb.sample(4)
    rec.add_step()
    rec.add_step()
    batch = rb.sample(200, torch.Generator().manual_seed(0))
    assert check_batch(rec, batch, 3, 0.9, 100) == {(0, 0), (0, 1)}
