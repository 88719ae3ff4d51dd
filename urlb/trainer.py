"""The one training loop shared by pre-training (intrinsic reward) and fine-tuning (task reward).

One process trains one seed or several (``seeds=[...]``): one stacked agent (urlb.seeds), and per
seed its own environments, replay, skills, logs, snapshots and checkpoint (urlb.seed_run). The
seeds step together; each writes what a single-seed run of it writes.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from urlb.agents import build_agent
from urlb.checkpoint import save_checkpoints
from urlb.config import resolve_device
from urlb.ddpg import DDPGAgent, NonFiniteError
from urlb.evaluation import evaluate_policies
from urlb.replay import stack_batches
from urlb.seed_run import SeedRun
from urlb.seed_runs import seed_runs
from urlb.skills import PriorSkills, SkillSchedule, finetune_schedule
from urlb.snapshot import SnapshotError, load_snapshot, save_snapshot
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
    """Runs one phase: ``cfg.phase`` is ``pretrain`` (reward-free) or ``finetune``; ``run_dir``
    is the (first) seed's run directory."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        per_seed = seed_runs(cfg, Path(run_dir))
        # Resolve interpolations once: OmegaConf re-parses them on every access otherwise.
        cfg = OmegaConf.create(OmegaConf.to_container(per_seed[0][1], resolve=True))
        self.cfg, self.run_dir = cfg, Path(per_seed[0][2])
        self.pretrain = cfg.phase == "pretrain"
        self.action_repeat = int(cfg.action_repeat)
        self.device = resolve_device(cfg.device)
        seeds = [seed for seed, _, _ in per_seed]
        seed_everything(seeds[0])
        self.runs = [
            SeedRun(OmegaConf.create(OmegaConf.to_container(c, resolve=True)), d, i, self.pretrain)
            for i, (_, c, d) in enumerate(per_seed)
        ]
        first = self.runs[0]
        self.obs_shape, self.action_dim = first.obs_shape, first.action_dim
        self.agent: DDPGAgent = build_agent(
            cfg, self.obs_shape, self.action_dim, self.device, self.pretrain, seeds=None if len(seeds) == 1 else seeds
        )
        self.skill_dim = self.agent.skill_dim
        for run in self.runs:
            run.make_replay(self.skill_dim, self.device)
        self.global_step = 0
        self._regressed_at, self._regressed = None, None  # APS: the step and skills of the last regression
        self.resumed_at = self._maybe_resume()
        if not self.pretrain and self.resumed_at is None:
            for run in self.runs:
                self._init_from_snapshot(run)
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
        plugin = self.agent.plugin
        if self.pretrain:
            return PriorSkills(plugin, run.rng) if self.skill_dim else SkillSchedule()
        return finetune_schedule(
            plugin,
            self.cfg.skill_selection,
            self.cfg.skill_selection_candidates,
            from_snapshot=self.cfg.snapshot_ts > 0,
            seed_steps=self._seed_steps,
            rng=run.rng,
            say=run.logger.message,
            resumed_skill=run.resumed_skill,
            replay=run.replay,
            action_repeat=self.action_repeat,
            regress=self._regress_for(run.index),
        )

    def _regress_for(self, index: int):
        """APS's skill regression for seed ``index``. The seeds' schedules regress at the same
        steps, so the first to ask draws every seed's batch (from its own replay and stream, as a
        single-seed run draws it), encodes and regresses all seeds in one pass, and the others
        read their row: one pass per regression, not one per seed."""

        @torch.no_grad()
        def regress():
            if self._regressed_at != self.global_step:
                size = self.agent.plugin.lstsq_batch_size
                generators = self.agent.streams.generators
                batch = stack_batches([run.replay.sample(size, g) for run, g in zip(self.runs, generators)])
                self._regressed = self.agent.plugin.regress_skill(self.agent._encode(batch.obs), batch.reward)
                self._regressed_at = self.global_step
            return None if self._regressed is None else self._regressed[index]

        return regress

    @property
    def _seed_steps(self) -> int:
        return self.cfg.num_seed_frames // self.action_repeat

    def _init_from_snapshot(self, run: SeedRun) -> None:
        cfg = run.cfg
        if cfg.snapshot_ts == 0:
            return
        if cfg.agent.name == "ddpg":
            raise SnapshotError("agent=ddpg has no pre-training; fine-tune it from scratch with snapshot_ts=0")
        expected = {k: v for k, v in run.metadata(self.agent.plugin).items() if k != "plugin"}
        data = load_snapshot(
            cfg.snapshot_dir, cfg.obs_type, cfg.domain, cfg.agent.name, cfg.snapshot_seed, cfg.snapshot_ts, expected
        )
        # URLB's init_from: encoder, actor and the critic's trunk (heads, target, optimisers fresh);
        # the plugin too, since skill methods need it to choose or score skills.
        self.agent.init_from(data["state"], index=run.index)
        print(f"loaded snapshot {run.snapshot_file(cfg.snapshot_ts)} ({data['metadata']['frames']} frames)")

    # --- evaluation ---
    def evaluate(self) -> None:
        cfg = self.cfg
        frame, step = self.global_frame, self.global_step
        videos = [run.run_dir / "videos" / f"eval_{frame}.mp4" if cfg.save_video else None for run in self.runs]
        envs = [run.eval_env for run in self.runs]
        skills = [run.schedule.eval_skill for run in self.runs]
        results = evaluate_policies(self.agent, envs, cfg.num_eval_episodes, step, self.action_repeat, skills, videos)
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

    def _stop_if_requested(self) -> None:
        if self._stop_signal is None:
            return
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
        self._maybe_checkpoint(force=True)

    def _update(self) -> None:
        generators = self.agent.streams.generators
        batch = stack_batches(
            [run.replay.sample_for_update(self.cfg.batch_size, g) for run, g in zip(self.runs, generators)]
        )
        metrics = self.agent.update(batch, self.global_step)
        names = list(metrics)
        values = torch.stack([metrics[k].float() for k in names], 1).tolist() if names else [[]] * len(self.runs)
        for run, row in zip(self.runs, values):
            run.logger.log_update(dict(zip(names, row)))

    def _explore_actions(self, skills) -> list[np.ndarray]:
        # Seed frames use uniform random actions, except where the skill schedule scores skills
        # with the pre-trained policy (grid selection).
        step = self.global_step
        policy = [step >= self._seed_steps or run.schedule.acts_in_seed_frames(step) for run in self.runs]
        acted = None
        if any(policy):
            obs = np.stack([run.time_step.observation for run in self.runs])
            skill = None if skills[0] is None else np.stack(skills)
            acted = self.agent.act_seeds(obs, skill, step, eval_mode=False)
        return [acted[i] if policy[i] else self._seed_frame_action(run) for i, run in enumerate(self.runs)]

    def _seed_frame_action(self, run: SeedRun) -> np.ndarray:
        """A uniform action in [-1, 1] drawn as URLB draws it: its ``act`` samples the noisy
        policy action (a normal draw of shape (1, A)) and overwrites it with ``uniform_``, both
        from the torch stream, so the stream stays in step with URLB's through the seed frames."""
        generator = self.agent.streams.generators[run.index]
        device = generator.device
        torch.randn((1, self.action_dim), generator=generator, device=device)
        action = torch.empty((1, self.action_dim), device=device).uniform_(-1.0, 1.0, generator=generator)
        return action[0].cpu().numpy()

    # --- snapshots and checkpoints ---
    def _maybe_snapshot(self) -> None:
        for run in self.runs:
            for frames in run.cfg.snapshots:
                if frames not in run.snapshots_written and self.global_frame >= frames:
                    self._write_snapshot(run, frames)

    def _write_snapshot(self, run: SeedRun, frames: int) -> None:
        # Optimiser state is not part of a snapshot: fine-tuning starts fresh optimisers (URLB).
        state = self.agent.networks_state(run.index)
        payload = {k: v for k, v in state.items() if not k.endswith("_opt")}
        meta = {**run.metadata(self.agent.plugin), "frames": self.global_frame}
        path = save_snapshot(run.snapshot_file(frames), payload, meta)
        run.snapshots_written.add(frames)
        run.logger.message(f"snapshot at {self.global_frame} frames -> {path}")
        if run.logger.tb is not None:  # the snapshot's skills as a picture (urlb.tools.skills)
            log_snapshot_skills(run.logger.tb, self._one_seed_agent(run), run.cfg, frames, say=run.logger.message)

    def _one_seed_agent(self, run: SeedRun) -> DDPGAgent:
        """The agent itself for a single seed; else a single-seed copy of seed ``run`` (tools
        such as the skill gallery act with one seed)."""
        if len(self.runs) == 1:
            return self.agent
        with torch.random.fork_rng(devices=[]):  # building draws initial weights; they are replaced
            agent = build_agent(run.cfg, self.obs_shape, self.action_dim, self.device, self.pretrain)
        state = self.agent.networks_state(run.index)
        agent.load_networks(state, tuple(k for k in state if not k.endswith("_opt")))
        return agent

    def _maybe_checkpoint(self, force: bool = False) -> None:
        last = getattr(self, "_last_checkpoint_frame", self.resumed_at or 0)
        if not force and self.global_frame - last < self.cfg.checkpoint_every_frames:
            return
        self._last_checkpoint_frame = self.global_frame
        items = []
        for run in self.runs:
            meta, state = run.checkpoint_payload(self.agent, self.global_step, self.global_frame, self.total_time(run))
            items.append((run.checkpoint_path(), meta, state))
        save_checkpoints(items)

    def _maybe_resume(self) -> int | None:
        found = {run.seed: run.read_checkpoint(self.agent) for run in self.runs}
        if all(v is None for v in found.values()):
            return None
        frames = {seed: (None if v is None else v[0]) for seed, v in found.items()}
        if len(set(frames.values())) != 1:
            raise SnapshotError(
                f"the seeds' checkpoints are at different frames ({frames}; None: no checkpoint), so they "
                "cannot continue side by side; resume each seed in its own process (seed=N), or "
                "resume=false to start them again"
            )
        for run in self.runs:
            frame, state = found[run.seed]
            run.restore(self.agent, state, frame)
        self.global_step = self.runs[0].global_step
        return self.global_frame
