"""Pre-training runs as tools read them: finding runs, their written snapshots, and a snapshot
loaded into an agent on CPU. Shared by ``urlb.tools.objectives`` and ``urlb.tools.skills``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from urlb.agents import build_agent
from urlb.ddpg import DDPGAgent
from urlb.runs.snapshots import read_torch_file, snapshot_path
from urlb.tasks import PRIMAL_TASKS


def find_pretrain_runs(paths: list[Path], need_train_csv: bool = True) -> list[Path]:
    """Run directories (config.yaml with ``phase: pretrain``, and a train.csv unless
    ``need_train_csv`` is false: a run stopped in its first episode has none) below ``paths``."""
    runs = []
    for root in paths:
        for config in sorted(Path(root).rglob("config.yaml")):
            if config.parent.name.startswith("."):
                continue
            cfg = OmegaConf.load(config)
            if cfg.get("phase") == "pretrain" and (not need_train_csv or (config.parent / "train.csv").exists()):
                runs.append(config.parent)
    return runs


def run_snapshot_path(cfg: DictConfig, frames: int) -> Path:
    return snapshot_path(cfg.snapshot_dir, cfg.get("obs_type", "states"), cfg.domain, cfg.agent.name, cfg.seed, frames)


def written_snapshots(cfg) -> list[int]:
    """The run's snapshot frame counts whose files exist (a stopped run has only the first)."""
    return [frames for frames in cfg.snapshots if run_snapshot_path(cfg, frames).is_file()]


def primal_env(cfg, seed: int = 0):
    """The run's domain's primal task, states observations: where its policy is rolled out."""
    from urlb import envs  # imported here: run discovery works without the simulator

    return envs.make(PRIMAL_TASKS[cfg.domain], "states", seed=seed)


def agent_from_snapshot(agent_cfg: DictConfig | dict, path: Path, env, data: dict | None = None) -> DDPGAgent:
    """An agent (actor, critic and plugin) built from ``agent_cfg`` and sized for ``env``
    (states), with the snapshot at ``path`` loaded, on CPU. ``data``: the file already read."""
    obs_dim, action_dim = int(env.observation_spec().shape[0]), int(env.action_spec().shape[0])
    agent = build_agent(
        OmegaConf.create({"agent": agent_cfg, "obs_type": "states"}), (obs_dim,), action_dim, "cpu", reward_free=False
    )
    data = read_torch_file(path, "snapshot") if data is None else data
    agent.load_networks(data["state"], ("actor", "critic", "plugin"))
    return agent


def load_pretrained_agent(run_dir: Path, env, frames: int | None = None) -> DDPGAgent:
    """The run's snapshot at ``frames`` (default: its last written) as an agent (actor, critic
    and plugin) sized for ``env``, on CPU."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    frames = max(written_snapshots(cfg)) if frames is None else frames
    return agent_from_snapshot(cfg.agent, run_snapshot_path(cfg, frames), env)
