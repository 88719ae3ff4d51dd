"""The cluster launchers for real, on this machine.

- submitit (the SLURM launcher's job handling) through its local executor, preset
  ``hydra/launcher=slurm_local``: a two-job sweep where one job is sent SIGUSR2 (what SLURM sends
  before a time limit or pre-emption) and is requeued by submitit and resumes from its
  checkpoint, and the other is sent SIGTERM, stops with a checkpoint, and resumes when the same
  sweep is submitted again (on SLURM the scheduler's requeue does that); no row lost or repeated.
- Ray through hydra-ray-launcher (``hydra/launcher=ray``): a Ray head started on 127.0.0.1 by
  the test, a two-job sweep that writes its runs, the head stopped by the test.

Both launches are marked ``slow`` (one to two minutes each on 2 cores) and deselected by the
default command; run them with ``python -m pytest -q -m slow tests/test_launchers.py``. The
fast tests check the signal hand-over to submitit and the thread split under Ray in-process.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO
from conftest import TINY as SHARED_TINY
from omegaconf import OmegaConf

TINY = [*SHARED_TINY, "agent=rnd", "domain=jaco"]
FRAMES = 1000  # jaco episodes are 250 steps: four episodes, evaluations at 0, 500, 1000
KILL_SETTINGS = [
    *TINY,
    f"num_train_frames={FRAMES}",
    "num_seed_frames=250",
    "eval_every_frames=500",
    f"snapshots=[{FRAMES}]",
    "checkpoint_every_frames=250",
]


# --------------------------------------------------------------------------- helpers


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, MUJOCO_GL="egl", OMP_NUM_THREADS="1", **extra)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def explain(proc) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV that another process may be appending to; a half-written last line is dropped."""
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (FileNotFoundError, csv.Error):
        return []
    good = []
    for row in rows:
        try:
            float(row["frame"])
        except (TypeError, ValueError, KeyError):
            break
        good.append(row)
    return good


def frames_of(rows: list[dict[str, str]]) -> list[int]:
    return [int(float(r["frame"])) for r in rows]


def run_dir(run_root: Path, seed: int) -> Path:
    return run_root / "quick" / "pretrain" / "states" / "jaco" / "rnd" / f"seed_{seed}"


def checkpoint_frame(directory: Path) -> int:
    from urlb.runs.snapshots import read_torch_file

    return int(read_torch_file(directory / "checkpoint.pt", "checkpoint")["metadata"]["frame"])


def check_seamless(directory: Path, rows_before_stop: list[dict[str, str]]) -> None:
    """A finished run after a stop and a resume: every row seen before the stop is still there,
    unchanged; train.csv frames strictly increase (nothing written twice); one evaluation per
    500 frames; the replay buffer kept growing across the restart; the final checkpoint."""
    evals = frames_of(read_rows(directory / "eval.csv"))
    assert evals == list(range(0, FRAMES + 1, 500)), evals
    rows = read_rows(directory / "train.csv")
    frames = frames_of(rows)
    assert all(a < b for a, b in zip(frames, frames[1:])), frames
    assert rows[: len(rows_before_stop)] == rows_before_stop, (rows_before_stop, rows)
    sizes = [int(float(r["buffer_size"])) for r in rows]
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes
    assert checkpoint_frame(directory) == FRAMES


# --------------------------------------------------------------------------- fast: the hooks


@pytest.fixture
def run_phase_stub(monkeypatch, tmp_path):
    """urlb.runs.launch.run_phase with the Trainer replaced by one that raises RunInterrupted(signum),
    as the real Trainer does after writing its checkpoint."""
    import urlb.runs.launch as run
    from urlb.trainer import RunInterrupted

    def make(signum: int):
        class StoppedTrainer:
            def __init__(self, cfg, run_dir, snapshot_hooks=(), per_seed=None):
                pass

            def train(self):
                raise RunInterrupted(signum)

        monkeypatch.setattr(run, "Trainer", StoppedTrainer)
        monkeypatch.setattr(run, "validate", lambda cfg: None)
        monkeypatch.setattr(run, "set_threads", lambda spec: None)
        monkeypatch.setattr(
            run.HydraConfig,
            "get",
            staticmethod(
                lambda: OmegaConf.create({"runtime": {"output_dir": str(tmp_path)}, "overrides": {"task": []}})
            ),
        )
        cfg = OmegaConf.create({"snapshot_dir": str(tmp_path / "models"), "threads": "auto", "seed": 1})
        return lambda: run.run_phase(cfg)

    return make


@pytest.fixture
def handlers():
    """Restore SIGUSR2/SIGTERM handlers after a test installs fake ones."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR2, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class Requeue(Exception):
    """What the fake submitit handler raises (the real one exits with the requeue code)."""


def test_sigusr2_after_checkpoint_is_handed_to_submitits_handler(run_phase_stub, handlers):
    calls = []

    def submitit_like(signum, frame):
        calls.append(signum)
        raise Requeue

    signal.signal(signal.SIGUSR2, submitit_like)
    with pytest.raises(Requeue):
        run_phase_stub(signal.SIGUSR2)()
    assert calls == [signal.SIGUSR2]


def test_sigusr2_without_a_python_handler_exits_140(run_phase_stub, handlers):
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    with pytest.raises(SystemExit) as exc:
        run_phase_stub(signal.SIGUSR2)()
    assert exc.value.code == 128 + signal.SIGUSR2 == 140


def test_sigterm_is_not_handed_on_and_exits_143(run_phase_stub, handlers):
    """submitit binds SIGTERM to a handler that only logs; a SIGTERM stop must still exit 143
    (SLURM's requeue after a pre-emption, or the user resubmitting, resumes the run)."""
    calls = []
    signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    with pytest.raises(SystemExit) as exc:
        run_phase_stub(signal.SIGTERM)()
    assert exc.value.code == 143 and calls == []


def test_trainer_stops_on_sigusr2_with_a_checkpoint_and_restores_the_handler(tmp_path, monkeypatch, handlers):
    """In-process, tiny: SIGUSR2 delivered during the evaluation at frame 500 stops the run at
    that step boundary with checkpoint.pt at frame 500, and the handler installed before
    training (submitit's, in a submitit job) is back in place afterwards."""
    import torch
    from hydra import compose, initialize_config_dir

    import urlb.runs.config  # noqa: F401  (registers the resolvers)
    from urlb.trainer import RunInterrupted, Trainer

    monkeypatch.setenv("MUJOCO_GL", "egl")

    def before(signum, frame):  # stands for submitit's handler; must not run during training
        raise AssertionError("the previous SIGUSR2 handler ran during training")

    signal.signal(signal.SIGUSR2, before)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
            cfg = compose(
                config_name="pretrain",
                overrides=[*KILL_SETTINGS, f"run_root={tmp_path / 'runs'}", f"snapshot_dir={tmp_path / 'models'}"],
            )
        real_evaluate = Trainer.evaluate

        def evaluate_then_signal(self):
            real_evaluate(self)
            if self.global_frame == 500:
                os.kill(os.getpid(), signal.SIGUSR2)

        monkeypatch.setattr(Trainer, "evaluate", evaluate_then_signal)
        with pytest.raises(RunInterrupted) as exc:
            Trainer(cfg, tmp_path / "run").train()
    finally:
        torch.set_num_threads(threads)
    assert exc.value.signum == signal.SIGUSR2
    assert checkpoint_frame(tmp_path / "run") == 500
    assert signal.getsignal(signal.SIGUSR2) is before


@pytest.mark.parametrize("num_cpus, cores, expected_parallel", [(1, 2, 2), (8, 64, 8), (8, 2, 1), (3, 8, 2)])
def test_ray_runs_at_once_follow_num_cpus(monkeypatch, num_cpus, cores, expected_parallel):
    """Under the Ray launcher, threads=auto splits a node's cores by the runs that fit on it
    (cores // num_cpus), so each run gets num_cpus threads instead of every core."""
    from hydra.types import RunMode

    import urlb.runs.launch as run
    from urlb.runs.config import resolve_threads

    hydra = OmegaConf.create(
        {
            "mode": RunMode.MULTIRUN,
            "launcher": {
                "_target_": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher",
                "ray": {"remote": {"num_cpus": num_cpus}},
            },
        }
    )
    monkeypatch.setattr(run.HydraConfig, "get", staticmethod(lambda: hydra))
    monkeypatch.setattr(run.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert run.parallel_jobs() == expected_parallel
    threads = resolve_threads("auto", expected_parallel, cores)
    assert threads == (None if expected_parallel == 1 else cores // expected_parallel)


def compose_hydra(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    import urlb.runs.config  # noqa: F401

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose(config_name="pretrain", overrides=overrides, return_hydra_config=True).hydra


def test_slurm_local_preset_composes_to_submitits_local_launcher():
    launcher = compose_hydra(["hydra/launcher=slurm_local"]).launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    assert launcher.gpus_per_node == 0 and launcher.tasks_per_node == 1 and launcher.timeout_min == 2880


def test_ray_preset_starts_its_own_loopback_instance_and_passes_no_object_store_memory():
    hydra = compose_hydra(["hydra/launcher=ray"])
    init = hydra.launcher.ray.init
    assert init.address is None and "object_store_memory" in init and init.object_store_memory is None
    assert hydra.callbacks.ray_guard._target_ == "urlb.runs.ray_guard.RayGuard"


# --------------------------------------------------------------------------- slow: submitit


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def submitit_job_id(directory: Path) -> int | None:
    """The submitit job id Hydra records for a job: with the local executor, the pid of the
    job's controller process (its child is the task running pretrain.py's job)."""
    try:
        return int(yaml.safe_load((directory / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["id"])
    except (FileNotFoundError, TypeError, KeyError, ValueError, yaml.YAMLError):
        return None


def sweep_command(run_root: Path, models: Path) -> list[str]:
    return [
        sys.executable,
        "pretrain.py",
        "-m",
        "hydra/launcher=slurm_local",
        "seed=1,2",
        *KILL_SETTINGS,
        f"run_root={run_root}",
        f"snapshot_dir={models}",
    ]


@pytest.mark.slow
def test_submitit_local_sweep_requeues_on_sigusr2_and_resumes_after_sigterm(tmp_path):
    runs, models = tmp_path / "runs", tmp_path / "models"
    cmd = sweep_command(runs, models)
    proc = subprocess.Popen(cmd, cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    plan = {1: signal.SIGUSR2, 2: signal.SIGTERM}  # seed -> the signal its job receives
    before: dict[int, list[dict[str, str]]] = {}
    job_ids: dict[int, int] = {}
    try:
        deadline = time.time() + 240
        while len(before) < len(plan) and time.time() < deadline and proc.poll() is None:
            for seed, signum in plan.items():
                directory = run_dir(runs, seed)
                rows = read_rows(directory / "train.csv")
                job_id = submitit_job_id(directory)
                if seed in before or job_id is None or not rows or frames_of(rows)[-1] < 500:
                    continue
                if not (directory / "checkpoint.pt").is_file():
                    continue
                tasks = children(job_id)
                assert len(tasks) == 1, (seed, job_id, tasks)
                # SIGUSR2 to the task (SLURM signals the job step); SIGTERM to the controller,
                # which forwards it to its task as SLURM's pre-emption reaches every process.
                os.kill(tasks[0] if signum == signal.SIGUSR2 else job_id, signum)
                before[seed], job_ids[seed] = rows, job_id
            time.sleep(0.05)
        assert len(before) == len(plan), f"not both jobs could be signalled mid-run: {sorted(before)}"
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    first = subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    # The SIGTERM job stopped with a checkpoint and was not requeued: the sweep reports it.
    assert first.returncode == 1, explain(first)
    assert f"Job {job_ids[2]} (task: 0)" in first.stderr and "has not produced any output" in first.stderr
    submitit_dir = runs / "quick" / "pretrain" / ".submitit"
    log2 = (submitit_dir / str(job_ids[2]) / f"{job_ids[2]}_0_log.out").read_text()
    stopped2 = checkpoint_frame(run_dir(runs, 2))
    assert f"stopped by signal {int(signal.SIGTERM)} at frame {stopped2}" in log2, log2
    assert 500 <= stopped2 < FRAMES

    # The SIGUSR2 job wrote its checkpoint, was requeued by submitit and finished in this sweep.
    log1 = (submitit_dir / str(job_ids[1]) / f"{job_ids[1]}_0_log.out").read_text()
    marker = f"stopped by signal {int(signal.SIGUSR2)} at frame "
    assert marker in log1, log1
    stopped1 = int(log1.split(marker)[1].split(";")[0])
    assert 500 <= stopped1 < FRAMES
    assert "Requeued job" in log1 and f"at frame {stopped1}" in log1[log1.index("Requeued job") :], log1
    assert log1.count("Starting with JobEnvironment") == 2, log1
    check_seamless(run_dir(runs, 1), before[1])
    finished1 = {name: (run_dir(runs, 1) / name).read_bytes() for name in ("train.csv", "eval.csv")}

    # Submitting the same sweep again (what SLURM's requeue does after a SIGTERM pre-emption)
    # resumes the stopped job and leaves the finished one as it was.
    again = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, explain(again)
    check_seamless(run_dir(runs, 2), before[2])
    assert {name: (run_dir(runs, 1) / name).read_bytes() for name in finished1} == finished1
    for seed in (1, 2):
        assert (models / "states" / "jaco" / "rnd" / str(seed) / f"snapshot_{FRAMES}.pt").is_file()


# --------------------------------------------------------------------------- slow: Ray


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RAY_MISSING = (
    importlib.util.find_spec("ray") is None or importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None
)


RAY_SWEEP = [
    *TINY,
    "seed=1,2",
    "num_train_frames=500",
    "num_seed_frames=250",
    "eval_every_frames=250",
    "snapshots=[500]",
    "hydra.launcher.ray.remote.num_gpus=0",
    "hydra.launcher.ray.remote.num_cpus=1",
]


def ray_sweep(tmp_path: Path, *extra: str) -> list[str]:
    """The command of a two-run Ray sweep writing under ``tmp_path``."""
    return [
        sys.executable,
        "pretrain.py",
        "-m",
        "hydra/launcher=ray",
        *extra,
        *RAY_SWEEP,
        f"run_root={tmp_path / 'runs'}",
        f"snapshot_dir={tmp_path / 'models'}",
    ]


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head on 127.0.0.1 (2 CPUs, no dashboard), started here and stopped afterwards:
    `ray start --block` in its own process group, stopped with SIGTERM (Ray drains and shuts
    its processes down), SIGKILL to the group if anything is left after 60 s."""
    port = free_port()
    # Without this Ray replaces 127.0.0.1 by the machine's network address.
    env = child_env(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled")
    log = (tmp_path / "ray_head.log").open("w")
    head = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while "Ray runtime started" not in (tmp_path / "ray_head.log").read_text():
            assert head.poll() is None and time.time() < deadline, (tmp_path / "ray_head.log").read_text()
            time.sleep(0.5)
        yield SimpleNamespace(address=f"127.0.0.1:{port}", env=env)
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # whatever is left of the head's own processes
        except ProcessLookupError:
            pass
        head.wait()
        log.close()
        # A head stopped by a signal leaves its address where `address=auto` reads it.
        record = Path("/tmp/ray/ray_current_cluster")
        if record.is_file() and record.read_text().strip() == f"127.0.0.1:{port}":
            record.unlink()


@pytest.mark.slow
@pytest.mark.skipif(RAY_MISSING, reason="ray and hydra-ray-launcher are not installed: pip install -e '.[ray]'")
def test_ray_launcher_sweep_on_a_local_head(tmp_path, ray_head):
    runs, models = tmp_path / "runs", tmp_path / "models"
    cmd = ray_sweep(tmp_path, f"hydra.launcher.ray.init.address={ray_head.address}")
    proc = subprocess.run(cmd, cwd=REPO, env=ray_head.env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout + proc.stderr
    assert (
        "Ray Launcher is launching 2 jobs" in out
        and f"Connecting to existing Ray cluster at address: {ray_head.address}" in out
    ), explain(proc)
    # Each job ran as a Ray task (worker output is prefixed with the task) with one torch thread:
    # 2 cores // num_cpus=1 -> two runs at once.
    assert "(_run_job pid=" in out and "torch threads: 1" in out, explain(proc)
    for seed in (1, 2):
        directory = run_dir(runs, seed)
        assert frames_of(read_rows(directory / "eval.csv")) == [0, 250, 500]
        assert frames_of(read_rows(directory / "train.csv")) == [250, 500]  # the last episode has its row
        assert checkpoint_frame(directory) == 500
        assert (models / "states" / "jaco" / "rnd" / str(seed) / "snapshot_500.pt").is_file()


def listening() -> list[tuple[str, str]]:
    """(local address, process) of every listening TCP socket (``ss -ltnp``)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    return [
        (line.split()[3], line.split()[-1] if "users:" in line else "") for line in out.splitlines() if line.strip()
    ]


@pytest.mark.slow
@pytest.mark.skipif(RAY_MISSING, reason="ray and hydra-ray-launcher are not installed: pip install -e '.[ray]'")
def test_ray_preset_sweep_listens_on_loopback_only_and_leaves_nothing(tmp_path):
    runs = tmp_path / "runs"
    cmd = ray_sweep(tmp_path)
    proc = subprocess.Popen(cmd, cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: dict[str, str] = {}
    try:
        while proc.poll() is None:
            for address, process in listening():
                if any(name in process for name in ("raylet", "gcs_server", "ray::", f"pid={proc.pid},")):
                    seen[address] = process
            time.sleep(0.2)
        out = proc.communicate()[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out[-4000:]
    assert any("raylet" in p for p in seen.values()) and any("gcs_server" in p for p in seen.values()), seen
    outside = {a: p for a, p in seen.items() if not a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:"))}
    assert not outside, outside
    pids = {int(part.split("=")[1]) for p in seen.values() for part in p.replace(")", ",").split(",") if "pid=" in part}
    deadline = time.time() + 180  # idle workers exit on their own once the raylet is gone
    while [pid for pid in pids if Path(f"/proc/{pid}").exists()] and time.time() < deadline:
        time.sleep(0.5)
    assert pids and not [pid for pid in pids if Path(f"/proc/{pid}").exists()], pids  # nothing left running
    for seed in (1, 2):
        assert frames_of(read_rows(run_dir(runs, seed) / "eval.csv")) == [0, 250, 500]


@pytest.mark.slow
@pytest.mark.skipif(RAY_MISSING, reason="ray and hydra-ray-launcher are not installed: pip install -e '.[ray]'")
@pytest.mark.parametrize("how", ["stale_record", "named_address"])
def test_ray_sweep_whose_head_is_gone_fails_in_one_line(tmp_path, how):
    """A head stopped by a signal leaves its address behind (address=auto reads it); a named head
    may be gone too. Ray alone retries such a head forever: here the sweep fails at once."""
    port = free_port()  # nothing listens there
    env = child_env(RAY_TMPDIR=str(tmp_path))
    if how == "stale_record":
        (tmp_path / "ray").mkdir()
        (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
        address = "auto"
    else:
        address = f"127.0.0.1:{port}"
    cmd = ray_sweep(tmp_path, f"hydra.launcher.ray.init.address={address}")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)  # a hang fails here
    assert proc.returncode == 2, explain(proc)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"no Ray head answers at 127.0.0.1:{port}" in errors[0], explain(proc)
    assert "ray start --head" in errors[0] and "Traceback" not in proc.stderr, explain(proc)
    assert not (tmp_path / "runs" / "quick" / "pretrain" / "states").exists()
