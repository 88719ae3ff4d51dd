"""Trace this project's fine-tuning loop (agent=ddpg from scratch), as trace_public.py traces URLB's.

    python scripts/compare_public_ddpg/trace_ours.py OUT [key=value ...]

Run from the repository root (it imports this checkout's ``urlb``). The overrides are the
project's config keys (``seed=2``, ``replay_loader_workers=1``, ...); the run directory is
temporary.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from steptrace import Trace, trace_calls, trace_evaluations  # noqa: E402  (this directory)

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = [
    "agent=ddpg",
    "task=walker_stand",
    "snapshot_ts=0",
    "obs_type=states",
    "agent.hidden_dim=256",
    "batch_size=256",
    "num_seed_frames=4000",
    "num_train_frames=8000",
    "eval_every_frames=5000",
    "num_eval_episodes=2",
    "device=cpu",
    "threads=1",
    "save_video=false",
    "use_tb=false",
]


def main(out: str, overrides: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    import torch
    from hydra import compose, initialize_config_dir

    import urlb.runs.config  # noqa: F401  (config resolvers)
    from urlb.trainer import Trainer

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="finetune", overrides=DEFAULTS + overrides)
    run_dir = Path(tempfile.mkdtemp(prefix="urlb_ours_trace_")) / f"seed_{cfg.seed}"
    trainer = Trainer(cfg, run_dir)
    run, agent = trainer.runs[0], trainer.agents[0]
    trace = Trace(cfg.nstep)
    trace.info = {
        "code": "ours",
        "workers": cfg.replay_loader_workers,
        "seed": cfg.seed,
        "seed_steps": cfg.num_seed_frames // cfg.action_repeat,
        "initial_actor_sum": float(sum(p.double().sum() for p in agent.actor.parameters())),
        "initial_critic_sum": float(sum(p.double().sum() for p in agent.critic.parameters())),
    }

    def step_now():
        trace.step = trainer.global_step

    store = run.replay.add

    def add(time_step, skill=None):
        step_now()
        trace.add(time_step.observation, time_step.action, time_step.reward, time_step.first(), time_step.last())
        store(time_step, skill)

    run.replay.add = add

    explore = trainer._explore_actions

    def traced_explore(skills):
        step_now()
        trace.phase = "act"
        actions = explore(skills)
        trace.uniform_draws += int(trainer.global_step < trace.info["seed_steps"])  # numpy, not torch
        trace.act(False, actions[0])
        return actions

    trainer._explore_actions = traced_explore

    # Every normal draw of torch's stream: the seed-frame action's discarded draw (as URLB's act)
    # and the exploration and target-policy noise (randn_like in urlb.ddpg).
    randn, randn_like = torch.randn, torch.randn_like

    def counted(*args, **kwargs):
        trace.normal_draw(tuple(args[0]) if isinstance(args[0], (tuple, list, torch.Size)) else args)
        return randn(*args, **kwargs)

    def counted_like(tensor, *args, **kwargs):
        trace.normal_draw(tuple(tensor.shape))
        return randn_like(tensor, *args, **kwargs)

    torch.randn, torch.randn_like = counted, counted_like

    sample = run.replay.sample_for_update

    def traced_sample(batch_size, generator=None):
        step_now()
        trace.phase = "update"
        batch = sample(batch_size, generator)
        trace.batch(
            batch.obs.numpy(), batch.action.numpy(), batch.reward.numpy(), None, batch.next_obs.numpy(), cfg.discount
        )
        return batch

    run.replay.sample_for_update = traced_sample

    trace_calls(trace, agent, "_soft_update_target", Trace.target_update)
    trace_evaluations(trace, trainer, "evaluate", run.eval_env, step_now)
    try:
        trainer.train()
    finally:
        torch.randn, torch.randn_like = randn, randn_like
    trace.save(Path(out))
    print(f"trace written: {out}.npz, {out}.json")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: trace_ours.py OUT [key=value ...]")
    main(sys.argv[1], sys.argv[2:])
