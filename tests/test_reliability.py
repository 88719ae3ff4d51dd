"""Reliability: bad input through the real command line, broken or foreign snapshots, numerical
and resource faults, and determinism.

Subprocess runs follow tests/test_pipeline.py (sys.executable, cwd = repo root, MUJOCO_GL=egl,
OMP_NUM_THREADS=1) and use jaco (250-step episodes) with tiny networks. The tests run as root,
so chmod cannot make a directory unwritable: an unwritable location is a path whose parent is a
regular file (mkdir fails with NotADirectoryError whoever runs it).
"""

from __future__ import annotations

import csv
import os
import random
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from urlb.snapshot import read_torch_file, snapshot_path
from urlb.tasks import ALL_TASKS, TASKS
from conftest import parameters_finite

pytestmark = pytest.mark.pipeline

REPO = Path(__file__).resolve().parents[1]
TINY = ["preset=quick", "agent.hidden_dim=32", "batch_size=32", "replay_buffer_size=5000",
        "num_eval_episodes=1", "device=cpu", "use_tb=false"]
JACO_TASK = "jaco_reach_top_left"


# --------------------------------------------------------------------------- helpers


def child_env() -> dict[str, str]:
    env = dict(os.environ, MUJOCO_GL="egl", OMP_NUM_THREADS="1")
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run(script: str, *overrides: str, timeout: float = 300, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``python [prefix...] script overrides...``; later overrides win in Hydra, so the value
    under test goes last."""
    return subprocess.run([sys.executable, *prefix, script, *overrides], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


def explain(proc) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def frames_of(rows) -> list[int]:
    return [int(float(r["frame"])) for r in rows]


def pretrain_dir(run_root: Path, agent: str = "rnd", domain: str = "jaco") -> Path:
    return run_root / "quick" / "pretrain" / "states" / domain / agent / "seed_1"


def assert_no_traceback(proc) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, explain(proc)


# --------------------------------------------------------------------------- 1. bad configs

# (id, script, overrides, expected exit (2, or "hydra" for Hydra's own non-zero exit), texts the
# message must contain: the bad value and the valid choices).
BAD_CONFIGS = [
    ("agent_name", "pretrain.py", ["domain=jaco", "agent.name=foo"], 2,
     ["'foo'", "apt", "cic", "ddpg", "diayn", "metra", "rnd"]),
    ("domain", "pretrain.py", ["domain=foo"], 2, ["'foo'", "walker", "quadruped", "jaco"]),
    ("task", "finetune.py", ["task=foo"], 2, ["'foo'", *ALL_TASKS]),
    ("obs_type", "pretrain.py", ["domain=jaco", "obs_type=foo"], 2, ["'foo'", "states", "pixels"]),
    ("preset", "finetune.py", [f"task={JACO_TASK}", "preset=foo"], "hydra", ["preset/foo", "paper", "quick"]),
    ("launcher", "pretrain.py", ["domain=jaco", "hydra/launcher=foo"], "hydra",
     ["hydra/launcher/foo", "local", "slurm", "ray"]),
    ("task_outside_domain", "finetune.py", ["task=walker_run", "domain=jaco"], 2,
     ["task=walker_run", "walker", "domain=jaco", *TASKS["jaco"]]),
    ("num_train_frames_0", "pretrain.py", ["domain=jaco", "num_train_frames=0"], 2, ["num_train_frames=0", "positive"]),
    ("batch_size_negative", "pretrain.py", ["domain=jaco", "batch_size=-1"], 2, ["batch_size=-1", "positive"]),
    ("eval_every_frames_0", "pretrain.py", ["domain=jaco", "eval_every_frames=0"], 2,
     ["eval_every_frames=0", "positive"]),
    ("seed_frames_exceed_train_frames", "pretrain.py",
     ["domain=jaco", "num_train_frames=1000", "snapshots=[1000]", "num_seed_frames=2000"], 2,
     ["num_seed_frames=2000", "num_train_frames=1000"]),
    ("snapshot_beyond_train_frames", "pretrain.py", ["domain=jaco", "snapshots=[999999]"], 2,
     ["999999", "num_train_frames=20000"]),
    ("device_cuda_unavailable", "pretrain.py", ["domain=jaco", "device=cuda"], 2, ["'cuda'", "device=cpu"]),
    ("device_tpu", "pretrain.py", ["domain=jaco", "device=tpu"], 2, ["'tpu'", "cpu", "cuda"]),
    ("threads_zero", "pretrain.py", ["domain=jaco", "threads=0"], 2, ["threads=0", "auto"]),
    ("compile_backend", "pretrain.py", ["domain=jaco", "compile=fast"], 2, ["compile='fast'", "inductor", "aot_eager"]),
    # Values of the wrong type must be user errors too, not a TypeError traceback.
    ("discount_not_a_number", "pretrain.py", ["domain=jaco", "discount=abc"], 2, ["discount", "abc"]),
    ("seed_not_a_number", "pretrain.py", ["domain=jaco", "seed=abc"], 2, ["seed", "abc"]),
    ("snapshot_ts_not_a_number", "finetune.py", ["agent=ddpg", f"task={JACO_TASK}", "snapshot_ts=abc"], 2,
     ["snapshot_ts", "abc"]),
]


@pytest.fixture(scope="module")
def bad_config_results(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every bad command, two at a time (they fail in ~2 s, before any training)."""
    work = tmp_path_factory.mktemp("bad")
    paths = [f"run_root={work / 'runs'}", f"snapshot_dir={work / 'models'}"]

    def one(case):
        name, script, overrides, _, _ = case
        return name, run(script, *TINY, *paths, *overrides, timeout=120)

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(one, BAD_CONFIGS))


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_fails_with_one_clear_message(case, bad_config_results):
    name, _, _, expected_exit, texts = case
    proc = bad_config_results[name]
    if expected_exit == "hydra":  # an unknown config-group option: Hydra's own error (exit 1)
        assert proc.returncode != 0, explain(proc)
        assert "Available options" in proc.stderr, explain(proc)
    else:
        assert proc.returncode == expected_exit, explain(proc)
        assert proc.stderr.count("error:") == 1, explain(proc)  # one message
        assert len(proc.stderr.strip().splitlines()) == 1, explain(proc)
    for text in texts:
        assert text in proc.stderr, f"{text!r} missing\n{explain(proc)}"
    assert_no_traceback(proc)
    assert "| eval" not in proc.stdout, explain(proc)  # failed before any work


# --------------------------------------------------------------------------- 2. snapshots

SNAP_FRAMES = 500
SNAP_SETTINGS = [*TINY, "num_train_frames=500", "num_seed_frames=250"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict:
    """One tiny jaco pre-training run with snapshots=[500]. It also uses a huge
    eval_every_frames (legal: only the frame-0 evaluation happens)."""
    work = tmp_path_factory.mktemp("snap")
    proc = run("pretrain.py", *SNAP_SETTINGS, "agent=rnd", "domain=jaco", f"snapshots=[{SNAP_FRAMES}]",
               f"eval_every_frames={10**9}", f"run_root={work / 'runs'}", f"snapshot_dir={work / 'models'}")
    assert proc.returncode == 0, explain(proc)
    return {"work": work, "proc": proc,
            "snapshot": snapshot_path(work / "models", "states", "jaco", "rnd", 1, SNAP_FRAMES)}


def test_huge_eval_every_frames_is_legal(pretrained):
    run_dir = pretrain_dir(pretrained["work"] / "runs")
    assert frames_of(read_rows(run_dir / "eval.csv")) == [0]
    assert read_torch_file(pretrained["snapshot"], "snapshot")["metadata"]["frames"] == SNAP_FRAMES


def finetune_from(snapshot_dir: Path, work: Path, task: str = JACO_TASK) -> subprocess.CompletedProcess:
    return run("finetune.py", *SNAP_SETTINGS, "eval_every_frames=500", "agent=rnd", f"task={task}",
               f"snapshot_ts={SNAP_FRAMES}", f"snapshot_dir={snapshot_dir}", f"run_root={work / 'ft_runs'}")


def place(snapshot_dir: Path, domain: str, data: bytes) -> Path:
    path = snapshot_path(snapshot_dir, "states", domain, "rnd", 1, SNAP_FRAMES)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("damage", ["random_bytes", "truncated"])
def test_corrupted_snapshot_exits_2_unreadable(pretrained, tmp_path, damage):
    good = pretrained["snapshot"].read_bytes()
    data = random.Random(0).randbytes(4096) if damage == "random_bytes" else good[: len(good) // 2]
    path = place(tmp_path / "models", "jaco", data)
    proc = finetune_from(tmp_path / "models", tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert "unreadable" in proc.stderr and str(path) in proc.stderr, explain(proc)
    assert_no_traceback(proc)
    assert "| eval" not in proc.stdout


def test_corrupted_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    checkpoint = pretrain_dir(tmp_path / "runs") / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    garbage = random.Random(1).randbytes(2048)
    checkpoint.write_bytes(garbage)
    proc = run("pretrain.py", *SNAP_SETTINGS, "agent=rnd", "domain=jaco", f"snapshots=[{SNAP_FRAMES}]",
               f"run_root={tmp_path / 'runs'}", f"snapshot_dir={tmp_path / 'models'}")
    assert proc.returncode == 2, explain(proc)
    assert "unreadable" in proc.stderr and str(checkpoint) in proc.stderr, explain(proc)
    assert_no_traceback(proc)
    assert checkpoint.read_bytes() == garbage and "| eval" not in proc.stdout


def test_snapshot_with_other_domain_metadata_exits_2_naming_domain(pretrained, tmp_path):
    # A jaco-shaped snapshot whose metadata says walker: only the domain differs.
    data = torch.load(pretrained["snapshot"], map_location="cpu", weights_only=True)
    data["metadata"]["domain"] = "walker"
    path = snapshot_path(tmp_path / "models", "states", "jaco", "rnd", 1, SNAP_FRAMES)
    path.parent.mkdir(parents=True)
    torch.save(data, path)
    proc = finetune_from(tmp_path / "models", tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert "domain" in proc.stderr and "'walker'" in proc.stderr and "'jaco'" in proc.stderr, explain(proc)
    assert_no_traceback(proc)


def test_jaco_snapshot_at_walker_path_exits_2_naming_domain(pretrained, tmp_path):
    place(tmp_path / "models", "walker", pretrained["snapshot"].read_bytes())
    proc = finetune_from(tmp_path / "models", tmp_path, task="walker_run")
    assert proc.returncode == 2, explain(proc)
    assert "domain: snapshot has 'jaco', this run needs 'walker'" in proc.stderr, explain(proc)
    assert_no_traceback(proc)


def test_second_pretraining_refuses_to_overwrite_snapshots(pretrained, tmp_path):
    # Same snapshot place (a copy of the first run's snapshot), another run dir with no checkpoint.
    original = pretrained["snapshot"].read_bytes()
    path = place(tmp_path / "models", "jaco", original)
    before = path.stat()
    overrides = [*SNAP_SETTINGS, "agent=rnd", "domain=jaco", f"snapshots=[{SNAP_FRAMES}]", "eval_every_frames=500",
                 f"run_root={tmp_path / 'second_runs'}", f"snapshot_dir={tmp_path / 'models'}"]
    refused = run("pretrain.py", *overrides)
    assert refused.returncode == 2, explain(refused)
    assert "overwrite_snapshots" in refused.stderr and str(path) in refused.stderr, explain(refused)
    assert_no_traceback(refused)
    assert "| eval" not in refused.stdout  # refused before training
    assert path.read_bytes() == original and path.stat().st_mtime_ns == before.st_mtime_ns

    forced = run("pretrain.py", *overrides, "overwrite_snapshots=true")
    assert forced.returncode == 0, explain(forced)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) != (before.st_ino, before.st_mtime_ns)  # rewritten
    assert read_torch_file(path, "snapshot")["metadata"]["frames"] == SNAP_FRAMES


def test_snapshot_and_checkpoint_permissions_follow_umask(pretrained):
    # Snapshots are shared between users (a cluster's snapshot_dir); the atomic write must not
    # make them private: the mode must be what a plain open() would give (0o666 & ~umask).
    umask = os.umask(0)
    os.umask(umask)
    expected = 0o666 & ~umask
    run_dir = pretrain_dir(pretrained["work"] / "runs")
    for path in (pretrained["snapshot"], run_dir / "checkpoint.pt"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == expected, f"{path}: mode {oct(mode)}, expected {oct(expected)} (umask {oct(umask)})"


# --------------------------------------------------------------------------- 3. numerical fault


def compose_cfg(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    import urlb.config  # noqa: F401  (registers the resolvers before composing)

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose(config_name="pretrain", overrides=overrides)


@pytest.fixture
def one_torch_thread():
    # As OMP_NUM_THREADS=1 does for the subprocess runs: tiny networks on a busy 2-core machine
    # are many times slower with two intra-op threads.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_nan_intrinsic_reward_raises_non_finite_error_keeping_checkpoint(tmp_path, monkeypatch, one_torch_thread):
    from urlb.agents.rnd import RND
    from urlb.ddpg import NonFiniteError
    from urlb.trainer import Trainer

    monkeypatch.setenv("MUJOCO_GL", "egl")
    cfg = compose_cfg([*TINY, "agent=rnd", "domain=jaco", "num_train_frames=1500", "num_seed_frames=500",
                       "eval_every_frames=500", "snapshots=[1500]", "checkpoint_every_frames=250",
                       f"run_root={tmp_path / 'runs'}", f"snapshot_dir={tmp_path / 'models'}"])
    original = RND.update
    calls = {"n": 0}
    healthy_calls = 200  # updates every 2 steps from step 500: the NaN comes at step 500 + 2 * 200 = 900

    def poisoned(self, batch, step):
        reward, metrics = original(self, batch, step)
        calls["n"] += 1
        return (reward if calls["n"] <= healthy_calls else torch.full_like(reward, float("nan"))), metrics

    monkeypatch.setattr(RND, "update", poisoned)
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # Hydra creates the run directory before the entry points build the Trainer
    trainer = Trainer(cfg, run_dir)
    with pytest.raises(NonFiniteError) as info:
        trainer.train()
    message = str(info.value)
    assert "intrinsic reward" in message, message  # the quantity
    assert trainer.global_step == 900 and "step 900" in message, (trainer.global_step, message)  # the step

    # The last periodic checkpoint (episode end at frame 750) is still there and loadable.
    checkpoint = read_torch_file(run_dir / "checkpoint.pt", "checkpoint")
    assert checkpoint["metadata"]["frame"] == 750
    monkeypatch.setattr(RND, "update", original)
    resumed = Trainer(cfg, run_dir)
    assert resumed.resumed_at == 750 and parameters_finite(resumed.agent)
    resumed.logger.close()

    # The logs written so far are readable CSV.
    assert frames_of(read_rows(run_dir / "eval.csv")) == [0, 500]
    assert frames_of(read_rows(run_dir / "train.csv")) == [250, 500, 750]


# --------------------------------------------------------------------------- 4. resource faults


@pytest.fixture(scope="module")
def unwritable_run_root(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    work = tmp_path_factory.mktemp("unwritable")
    blocker = work / "a_regular_file"
    blocker.write_text("not a directory\n")
    proc = run("pretrain.py", *SNAP_SETTINGS, "domain=jaco", "snapshots=[500]", f"run_root={blocker / 'runs'}",
               f"snapshot_dir={work / 'models'}", timeout=60)  # a hang would fail here
    return proc, blocker


def test_unwritable_run_root_fails_fast_naming_the_path(unwritable_run_root):
    proc, blocker = unwritable_run_root
    assert proc.returncode != 0, explain(proc)
    assert str(blocker) in proc.stderr and "not a directory" in proc.stderr.lower(), explain(proc)
    assert "| eval" not in proc.stdout


def test_unwritable_run_root_is_a_clear_error_without_traceback(unwritable_run_root):
    # run.py promises one message (exit 2) for an unwritable directory. Hydra creates the run
    # directory before run_phase is called, so this needs handling in the entry points.
    proc, _ = unwritable_run_root
    assert_no_traceback(proc)
    assert proc.returncode == 2, explain(proc)


def test_unwritable_snapshot_dir_exits_2_naming_the_path(tmp_path):
    blocker = tmp_path / "a_regular_file"
    blocker.write_text("not a directory\n")
    proc = run("pretrain.py", *SNAP_SETTINGS, "domain=jaco", "snapshots=[500]", f"eval_every_frames={10**9}",
               f"run_root={tmp_path / 'runs'}", f"snapshot_dir={blocker / 'models'}", timeout=120)
    assert proc.returncode == 2, explain(proc)
    assert "snapshot_dir" in proc.stderr and str(blocker) in proc.stderr, explain(proc)
    assert_no_traceback(proc)


# Runs pretrain.py (through runpy, so Hydra and run_phase behave as on the command line) with
# CSVLog.write patched to fail like a full disk once `limit` rows have been written.
DISK_FULL_WRAPPER = """
import errno, runpy, sys
import urlb.logger

limit = int(sys.argv.pop(1))
written = 0
real_write = urlb.logger.CSVLog.write

def write(self, row):
    global written
    if written >= limit:
        raise OSError(errno.ENOSPC, "No space left on device")
    written += 1
    return real_write(self, row)

urlb.logger.CSVLog.write = write
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def disk_full(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    work = tmp_path_factory.mktemp("diskfull")
    wrapper = work / "disk_full.py"
    wrapper.write_text(DISK_FULL_WRAPPER)
    # Rows in order: eval 0, train 250, eval 500, train 500; the 5th (train 750) fails.
    proc = run("pretrain.py", *SNAP_SETTINGS, "domain=jaco", "num_train_frames=1500", "snapshots=[1500]",
               "eval_every_frames=500", "checkpoint_every_frames=250", f"run_root={work / 'runs'}",
               f"snapshot_dir={work / 'models'}", prefix=(str(wrapper), "4"), timeout=120)
    return proc, pretrain_dir(work / "runs")


def test_disk_full_mid_run_stops_with_clear_error_keeping_rows(disk_full):
    proc, run_dir = disk_full
    assert proc.returncode != 0, explain(proc)
    assert "No space left on device" in proc.stderr, explain(proc)
    assert_no_traceback(proc)
    assert "| train | F:      750" not in proc.stdout  # stopped at the failing row
    assert frames_of(read_rows(run_dir / "eval.csv")) == [0, 500]
    assert frames_of(read_rows(run_dir / "train.csv")) == [250, 500]
    assert read_torch_file(run_dir / "checkpoint.pt", "checkpoint")["metadata"]["frame"] == 500


def test_disk_full_message_names_the_file(disk_full):
    # run.py: "Full disk, unwritable directory: say which file". A write-time ENOSPC carries no
    # filename, so the message must still say which log could not be written.
    proc, _ = disk_full
    assert "cannot write :" not in proc.stderr, explain(proc)
    assert "train.csv" in proc.stderr, explain(proc)


# --------------------------------------------------------------------------- 5. determinism


@pytest.fixture(scope="module")
def same_and_other_seed(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("determinism")
    settings = [*TINY, "agent=ddpg", f"task={JACO_TASK}", "num_train_frames=1500", "num_seed_frames=500",
                "eval_every_frames=500", f"snapshot_dir={work / 'models'}"]
    runs = {"a": 1, "b": 1, "other_seed": 2}

    def one(item):
        name, seed = item
        proc = run("finetune.py", *settings, f"seed={seed}", f"run_root={work / name}")
        assert proc.returncode == 0, explain(proc)
        return name, (work / name / "quick" / "finetune" / "states" / JACO_TASK / "ddpg" / "snapshot_0"
                      / f"seed_{seed}")

    with ThreadPoolExecutor(2) as pool:  # concurrency must not change results either
        return dict(pool.map(one, runs.items()))


def test_same_seed_gives_byte_identical_eval_csv(same_and_other_seed):
    a, b = (same_and_other_seed[k] / "eval.csv" for k in ("a", "b"))
    assert frames_of(read_rows(a)) == [0, 500, 1000, 1500]
    assert a.read_bytes() == b.read_bytes()
    # train.csv too, apart from its wall-clock columns.
    timing = {"fps", "total_time"}
    rows_a, rows_b = (read_rows(d / "train.csv") for d in (a.parent, b.parent))
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]  # noqa: E731
    assert strip(rows_a) == strip(rows_b)


def test_other_seed_gives_different_eval_csv(same_and_other_seed):
    a, c = (same_and_other_seed[k] / "eval.csv" for k in ("a", "other_seed"))
    assert frames_of(read_rows(c)) == [0, 500, 1000, 1500]
    assert a.read_bytes() != c.read_bytes()
