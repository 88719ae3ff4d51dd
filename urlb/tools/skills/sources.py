"""What the gallery reads: pre-training runs (run directories whose config.yaml names their
snapshots) or bare snapshot files (``snapshot_*.pt``, grouped by their directory). Everything is
read and checked here, before anything is written."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from urlb.agents import plugin_class
from urlb.errors import ConfigError
from urlb.runs.snapshots import SnapshotError, read_torch_file
from urlb.tasks import DOMAINS
from urlb.tools.pretrained import find_pretrain_runs, run_snapshot_path, written_snapshots


class GalleryError(RuntimeError):
    """Bad input: printed as one line, exit code 2, nothing written."""


@dataclass
class Source:
    """One pre-training run (or one directory of snapshot files) and its snapshots."""

    agent: str
    domain: str
    seed: int
    agent_cfg: dict
    out_dir: Path  # where skills/ outputs go
    snapshots: dict[int, Path] = field(default_factory=dict)  # frames -> file
    data: dict[int, dict] = field(default_factory=dict, repr=False)  # frames -> file contents
    planned: list[int] = field(default_factory=list)  # the run's configured snapshots

    @property
    def title(self) -> str:
        return f"{self.agent} on {self.domain}, seed {self.seed}"


def _read(path: Path) -> dict:
    data = read_torch_file(path, "snapshot")  # SnapshotError on a corrupt or foreign file
    meta = data["metadata"]
    if meta.get("obs_type", "states") != "states":
        raise GalleryError(f"{path} is a {meta.get('obs_type')} snapshot; the gallery rolls out states agents only")
    if meta.get("domain") not in DOMAINS:
        raise GalleryError(f"{path} has domain {meta.get('domain')!r}; known domains: {', '.join(DOMAINS)}")
    return data


def _from_run(run_dir: Path, frames_wanted: list[int] | None) -> Source:
    cfg = OmegaConf.load(run_dir / "config.yaml")
    if cfg.get("obs_type", "states") != "states":
        raise GalleryError(f"{run_dir} is a {cfg.obs_type} run; the gallery rolls out states agents only")
    source = Source(
        cfg.agent.name,
        cfg.domain,
        int(cfg.seed),
        OmegaConf.to_container(cfg.agent, resolve=True),
        run_dir / "skills",
        planned=list(cfg.snapshots),
    )
    for frames in written_snapshots(cfg):
        if frames_wanted is None or frames in frames_wanted:
            source.snapshots[frames] = run_snapshot_path(cfg, frames)
    return source


def _agent_cfg_from_metadata(meta: dict) -> dict:
    """An agent config from snapshot metadata alone: the constructor defaults plus the sizes
    the metadata records (a run directory gives the exact config; prefer it)."""
    cfg = {"name": meta["agent"], "hidden_dim": meta["hidden_dim"]}
    cls = plugin_class(meta["agent"])
    if cls is not None and "skill_dim" in inspect.signature(cls.__init__).parameters:
        cfg["skill_dim"] = meta["skill_dim"]
    return cfg


def _from_files(files: list[Path], frames_wanted: list[int] | None) -> list[Source]:
    groups: dict[Path, list[Path]] = {}
    for path in files:
        groups.setdefault(path.parent, []).append(path)
    sources = []
    for directory, paths in sorted(groups.items()):
        first = _read(paths[0])["metadata"]
        seed = int(directory.name) if directory.name.isdigit() else 0
        source = Source(first["agent"], first["domain"], seed, _agent_cfg_from_metadata(first), directory / "skills")
        for path in paths:
            frames = int(path.stem.split("_")[-1])
            if frames_wanted is None or frames in frames_wanted:
                source.snapshots[frames] = path
        source.planned = sorted(source.snapshots)
        sources.append(source)
    return sources


def _is_snapshot_file(path: Path) -> bool:
    return path.suffix == ".pt" and path.stem.startswith("snapshot_") and path.stem.split("_")[-1].isdigit()


def find_sources(paths: list[Path], frames_wanted: list[int] | None = None) -> list[Source]:
    """Every run (or snapshot directory) below ``paths`` with at least one snapshot to roll out,
    each snapshot read and checked. GalleryError when nothing fits."""
    sources: list[Source] = []
    skipped: list[str] = []
    for path in paths:
        if not path.exists():
            raise GalleryError(f"{path} does not exist")
        if path.is_file():
            if not _is_snapshot_file(path):
                raise GalleryError(f"{path} is not a snapshot file (snapshot_<frames>.pt) nor a directory")
            sources += _from_files([path], frames_wanted)
            continue
        runs = find_pretrain_runs([path], need_train_csv=False)
        for run_dir in runs:
            source = _from_run(run_dir, frames_wanted)
            if source.snapshots:
                sources.append(source)
            else:
                cfg = OmegaConf.load(run_dir / "config.yaml")
                skipped.append(
                    f"{run_dir} (no snapshot file under snapshot_dir={cfg.snapshot_dir}"
                    f"{'' if frames_wanted is None else f' at frames {frames_wanted}'})"
                )
        if not runs:
            files = sorted(p for p in path.rglob("snapshot_*.pt") if _is_snapshot_file(p))
            sources += [s for s in _from_files(files, frames_wanted) if s.snapshots]
    if not sources:
        detail = f"; runs without snapshots: {'; '.join(skipped)}" if skipped else ""
        raise GalleryError(
            f"no pre-training run with a snapshot below {', '.join(map(str, paths))} "
            f"(a run directory holds config.yaml with phase: pretrain; "
            f"or pass snapshot_<frames>.pt files){detail}"
        )
    for line in skipped:
        print(f"skipped: {line}")
    for source in sources:
        for frames, path in sorted(source.snapshots.items()):
            source.data[frames] = _read(path)
    return sources


def check_loadable(source: Source, env) -> None:
    """Build the agent of every snapshot once, so a snapshot that does not fit fails here."""
    from urlb.tools.pretrained import agent_from_snapshot

    for frames, path in sorted(source.snapshots.items()):
        try:
            agent_from_snapshot(source.agent_cfg, path, env, source.data[frames])
        except (RuntimeError, KeyError, ConfigError) as exc:
            if isinstance(exc, SnapshotError):
                raise
            first = str(exc).strip().splitlines()[0]
            raise GalleryError(
                f"snapshot {path} does not fit a {source.agent} agent on {source.domain} "
                f"({type(exc).__name__}: {first})"
            ) from exc
