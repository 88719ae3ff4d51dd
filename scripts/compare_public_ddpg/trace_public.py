"""Trace the public URLB fine-tuning loop (``finetune.py``, agent=ddpg, from scratch).

    python scripts/compare_public_ddpg/trace_public.py PUBLIC_DIR OUT [key=value ...]

PUBLIC_DIR is a checkout of rll-research/url_benchmark (patched only to run on current
libraries, see README.md); it is imported from there and never copied. OUT is the trace path
without suffix. The overrides are URLB's own config keys (``seed=2``,
``replay_buffer_num_workers=1``, ...). The loop runs in a temporary directory.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from steptrace import Trace, trace_calls, trace_evaluations  # noqa: E402  (this directory)

DEFAULTS = [
    "agent=ddpg",
    "task=walker_stand",
    "snapshot_ts=0",
    "obs_type=states",
    "agent.hidden_dim=256",
    "agent.batch_size=256",
    "num_seed_frames=4000",
    "num_train_frames=8010",
    "eval_every_frames=5000",
    "num_eval_episodes=2",
    "device=cpu",
    "save_video=false",
    "use_tb=false",
]


def main(public_dir: str, out: str, overrides: list[str]) -> None:
    out = str(Path(out).resolve())
    sys.path.insert(0, public_dir)
    import utils
    from hydra import compose, initialize_config_dir

    import finetune

    with initialize_config_dir(config_dir=str(Path(public_dir).resolve()), version_base=None):
        cfg = compose(config_name="finetune", overrides=DEFAULTS + overrides)
    os.chdir(tempfile.mkdtemp(prefix="urlb_public_trace_"))
    ws = finetune.Workspace(cfg)
    trace = Trace(cfg.nstep)
    trace.info = {
        "code": "public",
        "workers": cfg.replay_buffer_num_workers,
        "seed": cfg.seed,
        "seed_steps": cfg.num_seed_frames // cfg.action_repeat,
        "initial_actor_sum": float(sum(p.double().sum() for p in ws.agent.actor.parameters())),
        "initial_critic_sum": float(sum(p.double().sum() for p in ws.agent.critic.parameters())),
    }

    def step_now():
        trace.step = ws.global_step

    store = ws.replay_storage.add

    def add(time_step, meta):
        step_now()
        trace.add(time_step.observation, time_step.action, time_step.reward, time_step.first(), time_step.last())
        store(time_step, meta)

    ws.replay_storage.add = add

    act = ws.agent.act

    def traced_act(obs, meta, step, eval_mode):
        step_now()
        trace.phase = "act"
        action = act(obs, meta, step, eval_mode)
        if not eval_mode:
            trace.uniform_draws += int(step < ws.agent.num_expl_steps)
            trace.act(eval_mode, action)
        return action

    ws.agent.act = traced_act

    standard_normal = utils._standard_normal

    def traced_normal(shape, dtype, device):
        trace.normal_draw(shape)
        return standard_normal(shape, dtype=dtype, device=device)

    utils._standard_normal = traced_normal

    trace_calls(trace, utils, "soft_update_params", Trace.target_update)

    update = ws.agent.update

    class RecordingIter:
        def __init__(self, inner):
            self.inner = inner

        def __next__(self):
            batch = next(self.inner)
            obs, action, reward, discount, next_obs = (x.numpy() for x in batch[:5])
            trace.batch(obs, action, reward, discount, next_obs, cfg.discount)
            return batch

    def traced_update(replay_iter, step):
        step_now()
        trace.phase = "update"
        return update(RecordingIter(replay_iter), step)

    ws.agent.update = traced_update

    trace_evaluations(trace, ws, "eval", ws.eval_env, step_now)
    ws.train()
    trace.save(Path(out))
    print(f"trace written: {out}.npz, {out}.json")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: trace_public.py PUBLIC_DIR OUT [key=value ...]")
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
