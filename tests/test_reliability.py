"""Reliability: bad input through the real command line, broken or foreign snapshots, numerical
and resource faults, and determinism.

Subprocess runs follow tests/test_pipeline.py (sys.executable, cwd = repo root, MUJOCO_GL=egl,
OMP_NUM_THREADS=1) and use jaco (250-step episodes) with tiny networks. The tests run as root,
so chmod cannot make a directory unwritable: an unwritable location is a path whose parent is a
regular file (mkdir fails with NotADirectoryError whoever runs it).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import random
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY, child_env, parameters_finite

from urlb.runs.snapshots import read_torch_file, snapshot_path
from urlb.tasks import ALL_TASKS, TASKS

pytestmark = pytest.mark.pipeline

JACO_TASK = "jaco_reach_top_left"


# --------------------------------------------------------------------------- helpers


def run(
    script: str,
    *overrides: str,
    timeout: float | None = None,
    prefix: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``python [prefix...] script overrides...``; later overrides win in Hydra, so the value
    under test goes last. ``timeout`` only where a hang is what is tested: a slow machine must
    make a run slower, not fail it."""
    return subprocess.run(
        [sys.executable, *prefix, script, *overrides],
        cwd=REPO,
        env={**child_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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

# (id, script, overrides, expected exit, texts the message must contain: the bad value and the
# valid choices). Every one is refused before Hydra creates a run directory (urlb.runs.launch.precheck).
BAD_CONFIGS = [
    (
        "agent_group",
        "pretrain.py",
        ["domain=jaco", "agent=cicc"],
        2,
        ["agent='cicc'", "apt", "cic", "ddpg", "diayn", "metra", "rnd"],
    ),
    (
        "agent_name",
        "pretrain.py",
        ["domain=jaco", "agent.name=foo"],
        2,
        ["'foo'", "apt", "cic", "ddpg", "diayn", "metra", "rnd"],
    ),
    ("domain", "pretrain.py", ["domain=foo"], 2, ["'foo'", "walker", "quadruped", "jaco"]),
    ("task", "finetune.py", ["task=foo"], 2, ["'foo'", *ALL_TASKS]),
    ("obs_type", "pretrain.py", ["domain=jaco", "obs_type=foo"], 2, ["'foo'", "states", "pixels"]),
    ("preset", "finetune.py", [f"task={JACO_TASK}", "preset=foo"], 2, ["preset='foo'", "paper", "quick"]),
    (
        "launcher",
        "pretrain.py",
        ["domain=jaco", "hydra/launcher=foo"],
        2,
        ["hydra/launcher='foo'", "local", "slurm", "ray"],
    ),
    (
        "task_outside_domain",
        "finetune.py",
        ["task=walker_run", "domain=jaco"],
        2,
        ["task=walker_run", "walker", "domain=jaco", *TASKS["jaco"]],
    ),
    ("num_train_frames_0", "pretrain.py", ["domain=jaco", "num_train_frames=0"], 2, ["num_train_frames=0", "positive"]),
    ("batch_size_negative", "pretrain.py", ["domain=jaco", "batch_size=-1"], 2, ["batch_size=-1", "positive"]),
    (
        "eval_every_frames_0",
        "pretrain.py",
        ["domain=jaco", "eval_every_frames=0"],
        2,
        ["eval_every_frames=0", "positive"],
    ),
    (
        "seed_frames_exceed_train_frames",
        "pretrain.py",
        ["domain=jaco", "num_train_frames=1000", "snapshots=[1000]", "num_seed_frames=2000"],
        2,
        ["num_seed_frames=2000", "num_train_frames=1000"],
    ),
    (
        "snapshot_beyond_train_frames",
        "pretrain.py",
        ["domain=jaco", "snapshots=[999999]"],
        2,
        ["999999", "num_train_frames=20000"],
    ),
    ("device_cuda_unavailable", "pretrain.py", ["domain=jaco", "device=cuda"], 2, ["'cuda'", "device=cpu"]),
    ("device_tpu", "pretrain.py", ["domain=jaco", "device=tpu"], 2, ["'tpu'", "cpu", "cuda"]),
    ("threads_zero", "pretrain.py", ["domain=jaco", "threads=0"], 2, ["threads=0", "auto"]),
    ("compile_backend", "pretrain.py", ["domain=jaco", "compile=fast"], 2, ["compile='fast'", "inductor", "aot_eager"]),
    # Values of the wrong type must be user errors too, not a TypeError traceback.
    ("discount_not_a_number", "pretrain.py", ["domain=jaco", "discount=abc"], 2, ["discount", "abc"]),
    ("seed_not_a_number", "pretrain.py", ["domain=jaco", "seed=abc"], 2, ["seed", "abc"]),
    (
        "snapshot_ts_not_a_number",
        "finetune.py",
        ["agent=ddpg", f"task={JACO_TASK}", "snapshot_ts=abc"],
        2,
        ["snapshot_ts", "abc"],
    ),
    # Agent keys: type and sign from the constructor's annotation and default, choices and
    # combinations from the constructor itself (a trial build), all before Hydra starts.
    ("agent_lr_text", "pretrain.py", ["domain=jaco", "agent.lr=abc"], 2, ["agent.lr='abc'", "a finite number"]),
    ("agent_lr_negative", "pretrain.py", ["domain=jaco", "agent.lr=-1"], 2, ["agent.lr=-1", "> 0"]),
    ("agent_lr_infinite", "pretrain.py", ["domain=jaco", "agent.lr=inf"], 2, ["agent.lr=inf", "a finite number"]),
    (
        "agent_skill_dim_zero",
        "pretrain.py",
        ["domain=jaco", "agent=diayn", "agent.skill_dim=0"],
        2,
        ["agent.skill_dim=0", "> 0"],
    ),
    ("agent_choice", "pretrain.py", ["domain=jaco", "agent.obs_norm=foo"], 2, ["'foo'", "batch", "running"]),
    (
        "agent_boolean",
        "pretrain.py",
        ["domain=jaco", "agent.reward_after_update=maybe"],
        2,
        ["agent.reward_after_update='maybe'", "true or false"],
    ),
    ("agent_schedule", "pretrain.py", ["domain=jaco", "agent.stddev_schedule=abc"], 2, ["'abc'", "linear("]),
    # Keys no config declares, added with + (a typo would otherwise be silently ignored).
    ("plus_typo", "pretrain.py", ["domain=jaco", "+num_train_frame=500"], 2, ["num_train_frame", "num_train_frames"]),
    (
        "force_add_typo",
        "pretrain.py",
        ["domain=jaco", "++num_eval_episode=3"],
        2,
        ["num_eval_episode", "num_eval_episodes"],
    ),
    # Sizes that cannot work together.
    (
        "replay_below_batch",
        "pretrain.py",
        ["domain=jaco", "replay_buffer_size=10"],
        2,
        ["replay_buffer_size=10", "batch_size=32"],
    ),
    (
        "replay_below_episode",
        "pretrain.py",
        ["domain=jaco", "replay_buffer_size=100"],
        2,
        ["replay_buffer_size=100", "251"],
    ),
    ("nstep_beyond_episode", "pretrain.py", ["domain=jaco", "nstep=300"], 2, ["nstep=300", "250 steps"]),
    (
        "knn_k_above_batch",
        "pretrain.py",
        ["domain=jaco", "agent=apt", "agent.knn_k=1000"],
        2,
        ["agent.knn_k=1000", "batch_size=32"],
    ),
    # Booleans and other declared types.
    ("resume_not_boolean", "pretrain.py", ["domain=jaco", "resume=maybe"], 2, ["resume='maybe'", "true or false"]),
    ("use_tb_number", "pretrain.py", ["domain=jaco", "use_tb=2"], 2, ["use_tb=2", "true or false"]),
    ("snapshot_dir_number", "pretrain.py", ["domain=jaco", "snapshot_dir=123"], 2, ["snapshot_dir=123", "text"]),
    (
        "checkpoint_minutes_zero",
        "pretrain.py",
        ["domain=jaco", "checkpoint_every_minutes=0"],
        2,
        ["checkpoint_every_minutes=0", "positive"],
    ),
]


@pytest.fixture(scope="module")
def bad_work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad")


def precheck_command(script: str, *overrides: str) -> subprocess.CompletedProcess:
    """What ``python script overrides...`` does before Hydra starts (urlb.runs.launch.precheck, the entry
    points' first call), in this process: a refused command stops there, so this is its whole
    output. Tests of the real command line for the same errors: test_pipeline.py."""
    from urlb.runs.launch import precheck

    out, err, code = io.StringIO(), io.StringIO(), None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            precheck(str(REPO / script), list(overrides))
        except SystemExit as exc:
            code = exc.code
    return subprocess.CompletedProcess([script, *overrides], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def bad_config_results(bad_work) -> dict[str, subprocess.CompletedProcess]:
    """Every bad command, checked in this process (each is refused before Hydra starts)."""
    paths = [f"run_root={bad_work / 'runs'}", f"snapshot_dir={bad_work / 'models'}"]
    return {name: precheck_command(script, *TINY, *paths, *overrides) for name, script, overrides, _, _ in BAD_CONFIGS}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_fails_with_one_clear_message(case, bad_config_results):
    name, _, _, expected_exit, texts = case
    proc = bad_config_results[name]
    assert proc.returncode == expected_exit, explain(proc)
    assert proc.stderr.count("error:") == 1, explain(proc)  # one message
    assert len(proc.stderr.strip().splitlines()) == 1, explain(proc)
    for text in texts:
        assert text in proc.stderr, f"{text!r} missing\n{explain(proc)}"
    assert_no_traceback(proc)
    assert "| eval" not in proc.stdout, explain(proc)  # failed before any work


def test_refused_commands_leave_no_run_directory(bad_config_results, bad_work):
    assert len(bad_config_results) == len(BAD_CONFIGS)
    assert not (bad_work / "runs").exists(), sorted(str(p) for p in (bad_work / "runs").rglob("*"))


def test_bf16_without_native_support_is_refused(tmp_path):
    # The variables lower torch's and oneDNN's ISA to AVX2 (no bf16 instructions) on any x86 CPU;
    # on others the flags decide: either way this is not a machine with usable bf16 here.
    proc = run(
        "pretrain.py",
        *TINY,
        "domain=jaco",
        "precision=bf16",
        f"run_root={tmp_path / 'runs'}",
        env={"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    )
    assert proc.returncode == 2, explain(proc)
    assert len(proc.stderr.strip().splitlines()) == 1, explain(proc)
    for text in ("precision=bf16", "ONEDNN_MAX_CPU_ISA=AVX2", "precision=fp32", "precision_check=false"):
        assert text in proc.stderr, explain(proc)
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- 2. snapshots

SNAP_FRAMES = 500
SNAP_SETTINGS = [*TINY, "num_train_frames=500", "num_seed_frames=250"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict:
    """One tiny jaco pre-training run with snapshots=[500]. It also uses a huge
    eval_every_frames (legal: only the frame-0 evaluation happens)."""
    work = tmp_path_factory.mktemp("snap")
    overrides = [
        *SNAP_SETTINGS,
        "agent=rnd",
        "domain=jaco",
        f"snapshots=[{SNAP_FRAMES}]",
        f"eval_every_frames={10**9}",
        f"run_root={work / 'runs'}",
        f"snapshot_dir={work / 'models'}",
    ]
    proc = run("pretrain.py", *overrides)
    assert proc.returncode == 0, explain(proc)
    return {
        "work": work,
        "proc": proc,
        "overrides": overrides,
        "snapshot": snapshot_path(work / "models", "states", "jaco", "rnd", 1, SNAP_FRAMES),
    }


def listing(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.rglob("*"))
    }


def test_run_logs_the_last_episode_labels_rewards_and_leaves_no_empty_log(pretrained):
    run_dir = pretrain_dir(pretrained["work"] / "runs")
    assert frames_of(read_rows(run_dir / "train.csv")) == [250, 500]  # 500: the last episode
    assert "R(task):" in pretrained["proc"].stdout and "R(intr):" in pretrained["proc"].stdout
    assert not list(run_dir.glob("*.log"))


def test_rerun_of_a_finished_run_is_already_complete_and_touches_nothing(pretrained, tmp_path):
    run_dir = pretrain_dir(pretrained["work"] / "runs")
    before = listing(run_dir)
    same = run("pretrain.py", *pretrained["overrides"])
    assert same.returncode == 0 and same.stdout.startswith(f"already complete: {run_dir}"), explain(same)
    neutral = run("pretrain.py", *pretrained["overrides"], "use_tb=true", f"snapshot_dir={tmp_path / 'elsewhere'}")
    assert neutral.returncode == 0 and "already complete" in neutral.stdout, explain(neutral)
    assert "use_tb: False -> True" in neutral.stdout and "snapshot_dir:" in neutral.stdout
    changed = run("pretrain.py", *pretrained["overrides"], "agent.lr=0.001")
    assert changed.returncode == 2 and "agent.lr: 0.0001 -> 0.001" in changed.stderr, explain(changed)
    assert len(changed.stderr.strip().splitlines()) == 1, explain(changed)
    assert listing(run_dir) == before and not (tmp_path / "elsewhere").exists()


def test_missing_snapshot_hint_works_when_followed(tmp_path):
    # One 250-step episode each way, all seed frames: the hint is what is tested, not training.
    settings = [
        *TINY,
        "agent=rnd",
        f"task={JACO_TASK}",
        "seed=3",
        "pretrain_frames=250",
        "num_train_frames=250",
        "num_seed_frames=250",
        "eval_every_frames=500",
        f"run_root={tmp_path / 'runs'}",
        f"snapshot_dir={tmp_path / 'models'}",
    ]
    missing = run("finetune.py", *settings)
    assert missing.returncode == 2, explain(missing)
    assert not (tmp_path / "runs").exists()  # refused before Hydra made a run directory
    hint = [line for line in missing.stderr.splitlines() if line.startswith("create it with: python pretrain.py ")]
    assert len(hint) == 1, explain(missing)
    words = hint[0].split()[4:]  # after "create it with: python"
    assert "preset=quick" in words and "agent.hidden_dim=32" in words and "pretrain_frames=250" in words
    followed = run(*words)
    assert followed.returncode == 0, explain(followed)
    assert snapshot_path(tmp_path / "models", "states", "jaco", "rnd", 3, 250).is_file()
    again = run("finetune.py", *settings)
    assert again.returncode == 0 and "loaded snapshot" in again.stdout, explain(again)


# --------------------------------------------------------------------------- 2. snapshots


def test_huge_eval_every_frames_is_legal(pretrained):
    run_dir = pretrain_dir(pretrained["work"] / "runs")
    assert frames_of(read_rows(run_dir / "eval.csv")) == [0]
    assert read_torch_file(pretrained["snapshot"], "snapshot")["metadata"]["frames"] == SNAP_FRAMES


def finetune_from(snapshot_dir: Path, work: Path, task: str = JACO_TASK) -> subprocess.CompletedProcess:
    return run(
        "finetune.py",
        *SNAP_SETTINGS,
        "eval_every_frames=500",
        "agent=rnd",
        f"task={task}",
        f"snapshot_ts={SNAP_FRAMES}",
        f"snapshot_dir={snapshot_dir}",
        f"run_root={work / 'ft_runs'}",
    )


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
    proc = run(
        "pretrain.py",
        *SNAP_SETTINGS,
        "agent=rnd",
        "domain=jaco",
        f"snapshots=[{SNAP_FRAMES}]",
        f"run_root={tmp_path / 'runs'}",
        f"snapshot_dir={tmp_path / 'models'}",
    )
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


def damaged_copy(pretrained, tmp_path: Path, damage) -> Path:
    data = torch.load(pretrained["snapshot"], map_location="cpu", weights_only=True)
    damage(data["state"])
    path = snapshot_path(tmp_path / "models", "states", "jaco", "rnd", 1, SNAP_FRAMES)
    path.parent.mkdir(parents=True)
    torch.save(data, path)
    return path


def test_snapshot_lacking_a_network_exits_2_in_one_line(pretrained, tmp_path):
    path = damaged_copy(pretrained, tmp_path, lambda state: state.pop("actor"))
    proc = finetune_from(tmp_path / "models", tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines() == [
        f"error: snapshot {path} lacks the network(s) actor (it has: critic, critic_target, encoder, plugin); "
        "it was not written by this agent's pre-training"
    ], explain(proc)
    assert not (tmp_path / "ft_runs").exists()


def test_snapshot_whose_weights_do_not_fit_exits_2_in_one_line(pretrained, tmp_path):
    # Metadata of this run, weights of another domain (a wider first actor layer).
    def widen(state):
        key = next(k for k in state["actor"] if k.endswith("weight"))
        state["actor"][key] = torch.zeros(state["actor"][key].shape[0], state["actor"][key].shape[1] + 5)

    path = damaged_copy(pretrained, tmp_path, widen)
    proc = finetune_from(tmp_path / "models", tmp_path)
    assert proc.returncode == 2, explain(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"snapshot {path}: weights actor." in lines[0] and "have shape" in lines[0], explain(
        proc
    )
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
    overrides = [
        *SNAP_SETTINGS,
        "agent=rnd",
        "domain=jaco",
        f"snapshots=[{SNAP_FRAMES}]",
        "eval_every_frames=500",
        f"run_root={tmp_path / 'second_runs'}",
        f"snapshot_dir={tmp_path / 'models'}",
    ]
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

    import urlb.runs.config  # noqa: F401  (registers the resolvers before composing)

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
    cfg = compose_cfg(
        [
            *TINY,
            "agent=rnd",
            "domain=jaco",
            "num_train_frames=1500",
            "num_seed_frames=500",
            "eval_every_frames=500",
            "snapshots=[1500]",
            "checkpoint_every_frames=250",
            f"run_root={tmp_path / 'runs'}",
            f"snapshot_dir={tmp_path / 'models'}",
        ]
    )
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
    assert resumed.resumed_at == 750 and parameters_finite(resumed.agents[0])
    resumed.runs[0].logger.close()  # the (only) seed's logs

    # The logs written so far are readable CSV.
    assert frames_of(read_rows(run_dir / "eval.csv")) == [0, 500]
    assert frames_of(read_rows(run_dir / "train.csv")) == [250, 500, 750]


# --------------------------------------------------------------------------- 4. resource faults


@pytest.fixture(scope="module")
def unwritable_run_root(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    work = tmp_path_factory.mktemp("unwritable")
    blocker = work / "a_regular_file"
    blocker.write_text("not a directory\n")
    proc = run(
        "pretrain.py",
        *SNAP_SETTINGS,
        "domain=jaco",
        "snapshots=[500]",
        f"run_root={blocker / 'runs'}",
        f"snapshot_dir={work / 'models'}",
        timeout=600,
    )  # a hang would fail here
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
    proc = run(
        "pretrain.py",
        *SNAP_SETTINGS,
        "domain=jaco",
        "snapshots=[500]",
        f"eval_every_frames={10**9}",
        f"run_root={tmp_path / 'runs'}",
        f"snapshot_dir={blocker / 'models'}",
        timeout=600,
    )
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
    proc = run(
        "pretrain.py",
        *SNAP_SETTINGS,
        "domain=jaco",
        "num_train_frames=1500",
        "snapshots=[1500]",
        "eval_every_frames=500",
        "checkpoint_every_frames=250",
        f"run_root={work / 'runs'}",
        f"snapshot_dir={work / 'models'}",
        prefix=(str(wrapper), "4"),
        timeout=600,
    )
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
    settings = [
        *TINY,
        "agent=ddpg",
        f"task={JACO_TASK}",
        "num_train_frames=1500",
        "num_seed_frames=500",
        "eval_every_frames=500",
        f"snapshot_dir={work / 'models'}",
    ]
    runs = {"a": 1, "b": 1, "other_seed": 2}

    def one(item):
        name, seed = item
        proc = run("finetune.py", *settings, f"seed={seed}", f"run_root={work / name}")
        assert proc.returncode == 0, explain(proc)
        return name, (
            work / name / "quick" / "finetune" / "states" / JACO_TASK / "ddpg" / "snapshot_0" / f"seed_{seed}"
        )

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


def test_train_and_eval_lines_count_episodes_alike(same_and_other_seed):
    run_dir = same_and_other_seed["a"]
    train = {int(float(r["frame"])): r["episode"] for r in read_rows(run_dir / "train.csv")}
    assert sorted(train) == [250, 500, 750, 1000, 1250, 1500]  # the last episode has its row
    evals = {int(float(r["frame"])): r["episode"] for r in read_rows(run_dir / "eval.csv")}
    assert all(evals[f] == train[f] for f in (500, 1000, 1500)), (evals, train)


def test_other_seed_gives_different_eval_csv(same_and_other_seed):
    a, c = (same_and_other_seed[k] / "eval.csv" for k in ("a", "other_seed"))
    assert frames_of(read_rows(c)) == [0, 500, 1000, 1500]
    assert a.read_bytes() != c.read_bytes()


@pytest.mark.parametrize("override", ["threads=2", "threads=auto", "device=cpu"])
def test_words_or_numbers_pass_the_declared_type_check(override):
    """threads and device are declared with a word as default but take a number too (threads=N,
    as the docs say); the declared-type check leaves them to validate()."""
    from hydra import compose, initialize_config_dir

    import urlb.runs.config  # noqa: F401  (registers the resolvers)
    from urlb.runs.config_checks import check_declared_types

    with initialize_config_dir(str(REPO / "configs"), version_base="1.3", job_name="pretrain"):
        cfg = compose(config_name="pretrain", overrides=["preset=quick", override])
    check_declared_types(cfg)  # raises ConfigError when refused


# --------------------------------------------------------------------------- replay memory


def compose_run(*overrides: str):
    from hydra import compose, initialize_config_dir

    import urlb.runs.config  # noqa: F401  (registers the config resolvers)

    with initialize_config_dir(str(REPO / "configs"), version_base="1.3", job_name="pretrain"):
        return compose(config_name="pretrain", overrides=list(overrides))


def test_a_pixel_replay_larger_than_the_free_memory_is_refused_with_a_size_that_fits(monkeypatch):
    from urlb.errors import ConfigError
    from urlb.runs.config import validate

    monkeypatch.setattr("urlb.runs.config_checks.available_memory_bytes", lambda: 16 * 10**9)
    cfg = compose_run("obs_type=pixels", "device=cpu", "seeds=[1,2]")  # URLB's 1,000,000 steps per seed
    with pytest.raises(ConfigError) as refused:
        validate(cfg)
    message = str(refused.value)
    assert "replay_buffer_size=1000000 pixel steps need 43.4 GB" in message and "16.0 GB available" in message
    fits = int(message.split("use replay_buffer_size=")[1].split()[0])
    assert fits == 295000  # 0.8 x 16 GB over 2 seeds x 21,680 bytes per step, in thousands
    validate(compose_run("obs_type=pixels", "device=cpu", "seeds=[1,2]", f"replay_buffer_size={fits}"))
    validate(compose_run("obs_type=states", "device=cpu"))  # a state replay is small: never checked
