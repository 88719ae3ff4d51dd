"""What a run directory records decides what a command may do before anything is built:
finished runs are "already complete", result-changing config differences are refused, refused
commands leave no directory; hints name the preset and the overrides that shape a snapshot."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from urlb.runs.config import ConfigError
from urlb.runs.launch import precheck, remove_unused_run_dir
from urlb.runs.record import check_run_record, config_differences, pretrain_command, run_config
from urlb.runs.snapshots import SnapshotError, load_snapshot, save_snapshot, snapshot_path

REPO = Path(__file__).resolve().parents[1]


def compose(name: str, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return hydra_compose(config_name=name, overrides=list(overrides))


def write_checkpoint(run_dir: Path, cfg, frame: int) -> Path:
    path = run_dir / "checkpoint.pt"
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"metadata": {"frame": frame, "config": run_config(cfg)}, "state": {"x": torch.zeros(3)}}, path)
    return path


# --------------------------------------------------------------------------- config differences


def test_differences_split_into_result_changing_and_neutral_keys():
    old = {"seed": 1, "use_tb": True, "device": "cpu", "agent": {"lr": 1e-4, "name": "rnd"}, "snapshot_dir": "/a"}
    new = {"seed": 1, "use_tb": False, "device": "cuda", "agent": {"lr": 1e-3, "name": "rnd"}, "snapshot_dir": "/b"}
    changing, neutral = config_differences(old, new, finished=True, pretrain=True)
    assert changing == ["agent.lr: 0.0001 -> 0.001"]
    assert neutral == ["device: 'cpu' -> 'cuda'", "snapshot_dir: '/a' -> '/b'", "use_tb: True -> False"]
    # An unfinished pre-training run still writes snapshots: where they go matters then.
    changing, _ = config_differences(old, new, finished=False, pretrain=True)
    assert "snapshot_dir: '/a' -> '/b'" in changing
    _, neutral = config_differences(old, new, finished=False, pretrain=False)
    assert "snapshot_dir: '/a' -> '/b'" in neutral


def test_keys_on_one_side_only_are_not_compared():
    assert config_differences({"a": 1}, {"a": 1, "precision_check": True}, True, True) == ([], [])


# --------------------------------------------------------------------------- check_run_record

TINY = [
    "preset=quick",
    "domain=jaco",
    "agent=rnd",
    "device=cpu",
    "num_train_frames=500",
    "snapshots=[500]",
    "num_seed_frames=250",
]


def test_finished_run_is_already_complete_without_writing(tmp_path):
    cfg = compose("pretrain", *TINY)
    checkpoint = write_checkpoint(tmp_path / "run", cfg, frame=500)
    before = checkpoint.stat().st_mtime_ns
    message = check_run_record(compose("pretrain", *TINY, "use_tb=false"), tmp_path / "run")
    assert message.startswith("already complete: ") and str(tmp_path / "run") in message
    assert "frame 500 of 500" in message and "use_tb: True -> False" in message
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt"]
    assert checkpoint.stat().st_mtime_ns == before


def test_result_changing_difference_is_refused_listing_keys(tmp_path):
    write_checkpoint(tmp_path / "run", compose("pretrain", *TINY), frame=250)
    with pytest.raises(ConfigError) as info:
        check_run_record(compose("pretrain", *TINY, "agent.lr=0.001", "discount=0.9", "use_tb=false"), tmp_path / "run")
    message = str(info.value)
    assert "agent.lr: 0.0001 -> 0.001" in message and "discount: 0.99 -> 0.9" in message
    assert "use_tb" not in message and "frame 250 of 500" in message


def test_unfinished_run_resumes_and_says_which_neutral_keys_changed(tmp_path, capsys):
    write_checkpoint(tmp_path / "run", compose("pretrain", *TINY), frame=250)
    assert check_run_record(compose("pretrain", *TINY, "threads=1"), tmp_path / "run") is None
    assert "threads: 'auto' -> 1" in capsys.readouterr().out
    # resume=false ignores the record (a deliberate fresh start); no checkpoint: nothing to check.
    assert check_run_record(compose("pretrain", *TINY, "resume=false", "agent.lr=0.5"), tmp_path / "run") is None
    assert check_run_record(compose("pretrain", *TINY), tmp_path / "empty") is None


# --------------------------------------------------------------------------- pre-Hydra check


def run_precheck(script: str, *argv: str) -> tuple[int | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            precheck(str(REPO / script), list(argv))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "override,texts",
    [
        (
            "agent=cicc",
            [
                "agent='cicc' is not valid",
                "aps, apt, becl, cesd, cic, ddpg, diayn, disagreement, icm, metra, proto, rnd, smm",
            ],
        ),
        ("preset=fast", ["preset='fast' is not valid", "paper, quick"]),
        ("hydra/launcher=foo", ["hydra/launcher='foo' is not valid", "local", "slurm", "ray"]),
        ("agent.hiden_dim=3", ["agent.hiden_dim", "not in struct"]),
        ("discount=2", ["discount=2"]),
    ],
)
def test_config_errors_are_one_line_exit_2_before_hydra(tmp_path, override, texts):
    code, out, err = run_precheck("pretrain.py", override, f"run_root={tmp_path / 'runs'}")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    for text in texts:
        assert text in err, err
    assert not (tmp_path / "runs").exists()


def test_precheck_lets_a_valid_command_through_and_leaves_flags_to_hydra(tmp_path):
    assert run_precheck("pretrain.py", "domain=jaco", f"run_root={tmp_path}") == (None, "", "")
    assert run_precheck("pretrain.py", "-m", "agent=cicc,rnd") == (None, "", "")


def test_precheck_stops_a_finished_run_with_exit_0(tmp_path):
    overrides = [*TINY, f"run_root={tmp_path / 'runs'}", f"snapshot_dir={tmp_path / 'models'}"]
    run_dir = tmp_path / "runs" / "quick" / "pretrain" / "states" / "jaco" / "rnd" / "seed_1"
    write_checkpoint(run_dir, compose("pretrain", *overrides), frame=500)  # snapshot_dir is absolute already
    code, out, err = run_precheck("pretrain.py", *overrides)
    assert code == 0 and out.startswith(f"already complete: {run_dir}") and err == ""


# --------------------------------------------------------------------------- hints


def test_missing_snapshot_hint_repeats_preset_and_shaping_overrides(tmp_path):
    common = [
        "preset=quick",
        "agent=rnd",
        "task=jaco_reach_top_left",
        "agent.hidden_dim=32",
        "batch_size=32",
        "skill_selection=random",
        "num_train_frames=300",
        f"snapshot_dir={tmp_path}",
    ]
    hint = pretrain_command(compose("finetune", *common, "snapshot_ts=20000"), common)
    words = hint.split()
    assert words[:2] == ["python", "pretrain.py"]
    for word in (
        "agent=rnd",
        "domain=jaco",
        "seed=1",
        "preset=quick",
        "agent.hidden_dim=32",
        "batch_size=32",
        f"snapshot_dir={tmp_path}",
    ):
        assert word in words, hint
    # Fine-tuning keys stay out; 20000 is a snapshot the quick preset writes anyway.
    assert not any(w.startswith(("task=", "skill_selection=", "num_train_frames=", "snapshots=")) for w in words)
    hint = pretrain_command(compose("finetune", *common, "snapshot_ts=5000"), common)
    assert hint.endswith("snapshots=[5000]") and "num_train_frames" not in hint
    hint = pretrain_command(compose("finetune", *common, "snapshot_ts=50000"), common)
    assert hint.endswith("num_train_frames=50000 snapshots=[50000]")
    hint = pretrain_command(compose("finetune", *common, "snapshot_seed=4"), common)
    assert "seed=4" in hint.split()


def test_size_mismatch_names_the_preset_as_likely_cause(tmp_path):
    path = snapshot_path(tmp_path, "states", "walker", "rnd", 1, 100)
    save_snapshot(path, {"actor": {}}, {"agent": "rnd", "domain": "walker", "hidden_dim": 256, "frames": 100})
    with pytest.raises(SnapshotError) as info:
        load_snapshot(tmp_path, "states", "walker", "rnd", 1, 100, {"agent": "rnd", "hidden_dim": 1024})
    message = str(info.value)
    assert "hidden_dim: snapshot has 256, this run needs 1024" in message and "preset=quick" in message


# --------------------------------------------------------------------------- refused commands leave nothing


def test_unused_run_dir_is_removed_with_its_empty_parents(tmp_path):
    cfg = OmegaConf.create({"run_root": str(tmp_path / "runs")})
    run_dir = tmp_path / "runs" / "quick" / "pretrain" / "seed_1"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("a: 1\n")
    (run_dir / "pretrain.log").write_text("")
    (tmp_path / "keep.txt").write_text("x")
    remove_unused_run_dir(run_dir, cfg)
    assert not (tmp_path / "runs").exists() and (tmp_path / "keep.txt").exists()


def test_run_dir_with_results_is_kept(tmp_path):
    cfg = OmegaConf.create({"run_root": str(tmp_path / "runs")})
    run_dir = tmp_path / "runs" / "seed_1"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "eval.csv").write_text("frame\n0\n")
    remove_unused_run_dir(run_dir, cfg)
    assert (run_dir / "eval.csv").is_file() and (run_dir / ".hydra").is_dir()
