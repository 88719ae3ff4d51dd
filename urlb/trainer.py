"""The one training loop shared by pre-training (intrinsic reward) and fine-tuning (task reward)."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from urlb import envs
from urlb.agents import build_agent
from urlb.checkpoint import CHECKPOINT_NAME, capture_trainer, load_checkpoint, restore_trainer, save_checkpoint
from urlb.config import resolve_device
from urlb.ddpg import DDPGAgent, NonFiniteError
from urlb.evaluation import evaluate_policy
from urlb.logger import Logger
from urlb.replay import ReplayBuffer
from urlb.skills import PriorSkills, SkillSchedule, finetune_schedule
from urlb.snapshot import SnapshotError, load_snapshot, refuse_overwrite, run_metadata, save_snapshot, snapshot_path
from urlb.tasks import PRIMAL_TASKS
from urlb.tools.skills.tensorboard import log_snapshot_skills

# SIGUSR2: what SLURM sends before a time limit or pre-emption (submitit's requeue signal);
# after the checkpoint, urlb.run hands it on to submitit's own handler, which requeues the job.
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


class Trainer:
    """Runs one phase: ``cfg.phase`` is ``pretrain`` (reward-free) or ``finetune``."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        # Resolve interpolations once: OmegaConf re-parses them on every access otherwise.
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.pretrain = cfg.phase == "pretrain"
        self.action_repeat = int(cfg.action_repeat)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        task = PRIMAL_TASKS[cfg.domain] if self.pretrain else cfg.task
        self.train_env = envs.make(task, cfg.obs_type, cfg.frame_stack, cfg.action_repeat, cfg.seed)
        self.eval_env = envs.make(task, cfg.obs_type, cfg.frame_stack, cfg.action_repeat, cfg.seed + 12345)
        self.obs_shape = tuple(self.train_env.observation_spec().shape)
        self.action_dim = int(self.train_env.action_spec().shape[0])
        self.agent: DDPGAgent = build_agent(cfg, self.obs_shape, self.action_dim, self.device, self.pretrain)
        self.skill_dim = self.agent.skill_dim
        sizes = (self.obs_shape, self.action_dim, cfg.replay_buffer_size, self.skill_dim)
        self.replay = ReplayBuffer(*sizes, cfg.frame_stack, cfg.nstep, cfg.discount, self.device)
        self.global_step = self.global_episode = 0
        self.elapsed_before = 0.0  # seconds spent in earlier (pre-resume) sessions
        self.snapshots_written: set[int] = set()
        self.resumed_skill: np.ndarray | None = None
        self.resumed_at = self._maybe_resume()
        if not self.pretrain and self.resumed_at is None:
            self._init_from_snapshot()
        if self.pretrain and self.resumed_at is None:
            self._refuse_existing_snapshots()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, self.run_dir / "config.yaml", resolve=True)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        self.logger = Logger(self.run_dir, cfg.num_train_frames, cfg.use_tb, cfg.use_wandb, resolved, self.resumed_at)
        self.schedule: SkillSchedule = self._skill_schedule()

    # --- construction ---
    def _skill_schedule(self) -> SkillSchedule:
        plugin = self.agent.plugin
        if self.pretrain:
            return PriorSkills(plugin, self.rng) if self.skill_dim else SkillSchedule()
        return finetune_schedule(
            plugin,
            self.cfg.skill_selection,
            self.cfg.skill_selection_candidates,
            from_snapshot=self.cfg.snapshot_ts > 0,
            seed_steps=self._seed_steps,
            rng=self.rng,
            say=self.logger.message,
            resumed_skill=self.resumed_skill,
            replay=self.replay,
            action_repeat=self.action_repeat,
            encode=self._features,
        )

    @torch.no_grad()
    def _features(self, obs):
        """What a plugin sees of an observation (encoder features for pixels)."""
        return self.agent._encode(obs)

    @property
    def _seed_steps(self) -> int:
        return self.cfg.num_seed_frames // self.action_repeat

    def snapshot_metadata(self) -> dict[str, Any]:
        return run_metadata(self.cfg, self.obs_shape, self.action_dim, self.agent.plugin)

    def _snapshot_file(self, frames: int) -> Path:
        c = self.cfg
        seed = c.seed if self.pretrain else c.snapshot_seed
        return snapshot_path(c.snapshot_dir, c.obs_type, c.domain, c.agent.name, seed, frames)

    def _init_from_snapshot(self) -> None:
        cfg = self.cfg
        if cfg.snapshot_ts == 0:
            return
        if cfg.agent.name == "ddpg":
            raise SnapshotError("agent=ddpg has no pre-training; fine-tune it from scratch with snapshot_ts=0")
        expected = {k: v for k, v in self.snapshot_metadata().items() if k != "plugin"}
        data = load_snapshot(
            cfg.snapshot_dir, cfg.obs_type, cfg.domain, cfg.agent.name, cfg.snapshot_seed, cfg.snapshot_ts, expected
        )
        # URLB's init_from: encoder, actor and the critic's trunk (heads, target, optimisers fresh);
        # the plugin too, since skill methods need it to choose or score skills.
        self.agent.init_from(data["state"])
        print(f"loaded snapshot {self._snapshot_file(cfg.snapshot_ts)} ({data['metadata']['frames']} frames)")

    def _refuse_existing_snapshots(self) -> None:
        if not self.cfg.overwrite_snapshots:
            refuse_overwrite([self._snapshot_file(f) for f in self.cfg.snapshots], self.run_dir)

    # --- evaluation ---
    def evaluate(self) -> None:
        cfg = self.cfg
        video = self.run_dir / "videos" / f"eval_{self.global_frame}.mp4" if cfg.save_video else None
        episodes, step, skill = cfg.num_eval_episodes, self.global_step, self.schedule.eval_skill
        result = evaluate_policy(self.agent, self.eval_env, episodes, step, self.action_repeat, skill, video)
        row = {"frame": self.global_frame, "step": step, "episode": self.global_episode, **result}
        self.logger.evaluation(row, elapsed=self.total_time())

    @property
    def global_frame(self) -> int:
        return self.global_step * self.action_repeat

    def total_time(self) -> float:
        return self.elapsed_before + time.time() - self._start_time

    # --- the loop ---
    def train(self) -> None:
        self._start_time = time.time()
        self._stop_signal: int | None = None
        previous = {sig: signal.signal(sig, self._request_stop) for sig in STOP_SIGNALS}
        try:
            self._loop()
        except NonFiniteError as exc:
            self.logger.message(f"stopped: {exc}. The last checkpoint in {self.run_dir} is kept.")
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.logger.close()

    def _request_stop(self, signum, frame) -> None:
        # Stop at the next step boundary, where a consistent checkpoint can be written.
        self._stop_signal = signum

    def _stop_if_requested(self) -> None:
        if self._stop_signal is None:
            return
        self._maybe_checkpoint(force=True)
        where = f"stopped by signal {self._stop_signal} at frame {self.global_frame}"
        self.logger.message(f"{where}; checkpoint saved, the same command resumes")
        raise RunInterrupted(self._stop_signal)

    def _start_episode(self):
        time_step = self.train_env.reset()
        self.replay.add(time_step, self._skill_for_replay(self.schedule.episode_start()))
        return time_step

    def _skill_for_replay(self, skill):
        if self.skill_dim == 0:
            return None
        return np.zeros(self.skill_dim, np.float32) if skill is None else skill

    def _end_episode(self, reward: float, steps: int, window: tuple[float, int]) -> None:
        self.global_episode += 1
        fps = (self.global_frame - window[1]) / max(time.time() - window[0], 1e-9)
        self.logger.episode(
            {
                "frame": self.global_frame,
                "step": self.global_step,
                "episode": self.global_episode,
                "episode_reward": reward,
                "episode_length": steps * self.action_repeat,
                "fps": fps,
                "buffer_size": len(self.replay),
                "total_time": self.total_time(),
            }
        )

    def _loop(self) -> None:
        cfg = self.cfg
        total_steps = cfg.num_train_frames // self.action_repeat
        eval_every_steps = max(1, cfg.eval_every_frames // self.action_repeat)
        if self.resumed_at is None and self.global_step % eval_every_steps == 0:
            self.evaluate()
        time_step = self._start_episode()
        episode_reward, episode_step, window = 0.0, 0, (time.time(), self.global_frame)
        while self.global_step < total_steps:
            if time_step.last():
                self._maybe_checkpoint()  # the episode's row was logged when it ended
                time_step = self._start_episode()
                episode_reward, episode_step, window = 0.0, 0, (time.time(), self.global_frame)
            # After the episode-end bookkeeping, so a stop there keeps that episode's row.
            self._stop_if_requested()
            skill = self.schedule.skill_at(self.global_step)
            action = self._explore_action(time_step, skill)
            # step > 0: with no seed frames the buffer first needs one complete transition.
            if self.global_step >= max(self._seed_steps, 1) and self.global_step % cfg.agent.update_every_steps == 0:
                metrics = self.agent.update(self.replay.sample(cfg.batch_size), self.global_step)
                self.logger.log_update(metrics)
            time_step = self.train_env.step(action)
            self.replay.add(time_step, self._skill_for_replay(skill))
            self.schedule.record(self.global_step, time_step.reward)
            episode_reward += time_step.reward
            episode_step += 1
            self.global_step += 1
            self.logger.advance(self.action_repeat)
            if time_step.last():
                # Logged at once, so the last episode has its row and an evaluation at this
                # frame counts this episode too.
                self._end_episode(episode_reward, episode_step, window)
            if self.pretrain:
                self._maybe_snapshot()
            if self.global_step % eval_every_steps == 0:
                self.evaluate()
        self._maybe_checkpoint(force=True)

    def _explore_action(self, time_step, skill) -> np.ndarray:
        # Seed frames use uniform random actions, except where the skill schedule scores skills
        # with the pre-trained policy (grid selection).
        if self.global_step < self._seed_steps and not self.schedule.acts_in_seed_frames(self.global_step):
            return self.rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
        return self.agent.act(time_step.observation, skill, self.global_step, eval_mode=False)

    # --- snapshots and checkpoints ---
    def _maybe_snapshot(self) -> None:
        for frames in self.cfg.snapshots:
            if frames not in self.snapshots_written and self.global_frame >= frames:
                # Optimiser state is not part of a snapshot: fine-tuning starts fresh optimisers (URLB).
                payload = {k: v for k, v in self.agent.networks_state().items() if not k.endswith("_opt")}
                path = save_snapshot(
                    self._snapshot_file(frames), payload, {**self.snapshot_metadata(), "frames": self.global_frame}
                )
                self.snapshots_written.add(frames)
                self.logger.message(f"snapshot at {self.global_frame} frames -> {path}")
                if self.logger.tb is not None:  # the snapshot's skills as a picture (urlb.tools.skills)
                    log_snapshot_skills(self.logger.tb, self.agent, self.cfg, frames, say=self.logger.message)

    def _maybe_checkpoint(self, force: bool = False) -> None:
        last = getattr(self, "_last_checkpoint_frame", self.resumed_at or 0)
        if not force and self.global_frame - last < self.cfg.checkpoint_every_frames:
            return
        self._last_checkpoint_frame = self.global_frame
        config = OmegaConf.to_container(self.cfg, resolve=True)
        meta = {**self.snapshot_metadata(), "frame": self.global_frame, "config": config}
        save_checkpoint(self.run_dir / CHECKPOINT_NAME, meta, capture_trainer(self))

    def _maybe_resume(self) -> int | None:
        path = self.run_dir / CHECKPOINT_NAME
        if not self.cfg.resume or not path.exists():
            return None
        _, state = load_checkpoint(path, self.snapshot_metadata())
        restore_trainer(self, state)
        print(f"resuming from {path} at frame {self.global_frame}")
        return self.global_frame
