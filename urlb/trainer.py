"""The one training loop shared by pre-training (intrinsic reward) and fine-tuning (task reward).

One process trains one seed or several (``seeds=[...]``): per seed a single-seed agent (stepped
together by urlb.seed_agents), its own environments, replay, skills, logs, snapshots and checkpoint
(urlb.runs.seed_run). Each seed writes what a single-seed run of it writes.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from urlb.agents import build_seed_agents
from urlb.ddpg import NonFiniteError
from urlb.evaluation import evaluate_policies
from urlb.runs.checkpoints import CheckpointCadence, resume_runs
from urlb.runs.config import resolve_device
from urlb.runs.seed_list import seed_runs
from urlb.runs.seed_run import SeedRun
from urlb.seed_agents import SeedAgents
from urlb.skill_schedule import SkillSchedule, run_skill_schedule

# SIGUSR2: what SLURM sends before a time limit or pre-emption (submitit's requeue signal);
# after the checkpoint, urlb.runs.launch hands it on to submitit's own handler, which requeues the job.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class RunInterrupted(Exception):
    """The run was stopped by a signal after saving a checkpoint."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# Called after each snapshot is written, when TensorBoard is on: (writer, agent, run config,
# frames, say). Tools add to pre-training this way (pretrain.py passes the skill gallery's
# pictures) without the training loop importing them.
SnapshotHook = Callable[[Any, Any, DictConfig, int, Callable[[str], None]], object]


class Trainer:
    """Runs one phase: ``cfg.phase`` is ``pretrain`` (reward-free) or ``finetune``; ``run_dir``
    is the (first) seed's run directory."""

    def __init__(
        self, cfg: DictConfig, run_dir: Path, snapshot_hooks: Sequence[SnapshotHook] = (), per_seed=None
    ) -> None:
        """``per_seed``: (seed, config, run directory) of each seed as urlb.runs.launch listed them
        (listed here when not given)."""
        self.snapshot_hooks = tuple(snapshot_hooks)
        per_seed = per_seed or seed_runs(cfg, Path(run_dir))
        # Resolve interpolations once: OmegaConf re-parses them on every access otherwise.
        resolved = [OmegaConf.create(OmegaConf.to_container(c, resolve=True)) for _, c, _ in per_seed]
        cfg = resolved[0]
        self.cfg, self.run_dir = cfg, Path(per_seed[0][2])
        self.pretrain = cfg.phase == "pretrain"
        self.action_repeat = int(cfg.action_repeat)
        self.device = resolve_device(cfg.device)
        seeds = [seed for seed, _, _ in per_seed]
        seed_everything(seeds[0])
        self.runs = [SeedRun(c, d, i, self.pretrain) for i, (c, (_, _, d)) in enumerate(zip(resolved, per_seed))]
        first = self.runs[0]
        self.obs_shape, self.action_dim = first.obs_shape, first.action_dim
        self.agents: SeedAgents = build_seed_agents(
            cfg, self.obs_shape, self.action_dim, self.device, self.pretrain, seeds
        )
        self.skill_dim = self.agents.skill_dim
        for run in self.runs:
            run.make_replay(self.skill_dim, self.device)
        resumed_step = resume_runs(self.runs, self.agents)
        self.global_step = resumed_step or 0
        self.resumed_at = None if resumed_step is None else self.global_frame
        self.checkpoints = CheckpointCadence(
            cfg.checkpoint_every_frames, cfg.checkpoint_every_minutes, self.global_frame
        )
        if not self.pretrain and self.resumed_at is None:
            for run in self.runs:
                run.init_from_snapshot(self.agents[run.index])
        if self.pretrain and self.resumed_at is None:
            for run in self.runs:
                run.refuse_existing_snapshots()
        for index, run in enumerate(self.runs):
            label = f"seed {run.seed}" if len(self.runs) > 1 else ""
            run.open_logs(progress=index == 0, label=label)  # one progress bar: the seeds step together
            run.schedule = self._skill_schedule(run)

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    # --- construction ---
    def _skill_schedule(self, run: SeedRun) -> SkillSchedule:
        regress = self._regress_for(run.index)
        return run_skill_schedule(self.agents[run.index].plugin, run, self.pretrain, self._seed_steps, regress)

    def _regress_for(self, index: int):
        """APS's skill regression for seed ``index``: a batch of its own replay, drawn and encoded
        with its own random state, regressed by its own plugin."""
        agent, run = self.agents[index], self.runs[index]

        @torch.no_grad()
        def regress():
            with self.agents.seed_rng(index):
                batch = run.replay.sample(agent.plugin.lstsq_batch_size)
                return agent.plugin.regress_skill(agent._encode(batch.obs), batch.reward)

        return regress

    @property
    def _seed_steps(self) -> int:
        return self.cfg.num_seed_frames // self.action_repeat

    # --- evaluation ---
    def evaluate(self) -> None:
        cfg = self.cfg
        frame, step = self.global_frame, self.global_step
        videos = [run.run_dir / "videos" / f"eval_{frame}.mp4" if cfg.save_video else None for run in self.runs]
        envs = [run.eval_env for run in self.runs]
        skills = [run.schedule.eval_skill for run in self.runs]
        results = evaluate_policies(self.agents, envs, cfg.num_eval_episodes, step, self.action_repeat, skills, videos)
        for run, result in zip(self.runs, results):
            row = {"frame": frame, "step": step, "episode": run.global_episode, **result}
            run.logger.evaluation(row, elapsed=self.total_time(run))

    @property
    def global_frame(self) -> int:
        return self.global_step * self.action_repeat

    def total_time(self, run: SeedRun | None = None) -> float:
        run = run or self.runs[0]
        return run.elapsed_before + time.time() - self._start_time

    def say(self, text: str) -> None:
        """A message for every seed's log (the console shows it once)."""
        self.runs[0].logger.message(text if len(self.runs) == 1 else f"[seeds {self.seeds}] {text}", labelled=False)

    # --- the loop ---
    def train(self) -> None:
        self._start_time = time.time()
        self._stop_signal: int | None = None
        previous = {sig: signal.signal(sig, self._request_stop) for sig in STOP_SIGNALS}
        try:
            self._loop()
        except NonFiniteError as exc:
            self.say(
                f"stopped: {exc}. The last checkpoints in {', '.join(str(r.run_dir) for r in self.runs)} are kept."
            )
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for run in self.runs:
                run.logger.close()

    def _request_stop(self, signum, frame) -> None:
        # Stop at the next step boundary, where a consistent checkpoint can be written.
        self._stop_signal = signum

    def _log_cut_episodes(self) -> None:
        """An episode cut short by a stop signal or by the end of training keeps its row, marked
        partial (the next session starts a fresh episode)."""
        for run in self.runs:
            if run.episode_step > 0 and not run.time_step.last():
                run.end_episode(self.global_frame, self.global_step, self._window, self.total_time(run), partial=True)

    def _stop_if_requested(self) -> None:
        if self._stop_signal is None:
            return
        self._log_cut_episodes()
        self._maybe_checkpoint(force=True)
        where = f"stopped by signal {self._stop_signal} at frame {self.global_frame}"
        self.say(f"{where}; checkpoint saved, the same command resumes")
        raise RunInterrupted(self._stop_signal)

    def _start_episodes(self) -> None:
        for run in self.runs:
            run.start_episode()
        self._window = (time.time(), self.global_frame)

    def _episode_ended(self) -> bool:
        ended = [run.time_step.last() for run in self.runs]
        if any(ended) and not all(ended):
            # Every task of the benchmark has fixed-length episodes; seeds stay in step.
            raise RuntimeError(f"episodes of seeds {self.seeds} ended at different steps: {ended}")
        return ended[0]

    def _loop(self) -> None:
        cfg = self.cfg
        total_steps = cfg.num_train_frames // self.action_repeat
        eval_every_steps = max(1, cfg.eval_every_frames // self.action_repeat)
        if self.resumed_at is None and self.global_step % eval_every_steps == 0:
            self.evaluate()
        self._start_episodes()
        while self.global_step < total_steps:
            if self._episode_ended():
                self._maybe_checkpoint()  # the episode's rows were logged when it ended
                self._start_episodes()
            # After the episode-end bookkeeping, so a stop there keeps that episode's rows.
            self._stop_if_requested()
            skills = [run.schedule.skill_at(self.global_step) for run in self.runs]
            actions = self._explore_actions(skills)
            # step > 0: with no seed frames the buffer first needs one complete transition.
            if self.global_step >= max(self._seed_steps, 1) and self.global_step % cfg.agent.update_every_steps == 0:
                self._update()
            for run, action, skill in zip(self.runs, actions, skills):
                run.step(action, skill, self.global_step)
            self.global_step += 1
            self.runs[0].logger.advance(self.action_repeat)
            if self._episode_ended():
                # Logged at once, so the last episode has its row and an evaluation at this
                # frame counts this episode too.
                for run in self.runs:
                    run.end_episode(self.global_frame, self.global_step, self._window, self.total_time(run))
            if self.pretrain:
                self._maybe_snapshot()
            if self.global_step % eval_every_steps == 0:
                self.evaluate()
        self._log_cut_episodes()
        self._maybe_checkpoint(force=True)

    def _update(self) -> None:
        # Each seed samples its own replay inside its own random state, as a single-seed run does,
        # and as URLB's replay loader hands batches out (replay_loader_workers).
        rows = self.agents[0].batch_rows(self.cfg.batch_size)  # BeCL: several batches per update
        sample = lambda index: self.runs[index].replay.sample_for_update(rows)  # noqa: E731
        for run, metrics in zip(self.runs, self.agents.update(sample, self.global_step)):
            run.logger.log_update(metrics)

    def _explore_actions(self, skills) -> list[np.ndarray]:
        # Seed frames use uniform random actions, except where the skill schedule scores skills
        # with the pre-trained policy (grid selection).
        step = self.global_step
        actions = []
        for index, (run, skill) in enumerate(zip(self.runs, skills)):
            with self.agents.seed_rng(index):
                if step >= self._seed_steps or run.schedule.acts_in_seed_frames(step):
                    actions.append(self.agents[index].act(run.time_step.observation, skill, step, eval_mode=False))
                else:
                    actions.append(self._seed_frame_action())
        return actions

    def _seed_frame_action(self) -> np.ndarray:
        """A uniform action in [-1, 1] drawn as URLB draws it: its ``act`` samples the noisy policy
        action (a normal draw of shape (1, A)) and overwrites it with ``uniform_``, both from torch's
        random stream (the seed's own here), so the stream stays in step with URLB's."""
        torch.randn((1, self.action_dim), device=self.device)
        return torch.empty((1, self.action_dim), device=self.device).uniform_(-1.0, 1.0)[0].cpu().numpy()

    # --- snapshots and checkpoints ---
    def _maybe_snapshot(self) -> None:
        for run in self.runs:
            for frames in run.cfg.snapshots:
                if frames not in run.snapshots_written and self.global_frame >= frames:
                    self._write_snapshot(run, frames)

    def _write_snapshot(self, run: SeedRun, frames: int) -> None:
        agent = self.agents[run.index]
        run.write_snapshot(agent, frames, self.global_frame)
        if run.logger.tb is not None:
            for hook in self.snapshot_hooks:
                with self.agents.seed_rng(run.index):
                    hook(run.logger.tb, agent, run.cfg, frames, run.logger.message)

    def _maybe_checkpoint(self, force: bool = False) -> None:
        if force or self.checkpoints.due(self.global_frame, self.runs):
            elapsed = [self.total_time(run) for run in self.runs]
            self.checkpoints.save(self.runs, self.agents, self.global_step, self.global_frame, elapsed)
