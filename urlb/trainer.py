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

from agents import make_plugin
from urlb import envs
from urlb.config import resolve_device
from urlb.ddpg import DDPGAgent, NonFiniteError
from urlb.logger import Logger
from urlb.nets import Encoder
from urlb.replay import ReplayBuffer
from urlb.snapshot import (SnapshotError, atomic_torch_save, load_snapshot, read_torch_file, save_snapshot,
                           snapshot_path)
from urlb.tasks import PRIMAL_TASKS

CHECKPOINT_NAME = "checkpoint.pt"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(Exception):
    """The run was stopped by a signal after saving a checkpoint."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum
# Agent-config keys that only the backbone or trainer reads. Every other key (hidden_dim and
# lr included: plugins use the backbone's width and learning rate) goes to the plugin.
BACKBONE_ONLY_KEYS = ("name", "feature_dim", "critic_target_tau", "update_every_steps",
                      "stddev_schedule", "stddev_clip", "skill_selection", "skill_selection_candidates")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def plugin_kwargs(agent_cfg: DictConfig) -> dict[str, Any]:
    """Every agent-config key the backbone does not read goes to the plugin's constructor."""
    cfg = OmegaConf.to_container(agent_cfg, resolve=True)
    return {k: v for k, v in cfg.items() if k not in BACKBONE_ONLY_KEYS}


class Trainer:
    """Runs one phase: ``cfg.phase`` is ``pretrain`` (reward-free) or ``finetune``."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        # Resolve interpolations once: OmegaConf re-parses them on every access otherwise.
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.action_repeat = int(cfg.action_repeat)
        self.snapshot_frames = [int(f) for f in cfg.snapshots] if cfg.phase == "pretrain" else []
        self.pretrain = cfg.phase == "pretrain"
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        task = PRIMAL_TASKS[cfg.domain] if self.pretrain else cfg.task
        self.train_env = envs.make(task, cfg.obs_type, cfg.frame_stack, cfg.action_repeat, cfg.seed)
        self.eval_env = envs.make(task, cfg.obs_type, cfg.frame_stack, cfg.action_repeat, cfg.seed + 12345)
        self.obs_shape = tuple(self.train_env.observation_spec().shape)
        self.action_dim = int(self.train_env.action_spec().shape[0])
        self.agent = self._build_agent()
        self.skill_dim = self.agent.skill_dim
        self.replay = ReplayBuffer(self.obs_shape, self.action_dim, cfg.replay_buffer_size, self.skill_dim,
                                   cfg.frame_stack, cfg.nstep, cfg.discount, self.device)
        self.global_step = 0
        self.global_episode = 0
        self.elapsed_before = 0.0  # seconds spent in earlier (pre-resume) sessions
        self.skill: np.ndarray | None = None
        self.fixed_skill: np.ndarray | None = None
        self.snapshots_written: set[int] = set()
        self.resumed_at = self._maybe_resume()
        if not self.pretrain and self.resumed_at is None:
            self._init_from_snapshot()
        if self.pretrain and self.resumed_at is None:
            self._refuse_existing_snapshots()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, self.run_dir / "config.yaml", resolve=True)
        self.logger = Logger(self.run_dir, cfg.num_train_frames, cfg.use_tb, cfg.use_wandb,
                             OmegaConf.to_container(cfg, resolve=True), resume_frame=self.resumed_at)

    # --- construction ---
    def _build_agent(self) -> DDPGAgent:
        cfg = self.cfg
        # Pixel plugins see encoder features; a throwaway encoder gives their size.
        pixels = cfg.obs_type == "pixels"
        feat_dim = Encoder(self.obs_shape).repr_dim if pixels else int(np.prod(self.obs_shape))
        plugin = make_plugin(cfg.agent.name, feat_dim, self.action_dim, **plugin_kwargs(cfg.agent))
        return DDPGAgent(cfg.obs_type, self.obs_shape, self.action_dim, self.device,
                         hidden_dim=cfg.agent.hidden_dim, feature_dim=cfg.agent.feature_dim, lr=cfg.agent.lr,
                         critic_target_tau=cfg.agent.critic_target_tau, stddev_schedule=cfg.agent.stddev_schedule,
                         stddev_clip=cfg.agent.stddev_clip, plugin=plugin, reward_free=self.pretrain,
                         precision=cfg.precision, compile_backend=cfg.compile or None)

    def snapshot_metadata(self) -> dict[str, Any]:
        plugin = self.agent.plugin
        return {"agent": self.cfg.agent.name, "domain": self.cfg.domain, "obs_type": self.cfg.obs_type,
                "obs_shape": list(self.obs_shape), "action_dim": self.action_dim,
                "skill_dim": self.skill_dim, "hidden_dim": self.cfg.agent.hidden_dim,
                "plugin": None if plugin is None else type(plugin).__name__}

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
        meta = self.snapshot_metadata()
        expected = {k: meta[k] for k in ("agent", "domain", "obs_type", "obs_shape", "action_dim", "skill_dim",
                                         "hidden_dim")}
        data = load_snapshot(cfg.snapshot_dir, cfg.obs_type, cfg.domain, cfg.agent.name, cfg.snapshot_seed,
                             cfg.snapshot_ts, expected)
        # URLB fine-tuning: actor and critic (and encoder for pixels) come from the snapshot; the
        # plugin comes too, since skill methods need it to choose or score skills.
        self.agent.load_networks(data["state"], ("actor", "critic", "encoder", "plugin"))
        print(f"loaded snapshot {self._snapshot_file(cfg.snapshot_ts)} ({data['metadata']['frames']} frames)")

    def _refuse_existing_snapshots(self) -> None:
        existing = [self._snapshot_file(f) for f in self.cfg.snapshots if self._snapshot_file(f).exists()]
        if existing and not self.cfg.overwrite_snapshots:
            raise SnapshotError(
                f"snapshots of this run already exist and would be overwritten: {', '.join(map(str, existing))}\n"
                f"the run directory {self.run_dir} has no checkpoint to resume from. Use another seed or "
                "snapshot_dir, or pass overwrite_snapshots=true to replace them"
            )

    # --- evaluation ---
    def evaluate(self) -> None:
        cfg = self.cfg
        returns, lengths = [], []
        video = None
        if cfg.save_video:
            from urlb.video import VideoRecorder

            video = VideoRecorder(self.run_dir / "videos")
        for episode in range(cfg.num_eval_episodes):
            skill = self._eval_skill()
            time_step = self.eval_env.reset()
            if video is not None and episode == 0:
                video.start(self.eval_env)
            total, length = 0.0, 0
            while not time_step.last():
                action = self.agent.act(time_step.observation, skill, self.global_step, eval_mode=True)
                time_step = self.eval_env.step(action)
                if video is not None and episode == 0:
                    video.record(self.eval_env)
                total += time_step.reward
                length += 1
            returns.append(total)
            lengths.append(length * cfg.action_repeat)
        if video is not None:
            video.save(f"eval_{self.global_frame}.mp4")
        self.logger.evaluation({
            "frame": self.global_frame, "step": self.global_step, "episode": self.global_episode,
            "episode_reward": float(np.mean(returns)), "episode_length": float(np.mean(lengths)),
        }, elapsed=self.total_time())

    def _eval_skill(self) -> np.ndarray | None:
        # Pre-training evaluates a fresh prior skill per episode; fine-tuning its chosen skill,
        # or the plugin's default skill before grid selection has chosen one (frame 0).
        plugin = self.agent.plugin
        if plugin is None or self.skill_dim == 0:
            return None
        if self.pretrain:
            return plugin.sample_skill(self.rng)
        return self.fixed_skill if self.fixed_skill is not None else plugin.default_skill()

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
        self.logger.message(f"stopped by signal {self._stop_signal} at frame {self.global_frame}; "
                            f"checkpoint saved, the same command resumes")
        raise RunInterrupted(self._stop_signal)

    def _start_episode(self):
        time_step = self.train_env.reset()
        if self.pretrain and self.agent.plugin is not None:
            self.skill = self.agent.plugin.sample_skill(self.rng)
        self.replay.add(time_step, self._skill_for_replay(self.skill))
        return time_step

    def _skill_for_replay(self, skill):
        if self.skill_dim == 0:
            return None
        return np.zeros(self.skill_dim, np.float32) if skill is None else skill

    def _loop(self) -> None:
        cfg = self.cfg
        seed_steps = cfg.num_seed_frames // cfg.action_repeat
        total_steps = cfg.num_train_frames // cfg.action_repeat
        eval_every_steps = max(1, cfg.eval_every_frames // cfg.action_repeat)
        update_every = cfg.agent.update_every_steps
        grid = None if self.pretrain else self._setup_finetune_skill(seed_steps)
        if self.resumed_at is None and self.global_step % eval_every_steps == 0:
            self.evaluate()
        time_step = self._start_episode()
        episode_reward, episode_step, window_start, window_frame = 0.0, 0, time.time(), self.global_frame
        while self.global_step < total_steps:
            if time_step.last():
                window_start, window_frame = time.time(), self.global_frame
                self._maybe_checkpoint()
                time_step = self._start_episode()
                episode_reward, episode_step = 0.0, 0
            # After the episode-end bookkeeping, so a stop there keeps that episode's row.
            self._stop_if_requested()
            if self.pretrain and self.skill_dim and self.global_step % self.agent.plugin.update_skill_every_step == 0:
                self.skill = self.agent.plugin.sample_skill(self.rng)
            if grid is not None:
                self.skill = grid.skill_for_step(self.global_step)
            action = self._explore_action(time_step, seed_steps, grid)
            # step > 0: with no seed frames the buffer first needs one complete transition.
            if self.global_step >= max(seed_steps, 1) and self.global_step % update_every == 0:
                metrics = self.agent.update(self.replay.sample(cfg.batch_size), self.global_step)
                self.logger.log_update(metrics)
            time_step = self.train_env.step(action)
            self.replay.add(time_step, self._skill_for_replay(self.skill))
            if grid is not None and self.global_step < seed_steps:
                grid.record(self.skill, time_step.reward)
            episode_reward += time_step.reward
            episode_step += 1
            self.global_step += 1
            self.logger.advance(self.action_repeat)
            if time_step.last():
                # Logged at once, so the last episode has its row and an evaluation at this
                # frame counts this episode too.
                self.global_episode += 1
                fps = (self.global_frame - window_frame) / max(time.time() - window_start, 1e-9)
                self.logger.episode({"frame": self.global_frame, "step": self.global_step,
                                     "episode": self.global_episode, "episode_reward": episode_reward,
                                     "episode_length": episode_step * cfg.action_repeat, "fps": fps,
                                     "buffer_size": len(self.replay), "total_time": self.total_time()})
            if grid is not None and self.global_step == seed_steps:
                self.fixed_skill = self.skill = grid.best(self.logger.message)
                grid = None
            if self.pretrain:
                self._maybe_snapshot()
            if self.global_step % eval_every_steps == 0:
                self.evaluate()
        self._maybe_checkpoint(force=True)

    def _explore_action(self, time_step, seed_steps: int, grid) -> np.ndarray:
        # Seed frames use uniform random actions, except that grid skill selection acts with
        # the pre-trained policy so the candidate skills can be scored.
        if self.global_step < seed_steps and grid is None:
            return self.rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
        return self.agent.act(time_step.observation, self.skill, self.global_step, eval_mode=False)

    def _setup_finetune_skill(self, seed_steps: int):
        """Fix the fine-tuning skill, or return a GridSkillSearch that picks it during the seed frames."""
        plugin, mode = self.agent.plugin, self.cfg.skill_selection
        if self.fixed_skill is not None or self.skill_dim == 0:  # resumed, or no skills at all
            self.skill = self.fixed_skill
            return None
        if mode == "grid" and self.cfg.snapshot_ts > 0 and seed_steps > 0:
            candidates = plugin.candidate_skills(self.cfg.agent.skill_selection_candidates, self.rng)
            return GridSkillSearch(candidates, seed_steps, plugin.update_skill_every_step)
        # fixed; and grid when there is nothing to score (from scratch, or no seed frames)
        self.fixed_skill = self.skill = plugin.sample_skill(self.rng) if mode == "random" else plugin.default_skill()
        self.logger.message(f"fine-tuning with skill ({mode}): {np.round(self.skill, 3)}")
        return None

    # --- snapshots and checkpoints ---
    def _maybe_snapshot(self) -> None:
        for frames in self.snapshot_frames:
            if frames not in self.snapshots_written and self.global_frame >= frames:
                path = save_snapshot(self._snapshot_file(frames), self._snapshot_payload(),
                                     {**self.snapshot_metadata(), "frames": self.global_frame})
                self.snapshots_written.add(frames)
                self.logger.message(f"snapshot at {self.global_frame} frames -> {path}")

    def _snapshot_payload(self) -> dict:
        state = self.agent.networks_state()
        # Optimiser state is not part of a snapshot: fine-tuning starts fresh optimisers (URLB).
        return {k: v for k, v in state.items() if not k.endswith("_opt")}

    def _checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def _maybe_checkpoint(self, force: bool = False) -> None:
        every = self.cfg.checkpoint_every_frames
        last = getattr(self, "_last_checkpoint_frame", self.resumed_at or 0)
        if not force and self.global_frame - last < every:
            return
        self._last_checkpoint_frame = self.global_frame
        atomic_torch_save({"metadata": {**self.snapshot_metadata(), "frame": self.global_frame,
                                        "config": OmegaConf.to_container(self.cfg, resolve=True)},
                           "state": self._trainer_state()}, self._checkpoint_path())

    def _trainer_state(self) -> dict:
        return {
            "agent": self.agent.networks_state(),
            "replay": self.replay.state_dict(),
            "counters": {"global_step": self.global_step, "global_episode": self.global_episode,
                         "elapsed": self.total_time(), "snapshots_written": sorted(self.snapshots_written)},
            "skills": {"fixed_skill": self.fixed_skill},
            "rng": {"torch": torch.get_rng_state(), "numpy": self.rng.bit_generator.state,
                    "python": random.getstate()},
        }

    def _maybe_resume(self) -> int | None:
        path = self._checkpoint_path()
        if not self.cfg.resume or not path.exists():
            return None
        data = read_torch_file(path, "checkpoint")
        meta = data["metadata"]
        mine = self.snapshot_metadata()
        bad = {k: (meta.get(k), v) for k, v in mine.items() if meta.get(k) != v}
        if bad:
            raise SnapshotError(f"checkpoint {path} does not fit this run ({bad}); remove it or use another run dir")
        state = data["state"]
        self.agent.load_networks(state["agent"], tuple(state["agent"]))
        self.replay.load_state_dict(state["replay"])
        counters = state["counters"]
        self.global_step, self.global_episode = counters["global_step"], counters["global_episode"]
        self.elapsed_before = counters["elapsed"]
        self.snapshots_written = set(counters["snapshots_written"])
        self.fixed_skill = state["skills"]["fixed_skill"]
        torch.set_rng_state(state["rng"]["torch"])
        self.rng.bit_generator.state = state["rng"]["numpy"]
        random.setstate(state["rng"]["python"])
        print(f"resuming from {path} at frame {self.global_frame}")
        return self.global_frame


class GridSkillSearch:
    """Scores candidate skills with the task reward during the seed frames (CIC's sweep).

    The seed steps are cut into blocks of at most ``block_steps`` (the skill period), and the
    candidates take turns block by block, the order rotating each round, so that every candidate
    acts in every seed episode and at different times within it. Consecutive per-candidate
    blocks would compare candidates on different episodes: on quadruped, whose episodes start
    in a random orientation, whole episodes score near zero for every skill. A candidate's
    score is its mean reward per step; the best is kept for the rest of fine-tuning.
    """

    def __init__(self, candidates: np.ndarray, seed_steps: int, block_steps: int) -> None:
        self.candidates = np.asarray(candidates, dtype=np.float32)
        # At least two turns per candidate, so no candidate is scored on one stretch only.
        self.block = max(1, min(block_steps, seed_steps // (2 * len(self.candidates))))
        self.sums = np.zeros(len(self.candidates))
        self.counts = np.zeros(len(self.candidates))

    def _index(self, step: int) -> int:
        block, n = step // self.block, len(self.candidates)
        return (block % n + block // n) % n  # round r plays the candidates in order, shifted by r

    def skill_for_step(self, step: int) -> np.ndarray:
        self._current = self._index(step)
        return self.candidates[self._current]

    def record(self, skill: np.ndarray, reward: float) -> None:
        self.sums[self._current] += reward
        self.counts[self._current] += 1

    def scores(self) -> np.ndarray:
        return self.sums / np.maximum(self.counts, 1)

    def best(self, say) -> np.ndarray:
        scores = self.scores()
        for i, (s, n) in enumerate(zip(scores, self.counts)):
            say(f"grid skill candidate {i}: mean task reward per step {s:.4f} over {int(n)} steps")
        best = int(np.argmax(scores))
        say(f"grid skill selection chose candidate {best} (score {scores[best]:.4f})")
        return self.candidates[best]
