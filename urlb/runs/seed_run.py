"""What one seed of a run owns: its environments, replay, skills, logs, counters and random
streams. The trainer holds one per seed and steps them together with one agent per seed
(urlb.seed_agents.SeedAgents)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from urlb import envs
from urlb.logger import Logger
from urlb.replay import ReplayBuffer
from urlb.runs.checkpoints import CHECKPOINT_NAME, capture_seed_run, load_checkpoint, restore_seed_run
from urlb.runs.files import atomic_write_text
from urlb.runs.snapshots import (
    SnapshotError,
    check_networks_fit,
    load_snapshot,
    refuse_overwrite,
    run_metadata,
    save_snapshot,
    snapshot_path,
)
from urlb.tasks import PRIMAL_TASKS

SNAPSHOT_NETWORKS = ("encoder", "actor", "critic", "plugin")  # what fine-tuning reads from a snapshot


class SeedRun:
    """One seed (``index`` among the run's seeds and agents) of a run, in its own run directory."""

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
        atomic_write_text(self.run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
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

    def write_snapshot(self, agent, frames: int, global_frame: int) -> Path:
        """Snapshot ``frames`` of this seed's agent: networks and metadata, no optimiser state
        (fine-tuning starts fresh optimisers, as URLB)."""
        payload = {k: v for k, v in agent.networks_state().items() if not k.endswith("_opt")}
        meta = {**self.metadata(agent.plugin), "frames": global_frame, "run_dir": str(self.run_dir.absolute())}
        path = save_snapshot(self.snapshot_file(frames), payload, meta)
        self.snapshots_written.add(frames)
        self.logger.message(f"snapshot at {global_frame} frames -> {path}")
        return path

    def init_from_snapshot(self, agent) -> None:
        """Fine-tuning's start: URLB's ``init_from`` of the snapshot ``cfg.snapshot_ts`` (encoder,
        actor and the critic's trunk; heads, target and optimisers fresh), and the plugin, since
        skill methods choose or score skills with it. Nothing to load from scratch (0)."""
        cfg = self.cfg
        if cfg.snapshot_ts == 0:
            return
        if cfg.agent.name == "ddpg":
            raise SnapshotError("agent=ddpg has no pre-training; fine-tune it from scratch with snapshot_ts=0")
        expected = {k: v for k, v in self.metadata(agent.plugin).items() if k != "plugin"}
        data = load_snapshot(
            cfg.snapshot_dir, cfg.obs_type, cfg.domain, cfg.agent.name, cfg.snapshot_seed, cfg.snapshot_ts, expected
        )
        own = agent.networks_state()
        fitting = {k: own[k] for k in SNAPSHOT_NETWORKS if k in own}
        check_networks_fit(self.snapshot_file(cfg.snapshot_ts), data["state"], fitting)
        agent.init_from(data["state"])
        print(f"loaded snapshot {self.snapshot_file(cfg.snapshot_ts)} ({data['metadata']['frames']} frames)")

    def refuse_existing_snapshots(self) -> None:
        if not self.cfg.overwrite_snapshots:
            paths = [self.snapshot_file(f) for f in self.cfg.snapshots]
            refuse_overwrite(paths, self.run_dir, own_allowed=bool(self.cfg.resume))

    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def read_checkpoint(self, agents) -> tuple[int, dict] | None:
        """(frame, state) of this seed's checkpoint when the run resumes from one."""
        path = self.checkpoint_path()
        if not self.cfg.resume or not path.exists():
            return None
        meta, state = load_checkpoint(path, self.metadata(agents.plugin))
        return int(meta["frame"]), state

    def restore(self, agents, state: dict, frame: int) -> None:
        restore_seed_run(self, agents, state)
        self.resumed_frame = frame
        print(f"resuming from {self.checkpoint_path()} at frame {frame}")

    def checkpoint_payload(self, agents, step: int, frame: int, elapsed: float) -> tuple[dict, dict]:
        config = OmegaConf.to_container(self.cfg, resolve=True)
        meta = {**self.metadata(agents[self.index].plugin), "frame": frame, "config": config}
        return meta, capture_seed_run(self, agents, step, elapsed)

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

    def end_episode(
        self, frame: int, step: int, window_start: tuple[float, int], total_time: float, partial: bool = False
    ) -> None:
        """Log the episode's row; ``partial``: a stop signal cut it short (the row says so)."""
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
                **({"partial": 1} if partial else {}),
            }
        )
