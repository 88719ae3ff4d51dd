"""``seeds=[1,2,3]``: which seeds one process trains, and each seed's own config and run directory.

A seed trained beside others writes exactly what a single-seed run of it writes, in the run
directory that run would use: the Hydra run directory's ``seed_<n>`` component names the seed.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from urlb.errors import ConfigError


def run_seed(seed, seeds):
    """The seed that names the Hydra run directory: the first of ``seeds`` when given (a bad
    value passes through unchanged: validation names it)."""
    if isinstance(seeds, (list, tuple, ListConfig)) and len(seeds) > 0:
        return seeds[0]
    return seed


def seed_list(cfg: DictConfig) -> list[int]:
    """The seeds this run trains: ``seeds`` when set, else ``[seed]``; a clear error otherwise."""
    seeds = OmegaConf.select(cfg, "seeds", default=None)
    if seeds is None:
        return [int(cfg.seed)]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, (list, tuple, ListConfig)) or not seeds:
        raise ConfigError(f"seeds={seeds!r} must be a non-empty list of whole numbers >= 0, e.g. seeds=[1,2,3]")
    values = list(seeds)
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in values):
        raise ConfigError(f"seeds={values!r} must be whole numbers >= 0, e.g. seeds=[1,2,3]")
    if len(set(values)) != len(values):
        raise ConfigError(f"seeds={values!r} lists a seed twice; each seed trains once")
    return values


def seed_config(cfg: DictConfig, seed: int) -> DictConfig:
    """``cfg`` for one seed: ``seed`` set before interpolations resolve, so that what follows
    the seed (``snapshot_seed: ${seed}``) follows it here too."""
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    one = OmegaConf.create(container)
    with open_dict(one):
        one.seed = int(seed)
    return OmegaConf.create(OmegaConf.to_container(one, resolve=True))


def seed_run_dir(run_dir: Path, first_seed: int, seed: int) -> Path:
    """Seed ``seed``'s run directory: ``run_dir`` (the first seed's) with its ``seed_<first>``
    component renamed."""
    marker = f"seed_{first_seed}"
    parts = list(Path(run_dir).parts)
    if marker not in parts:
        raise ConfigError(
            f"seeds=[...] needs one run directory per seed, named by a seed_<n> component, but the run "
            f"directory {run_dir} has no component {marker}; keep hydra.run.dir ending in seed_${{run_seed:...}} "
            "(the default) or train one seed per process"
        )
    index = len(parts) - 1 - parts[::-1].index(marker)
    parts[index] = f"seed_{seed}"
    return Path(*parts)


def seed_runs(cfg: DictConfig, run_dir: Path) -> list[tuple[int, DictConfig, Path]]:
    """(seed, that seed's config, its run directory) for every seed of the run."""
    seeds = seed_list(cfg)
    if OmegaConf.select(cfg, "seeds", default=None) is None:
        return [(seeds[0], cfg, Path(run_dir))]
    first = run_seed(cfg.seed, seeds)
    return [(s, seed_config(cfg, s), seed_run_dir(Path(run_dir), first, s)) for s in seeds]
