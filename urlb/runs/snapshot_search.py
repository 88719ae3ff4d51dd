"""``python finetune.py snapshot_ts=N`` without ``agent=``: which agent's snapshot is meant.

The fine-tuning config's agent default is ``ddpg`` (no pre-training), so a user who pre-trained
``cic`` and then types ``finetune.py snapshot_ts=N`` would otherwise be told DDPG has no
snapshot. Before Hydra builds anything (no run directory, no config saved), the command line is
read: when ``agent=`` is absent and ``snapshot_ts`` is a positive frame count, the snapshot root
is scanned for snapshots at frame N of the task's domain, obs_type and snapshot_seed (and width,
when ``agent.hidden_dim`` is typed). Exactly one: ``agent=<it>`` and the sizes recorded in the
snapshot (its preset, or ``agent.hidden_dim=``; a non-default skill size) are added to the
command line and one line says so, so the command runs whatever preset made the snapshot.
Several or none: exit 2 listing what exists and full commands (agent, snapshot_ts,
snapshot_seed and sizes) that run.
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


def metadata_of(path: Path) -> dict | None:
    """The snapshot's recorded metadata (None when unreadable); tensors are mapped, not read."""
    try:
        return dict(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["metadata"])
    except Exception:  # a corrupt or foreign file is simply not a candidate; loading it would say why
        return None


def candidates(found: list[Found], domain: str, frames: int, seed: int, hidden_dim: int | None) -> list[Found]:
    """Snapshots a fine-tuning run of ``domain`` could load at ``frames`` without ``agent=``
    (``hidden_dim`` None: any width; the snapshot's own is then used)."""
    matches = []
    for f in found:
        if f.domain != domain or f.frames != frames or f.seed != seed or f.agent == "ddpg":
            continue
        meta = metadata_of(f.path)
        if meta is not None and (hidden_dim is None or meta.get("hidden_dim") == hidden_dim):
            matches.append(f)
    return matches


def size_overrides(cfg, meta: dict, config_dir: Path, typed: list[str], use_preset: bool) -> list[str]:
    """The overrides that make a run of ``cfg`` (whose agent is the snapshot's) fit the
    snapshot's recorded sizes: ``agent.hidden_dim=`` (with ``use_preset`` and no preset typed:
    the preset of that width, when exactly one has it); a skill size other than the agent's default."""
    overrides = []
    hidden = meta.get("hidden_dim")
    if hidden is not None and hidden != cfg.agent.hidden_dim:
        typed_preset = any(_key(t) == "preset" for t in typed)
        preset = preset_with_width(hidden, config_dir) if use_preset and not typed_preset else None
        overrides.append(f"preset={preset}" if preset else f"agent.hidden_dim={hidden}")
    for key in ("skill_dim", "sf_dim", "z_dim"):  # the name each plugin gives its skill size
        if key in cfg.agent and meta.get("skill_dim") not in (None, 0) and cfg.agent[key] != meta["skill_dim"]:
            overrides.append(f"agent.{key}={meta['skill_dim']}")
    return overrides


def preset_with_width(hidden_dim: int, config_dir: Path) -> str | None:
    """The preset (configs/preset/*.yaml) whose networks have this width, if exactly one has."""
    names = [p.stem for p in sorted((config_dir / "preset").glob("*.yaml"))]
    fitting = [n for n in names if _compose([f"preset={n}", "agent=ddpg"], config_dir).agent.hidden_dim == hidden_dim]
    return fitting[0] if len(fitting) == 1 else None


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def full_command(base: list[str], f: Found, cfg, config_dir: Path) -> str:
    """``base`` (the typed command without snapshot_ts/snapshot_seed) with every override that
    fine-tunes the snapshot ``f``: agent, frames, seed and sizes."""
    chosen = _compose([*base[2:], f"agent={f.agent}"], config_dir)
    meta = metadata_of(f.path) or {}
    extra = [f"agent={f.agent}", f"snapshot_ts={f.frames}", f"snapshot_seed={f.seed}"]
    return " ".join([*base, *extra, *size_overrides(chosen, meta, config_dir, base[2:], use_preset=True)])


def _listing(found: list[Found]) -> list[str]:
    groups: dict[tuple[str, str, int], list[int]] = {}
    for f in found:
        groups.setdefault((f.domain, f.agent, f.seed), []).append(f.frames)
    return [
        f"  {domain}  {agent:<6} seed {seed}: frames {', '.join(map(str, sorted(frames)))}"
        for (domain, agent, seed), frames in sorted(groups.items())
    ]


def explain_refusal(
    matches: list[Found], found: list[Found], cfg, root: Path, base: list[str], config_dir: Path
) -> str:
    """The message for several candidates or none: what exists and the full command(s) to run."""
    frames, domain = cfg.snapshot_ts, cfg.domain
    where = f"{domain} ({cfg.obs_type}, snapshot_seed {cfg.snapshot_seed}) under {root}"
    if matches:
        lines = [
            f"snapshot_ts={frames} without agent=: {len(matches)} agents have a snapshot at {frames} frames for "
            f"{where}: {', '.join(m.agent for m in matches)}. Say which one:"
        ]
        lines += [f"  {full_command(base, m, cfg, config_dir)}" for m in matches]
        return "\n".join(lines)
    lines = [f"snapshot_ts={frames} without agent=: no agent has a snapshot at {frames} frames for {where}."]
    if found:
        lines.append(f"snapshots under {root / cfg.obs_type}:")
        lines += _listing(found)
        same_domain = [f for f in found if f.domain == domain and f.agent != "ddpg"]
        if same_domain:
            # The closest: this seed first, then the nearest frame count.
            best = min(same_domain, key=lambda f: (f.seed != cfg.snapshot_seed, abs(f.frames - frames), f.agent))
            lines.append("fine-tune one of them, e.g. (every override it needs):")
            lines.append(f"  {full_command(base, best, cfg, config_dir)}")
    else:
        lines.append(f"no snapshot exists under {root / cfg.obs_type}.")
    kept = "".join(f" {o}" for o in base[2:] if _key(o) in ("preset", "obs_type", "snapshot_dir", "agent.hidden_dim"))
    lines.append(
        f"or pre-train one first: python pretrain.py agent=<agent> domain={domain} seed={cfg.snapshot_seed}{kept} "
        f"snapshots=[{frames}] (num_train_frames >= {frames}), or fine-tune DDPG from scratch with snapshot_ts=0"
    )
    return "\n".join(lines)


def _compose(overrides: list[str], config_dir: Path):
    from hydra import compose, initialize_config_dir

    import urlb.runs.config  # noqa: F401  (registers the resolvers the configs use)

    with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
        return compose(config_name="finetune", overrides=overrides)


def choose_agent(argv: list[str], config_dir: Path | None = None) -> list[str]:
    """``argv`` unchanged, or with ``agent=<the only candidate>`` and the sizes recorded in its
    snapshot appended; exits 2 when the snapshot_ts typed without agent= fits several agents or none."""
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
    width_typed = any(_key(o) == "agent.hidden_dim" for o in overrides)
    matches = candidates(
        found, cfg.domain, cfg.snapshot_ts, cfg.snapshot_seed, cfg.agent.hidden_dim if width_typed else None
    )
    if len(matches) == 1:
        only = matches[0]
        chosen = _compose([*overrides, f"agent={only.agent}"], config_dir)
        meta = metadata_of(only.path) or {}
        extra = [f"agent={only.agent}", *size_overrides(chosen, meta, config_dir, overrides, use_preset=False)]
        preset = preset_with_width(meta.get("hidden_dim"), config_dir) if len(extra) > 1 else None
        made_by = f" (its width is preset={preset}'s; other settings stay as typed)" if preset else ""
        print(
            f"{' '.join(extra)}: from the only snapshot at {cfg.snapshot_ts} frames for {cfg.domain} "
            f"(seed {cfg.snapshot_seed}), {only.path}{made_by}",
            flush=True,
        )
        return [*argv, *extra]
    base = ["python", Path(argv[0]).name, *(o for o in overrides if _key(o) not in ("snapshot_ts", "snapshot_seed"))]
    print(f"error: {explain_refusal(matches, found, cfg, root, base, config_dir)}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
