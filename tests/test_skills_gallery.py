"""The skill gallery (``urlb-skills``), its TensorBoard hook, and ``finetune.py snapshot_ts=N``
without ``agent=``. Measures on hand-made paths; one tiny pre-training multirun (diayn, cic,
metra, rnd; 400 frames, hidden 32) through the gallery; bad input exits 2 writing nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from test_pipeline import REPO, explain, tiny

from urlb.runs.snapshot_search import choose_agent
from urlb.tools.skills.cli import main as skills_main
from urlb.tools.skills.measures import cells, coverage, displacement, distance_travelled

AGENTS = ("diayn", "cic", "metra", "rnd")
pipeline = pytest.mark.pipeline  # tests that need the tiny pre-training subprocess
SNAPSHOTS = (200, 400)
K = 3


# --- measures on hand-made paths (expected values counted by hand) ---
def test_walker_x_cells_distance_and_displacement():
    path = np.array([[0.2, 1.0], [0.9, 1.3], [1.1, 0.9], [2.5, 1.0], [2.4, 1.2], [-0.5, 1.0]])
    # x cells of 1 m: 0, 0, 1, 2, 2, -1 -> {-1, 0, 1, 2}
    assert cells(path, (0,), 1.0) == {(-1,), (0,), (1,), (2,)}
    # |0.7| + |0.2| + |1.4| + |0.1| + |2.9| in x only (height is not ground)
    assert distance_travelled(path, (0,)) == pytest.approx(5.3)
    assert displacement(path, (0,)) == pytest.approx(0.7)


def test_quadruped_xy_coverage_counts_union_of_skills():
    a = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, -1.0]])  # cells (0,0) (3,4) (3,-1); length 5 + 5
    b = np.array([[0.5, 0.5], [-0.5, 0.2]])  # cells (0,0) (-1,0): one shared with a
    assert coverage([a], (0, 1), 1.0) == 3
    assert coverage([a, b], (0, 1), 1.0) == 4
    assert distance_travelled(a, (0, 1)) == pytest.approx(10.0)
    assert displacement(a, (0, 1)) == pytest.approx(10**0.5)  # (0,0) -> (3,-1)


def test_jaco_hand_5cm_cells():
    path = np.array([[0.01, 0.02, 0.03], [0.06, 0.02, 0.03], [0.049, 0.0, 0.0], [0.01, -0.01, 0.11]])
    # 5 cm cells: (0,0,0) (1,0,0) (0,0,0) (0,-1,2) -> 3 distinct
    assert coverage([path], (0, 1, 2), 0.05) == 3
    assert distance_travelled(path[:2], (0, 1, 2)) == pytest.approx(0.05)


# --- a tiny pre-training run of each skill method and of RND ---
def _env(env_changes: dict | None = None) -> dict:
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1", **(env_changes or {})}
    for key in ("HYDRA_FULL_ERROR", "DISPLAY"):
        env.pop(key, None)
    return env


def run_cmd(args: list[str], env_changes: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=_env(env_changes), capture_output=True, text=True, timeout=timeout
    )


class Background:
    """A subprocess started early so that it overlaps the in-process tests (each pays ~5 s of imports)."""

    def __init__(self, args: list[str], env_changes: dict | None = None) -> None:
        self.args = [sys.executable, *args]
        self.proc = subprocess.Popen(
            self.args, cwd=REPO, env=_env(env_changes), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def result(self, timeout: int = 240) -> subprocess.CompletedProcess:
        out, err = self.proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(self.args, self.proc.returncode, out, err)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One multirun (one process): each agent pre-trained 400 frames, snapshots at 200 and 400."""
    work = tmp_path_factory.mktemp("gallery")
    overrides = tiny(
        agent=",".join(AGENTS),
        num_train_frames=400,
        num_seed_frames=100,
        eval_every_frames=10**6,
        snapshots=f"[{SNAPSHOTS[0]},{SNAPSHOTS[1]}]",
    )
    proc = run_cmd(["pretrain.py", "-m", *overrides, f"run_root={work / 'runs'}", f"snapshot_dir={work / 'models'}"])
    assert proc.returncode == 0, explain(proc)
    return work


@pytest.fixture(scope="module")
def background(work, tmp_path_factory) -> dict[str, Background]:
    """The two subprocess checks, started together: --video where no OpenGL renderer starts
    (GLFW without a display), and finetune.py refusing two candidate agents."""
    no_gl_run = tmp_path_factory.mktemp("no_gl") / "rnd_run"
    shutil.copytree(run_dir(work, "rnd"), no_gl_run)
    return {
        "no_gl": Background(
            ["-m", "urlb.tools.skills", str(no_gl_run), "--video", "--skills", "2"], {"MUJOCO_GL": "glfw"}
        ),
        "no_gl_run": no_gl_run,
        "refuse": Background(_argv(work, work / "models", 400)),
    }


def run_dir(work: Path, agent: str) -> Path:
    return work / "runs" / "quick" / "pretrain" / "states" / "walker" / agent / "seed_1"


@pytest.fixture(scope="module")
def gallery(work) -> Path:
    skills_main([str(work / "runs"), "--skills", str(K), "--steps", "25", "--html"])
    return work


@pipeline
def test_k_distinct_trajectories_per_snapshot(work, background):
    from urlb.tools.pretrained import agent_from_snapshot
    from urlb.tools.skills.rollouts import make_start, roll_out_snapshot
    from urlb.tools.skills.sources import find_sources

    env, start = make_start("walker", 0)
    for source in find_sources([work / "runs"]):
        assert sorted(source.snapshots) == list(SNAPSHOTS), source
        for frames in SNAPSHOTS[1:]:  # skills.csv covers both snapshots (next test)
            agent = agent_from_snapshot(source.agent_cfg, source.snapshots[frames], env)
            snap = roll_out_snapshot(agent, env, start, frames, K, steps=20)
            paths = [r.positions for r in snap.rollouts]
            assert len(paths) == K and all(p.shape == (21, 2) for p in paths)
            assert all(np.array_equal(paths[0][0], p[0]) for p in paths), "one start state"
            for i in range(K):
                for j in range(i):
                    assert not np.array_equal(paths[i], paths[j]), (source.agent, frames, i, j)


@pipeline
def test_csv_has_k_rows_per_snapshot_and_outputs_exist(gallery):
    import csv

    for agent in AGENTS:
        out = run_dir(gallery, agent) / "skills"
        with (out / "skills.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["snapshot_frames"]) for r in rows] == [SNAPSHOTS[0]] * K + [SNAPSHOTS[1]] * K, agent
        assert all(float(r["distance_travelled"]) >= float(r["displacement"]) >= 0 for r in rows)
        assert all(int(r["cells_visited"]) >= 1 for r in rows)
        scores = {r["score_name"] for r in rows}
        expected = {
            "diayn": "discriminator_accuracy",
            "cic": "contrastive_accuracy",
            "metra": "phi_displacement_along_z",
            "rnd": "",
        }[agent]
        assert scores == {expected}, (agent, scores)
        if agent == "diayn":  # one-hot skills: K evenly spaced indices of 16
            assert [r["skill_label"] for r in rows[:K]] == ["skill 0", "skill 5", "skill 10"]
            assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
        if agent == "metra":  # 2-dim skills: K evenly spaced unit directions
            assert [r["skill_label"] for r in rows[:K]] == ["0 deg", "120 deg", "240 deg"]
            assert [r["skill"] for r in rows[:K]] == ["1 0", "-0.5 0.866", "-0.5 -0.866"]
        for name in ("trajectories.png", "method.png", "coverage.png", "coverage.csv", "index.html"):
            assert (out / name).is_file(), (agent, name)
        assert {r["start_seed"] for r in rows} == {"0"}
        assert len({(r["start_torso_x"], r["start_torso_height"]) for r in rows}) == 1, "one start state"


def referenced_files(page: Path) -> list[Path]:
    links = re.findall(r'(?:src|href)="([^"]+)"', page.read_text())
    assert links and not any(re.match(r"^[a-z]+:", link) for link in links), links  # relative only
    return [page.parent / link for link in links]


@pipeline
def test_every_file_index_html_references_exists(gallery):
    tree = gallery / "runs" / "skills" / "index.html"
    pages = [tree] + [run_dir(gallery, agent) / "skills" / "index.html" for agent in AGENTS]
    for page in pages:
        for target in referenced_files(page):
            assert target.is_file(), (page, target)
    assert len(referenced_files(tree)) >= 4 * len(AGENTS)


@pipeline
def test_video_has_the_tile_grid(work, tmp_path):
    run = tmp_path / "metra_run"
    shutil.copytree(run_dir(work, "metra"), run)
    skills_main(
        [
            str(run),
            "--skills",
            "3",
            "--steps",
            "20",
            "--video",
            "--tile",
            "32",
            "--every",
            "10",
            "--snapshots",
            str(SNAPSHOTS[1]),
        ]
    )
    frames = iio.imread(run / "skills" / f"video_{SNAPSHOTS[1]}.mp4", plugin="pyav" if _has_pyav() else None)
    # K=3 -> 2 x 2 grid of 32 px tiles; steps 0, 10, 20 of a 21-state rollout
    assert frames.shape == (3, 64, 64, 3), frames.shape
    assert frames[:, 32:, 32:].max() < 20  # the fourth tile is empty (black, up to codec noise)


@pipeline
def test_out_dir_comparison_and_rerun_replaces_only_its_files(work, tmp_path, capsys):
    import csv

    out = tmp_path / "gallery"
    skills_main(
        [str(work / "runs"), "--skills", "2", "--steps", "10", "--start-seed", "5", "--out", str(out), "--html"]
    )
    assert "start state: first reset of walker_stand with seed 5" in capsys.readouterr().out
    for name in ("compare_walker.png", "coverage_walker.png", "index.html"):
        assert (out / name).is_file(), name
    with (out / "coverage_walker.csv").open(newline="") as f:
        assert sorted({r["method"] for r in csv.DictReader(f)}) == sorted(AGENTS)
    runs = [out / "walker" / agent / "seed_1" for agent in AGENTS]
    assert all((run / "index.html").is_file() and (run / "method.png").is_file() for run in runs)
    assert not (run_dir(work, "cic") / "skills" / "seed5").exists()
    (out / "notes.txt").write_text("mine")
    skills_main([str(work / "runs"), "--skills", "2", "--steps", "10", "--start-seed", "5", "--out", str(out)])
    assert not (out / "index.html").exists() and not any((run / "index.html").exists() for run in runs)
    assert (out / "notes.txt").read_text() == "mine" and (out / "compare_walker.png").is_file()


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


# --- bad input: one line, exit 2, nothing written ---
def _refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        skills_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_path_without_a_run(tmp_path, capsys):
    assert "no pre-training run" in _refused([str(tmp_path)], capsys)
    assert list(tmp_path.iterdir()) == []


@pipeline
def test_corrupt_snapshot(work, tmp_path, capsys):
    bad = tmp_path / "states" / "walker" / "cic" / "1" / "snapshot_400.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(run_dir(work, "cic").joinpath("config.yaml").read_bytes()[:100])  # not a torch file
    line = _refused([str(tmp_path)], capsys)
    assert str(bad) in line and "corrupt" in line
    assert sorted(p.name for p in bad.parent.iterdir()) == ["snapshot_400.pt"]


@pipeline
def test_k_below_one(work, tmp_path, capsys):
    run = tmp_path / "rnd_run"
    shutil.copytree(run_dir(work, "rnd"), run, ignore=shutil.ignore_patterns("skills"))
    assert "--skills=0" in _refused([str(run), "--skills", "0"], capsys)
    assert not (run / "skills").exists()


@pipeline
def test_no_opengl_renderer_names_mujoco_gl(background):
    proc = background["no_gl"].result()
    assert proc.returncode == 2, explain(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "MUJOCO_GL=glfw" in lines[0], proc.stderr
    assert not (background["no_gl_run"] / "skills").exists()


# --- TensorBoard during pre-training ---
@pipeline
def test_tensorboard_hook_logs_and_leaves_rng_and_agent_alone(work, tmp_path):
    """The hook must not change what pre-training computes: torch's RNG and every network and
    running statistic (RND's normalisers, CIC's entropy scale) are the same afterwards."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from urlb.tools.pretrained import load_pretrained_agent, primal_env
    from urlb.tools.skills.tensorboard import log_snapshot_skills

    for agent_name in ("diayn", "rnd", "cic"):
        cfg = OmegaConf.load(run_dir(work, agent_name) / "config.yaml")
        agent = load_pretrained_agent(run_dir(work, agent_name), primal_env(cfg))
        state = {k: v.clone() for k, v in agent.state_dict().items()}
        writer = SummaryWriter(str(tmp_path / agent_name))
        torch.manual_seed(123)
        before = torch.get_rng_state()
        log_snapshot_skills(writer, agent, cfg, 400, say=lambda _: None, skills=2, steps=15)
        assert torch.equal(before, torch.get_rng_state()), agent_name
        after = agent.state_dict()
        assert all(torch.equal(state[k], after[k]) for k in state), agent_name
        writer.close()
        events = EventAccumulator(str(tmp_path / agent_name)).Reload()
        assert [e.step for e in events.Scalars("skills/coverage_cells")] == [400]
        assert "skills/trajectories" in events.Tags()["images"]


# --- finetune.py snapshot_ts=N without agent= ---
def _argv(work: Path, root: Path, frames: int, *extra: str) -> list[str]:
    return [
        str(REPO / "finetune.py"),
        "task=walker_run",
        f"snapshot_ts={frames}",
        "preset=quick",
        "agent.hidden_dim=32",
        f"snapshot_dir={root}",
        f"run_root={work / 'ft_runs'}",
        *extra,
    ]


FT_RUN_LENGTH = [  # run length only: no preset, agent or size
    "num_train_frames=250",
    "num_seed_frames=100",
    "eval_every_frames=1000000",
    "num_eval_episodes=1",
    "batch_size=32",
    "replay_buffer_size=2000",
    "device=cpu",
    "use_tb=false",
]


def _only_metra(work: Path, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    only = root / "states" / "walker" / "metra" / "1"
    only.mkdir(parents=True)
    shutil.copy(work / "models" / "states" / "walker" / "metra" / "1" / "snapshot_400.pt", only)
    return root


@pipeline
def test_agent_inference_picks_the_only_candidate(work, tmp_path, capsys):
    root = _only_metra(work, tmp_path)
    argv = _argv(work, root, 400)
    assert choose_agent(argv, REPO / "configs") == [*argv, "agent=metra"]
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("agent=metra: from the only snapshot at 400 frames"), out


@pipeline
def test_snapshot_ts_as_typed_takes_the_snapshots_sizes_and_runs(work, tmp_path, capsys):
    """No preset, no agent, no size typed: the only snapshot (width 32) is fine-tuned."""
    root = _only_metra(work, tmp_path)
    typed = ["finetune.py", "task=walker_run", "snapshot_ts=400", f"snapshot_dir={root}"]
    assert choose_agent(typed, REPO / "configs") == [*typed, "agent=metra", "agent.hidden_dim=32"]
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("agent=metra agent.hidden_dim=32: from the only snapshot"), out
    proc = run_cmd([*typed, f"run_root={tmp_path / 'ft'}", *FT_RUN_LENGTH])
    assert proc.returncode == 0, explain(proc)
    assert "agent=metra agent.hidden_dim=32" in proc.stdout
    (run,) = (tmp_path / "ft").rglob("metra/snapshot_400/seed_1")
    assert OmegaConf.load(run / "config.yaml").agent.hidden_dim == 32 and (run / "eval.csv").is_file()


@pipeline
def test_refusal_hint_repeats_every_override_and_its_command_runs(work, tmp_path, capsys):
    root = _only_metra(work, tmp_path)
    typed = ["finetune.py", "task=walker_run", "snapshot_ts=300", "snapshot_seed=1", f"snapshot_dir={root}"]
    with pytest.raises(SystemExit):
        choose_agent(typed, REPO / "configs")
    hint = [
        line.strip() for line in capsys.readouterr().err.splitlines() if line.strip().startswith("python finetune.py")
    ]
    assert len(hint) == 1, hint
    assert all(
        part in hint[0].split() for part in ("agent=metra", "snapshot_ts=400", "snapshot_seed=1", "agent.hidden_dim=32")
    )
    proc = run_cmd([*hint[0].split()[1:], f"run_root={tmp_path / 'ft'}", *FT_RUN_LENGTH])
    assert proc.returncode == 0, explain(proc)


def test_agent_inference_leaves_typed_commands_alone():
    for argv in (
        ["finetune.py", "agent=ddpg", "snapshot_ts=0"],
        ["finetune.py", "agent=ddpg", "task=walker_run"],
        ["finetune.py", "task=walker_run"],
        ["finetune.py", "snapshot_ts=0"],
        ["finetune.py", "agent=cic", "snapshot_ts=400"],
    ):
        assert choose_agent(argv, REPO / "configs") == argv


@pipeline
def test_agent_inference_refuses_none_listing_what_exists(work, capsys):
    with pytest.raises(SystemExit) as exit_info:
        choose_agent(_argv(work, work / "models", 300), REPO / "configs")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no agent has a snapshot at 300 frames" in err and "frames 200, 400" in err and "agent=" in err


@pipeline
def test_finetune_refuses_two_candidates_before_building_anything(work, background):
    proc = background["refuse"].result()
    assert proc.returncode == 2, explain(proc)
    assert all(f"agent={agent}" in proc.stderr for agent in AGENTS), proc.stderr
    assert not (work / "ft_runs").exists()


@pytest.mark.parametrize(("domain", "width"), [("quadruped", 2), ("jaco", 3)])
def test_other_domains_roll_out_and_draw(domain, width, tmp_path):
    """An untrained METRA agent on quadruped (torso x-y) and jaco (hand x-y-z)."""
    from urlb.agents import build_agent
    from urlb.tools.skills import figures
    from urlb.tools.skills.rollouts import make_start, roll_out_snapshot

    env, start = make_start(domain, 0)
    cfg = OmegaConf.create({"agent": {"name": "metra", "hidden_dim": 32}, "obs_type": "states"})
    agent = build_agent(cfg, env.observation_spec().shape, env.action_spec().shape[0], "cpu", reward_free=False)
    snap = roll_out_snapshot(agent, env, start, 100, 2, steps=10)
    assert [r.positions.shape for r in snap.rollouts] == [(11, width)] * 2
    assert all(np.isfinite(r.positions).all() for r in snap.rollouts)
    if domain == "jaco":  # the hand starts above the table, within a metre of the base
        assert 0.0 < snap.rollouts[0].positions[0, 2] < 1.0
    figures.save(figures.trajectory_figure(domain, [snap], domain), tmp_path / "t.png")
    figures.save(figures.method_figure(domain, [snap], domain), tmp_path / "m.png")
    assert (tmp_path / "t.png").stat().st_size > 0 and (tmp_path / "m.png").stat().st_size > 0


@pipeline
def test_run_stopped_after_its_first_snapshot(work, tmp_path):
    import csv

    run = tmp_path / "cic_run"
    shutil.copytree(run_dir(work, "cic"), run, ignore=shutil.ignore_patterns("skills"))
    models = tmp_path / "models" / "states" / "walker" / "cic" / "1"
    models.mkdir(parents=True)
    shutil.copy(work / "models" / "states" / "walker" / "cic" / "1" / f"snapshot_{SNAPSHOTS[0]}.pt", models)
    cfg = OmegaConf.load(run / "config.yaml")
    cfg.snapshot_dir = str(tmp_path / "models")
    OmegaConf.save(cfg, run / "config.yaml")
    skills_main([str(run), "--skills", "2", "--steps", "10", "--html"])
    with (run / "skills" / "skills.csv").open(newline="") as f:
        assert [int(r["snapshot_frames"]) for r in csv.DictReader(f)] == [SNAPSHOTS[0]] * 2
    page = (run / "skills" / "index.html").read_text()
    assert "not written" in page and f"{SNAPSHOTS[1]:,}" in page
