"""Scale: Hydra multirun sweeps through the launcher presets, kill/resume of a run with real
signals, and the cluster launcher configs (submitit/SLURM, Ray) composing without launching.

Every run is a subprocess of pretrain.py / finetune.py (cwd = repo root, MUJOCO_GL=egl,
OMP_NUM_THREADS=1) on jaco, whose episodes are 250 steps, with tiny networks.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, TINY, child_env, jaco_stop_run

from urlb.agents import agent_names
from urlb.runs.config import ConfigError, resolve_threads
from urlb.runs.snapshots import read_torch_file, snapshot_path
from urlb.tasks import ALL_TASKS, DOMAINS
from urlb.tools.aggregate.stats import method_name

pytestmark = pytest.mark.pipeline


# --------------------------------------------------------------------------- helpers


def command(script: str, *overrides: str) -> list[str]:
    return [sys.executable, script, *overrides]


def run(script: str, *overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(script, *overrides), cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=timeout
    )


def run_parallel(calls: list[tuple[str, ...]], workers: int = 2) -> list[subprocess.CompletedProcess]:
    """Run several (script, *overrides) commands two at a time (the machine has 2 cores)."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda call: run(*call), calls))


def explain(proc) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def frames_of(rows: list[dict[str, str]]) -> list[int]:
    return [int(float(r["frame"])) for r in rows]


def pretrain_dir(run_root: Path, domain: str, agent: str, seed: int = 1) -> Path:
    return run_root / "quick" / "pretrain" / "states" / domain / agent / f"seed_{seed}"


def finetune_dir(run_root: Path, task: str, agent: str, snapshot_ts: int, seed: int = 1) -> Path:
    return run_root / "quick" / "finetune" / "states" / task / agent / f"snapshot_{snapshot_ts}" / f"seed_{seed}"


# --------------------------------------------------------------------------- 1. multirun sweeps

SWEEP_FRAMES = 500
SWEEP_AGENTS = ("rnd", "diayn")
SWEEP_TASK = "jaco_reach_top_left"
SWEEP_SETTINGS = [*TINY, f"num_train_frames={SWEEP_FRAMES}", "num_seed_frames=250", "eval_every_frames=250"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict:
    """A pre-training multirun (2 agents, 2 joblib processes), then a fine-tuning multirun
    whose jobs each load the snapshot their pre-training job wrote."""
    work = tmp_path_factory.mktemp("sweep")
    paths = [f"run_root={work / 'runs'}", f"snapshot_dir={work / 'models'}"]
    pre = run(
        "pretrain.py",
        "-m",
        "hydra/launcher=local",
        "hydra.launcher.n_jobs=2",
        f"agent={','.join(SWEEP_AGENTS)}",
        "domain=jaco",
        *SWEEP_SETTINGS,
        f"snapshots=[{SWEEP_FRAMES}]",
        *paths,
    )
    fine = None
    if pre.returncode == 0:
        fine = run(
            "finetune.py",
            "-m",
            "hydra/launcher=local",
            f"agent={','.join(SWEEP_AGENTS)}",
            f"task={SWEEP_TASK}",
            f"snapshot_ts={SWEEP_FRAMES}",
            *SWEEP_SETTINGS,
            *paths,
        )
    return {"work": work, "runs": work / "runs", "models": work / "models", "pre": pre, "fine": fine}


def test_pretrain_multirun_every_job_writes_its_outputs(sweep):
    assert sweep["pre"].returncode == 0, explain(sweep["pre"])
    for agent in SWEEP_AGENTS:
        run_dir = pretrain_dir(sweep["runs"], "jaco", agent)
        assert (run_dir / "config.yaml").is_file(), run_dir
        assert frames_of(read_rows(run_dir / "eval.csv")) == [0, 250, 500]
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert cfg["agent"]["name"] == agent and cfg["domain"] == "jaco" and cfg["phase"] == "pretrain"
        snap = snapshot_path(sweep["models"], "states", "jaco", agent, 1, SWEEP_FRAMES)
        data = read_torch_file(snap, "snapshot")
        assert data["metadata"]["agent"] == agent and data["metadata"]["frames"] == SWEEP_FRAMES


def test_parallel_joblib_jobs_share_the_cores_instead_of_oversubscribing(sweep):
    assert sweep["pre"].returncode == 0, explain(sweep["pre"])
    expected = max(1, len(os.sched_getaffinity(0)) // 2)  # 2 jobs at once
    assert (sweep["pre"].stdout + sweep["pre"].stderr).count(f"torch threads: {expected}\n") == len(SWEEP_AGENTS)


@pytest.mark.parametrize(
    "spec,jobs,cores,expected",
    [("auto", 1, 2, None), ("auto", 2, 2, 1), ("auto", 3, 8, 2), ("auto", 16, 8, 1), (3, 2, 2, 3)],
)
def test_resolve_threads(spec, jobs, cores, expected):
    assert resolve_threads(spec, jobs, cores) == expected


@pytest.mark.parametrize("spec", [0, -1, "many", True, 1.5])
def test_bad_threads_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="threads="):
        resolve_threads(spec, 1, 2)


def test_finetune_multirun_loads_each_jobs_snapshot(sweep):
    assert sweep["pre"].returncode == 0, explain(sweep["pre"])
    fine = sweep["fine"]
    assert fine.returncode == 0, explain(fine)
    for agent in SWEEP_AGENTS:
        snap = snapshot_path(sweep["models"], "states", "jaco", agent, 1, SWEEP_FRAMES)
        # joblib workers' stdout reaches the parent: one 'loaded snapshot' line per job.
        assert f"loaded snapshot {snap}" in fine.stdout + fine.stderr, explain(fine)
        run_dir = finetune_dir(sweep["runs"], SWEEP_TASK, agent, SWEEP_FRAMES)
        assert (run_dir / "config.yaml").is_file(), run_dir
        assert frames_of(read_rows(run_dir / "eval.csv")) == [0, 250, 500]
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert (cfg["agent"]["name"], cfg["task"], cfg["snapshot_ts"]) == (agent, SWEEP_TASK, SWEEP_FRAMES)


def aggregate(sweep) -> tuple[subprocess.CompletedProcess, Path]:
    out = sweep["work"] / "agg"
    if "agg" not in sweep:
        sweep["agg"] = subprocess.run(
            [sys.executable, "-m", "urlb.tools.aggregate", str(sweep["runs"]), "--out", str(out), "--reps", "20"],
            cwd=REPO,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    return sweep["agg"], out


def test_aggregate_reads_sweep_root_per_task_table(sweep):
    assert sweep["fine"] is not None and sweep["fine"].returncode == 0, "the sweep did not run"
    proc, out = aggregate(sweep)
    assert "Traceback" not in proc.stderr, explain(proc)
    # The per-task table is written before the rliable aggregates (see the next test).
    assert (out / "per_task.csv").is_file(), explain(proc)
    with (out / "per_task.csv").open(newline="") as f:
        rows = {r["task"]: r for r in csv.DictReader(f)}
    row = rows[SWEEP_TASK]
    for agent in map(method_name, SWEEP_AGENTS):  # tables name methods as the published table does
        assert float(row[f"{agent}:n"]) == 1.0, row  # one seed of each agent
        assert row[f"{agent}:return_mean"] != "", row
    assert all(method_name(a) in (out / "per_task.md").read_text() for a in SWEEP_AGENTS)
    # The two pre-training runs of the sweep root are recognised and ignored, not errors.
    assert "2 used" in proc.stdout and "2 ignored" in proc.stdout, explain(proc)


def test_aggregate_of_sweep_root_completes(sweep):
    # The whole command must succeed: exit 0 and the rliable aggregate table.
    assert sweep["fine"] is not None and sweep["fine"].returncode == 0, "the sweep did not run"
    proc, out = aggregate(sweep)
    assert proc.returncode == 0, explain(proc)
    assert (out / "aggregate.csv").is_file()
    text = (out / "aggregate.csv").read_text()
    assert all(agent in text for agent in SWEEP_AGENTS)


@pytest.mark.slow  # a whole sweep of runs
def test_one_failing_job_does_not_abort_the_other_jobs_of_a_sweep(sweep):
    # agent=apt has no snapshot: that job must fail with its clear message, while the rnd job
    # running next to it in the joblib pool completes; the multirun as a whole exits non-zero.
    assert sweep["pre"].returncode == 0, explain(sweep["pre"])
    runs = sweep["work"] / "runs_partial"
    proc = run(
        "finetune.py",
        "-m",
        "hydra/launcher=local",
        "agent=rnd,apt",
        f"task={SWEEP_TASK}",
        f"snapshot_ts={SWEEP_FRAMES}",
        *SWEEP_SETTINGS,
        f"run_root={runs}",
        f"snapshot_dir={sweep['models']}",
    )
    assert proc.returncode != 0, explain(proc)
    missing = snapshot_path(sweep["models"], "states", "jaco", "apt", 1, SWEEP_FRAMES)
    assert f"no snapshot at {missing}" in proc.stderr, explain(proc)
    healthy = finetune_dir(runs, SWEEP_TASK, "rnd", SWEEP_FRAMES)
    assert (healthy / "eval.csv").is_file(), explain(proc)
    assert frames_of(read_rows(healthy / "eval.csv")) == [0, 250, 500], explain(proc)


# --------------------------------------------------------------------------- 2. kill / resume

KILL_FRAMES = 2000
SNAPSHOTS = (1000, 2000)
KILL_SETTINGS = [
    *TINY,
    "agent=rnd",
    "domain=jaco",
    f"num_train_frames={KILL_FRAMES}",
    "num_seed_frames=500",
    f"snapshots=[{SNAPSHOTS[0]},{SNAPSHOTS[1]}]",
    "eval_every_frames=500",
    "checkpoint_every_frames=250",
]


def read_rows_while_running(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV another process appends to; a half-written last line is dropped."""
    try:
        rows = read_rows(path)
    except (FileNotFoundError, csv.Error):
        return []
    good = []
    for r in rows:
        try:
            float(r["frame"])
            good.append(r)
        except (TypeError, ValueError, KeyError):
            break
    return good


def start_and_interrupt(
    work: Path, signum: int, past_frame: int, *extra: str
) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Start the tiny pre-training run (seed 1), wait until train.csv shows a row past
    ``past_frame`` (a periodic checkpoint has been written by then), send ``signum``, wait for
    the exit. ``extra`` arguments go first on the command line (e.g. ``-m``)."""
    cmd = command("pretrain.py", *extra, *KILL_SETTINGS, f"run_root={work / 'runs'}", f"snapshot_dir={work / 'models'}")
    run_dir = pretrain_dir(work / "runs", "jaco", "rnd")
    proc = subprocess.Popen(cmd, cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            rows = read_rows_while_running(run_dir / "train.csv")
            if rows and frames_of(rows)[-1] >= past_frame and (run_dir / "checkpoint.pt").is_file():
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), cmd


def checkpoint_frame(run_dir: Path) -> int:
    return int(read_torch_file(run_dir / "checkpoint.pt", "checkpoint")["metadata"]["frame"])


def check_resumed_run(work: Path, cmd: list[str], stopped_at: int) -> None:
    """Restart with the same command and check the finished run is seamless."""
    run_dir = pretrain_dir(work / "runs", "jaco", "rnd")
    proc = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, explain(proc)
    assert f"at frame {stopped_at}" in proc.stdout, explain(proc)  # "resuming from ... at frame N"

    evals = frames_of(read_rows(run_dir / "eval.csv"))
    assert evals == list(range(0, KILL_FRAMES + 1, 500)), evals  # one row per evaluation frame

    rows = read_rows(run_dir / "train.csv")
    frames = frames_of(rows)
    assert all(a < b for a, b in zip(frames, frames[1:])), frames  # strictly increasing, no duplicates
    assert frames[-1] > stopped_at
    assert checkpoint_frame(run_dir) == KILL_FRAMES  # the final frame reached

    for frames_at in SNAPSHOTS:
        snap = snapshot_path(work / "models", "states", "jaco", "rnd", 1, frames_at)
        assert read_torch_file(snap, "snapshot")["metadata"]["frames"] == frames_at

    # The replay buffer continues where it stopped: it is never reset by the restart.
    sizes = [int(float(r["buffer_size"])) for r in rows]
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes
    first_after = next(i for i, f in enumerate(frames) if f > stopped_at)
    assert sizes[first_after] > frames[first_after] - stopped_at, (frames, sizes)
    assert sizes[first_after] > stopped_at


def test_sigterm_saves_checkpoint_exits_143_and_resumes(tmp_path):
    proc, cmd = start_and_interrupt(tmp_path, signal.SIGTERM, past_frame=750)
    assert proc.returncode == 128 + signal.SIGTERM == 143, explain(proc)
    assert "Traceback" not in proc.stderr, explain(proc)
    run_dir = pretrain_dir(tmp_path / "runs", "jaco", "rnd")
    stopped = checkpoint_frame(run_dir)
    # The checkpoint was written at the moment of the stop, not only the last periodic one.
    assert f"stopped by signal {int(signal.SIGTERM)} at frame {stopped}" in proc.stdout, explain(proc)
    assert 750 <= stopped < KILL_FRAMES
    check_resumed_run(tmp_path, cmd, stopped)


@pytest.mark.slow  # a whole sweep; one run stopped by SIGTERM is tested by default
def test_sigterm_stops_a_whole_sequential_multirun(tmp_path):
    """Hydra's basic launcher runs a sweep's jobs one after another in one process: a stop
    signal must end that process, not only the current job (the next seed must not start)."""
    proc, _ = start_and_interrupt(tmp_path, signal.SIGTERM, 750, "-m", "seed=1,2")
    assert proc.returncode == 143, explain(proc)
    assert (pretrain_dir(tmp_path / "runs", "jaco", "rnd") / "checkpoint.pt").is_file()
    assert not pretrain_dir(tmp_path / "runs", "jaco", "rnd", seed=2).exists(), explain(proc)


@pytest.mark.slow  # tests/test_faults.py kills runs at random frames and inside checkpoint writes by default
def test_sigkill_resumes_from_last_periodic_checkpoint(tmp_path):
    proc, cmd = start_and_interrupt(tmp_path, signal.SIGKILL, past_frame=1000)
    assert proc.returncode == -signal.SIGKILL, explain(proc)
    run_dir = pretrain_dir(tmp_path / "runs", "jaco", "rnd")
    stopped = checkpoint_frame(run_dir)
    assert stopped >= 750 and stopped % 250 == 0, stopped  # periodic checkpoints are at episode ends
    # Rows logged after that checkpoint (if any) exist now and must not be duplicated on resume.
    check_resumed_run(tmp_path, cmd, stopped)


def test_stop_signal_at_an_episode_end_keeps_that_episode(tmp_path, monkeypatch):
    """In-process: a real SIGTERM delivered during the evaluation at frame 500, which is also the
    end of the second jaco episode. The resumed run must still log that episode (train.csv row at
    frame 500, episode 2) and count episodes like an uninterrupted run."""
    from hydra import compose, initialize_config_dir

    import urlb.runs.config  # noqa: F401  (registers the resolvers)
    from urlb.trainer import RunInterrupted, Trainer

    monkeypatch.setenv("MUJOCO_GL", "egl")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks on a busy 2-core machine
    try:
        with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
            cfg = compose(config_name="pretrain", overrides=jaco_stop_run(tmp_path))
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        real_evaluate = Trainer.evaluate

        def evaluate_then_signal(self):
            real_evaluate(self)
            if self.global_frame == 500:
                os.kill(os.getpid(), signal.SIGTERM)  # handled by the Trainer's handler

        monkeypatch.setattr(Trainer, "evaluate", evaluate_then_signal)
        with pytest.raises(RunInterrupted):
            Trainer(cfg, run_dir).train()
        monkeypatch.setattr(Trainer, "evaluate", real_evaluate)
        resumed = Trainer(cfg, run_dir)
        assert resumed.resumed_at == 500
        resumed.train()
    finally:
        torch.set_num_threads(threads)
    rows = read_rows(run_dir / "train.csv")
    assert frames_of(rows) == [250, 500, 750, 1000], rows  # 1000: the last episode has its row too
    assert [int(r["episode"]) for r in rows] == [1, 2, 3, 4], rows
    assert frames_of(read_rows(run_dir / "eval.csv")) == [0, 500, 1000]


# --------------------------------------------------------------------------- 3. launcher configs


def hydra_cfg(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, explain(proc)
    return yaml.safe_load(proc.stdout)["hydra"]


@pytest.fixture(scope="module")
def composed() -> dict[str, subprocess.CompletedProcess]:
    """`--cfg hydra` through the real command line for each launcher preset, each combined with
    a sweep preset, two processes at a time.

    Nothing is launched here: the ray plugin is an optional extra, so the ray preset is written out
    in full and composes without it; tests/test_launchers.py launches both for real (marked slow)."""
    calls = {
        "slurm": (
            "pretrain.py",
            "hydra/launcher=slurm",
            "hydra.launcher.timeout_min=60",
            "hydra.launcher.partition=gpu",
            "sweep=urlb_pretrain",
            "--cfg",
            "hydra",
        ),
        "ray": (
            "finetune.py",
            "hydra/launcher=ray",
            "hydra.launcher.ray.remote.num_gpus=0",
            "sweep=urlb_finetune",
            "--cfg",
            "hydra",
        ),
        "local": (
            "finetune.py",
            "hydra/launcher=local",
            "hydra.launcher.n_jobs=3",
            "sweep=urlb_ddpg",
            "--cfg",
            "hydra",
        ),
    }
    return dict(zip(calls, run_parallel(list(calls.values()))))


def compose_in_process(config_name: str, overrides: list[str]):
    """The same composition through Hydra's compose API (no subprocess): defaults and resolved values."""
    from hydra import compose, initialize_config_dir

    import urlb.runs.config  # noqa: F401  (registers the resolvers)

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)


def test_slurm_launcher_composes(composed):
    launcher = hydra_cfg(composed["slurm"])["launcher"]
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    for key in ("timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb", "max_num_timeout"):
        assert isinstance(launcher[key], int) and launcher[key] > 0, (key, launcher[key])
    assert launcher["timeout_min"] == 60 and launcher["partition"] == "gpu"  # the overrides applied
    default = compose_in_process("pretrain", ["hydra/launcher=slurm"]).hydra.launcher
    assert default.timeout_min == 2880 and default.max_num_timeout == launcher["max_num_timeout"]
    assert default.partition is None


def test_ray_launcher_preset_composes_without_the_plugin(composed):
    launcher = hydra_cfg(composed["ray"])["launcher"]
    assert launcher["_target_"] == "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    assert launcher["ray"]["remote"]["num_gpus"] == 0  # the override applied
    assert launcher["ray"]["remote"]["max_calls"] == 1 and "init" in launcher["ray"]


def test_local_joblib_launcher_composes(composed):
    launcher = hydra_cfg(composed["local"])["launcher"]
    assert launcher["_target_"] == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert launcher["n_jobs"] == 3 and launcher["backend"] == "loky"


def sweep_params(proc) -> dict[str, list[str]]:
    params = hydra_cfg(proc)["sweeper"]["params"]
    return {k: str(v).split(",") for k, v in params.items()}


def test_finetune_sweep_preset_lists_the_protocol(composed):
    params = sweep_params(composed["ray"])  # finetune.py sweep=urlb_finetune
    assert sorted(params["agent"]) == sorted(set(agent_names()) - {"ddpg"}) and len(params["agent"]) == 12
    assert params["task"] == list(ALL_TASKS) and len(params["task"]) == 12
    assert params["seed"] == ["1", "2", "3"]
    # The snapshots to fine-tune from are exactly those the paper pre-training writes.
    paper = compose_in_process("pretrain", [])
    assert [int(s) for s in params["snapshot_ts"]] == list(paper.snapshots) and len(params["snapshot_ts"]) == 4


def test_pretrain_sweep_presets_list_the_protocol(composed):
    params = sweep_params(composed["slurm"])  # pretrain.py sweep=urlb_pretrain
    assert sorted(params["agent"]) == sorted(set(agent_names()) - {"ddpg"})
    assert params["domain"] == list(DOMAINS)
    assert params["seed"] == ["1", "2", "3"]
    ddpg = sweep_params(composed["local"])  # finetune.py sweep=urlb_ddpg
    assert ddpg["agent"] == ["ddpg"] and ddpg["task"] == list(ALL_TASKS) and ddpg["seed"] == ["1", "2", "3"]


def test_sweep_dirs_are_the_deterministic_run_dirs(composed):
    # Multirun job dirs = {sweep.dir}/{sweep.subdir} must equal the single-run dirs, so that a
    # sweep and a single run of the same job share one run dir (and its checkpoint).
    for key, phase in (("slurm", "pretrain"), ("ray", "finetune")):
        h = hydra_cfg(composed[key])
        assert f"{h['sweep']['dir']}/{h['sweep']['subdir']}" == h["run"]["dir"], h
        assert f"/{phase}/" in h["run"]["dir"]
