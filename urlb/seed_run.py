"""What one seed of a run owns: its environments, replay, skills, logs, counters and random
streams. The trainer holds one per seed and steps them together with one stacked agent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from urlb import envs
from urlb.checkpoint import CHECKPOINT_NAME, capture_seed_run, load_checkpoint, restore_seed_run
from urlb.logger import Logger
from urlb.replay import ReplayBuffer
from urlb.snapshot import refuse_overwrite, run_metadata, snapshot_path
from urlb.tasks import PRIMAL_TASKS


class SeedRun:
    """One seed (``index`` in the agent's seed dimension) of a run, in its own run directory."""

    def __init__(self, cfg: DictConfig, run_dir: Path, index: int, pretrain: bool) -> None:
        self.cfg, self.run_dir, self.index, self.pretrain = cfg, Path(run_dir), index, pretrain
        self.seed = int(cfg.seed)
        self.rng = np.random.default_rng(self.seed)
        task = PRIMAL_TASKS[cfg.domain] if pretrain else cfg.task
        self.train_env = envs.make(task, cfg.obs_type, cfg.frame_stack, cfg.action_repeat, self.seed)
        # Same seed as the training environment, as URLB (its own copy, so its resets follow
        # their own sequence: the first evaluation's episodes start where training's first do).
        self.eval_env = envs.make(task, cfg.obs_type, cfg.frame_stack, cfg.action_repeat, self.seed)
        self.obs_shape = tuple(self.train_env.observation_spec().shape)
        self.action_dim = int(self.train_env.action_spec().shape[0])
        self.global_episode = 0
        self.elapsed_before = 0.0  # seconds spent in earlier (pre-resume) sessions
        self.snapshots_written: set[int] = set()
        self.resumed_skill: np.ndarray | None = None
        self.resumed_frame: int | None = None
        self.logger: Logger | None = None
        self.schedule = None
        self.time_step = None
        self.episode_reward, self.episode_step = 0.0, 0

    def make_replay(self, skill_dim: int, device) -> None:
        cfg = self.cfg
        sizes = (self.obs_shape, self.action_dim, cfg.replay_buffer_size, skill_dim)
        workers = OmegaConf.select(cfg, "replay_loader_workers", default=None)
        self.replay = ReplayBuffer(*sizes, cfg.frame_stack, cfg.nstep, cfg.discount, device, loader_workers=workers)
        self.skill_dim = skill_dim

    def open_logs(self, progress: bool, label: str = "") -> None:
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, self.run_dir / "config.yaml", resolve=True)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        self.logger = Logger(
            self.run_dir, cfg.num_train_frames, cfg.use_tb, cfg.use_wandb, resolved, self.resumed_frame, progress, label
        )

    # --- files ---
    def metadata(self, plugin) -> dict[str, Any]:
        return run_metadata(self.cfg, self.obs_shape, self.action_dim, plugin)

    def snapshot_file(self, frames: int) -> Path:
        c = self.cfg
        seed = c.seed if self.pretrain else c.snapshot_seed
        return snapshot_path(c.snapshot_dir, c.obs_type, c.domain, c.agent.name, seed, frames)

    def refuse_existing_snapshots(self) -> None:
        if not self.cfg.overwrite_snapshots:
            refuse_overwrite([self.snapshot_file(f) for f in self.cfg.snapshots], self.run_dir)

    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def read_checkpoint(self, agent) -> tuple[int, dict] | None:
        """(frame, state) of this seed's checkpoint when the run resumes from one."""
        path = self.checkpoint_path()
        if not self.cfg.resume or not path.exists():
            return None
        meta, state = load_checkpoint(path, self.metadata(agent.plugin))
        return int(meta["frame"]), state

    def restore(self, agent, state: dict, frame: int) -> None:
        restore_seed_run(self, agent, state)
        self.resumed_frame = frame
        print(f"resuming from {self.checkpoint_path()} at frame {frame}")

    def checkpoint_payload(self, agent, step: int, frame: int, elapsed: float) -> tuple[dict, dict]:
        config = OmegaConf.to_container(self.cfg, resolve=True)
        meta = {**self.metadata(agent.plugin), "frame": frame, "config": config}
        return meta, capture_seed_run(self, agent, step, elapsed)

    # --- episodes ---
    def skill_for_replay(self, skill):
        if self.skill_dim == 0:
            return None
        return np.zeros(self.skill_dim, np.float32) if skill is None else skill

    def start_episode(self) -> None:
        self.time_step = self.train_env.reset()
        self.replay.add(self.time_step, self.skill_for_replay(self.schedule.episode_start()))
        self.episode_reward, self.episode_step = 0.0, 0

    def step(self, action: np.ndarray, skill, global_step: int) -> None:
        self.time_step = self.train_env.step(action)
        self.replay.add(self.time_step, self.skill_for_replay(skill))
        self.schedule.record(global_step, self.time_step.reward)
        self.episode_reward += self.time_step.reward
        self.episode_step += 1

    def end_episode(self, frame: int, step: int, window_start: tuple[float, int], total_time: float) -> None:
        self.global_episode += 1
        fps = (frame - window_start[1]) / max(time.time() - window_start[0], 1e-9)
        self.logger.episode(
            {
                "frame": frame,
                "step": step,
                "episode": self.global_episode,
                "episode_reward": self.episode_reward,
                "episode_length": self.episode_step * self.cfg.action_repeat,
                "fps": fps,
                "buffer_size": len(self.replay),
                "total_time": total_time,
            }
        )
