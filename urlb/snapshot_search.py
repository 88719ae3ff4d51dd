"""``python finetune.py snapshot_ts=N`` without ``agent=``: which agent's snapshot is meant.

The fine-tuning config's agent default is ``ddpg`` (no pre-training), so a user who pre-trained
``cic`` and then types ``finetune.py snapshot_ts=N`` would otherwise be told DDPG has no
snapshot. Before Hydra builds anything (no run directory, no config saved), the command line is
read: when ``agent=`` is absent and ``snapshot_ts`` is a positive frame count, the snapshot root
is scanned for snapshots at frame N of the task's domain with the run's other shaping keys
(obs_type, snapshot_seed, hidden_dim). Exactly one agent: ``agent=<it>`` is added to the command
line and one line says so. Several or none: exit 2 listing what exists and the command to run.
Everything else (``agent=`` typed, ``snapshot_ts`` absent or 0, multirun, Hydra flags) is left
exactly as typed.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

EXIT_USER_ERROR = 2
_AGENT_OVERRIDE = re.compile(r"^[+~]*agent(=|@)")
_SNAPSHOT_TS = re.compile(r"^\+{0,2}snapshot_ts=(.*)$")


@dataclass(frozen=True)
class Found:
    """A snapshot file as its path names it: {root}/{obs_type}/{domain}/{agent}/{seed}/snapshot_{frames}.pt."""

    path: Path
    domain: str
    agent: str
    seed: int
    frames: int


def scan(root: Path, obs_type: str) -> list[Found]:
    """Every snapshot file under ``root/obs_type`` (any domain, agent, seed, frame count)."""
    found = []
    for path in sorted((root / obs_type).glob("*/*/*/snapshot_*.pt")):
        seed, frames = path.parent.name, path.stem.removeprefix("snapshot_")
        if seed.isdigit() and frames.isdigit():
            found.append(Found(path, path.parents[2].name, path.parents[1].name, int(seed), int(frames)))
    return found


def hidden_dim_of(path: Path) -> int | None:
    """The snapshot's recorded network width (None when unreadable); tensors are mapped, not read."""
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["metadata"]
        return int(meta["hidden_dim"])
    except Exception:  # a corrupt or foreign file is simply not a candidate; loading it would say why
        return None


def candidates(found: list[Found], domain: str, frames: int, seed: int, hidden_dim: int) -> list[Found]:
    """Snapshots a fine-tuning run of ``domain`` could load at ``frames`` without ``agent=``."""
    return [
        f
        for f in found
        if f.domain == domain
        and f.frames == frames
        and f.seed == seed
        and f.agent != "ddpg"
        and hidden_dim_of(f.path) == hidden_dim
    ]


def _listing(found: list[Found]) -> list[str]:
    groups: dict[tuple[str, str, int], list[int]] = {}
    for f in found:
        groups.setdefault((f.domain, f.agent, f.seed), []).append(f.frames)
    return [
        f"  {domain}  {agent:<6} seed {seed}: frames {', '.join(map(str, sorted(frames)))}"
        for (domain, agent, seed), frames in sorted(groups.items())
    ]


def explain_refusal(matches: list[Found], found: list[Found], cfg, root: Path, command: str) -> str:
    """The message for several candidates or none: what exists and the command(s) to run."""
    frames, domain = cfg.snapshot_ts, cfg.domain
    where = (
        f"{domain} ({cfg.obs_type}, snapshot_seed {cfg.snapshot_seed}, hidden_dim {cfg.agent.hidden_dim}) under {root}"
    )
    if matches:
        agents = sorted({m.agent for m in matches})
        lines = [
            (
                f"snapshot_ts={frames} without agent=: {len(agents)} agents have a snapshot at {frames} frames for "
                f"{where}: {', '.join(agents)}. Say which one:"
            )
        ]
        lines += [f"  {command} agent={agent}" for agent in agents]
        return "\n".join(lines)
    lines = [f"snapshot_ts={frames} without agent=: no agent has a snapshot at {frames} frames for {where}."]
    if found:
        lines.append(f"snapshots under {root / cfg.obs_type}:")
        lines += _listing(found)
        same_domain = sorted({(f.agent, f.frames) for f in found if f.domain == domain and f.agent != "ddpg"})
        if same_domain:
            lines.append(
                "fine-tune one of them with agent= and its frame count (and the preset or "
                "agent.hidden_dim it was pre-trained with), e.g.:"
            )
            agent, other = same_domain[-1]
            base = re.sub(r"\s*snapshot_ts=\S+", "", command)
            lines.append(f"  {base} agent={agent} snapshot_ts={other}")
    else:
        lines.append(f"no snapshot exists under {root / cfg.obs_type}.")
    lines.append(
        f"or pre-train one first: python pretrain.py agent=<agent> domain={domain} snapshots=[{frames}] "
        f"(num_train_frames >= {frames}), or fine-tune DDPG from scratch with snapshot_ts=0"
    )
    return "\n".join(lines)


def _compose(overrides: list[str], config_dir: Path):
    from hydra import compose, initialize_config_dir

    import urlb.config  # noqa: F401  (registers the resolvers the configs use)

    with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
        return compose(config_name="finetune", overrides=overrides)


def choose_agent(argv: list[str], config_dir: Path | None = None) -> list[str]:
    """``argv`` unchanged, or with ``agent=<the only candidate>`` appended; exits 2 when the
    snapshot_ts typed without agent= fits several agents or none."""
    overrides = argv[1:]
    if any(arg.startswith("-") for arg in overrides) or any(_AGENT_OVERRIDE.match(arg) for arg in overrides):
        return argv  # multirun, --cfg, --help...; or the agent is named: as typed
    typed = [m.group(1) for m in map(_SNAPSHOT_TS.match, overrides) if m]
    if not typed or typed[-1].strip() in ("0", ""):
        return argv  # DDPG's default: from scratch
    config_dir = config_dir or Path(argv[0]).resolve().parent / "configs"
    try:
        cfg = _compose(overrides, config_dir)
    except Exception:  # a bad override: Hydra reports it the usual way
        return argv
    if cfg.agent.name != "ddpg" or not isinstance(cfg.snapshot_ts, int) or cfg.snapshot_ts <= 0:
        return argv  # a sweep config named the agent, or validation will explain snapshot_ts
    root = Path(cfg.snapshot_dir)
    found = scan(root, cfg.obs_type)
    matches = candidates(found, cfg.domain, cfg.snapshot_ts, cfg.snapshot_seed, cfg.agent.hidden_dim)
    if len({m.agent for m in matches}) == 1:
        print(
            f"agent={matches[0].agent}: the only snapshot at {cfg.snapshot_ts} frames for {cfg.domain} "
            f"(seed {cfg.snapshot_seed}) is {matches[0].path}",
            flush=True,
        )
        return [*argv, f"agent={matches[0].agent}"]
    command = " ".join(["python", Path(argv[0]).name, *overrides])
    print(f"error: {explain_refusal(matches, found, cfg, root, command)}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
