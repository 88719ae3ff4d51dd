"""Which skill the policy is conditioned on at step t.

Pre-training draws skills from the method's prior; fine-tuning follows ``skill_selection``:
``fixed`` (the method's default skill), ``random`` (one prior sample held throughout),
``resample`` (a prior sample redrawn every ``update_skill_every_step`` steps and at each episode
start, as URLB fine-tunes DIAYN and SMM), ``grid`` (candidates scored with the task reward during
the seed frames, the best kept) or ``regress`` (the skill inferred from the task reward, APS).
``null`` means the method's reference choice (its plugin's ``finetune_skill_selection``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from urlb.agents.base import Plugin
from urlb.errors import ConfigError

SKILL_SELECTIONS = ("fixed", "random", "resample", "grid", "regress")

Say = Callable[[str], None]


class SkillSchedule:
    """Base: no skill at all (exploration methods, plain DDPG)."""

    def episode_start(self) -> np.ndarray | None:
        return self.skill_at(None)

    def skill_at(self, step: int | None) -> np.ndarray | None:
        """The skill for acting at ``step`` (None: at an episode start)."""
        return None

    def record(self, step: int, reward: float) -> None:
        """The task reward obtained at ``step`` (used by skill searches)."""

    def eval_skill(self) -> np.ndarray | None:
        return None

    def acts_in_seed_frames(self, step: int) -> bool:
        """Whether the policy (not uniform random actions) acts at this seed step."""
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"fixed_skill": None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class PriorSkills(SkillSchedule):
    """A prior sample at each episode start and every ``update_skill_every_step`` (0: at episode
    starts only): pre-training, and fine-tuning with ``skill_selection=resample``."""

    def __init__(self, plugin: Plugin, rng: np.random.Generator) -> None:
        self.plugin, self.rng = plugin, rng
        self.skill: np.ndarray | None = None

    def skill_at(self, step: int | None) -> np.ndarray:
        every = self.plugin.update_skill_every_step
        if step is None or (every > 0 and step % every == 0):
            self.skill = self.plugin.sample_skill(self.rng)
        return self.skill

    def eval_skill(self) -> np.ndarray:
        return self.plugin.sample_skill(self.rng)  # a fresh prior skill per evaluation episode


class FixedSkill(SkillSchedule):
    """Fine-tuning with one skill throughout (also the outcome of a grid search)."""

    def __init__(self, skill: np.ndarray) -> None:
        self.skill = skill

    def skill_at(self, step: int | None) -> np.ndarray:
        return self.skill

    def eval_skill(self) -> np.ndarray:
        return self.skill

    def state_dict(self) -> dict[str, Any]:
        return {"fixed_skill": self.skill}


class GridSkills(SkillSchedule):
    """Scores candidate skills with the task reward during the seed frames (CIC's sweep), then
    holds the best one.

    The seed steps are cut into blocks of at most one skill period, and the candidates take
    turns block by block, the order rotating each round, so that every candidate acts in every
    seed episode and at different times within it. Consecutive per-candidate blocks would compare
    candidates on different episodes: on quadruped, whose episodes start in a random
    orientation, whole episodes score near zero for every skill. A candidate's score is its mean
    reward per step.
    """

    def __init__(
        self, candidates: np.ndarray, seed_steps: int, block_steps: int, default: np.ndarray, say: Say
    ) -> None:
        self.candidates = np.asarray(candidates, dtype=np.float32)
        self.seed_steps, self.default, self.say = seed_steps, default, say
        # At least two turns per candidate, so no candidate is scored on one stretch only.
        self.block = max(1, min(block_steps, seed_steps // (2 * len(self.candidates))))
        self.sums = np.zeros(len(self.candidates))
        self.counts = np.zeros(len(self.candidates))
        self.chosen: np.ndarray | None = None
        self._current = 0
        self._last: np.ndarray | None = None  # the skill that acted last (what replay records at a reset)

    def _index(self, step: int) -> int:
        block, n = step // self.block, len(self.candidates)
        return (block % n + block // n) % n  # round r plays the candidates in order, shifted by r

    def skill_at(self, step: int | None) -> np.ndarray | None:
        if self.chosen is not None:
            return self.chosen
        if step is None:  # episode start: the step's own choice follows before acting
            return self._last
        self._current = self._index(step)
        self._last = self.candidates[self._current]
        return self._last

    def record(self, step: int, reward: float) -> None:
        if self.chosen is not None:
            return
        self.sums[self._current] += reward
        self.counts[self._current] += 1
        if step + 1 == self.seed_steps:
            self.chosen = self.best()

    def scores(self) -> np.ndarray:
        return self.sums / np.maximum(self.counts, 1)

    def best(self) -> np.ndarray:
        scores = self.scores()
        for i, (s, n) in enumerate(zip(scores, self.counts)):
            self.say(f"grid skill candidate {i}: mean task reward per step {s:.4f} over {int(n)} steps")
        best = int(np.argmax(scores))
        self.say(f"grid skill selection chose candidate {best} (score {scores[best]:.4f})")
        return self.candidates[best]

    def eval_skill(self) -> np.ndarray:
        # Before the search has chosen (the evaluation at frame 0), the method's default skill.
        return self.chosen if self.chosen is not None else self.default

    def acts_in_seed_frames(self, step: int) -> bool:
        return True  # candidates are scored with the pre-trained policy acting

    def state_dict(self) -> dict[str, Any]:
        return {"fixed_skill": self.chosen}


class RegressSkills(SkillSchedule):
    """APS's task inference at fine-tuning (URLB finetune.py with ``regress_meta``).

    Up to ``num_init_steps`` frames the skill is a prior sample renewed every
    ``update_skill_every_step`` steps, as in pre-training. After that, every
    ``update_skill_every_step`` frames, ``lstsq_batch_size`` replay transitions are drawn and the
    plugin's ``regress_skill(features, n-step task reward)`` gives the skill, which is then held
    (also for evaluation) until the next regression.
    """

    def __init__(
        self,
        plugin: Plugin,
        replay,
        rng: np.random.Generator,
        action_repeat: int,
        say: Say,
        regress: Callable | None = None,
        solved: np.ndarray | None = None,
    ) -> None:
        self.plugin, self.replay, self.rng, self.say = plugin, replay, rng, say
        # () -> the regressed skill. The trainer's draws a batch of the seed's replay with the
        # seed's random state and encodes pixels; the default regresses on a batch of ``replay``.
        self.regress = regress or self._regress_single
        self.init_step = plugin.num_init_steps // action_repeat
        self.every = max(1, plugin.update_skill_every_step // action_repeat)
        self.skill: np.ndarray | None = None
        self.solved = solved

    def _regress_single(self) -> np.ndarray | None:
        batch = self.replay.sample(self.plugin.lstsq_batch_size)
        return self.plugin.regress_skill(batch.obs, batch.reward)

    def _regress(self) -> None:
        skill = self.regress()
        if skill is None or not np.isfinite(skill).all():  # e.g. no task reward yet (a NaN row): keep the skill
            return
        if self.solved is None:
            self.say(
                f"regressed fine-tuning skill from {self.plugin.lstsq_batch_size} transitions: {np.round(skill, 3)}"
            )
        self.solved = skill

    def skill_at(self, step: int | None) -> np.ndarray:
        if self.solved is None and (step is None or step % self.plugin.update_skill_every_step == 0):
            self.skill = self.plugin.sample_skill(self.rng)
        if step is not None and step > self.init_step and step % self.every == 0 and len(self.replay):
            self._regress()
        return self.solved if self.solved is not None else self.skill

    def eval_skill(self) -> np.ndarray:
        return self.solved if self.solved is not None else self.plugin.sample_skill(self.rng)

    def state_dict(self) -> dict[str, Any]:
        return {"fixed_skill": self.solved}


def selection_mode(plugin: Plugin | None, requested: str | None) -> str | None:
    """The fine-tuning skill selection in force (None: the method has no skills)."""
    if plugin is None or plugin.skill_dim == 0:
        return None
    return requested or plugin.finetune_skill_selection


def finetune_schedule(
    plugin: Plugin | None,
    requested: str | None,
    candidates: int,
    from_snapshot: bool,
    seed_steps: int,
    rng: np.random.Generator,
    say: Say,
    resumed_skill: np.ndarray | None = None,
    replay=None,
    action_repeat: int = 1,
    regress: Callable | None = None,
) -> SkillSchedule:
    """The fine-tuning skill schedule for ``skill_selection=requested`` (``replay`` and
    ``regress`` serve ``regress``: see :class:`RegressSkills`)."""
    mode = selection_mode(plugin, requested)
    if mode is None:
        return SkillSchedule()
    if mode == "regress":
        if not hasattr(plugin, "regress_skill") or replay is None:
            raise ConfigError(
                f"skill_selection=regress needs a method that infers its skill from the task "
                f"reward (aps); agent {plugin.name} cannot: use fixed, random, resample or grid"
            )
        return RegressSkills(plugin, replay, rng, action_repeat, say, regress, resumed_skill)
    if resumed_skill is not None:
        return FixedSkill(resumed_skill)
    if mode == "resample":
        every = plugin.update_skill_every_step
        say(
            "fine-tuning with skills (resample): a prior sample at each episode start"
            + (f" and every {every} steps" if every else "")
        )
        return PriorSkills(plugin, rng)
    if mode == "grid" and from_snapshot and seed_steps > 0:
        block = plugin.update_skill_every_step or seed_steps  # 0: the skill lasts an episode
        return GridSkills(plugin.candidate_skills(candidates, rng), seed_steps, block, plugin.default_skill(), say)
    # fixed; and grid when there is nothing to score (from scratch, or no seed frames)
    skill = plugin.sample_skill(rng) if mode == "random" else plugin.default_skill()
    say(f"fine-tuning with skill ({mode}): {np.round(skill, 3)}")
    return FixedSkill(skill)


def run_skill_schedule(plugin: Plugin | None, run, pretrain: bool, seed_steps: int, regress) -> SkillSchedule:
    """The schedule of one seed's run (:class:`urlb.runs.seed_run.SeedRun`): prior samples while
    pre-training a skill method, the configured selection while fine-tuning, none otherwise."""
    cfg = run.cfg
    if pretrain:
        return PriorSkills(plugin, run.rng) if plugin is not None and plugin.skill_dim else SkillSchedule()
    return finetune_schedule(
        plugin,
        cfg.skill_selection,
        cfg.skill_selection_candidates,
        from_snapshot=cfg.snapshot_ts > 0,
        seed_steps=seed_steps,
        rng=run.rng,
        say=run.logger.message,
        resumed_skill=run.resumed_skill,
        replay=run.replay,
        action_repeat=int(cfg.action_repeat),
        regress=regress,
    )
