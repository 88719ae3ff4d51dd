"""URLB's replay loader schedule (urlb.replay_loader) and the replay's sampling through it:
fetches every 1,000 samples (also inside a batch), batches drawn ``prefetch * workers`` updates
ahead, one batch from one worker's episodes (index modulo the worker count), an episode then a
full window drawn uniformly, and the schedule surviving a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.test_replay import ACTION_DIM, Recorder, check_batch
from urlb.replay import Batch, ReplayBuffer
from urlb.replay_loader import URLBLoader, WorkerDraws


def test_one_worker_fetches_every_1000_samples_from_what_it_saw_two_batches_earlier():
    loader = URLBLoader(1)
    plans = [loader.plan(256, finished) for finished in (4, 5, 6, 7, 8, 9, 10, 11)]
    assert all(worker == 0 for worker, _ in plans)
    # Samples 0-767 use the first fetch (4 episodes); sample 1000 is the 233rd of batch 3, which
    # fetches what was on disk when batch 1 was asked for (prefetch 2 with one worker).
    assert [segments for _, segments in plans[:4]] == [[(256, 4)], [(256, 4)], [(256, 4)], [(232, 4), (24, 5)]]
    # Next fetch at sample 2000: the 208th of batch 7, from batch 5's view (9 episodes).
    assert plans[7][1] == [(208, 5), (48, 9)]


def test_four_workers_take_turns_and_start_from_the_first_view():
    loader = URLBLoader(4)
    plans = [loader.plan(256, finished) for finished in range(4, 14)]
    assert [worker for worker, _ in plans] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    # The first 8 batches (2 per worker) are asked for when the loader starts.
    assert all(segments == [(256, 4)] for _, segments in plans[:8])
    # Each worker counts its own samples: worker 0's batch 8 is its 513th-768th sample, no fetch.
    assert plans[8][1] == [(256, 4)]


def test_in_process_loader_has_no_prefetch():
    loader = URLBLoader(0)
    plans = [loader.plan(500, finished) for finished in (2, 3, 4)]
    assert [segments for _, segments in plans] == [[(500, 2)], [(500, 2)], [(500, 4)]]


def test_bad_worker_count_is_refused():
    with pytest.raises(ValueError, match="workers must be >= 0"):
        URLBLoader(-1)


def fill(rb: ReplayBuffer, episodes: int, length: int = 12) -> Recorder:
    rec = Recorder(rb)
    for _ in range(episodes):
        rec.add_episode(length)
    return rec


@pytest.mark.parametrize("workers", [1, 4])
def test_each_batch_comes_from_one_workers_finished_episodes(workers):
    nstep, gamma = 3, 0.9
    rb = ReplayBuffer((3,), ACTION_DIM, capacity=1000, nstep=nstep, discount=gamma, loader_workers=workers)
    rec = fill(rb, 8)
    rec.add_step(first=True)  # episode 8 is running
    for _ in range(5):
        rec.add_step()
    gen = torch.Generator().manual_seed(0)
    for u in range(8):
        batch = rb.sample_for_update(300, gen)
        starts = check_batch(rec, batch, nstep, gamma, 1000)  # full windows, exact contents
        episodes = {ep for ep, _ in starts}
        assert episodes == {e for e in range(8) if e % workers == u % workers}
        assert all(t <= 11 - nstep for _, t in starts)


def test_a_finished_episode_waits_for_the_next_fetch():
    rb = ReplayBuffer((3,), ACTION_DIM, capacity=1000, nstep=3, discount=0.9, loader_workers=1)
    rec = fill(rb, 2)
    gen = torch.Generator().manual_seed(1)
    seen = []
    for u in range(6):
        if u == 1:
            rec.add_episode(12)  # episode 2 finishes after the first batch was asked for
        batch = rb.sample_for_update(400, gen)
        seen.append({int(round(float(e))) for e in batch.obs[:, 0]})
    # Fetches at samples 0 and 1000 (batch 2) see the view of batch 0 (2 episodes); the fetch at
    # sample 2000 (batch 5) sees batch 3's view, with episode 2.
    assert all(s == {0, 1} for s in seen[:5])
    assert seen[5] == {0, 1, 2}


def test_worker_without_episodes_uses_the_replays_sampler():
    rb = ReplayBuffer((3,), ACTION_DIM, capacity=1000, nstep=3, discount=0.9, loader_workers=4)
    rec = fill(rb, 2)  # workers 2 and 3 hold nothing (URLB itself would stop with an error)
    gen = torch.Generator().manual_seed(2)
    batches = [rb.sample_for_update(200, gen) for _ in range(4)]
    assert {int(round(float(e))) for e in batches[0].obs[:, 0]} == {0}
    assert {int(round(float(e))) for e in batches[2].obs[:, 0]} == {0, 1}
    check_batch(rec, batches[3], 3, 0.9, 1000)


def test_loader_schedule_survives_a_checkpoint():
    kwargs = dict(obs_shape=(3,), action_dim=ACTION_DIM, capacity=1000, nstep=3, discount=0.9, loader_workers=4)
    rb = ReplayBuffer(**kwargs)
    rec = fill(rb, 9)
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        rb.sample_for_update(256, gen)
    rb2 = ReplayBuffer(**kwargs)
    rb2.load_state_dict(rb.state_dict())
    rec.buffers.append(rb2)
    rec.add_episode(12)
    state = gen.get_state()
    for _ in range(12):
        gen.set_state(state)
        a = rb.sample_for_update(256, gen)
        state_after = gen.get_state()
        gen.set_state(state)
        b = rb2.sample_for_update(256, gen)
        for name, x, y in zip(Batch._fields, a, b):
            assert x is None and y is None or torch.equal(x, y), name
        state = state_after


@pytest.mark.parametrize("value", ["-1", "two"])
def test_bad_replay_loader_workers_is_one_clear_error(value):
    from hydra import compose, initialize_config_dir

    import urlb.runs.config as config

    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose(config_name="finetune", overrides=["device=cpu", f"replay_loader_workers={value}"])
    with pytest.raises(config.ConfigError, match="replay_loader_workers"):
        config.validate(cfg)


# A public URLB run's batches (walker pixels, one loader worker, 500-step episodes, n-step 3: 498
# windows per episode), recorded by scripts/compare_public_ddpg/trace_public.py: the first eight
# samples, and the ten from sample 9,000 on, when its worker first holds a second episode.
PUBLIC_FIRST_STARTS = [282, 4, 273, 35, 69, 9, 180, 413]
PUBLIC_FROM_9000 = [(0, 363), (1, 380), (0, 270), (1, 176), (1, 4), (0, 207), (0, 430), (1, 224), (0, 17), (0, 37)]


def test_worker_draws_are_the_public_loaders_whatever_the_seed():
    draws = WorkerDraws(0)
    picks, starts = draws.draw([498], 8)
    assert picks == [0] * 8 and starts == PUBLIC_FIRST_STARTS
    draws.draw([498], 9000 - 8)
    picks, starts = draws.draw([498, 498], 10)
    assert list(zip(picks, starts)) == PUBLIC_FROM_9000
    other = WorkerDraws(1)  # the next worker starts from the next seed
    assert other.draw([498], 8)[1] != PUBLIC_FIRST_STARTS


def test_worker_draws_survive_a_checkpoint_and_the_first_batch_takes_one_torch_draw():
    rb = ReplayBuffer((3,), ACTION_DIM, capacity=1000, nstep=3, discount=0.9, loader_workers=2)
    fill(rb, 4)
    torch.manual_seed(0)
    rb.sample_for_update(64)
    after_first = torch.rand(1)
    torch.manual_seed(0)
    torch.empty((), dtype=torch.int64).random_()  # what URLB's loader iterator takes at its creation
    assert torch.equal(torch.rand(1), after_first)
    rb2 = ReplayBuffer((3,), ACTION_DIM, capacity=1000, nstep=3, discount=0.9, loader_workers=2)
    rb2.load_state_dict(rb.state_dict())
    for _ in range(3):
        a, b = rb.sample_for_update(64), rb2.sample_for_update(64)
        assert torch.equal(a.obs, b.obs) and torch.equal(a.next_obs, b.next_obs)
