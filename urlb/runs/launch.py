"""What pretrain.py and finetune.py run: validate, build the trainer, train. A user error
prints one clear message instead of a traceback: in a single run the process exits with code 2
(3 for a numerical fault); in a multirun the job fails with that message and the sweep's other
jobs go on (Hydra reports the failure at the end). A stop signal (SIGINT/SIGTERM) always ends
the process with 128+signal, after a checkpoint, in a multirun too."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf, open_dict

from urlb.ddpg import NonFiniteError
from urlb.runs import lock as run_lock
from urlb.runs.checkpoints import finish_interrupted_writes
from urlb.runs.config import ConfigError, resolve_threads, validate
from urlb.runs.files import atomic_write_text
from urlb.runs.record import check_run_record, check_snapshot_exists
from urlb.runs.seed_list import seed_runs
from urlb.runs.snapshots import SnapshotError, snapshot_path
from urlb.trainer import RunInterrupted, SnapshotHook, Trainer

EXIT_USER_ERROR = 2
EXIT_NON_FINITE = 3


class JobFailed(RuntimeError):
    """A multirun job stopped on a user error (already printed)."""


def _fail(message: str, exit_code: int) -> None:
    if message:
        print(f"error: {message}", file=sys.stderr)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        # SystemExit would end the whole sweep, killing sibling jobs; an exception fails this job only.
        raise JobFailed(message or f"stopped with exit code {exit_code}")
    sys.exit(exit_code)


def _os_error_message(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot write{where}: {exc.strerror or exc}".replace("\n", " ")


def check_before_work(cfg: DictConfig, run_dir: Path, overrides: list[str], announce: bool = True) -> str | None:
    """Every check that needs no environment or network: the config's values, the run
    directory's record and the snapshot to load. Returns the "already complete" message when
    there is nothing to do; raises ConfigError/SnapshotError for a refused command."""
    return check_runs(cfg, resolve_runs(cfg, run_dir), overrides, announce)


def resolve_runs(cfg: DictConfig, run_dir: Path) -> list[tuple[int, DictConfig, Path]]:
    """The configuration checked, ``snapshot_dir`` made absolute, and the seeds listed once: each
    seed's config and run directory (``seeds=[...]``), as the trainer takes them."""
    validate(cfg)
    with open_dict(cfg):
        cfg.snapshot_dir = to_absolute_path(cfg.snapshot_dir)
    return seed_runs(cfg, run_dir)


def check_runs(cfg: DictConfig, runs, overrides: list[str], announce: bool = True) -> str | None:
    """:func:`check_before_work` on seeds already listed by :func:`resolve_runs`."""
    done = {seed: check_run_record(one, directory, announce) for seed, one, directory in runs}
    finished = [seed for seed, message in done.items() if message is not None]
    if finished and len(finished) == len(runs):
        return "\n".join(done.values())
    if finished:
        others = [seed for seed in done if seed not in finished]
        raise ConfigError(
            f"seeds {finished} are already complete, the others not; train the others alone: "
            f"seeds=[{','.join(map(str, others))}]"
        )
    check_writable(Path(cfg.snapshot_dir), "snapshot_dir")
    for _, one, directory in runs:
        check_snapshot_exists(one, directory, overrides)
    if cfg.get("phase") == "pretrain":  # a broken method is refused before hours of training
        check_method(cfg)
    return None


_CHECKED: set[str] = set()  # methods this process has checked (precheck and the job are one process)


def check_method(cfg: DictConfig) -> None:
    """The plugin contract at tiny sizes (urlb.agents.contract) before pre-training starts, so a
    broken method stops in seconds instead of after hours; the first broken rule is the error."""
    from urlb.agents.contract import Checker

    key = f"{cfg.obs_type}:{OmegaConf.to_yaml(cfg.agent, resolve=True)}"
    if cfg.agent.name == "ddpg" or key in _CHECKED:
        return
    with torch.random.fork_rng(devices=[]):
        problems = Checker(cfg.agent).guard(cfg.obs_type)
    if problems:
        spec = cfg.agent.get("target") or cfg.agent.name
        raise ConfigError(
            f"agent={spec} breaks the plugin contract ({problems[0]}); urlb-check-agent {spec} checks every rule"
        )
    _CHECKED.add(key)


def run_phase(cfg: DictConfig, snapshot_hooks: Sequence[SnapshotHook] = ()) -> None:
    """Train the run ``cfg`` describes; ``snapshot_hooks`` go to the trainer (see :data:`urlb.trainer.SnapshotHook`)."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        overrides = getattr(getattr(hydra_cfg, "overrides", None), "task", None) or []
        runs = resolve_runs(cfg, run_dir)
        done = check_runs(cfg, runs, list(overrides))
        if done is not None:
            print(done, flush=True)
            return
        run_dirs = [directory for _, _, directory in runs]
        run_lock.acquire_all(run_dirs)  # held already when precheck took it (a single run)
        write_hydra_record(run_dir, cfg)
        finish_interrupted_writes(run_dirs, own_snapshot_files(runs))
        set_threads(cfg.threads)
        Trainer(cfg, run_dir, snapshot_hooks, runs).train()
    except (ConfigError, SnapshotError) as exc:
        run_lock.release_all()
        remove_unused_run_dir(run_dir, cfg)
        _fail(str(exc), EXIT_USER_ERROR)
    except RunInterrupted as exc:
        run_lock.release_all()
        # A stop signal ends the process even in a sequential multirun: the user or the
        # scheduler wants it gone, not the next job started.
        previous = signal.getsignal(exc.signum)
        if exc.signum == signal.SIGUSR2 and callable(previous):
            # submitit's pre-emption/time-limit handler, restored by the trainer: with the
            # checkpoint now written, it requeues this job (same command, so it resumes) and exits.
            previous(exc.signum, None)
        sys.exit(128 + exc.signum)
    except NonFiniteError as exc:
        _fail(str(exc), EXIT_NON_FINITE)
    except OSError as exc:
        # Full disk, unwritable directory: say which file; what is already written stays.
        run_lock.release_all()
        remove_unused_run_dir(run_dir, cfg)
        _fail(_os_error_message(exc), EXIT_USER_ERROR)
    finally:
        run_lock.release_all()  # the next job of a sequential multirun takes its own


def own_snapshot_files(runs) -> list[Path]:
    """The snapshot files a pre-training run writes (fine-tuning writes none)."""
    return [
        snapshot_path(one.snapshot_dir, one.obs_type, one.domain, one.agent.name, seed, frames)
        for seed, one, _ in runs
        if OmegaConf.select(one, "phase") == "pretrain"
        for frames in one.snapshots
    ]


def write_hydra_record(run_dir: Path, cfg: DictConfig) -> None:
    """Hydra's record of the job (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``),
    which the configs tell Hydra not to write itself (``hydra.output_subdir: null``): written here
    once the run lock is held, so a refused second process writes nothing, and atomically, so a
    full disk leaves no empty file."""
    hydra_cfg = HydraConfig.get()
    texts = {
        "config.yaml": OmegaConf.to_yaml(cfg),
        "hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": OmegaConf.to_container(hydra_cfg)})),
        "overrides.yaml": OmegaConf.to_yaml(OmegaConf.create(list(hydra_cfg.overrides.task))),
    }
    for name, text in texts.items():
        atomic_write_text(run_dir / ".hydra" / name, text)


def precheck(script: str, argv: list[str] | None = None) -> None:
    """Called by the entry points before ``hydra.main``: compose the config as Hydra will and run
    :func:`check_before_work`, so that a refused command (unknown agent, preset, launcher or
    task, a bad value, a run that differs from its record) is one line and exit 2 within
    seconds, and a finished run says "already complete" (exit 0), before Hydra creates or
    writes anything in a run directory. Command lines with flags (``-m``, ``--help``, ``--cfg``
    ...) are left to Hydra; the jobs of a multirun run the same checks themselves."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg.startswith("-") for arg in argv):
        return
    script_path = Path(script).resolve()
    try:
        with initialize_config_dir(str(script_path.parent / "configs"), version_base="1.3", job_name=script_path.stem):
            cfg = compose(config_name=script_path.stem, overrides=argv, return_hydra_config=True)
        # announce=False: the job repeats these checks and says what it resumes with.
        run_dir = Path(cfg.hydra.run.dir).absolute()
        done = check_before_work(cfg, run_dir, argv, announce=False)
        if done is None:
            # Before Hydra writes .hydra/ there: a second process on this run stops here.
            check_writable(run_dir, "run directory (run_root)")
            run_lock.acquire_all([directory for _, _, directory in seed_runs(cfg, run_dir)])
    except MissingConfigException as exc:
        _exit_with(_missing_option_message(exc, argv), EXIT_USER_ERROR)
    except (ConfigError, SnapshotError) as exc:
        _exit_with(str(exc), EXIT_USER_ERROR)
    except (HydraException, OmegaConfBaseException) as exc:
        cause = f" ({_one_line(str(exc.__cause__))})" if exc.__cause__ is not None else ""
        _exit_with(_one_line(str(exc)) + cause, EXIT_USER_ERROR)
    except OSError as exc:  # the run lock could not be written (full disk)
        run_lock.release_all()
        remove_unused_run_dir(Path(cfg.hydra.run.dir).absolute(), cfg)
        _exit_with(_os_error_message(exc), EXIT_USER_ERROR)
    if done is not None:
        print(done, flush=True)
        sys.exit(0)


def _exit_with(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _one_line(text: str) -> str:
    # Hydra's and OmegaConf's messages end with details (full_key, object_type) users need not read.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith(("full_key:", "object_type=", "reference_type="))]
    return "; ".join(kept or lines)


def _missing_option_message(exc, argv: list[str]) -> str:
    """``agent=cicc`` -> "agent='cicc' is not valid; choose one of: apt, cic, ..." (Hydra's own text
    spans many lines with its search path)."""
    missing = str(exc.missing_cfg_file or "")
    group, _, name = missing.rpartition("/")
    options = sorted(exc.options or [])
    if not group or not options:
        return _one_line(str(exc))
    return f"{group}={name!r} is not valid (no config {missing}.yaml); choose one of: {', '.join(options)}"


def parallel_jobs() -> int:
    """How many runs of this sweep execute at once on this machine (joblib launcher's n_jobs)."""
    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN:
        return 1
    per_run_cpus = OmegaConf.select(hydra, "launcher.ray.remote.num_cpus")
    if isinstance(per_run_cpus, int) and per_run_cpus > 0:
        # Ray runs as many tasks at once on a node as its CPUs hold num_cpus, and does not pin them.
        return max(1, len(os.sched_getaffinity(0)) // per_run_cpus)
    n_jobs = OmegaConf.select(hydra, "launcher.n_jobs")
    if not isinstance(n_jobs, int) or "joblib" not in str(OmegaConf.select(hydra, "launcher._target_")):
        return 1  # basic launcher: one job at a time; cluster launchers: one job per allocation
    # joblib: -1 means every core, -2 all but one, and so on.
    return max(1, (os.cpu_count() or 1) + 1 + n_jobs) if n_jobs < 0 else n_jobs


def set_threads(spec) -> None:
    threads = resolve_threads(spec, parallel_jobs(), len(os.sched_getaffinity(0)))
    if threads is not None:
        torch.set_num_threads(threads)
        print(f"torch threads: {threads}", flush=True)


def check_writable(directory: Path, what: str) -> None:
    """Fail before any work if ``directory`` cannot be created or written to."""
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what}={directory} cannot be created: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}={directory} cannot be created: {existing} is not writable")


class CheckOutputDirs(Callback):
    """Hydra callback: check the run/sweep directory is creatable before Hydra creates it, so
    an unwritable location is one message (exit 2), not a traceback from Hydra's internals."""

    def _check(self, directory: str, key: str) -> None:
        try:
            check_writable(Path(directory).absolute(), key)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.run.dir, "run directory (run_root)")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.sweep.dir, "sweep directory (run_root)")


def remove_unused_run_dir(run_dir: Path, cfg: DictConfig) -> None:
    """A refused command leaves no run directory: remove ``run_dir`` when it holds nothing but
    what Hydra put there (``.hydra/``, empty log files), and the empty directories above it up
    to ``run_root``. A directory with anything else in it is kept as it is."""
    if not run_dir.is_dir():
        return
    for entry in run_dir.iterdir():
        if entry.name == ".hydra" or (entry.suffix == ".log" and entry.is_file() and entry.stat().st_size == 0):
            continue
        return
    shutil.rmtree(run_dir)
    root = Path(to_absolute_path(str(cfg.run_root)))
    parent = run_dir.absolute().parent
    while parent != root.parent and root in (parent, *parent.parents) and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
