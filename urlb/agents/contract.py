"""The plugin contract as checks: what ``urlb-check-agent`` runs on a method and what guards
``pretrain.py`` before training starts.

Each rule builds the method from its config at tiny sizes, runs it on a random batch and returns
the ways it breaks the contract, each one line ``<rule>: <what is wrong> -> <the fix>``.
"""

from __future__ import annotations

import inspect
import io
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from urlb.agents.contract_parts import (  # noqa: F401  (random_batch and tiny_config are used by tests and tools)
    ACTION_DIM,
    BATCH,
    OBS_DIM,
    PIXEL_BATCH,
    PIXELS,
    TINY,
    Problem,
    Skipped,
    _check_metrics,
    _check_reward,
    _first_line,
    random_batch,
    tiny_config,
)
from urlb.errors import ConfigError
from urlb.replay import Batch


class Checker:
    """The rules for one method (its agent config, as ``configs/agent/<name>.yaml`` composes it)."""

    def __init__(self, agent_cfg: DictConfig | dict) -> None:
        self.agent_cfg = agent_cfg
        # The agent, batch and (reward, metrics) of the first plugin update on states: later rules
        # start from this trained agent instead of building and training another.
        self._trained: tuple | None = None

    def build(self, obs_type: str = "states", seed: int = 0, reward_free: bool = True):
        from urlb.agents import build_agent

        torch.manual_seed(seed)
        shape = PIXELS if obs_type == "pixels" else (OBS_DIM,)
        return build_agent(tiny_config(self.agent_cfg, obs_type, seed), shape, ACTION_DIM, "cpu", reward_free)

    # --- the rules, in the order they are reported ---
    def config_keys(self) -> None:
        from urlb.agents import RUNTIME_ARGS, plugin_class, split_agent_config

        cfg = (
            dict(OmegaConf.to_container(self.agent_cfg, resolve=True))
            if isinstance(self.agent_cfg, DictConfig)
            else dict(self.agent_cfg)
        )
        try:
            _, plugin_keys = split_agent_config(cfg)
        except ConfigError as exc:
            raise Problem(f"config keys: {exc} -> drop the key from the config or take it in __init__") from None
        cls = plugin_class(cfg["name"], cfg.get("target"))
        params = inspect.signature(cls.__init__).parameters
        unset = [
            p
            for p, v in params.items()
            if p not in RUNTIME_ARGS
            and v.default is inspect.Parameter.empty
            and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)
            and p not in plugin_keys
        ]
        if unset:
            raise Problem(
                f"config keys: {cls.__name__}.__init__ takes {', '.join(unset)} but the config gives no value -> "
                f"add {', '.join(f'{k}: ...' for k in unset)} to the method's config file or give a default"
            )

    def skills(self) -> None:
        from urlb.skill_schedule import SKILL_SELECTIONS

        plugin = self.build().plugin
        if plugin is None:
            return
        if plugin.finetune_critic_copy not in ("trunk", "all"):
            raise Problem(f"fine-tuning: finetune_critic_copy={plugin.finetune_critic_copy!r} -> use 'trunk' or 'all'")
        if not plugin.skill_dim:
            return
        if plugin.finetune_skill_selection not in SKILL_SELECTIONS:
            raise Problem(
                f"skills: finetune_skill_selection={plugin.finetune_skill_selection!r} -> use one of "
                f"{', '.join(SKILL_SELECTIONS)}"
            )
        rng = np.random.default_rng(0)
        for what, skill in (("sample_skill", plugin.sample_skill(rng)), ("default_skill", plugin.default_skill())):
            if skill is None or np.shape(skill) != (plugin.skill_dim,):
                raise Problem(
                    f"skills: {what}() gave shape {np.shape(skill)} -> return an array of shape "
                    f"(skill_dim,) = ({plugin.skill_dim},)"
                )

    def update(self, obs_type: str) -> None:
        """One plugin update: reward (B, 1) detached and finite, metrics numbers, batch untouched,
        parameters finite, trained parameters in a declared optimiser; then a backbone update."""
        agent = self.build(obs_type)
        plugin = agent.plugin
        if plugin is None:
            return
        pixels = obs_type == "pixels"
        size = PIXEL_BATCH if pixels else BATCH
        # a plugin trained on several batches per update gets them as one; it rewards the last
        rows = agent.batch_rows(size)
        batch = random_batch(plugin, PIXELS if pixels else (OBS_DIM,), np.random.default_rng(0), rows)
        before = {k: v.detach().clone() for k, v in plugin.state_dict().items()}
        plugin_batch = batch  # states, or pixels for a method that reads frames (pixel_input="frames")
        if pixels and plugin.pixel_input != "frames":  # what the backbone gives it: encoder features
            with torch.no_grad():
                features = [agent._encode(frames) for frames in (batch.obs, batch.next_obs, batch.next_obs_1step)]
            plugin_batch = batch._replace(obs=features[0], next_obs=features[1], next_obs_1step=features[2])
        kept = [None if t is None else t.clone() for t in plugin_batch]
        where = f"update ({obs_type})"
        try:
            out = plugin.update(plugin_batch, 1000)
        except Exception as exc:  # noqa: BLE001 - any failure of the method's code is the finding
            raise Problem(
                f"{where}: raised {type(exc).__name__}: {_first_line(exc)} -> fix the method's update"
            ) from None
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Problem(f"{where}: returned {type(out).__name__} -> return (reward, metrics)")
        reward, metrics = out
        if not pixels:
            self._trained = (agent, batch, reward, metrics)
        _check_metrics(metrics, where)
        _check_reward(reward, where, size)
        for name, (old, new) in zip(Batch._fields, zip(kept, plugin_batch)):
            if old is not None and not torch.equal(old, new):
                raise Problem(
                    f"{where}: changed batch.{name} in place -> work on a copy (x = x.clone()) or out of place"
                )
        bad = [n for n, p in plugin.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:
            raise Problem(f"{where}: parameter {bad[0]} is not finite after one update (a NaN loss?) -> check the loss")
        declared = {id(p) for opt in plugin.optimizers().values() for g in opt.param_groups for p in g["params"]}
        moved = [
            n
            for n, p in plugin.named_parameters()
            if p.requires_grad and not torch.equal(before[n], p.detach()) and id(p) not in declared
        ]
        if moved:
            raise Problem(
                f"{where}: {moved[0]} is trained by an optimiser the plugin did not declare -> "
                "self.add_optimizer(name, optimizer)"
            )
        try:
            agent.update(batch, 1000)
        except Exception as exc:  # noqa: BLE001
            raise Problem(f"backbone update ({obs_type}): raised {type(exc).__name__}: {_first_line(exc)}") from None

    def trained(self):
        """(agent, batch, reward, metrics) of one plugin update on states (see ``_trained``)."""
        if self._trained is None:
            try:
                self.update("states")
            except Problem:
                raise Skipped("needs update (states)") from None
        if self._trained is None:  # the update raised before returning
            raise Skipped("needs update (states)")
        return self._trained

    def intrinsic_reward(self) -> None:
        agent, batch, _, _ = self.trained()
        if agent.plugin is None:
            return
        before = {k: v.clone() for k, v in agent.plugin.state_dict().items()}
        try:
            reward = agent.plugin.intrinsic_reward(batch)
        except Exception as exc:  # noqa: BLE001
            raise Problem(
                f"intrinsic_reward: raised {type(exc).__name__}: {_first_line(exc)} -> fix intrinsic_reward"
            ) from None
        _check_reward(reward, "intrinsic_reward", len(batch.obs))
        changed = [k for k, v in agent.plugin.state_dict().items() if not torch.equal(before[k], v)]
        if changed:
            raise Problem(f"intrinsic_reward: changed {changed[0]} -> analysis must not train or update statistics")
        if not torch.equal(reward, agent.plugin.intrinsic_reward(batch)):
            raise Problem(
                "intrinsic_reward: two calls on the same batch differ -> draw its random numbers from a "
                "generator seeded afresh on each call (torch.Generator().manual_seed(0)), as SMM does"
            )

    def snapshot_round_trip(self) -> None:
        """Save a trained agent's state, load it into a fresh one: the same state and reward."""
        agent, batch, _, _ = self.trained()
        if agent.plugin is None:
            return
        buffer = io.BytesIO()
        torch.save(agent.networks_state(), buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=False)
        fresh = self.build(seed=2)
        try:
            fresh.load_networks(state, tuple(state))
        except Exception as exc:  # noqa: BLE001
            raise Problem(f"snapshot: loading a saved state raised {type(exc).__name__}: {_first_line(exc)}") from None
        for key, value in agent.plugin.state_dict().items():
            if not torch.equal(fresh.plugin.state_dict()[key], value):
                raise Problem(
                    f"snapshot: plugin.{key} differs after a save/load round trip -> keep state in parameters "
                    "or buffers"
                )
        ours, theirs = agent.plugin.intrinsic_reward(batch), fresh.plugin.intrinsic_reward(batch)
        if not torch.equal(ours, theirs):
            raise Problem(
                "snapshot: the reward differs after a save/load round trip -> keep every state the reward "
                "needs in parameters or persistent buffers (register_buffer)"
            )

    def finetune_copy(self) -> None:
        """What fine-tuning copies: actor, the critic's trunk (or all of it), and the plugin."""
        pre = self.trained()[0]
        if pre.plugin is None:
            return
        fine = self.build(seed=2, reward_free=False)
        fine.init_from(pre.networks_state())
        same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))  # noqa: E731
        whole = pre.plugin.finetune_critic_copy == "all"
        copied, target = (pre.critic, fine.critic) if whole else (pre.critic.trunk, fine.critic.trunk)
        if not (same(pre.actor, fine.actor) and same(copied, target) and same(pre.plugin, fine.plugin)):
            raise Problem(
                "fine-tuning: the snapshot's actor, critic and plugin were not all copied -> check finetune_critic_copy"
            )

    def determinism(self) -> None:
        """The same seed and batch give the same reward and metrics."""
        _, batch, reward, metrics = self.trained()
        again = self.build()
        if again.plugin is None:
            return
        batch = batch._replace(**{k: v.clone() for k, v in batch._asdict().items() if v is not None})
        reward_again, metrics_again = again.plugin.update(batch, 1000)
        numbers = lambda m: {k: float(v) for k, v in m.items()}  # noqa: E731
        if not torch.equal(reward, reward_again) or numbers(metrics) != numbers(metrics_again):
            raise Problem(
                "determinism: the same seed gave different rewards -> draw random numbers from torch's "
                "global generator (torch.randn...), not numpy, random or a generator of your own"
            )

    def seeds(self) -> None:
        """A seed trained beside another in one process computes what it computes alone."""
        from urlb.agents import build_seed_agents

        cfg = tiny_config(self.agent_cfg, "states")
        together = build_seed_agents(cfg, (OBS_DIM,), ACTION_DIM, "cpu", True, [1, 2])
        if together.plugin is None:
            return
        rows = together[0].batch_rows(BATCH)
        batches = [random_batch(together.plugin, (OBS_DIM,), np.random.default_rng(4 + i), rows) for i in range(2)]
        together.update(lambda index: batches[index], 1000)
        alone = self.build(seed=2)
        alone.update(batches[1], 1000)
        for key, value in alone.plugin.state_dict().items():
            if not torch.equal(together[1].plugin.state_dict()[key], value):
                raise Problem(
                    f"seeds: seed 2 beside seed 1 differs from seed 2 alone in {key} -> keep no state outside "
                    "the module (class attributes, globals) and draw random numbers with torch"
                )

    def rules(self, obs_types: tuple[str, ...] | None = None) -> list[tuple[str, Callable[[], None]]]:
        agent_obs = self._obs_types() if obs_types is None else obs_types
        checks = [("config keys", self.config_keys), ("skills", self.skills)]
        checks += [(f"update ({o})", lambda o=o: self.update(o)) for o in agent_obs]
        checks += [
            ("intrinsic_reward", self.intrinsic_reward),
            ("snapshot", self.snapshot_round_trip),
            ("fine-tuning", self.finetune_copy),
            ("determinism", self.determinism),
            ("seeds", self.seeds),
        ]
        return checks

    def guard(self, obs_type: str) -> list[str]:
        """The checks run before pre-training (the rules a run depends on, for its observation
        type), stopping at the first broken one: its line, or nothing."""
        keep = {"config keys", "skills", f"update ({obs_type})", "intrinsic_reward", "snapshot"}
        results = self.run((obs_type,), stop_early=True, only=keep)
        return [p for _, p in results if p is not None]

    def _obs_types(self) -> tuple[str, ...]:
        from urlb.agents import plugin_class

        cfg = self.agent_cfg
        cls = plugin_class(cfg["name"], cfg.get("target"))
        return ("states",) if cls is None else tuple(cls.obs_types)

    def run(
        self, obs_types: tuple[str, ...] | None = None, stop_early: bool = False, only: set[str] | None = None
    ) -> list[tuple[str, str | None]]:
        """(rule, None if it holds else the problem line) for every rule run; the config rule first
        (nothing else can run when the method cannot be built from its config). Rules that build
        on a broken one are not run (``self.skipped``)."""
        results: list[tuple[str, str | None]] = []
        self.skipped: list[tuple[str, str]] = []  # rules not run: (rule, why)
        for name, check in self.rules(obs_types):
            if only is not None and name not in only:
                continue
            if dict(results).get("update (states)") is not None:  # the later rules train that agent
                self.skipped.append((name, "needs update (states)"))
                continue
            try:
                check()
                results.append((name, None))
            except Problem as exc:
                results.append((name, str(exc)))
            except Skipped as exc:
                self.skipped.append((name, str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. the constructor itself fails
                results.append((name, f"{name}: raised {type(exc).__name__}: {_first_line(exc)} -> fix the method"))
            if results[-1][1] is not None and (stop_early or name == "config keys"):
                break
        return results
