"""The method checker (urlb-check-agent, urlb.agents.contract): every built-in method passes;
broken variants of a small method outside the tree each fail with one line naming the rule;
a method from the user's own package pre-trains and fine-tunes through ``agent=module:Class``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, TINY, child_env

from urlb.agents import agent_names
from urlb.agents.contract import Checker
from urlb.agents.external import load_agent_config
from urlb.tools.check_agent import main as check_agent

# An ICM-sized method: a forward model's error is the reward. Each variant below breaks one rule.
METHOD = """
import numpy as np
import torch

from urlb.agents.base import Plugin
from urlb.nets import mlp, weight_init


class Good(Plugin):
    name = "good"

    def __init__(self, obs_dim, action_dim, hidden_dim=1024, lr=1e-4, scale=1.0):
        super().__init__(obs_dim, action_dim)
        self.scale = scale
        self.forward_net = mlp(obs_dim + action_dim, hidden_dim, obs_dim, num_hidden=1)
        self.apply(weight_init)
        self.optimizer = self.add_optimizer("optimizer", torch.optim.Adam(self.forward_net.parameters(), lr=lr))

    def inputs(self, batch):
        return torch.cat([batch.obs, batch.action], dim=-1)

    def error(self, batch):
        return (batch.next_obs - self.forward_net(self.inputs(batch))).norm(dim=-1, keepdim=True)

    def loss(self, batch):
        return self.error(batch).mean()

    def update(self, batch, step):
        loss = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return self.intrinsic_reward(batch), {"loss": loss.item()}

    @torch.no_grad()
    def intrinsic_reward(self, batch):
        return self.scale * self.error(batch)


class ShapeBug(Good):  # the action is left out of the forward model's input
    def inputs(self, batch):
        return batch.obs


class NanLoss(Good):
    def loss(self, batch):
        return self.error(batch).mean() * float("nan")


class MissingKey(Good):  # rep_dim has no default and the config file does not give it
    def __init__(self, obs_dim, action_dim, rep_dim, hidden_dim=1024, lr=1e-4, scale=1.0):
        super().__init__(obs_dim, action_dim, hidden_dim, lr, scale)


class FlatReward(Good):
    @torch.no_grad()
    def intrinsic_reward(self, batch):
        return self.scale * self.error(batch).squeeze(-1)


class MutatesBatch(Good):
    def update(self, batch, step):
        batch.obs.mul_(0.5)  # a normalisation written in place: the backbone's batch changes too
        return super().update(batch, step)


class NumpyNoise(Good):  # draws from numpy's global generator, which no seed controls here
    def loss(self, batch):
        return self.error(batch).mean() * (1.0 + 0.1 * float(np.random.standard_normal()))
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("user_code")
    (root / "my_pkg").mkdir()
    (root / "my_pkg" / "__init__.py").write_text("")
    (root / "my_pkg" / "curiosity.py").write_text(textwrap.dedent(METHOD))
    (root / "my_pkg" / "curiosity.yaml").write_text("# the method's own keys\nscale: 1.0\n")
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m.startswith("my_pkg")]:
        del sys.modules[name]


def failures(target: str) -> list[str]:
    results = Checker(load_agent_config(target)).run(("states",))
    return [problem for _, problem in results if problem is not None]


@pytest.mark.parametrize("name", [n for n in agent_names() if n != "ddpg"])
def test_every_builtin_method_keeps_the_contract(name):
    assert failures(name) == []


PIXEL_METHODS = [n for n in agent_names() if n != "ddpg" and "pixels" in Checker(load_agent_config(n))._obs_types()]


def test_every_builtin_method_but_cesd_declares_pixels():
    assert sorted(set(agent_names()) - set(PIXEL_METHODS)) == ["cesd", "ddpg"]


@pytest.mark.parametrize("name", PIXEL_METHODS)
def test_every_builtin_method_that_declares_pixels_updates_on_what_the_backbone_gives_it(name):
    """Frames for a method that reads frames (RND, ProtoRL, BeCL), encoder features otherwise; a
    method's pixel run is refused at start when this rule fails."""
    checker = Checker(load_agent_config(name))
    assert checker.run(("pixels",), only={"update (pixels)"}) == [("update (pixels)", None)]


def test_the_pixel_update_of_a_method_that_declares_pixels(package):
    results = Checker(load_agent_config("my_pkg.curiosity:Good")).run(("pixels",), only={"update (pixels)"})
    assert results == [("update (pixels)", None)]


@pytest.mark.parametrize(
    "cls, rule, says",
    [
        ("ShapeBug", "update (states)", "raised RuntimeError"),
        ("NanLoss", "update (states)", "metric 'loss' is nan"),
        ("MissingKey", "config keys", "rep_dim"),
        ("FlatReward", "update (states)", "reward shape (32,)"),
        ("MutatesBatch", "update (states)", "changed batch.obs in place"),
        ("NumpyNoise", "determinism", "numpy"),
    ],
)
def test_a_broken_rule_is_one_line_naming_it_and_the_fix(package, cls, rule, says, capsys):
    lines = failures(f"my_pkg.curiosity:{cls}")
    assert len(lines) >= 1
    assert lines[0].startswith(f"{rule}:") and says in lines[0] and "->" in lines[0], lines[0]
    assert "\n" not in lines[0]
    assert check_agent([f"my_pkg.curiosity:{cls}", "--obs-types=states"]) == 1
    assert "FAIL  " + lines[0] in capsys.readouterr().out


def test_the_good_method_passes_and_exits_0(package, capsys):
    assert check_agent(["my_pkg.curiosity:Good", "--obs-types=states"]) == 0
    assert "all 8 rules hold" in capsys.readouterr().out


def test_an_unknown_module_or_class_is_one_line_and_exit_2(package, capsys):
    assert check_agent(["my_pkg.nowhere:Good"]) == 2
    assert check_agent(["my_pkg.curiosity:Nothing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot import my_pkg.nowhere" in err[0] and "no subclass of urlb.agents.base.Plugin named Nothing" in err[1]


def run_script(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = child_env()
    env["PYTHONPATH"] = f"{REPO}:{cwd}"
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.pipeline
def test_a_method_of_ones_own_package_pretrains_and_finetunes(package, tmp_path):
    common = [
        *TINY,
        "agent=my_pkg.curiosity:Good",
        "num_seed_frames=500",
        "num_train_frames=1000",
        "eval_every_frames=1000",
        f"run_root={tmp_path / 'runs'}",
        f"snapshot_dir={tmp_path / 'models'}",
    ]
    pre = run_script("pretrain.py", [*common, "domain=walker", "snapshots=[1000]"], package)
    assert pre.returncode == 0, pre.stderr[-2000:]
    assert (tmp_path / "models/states/walker/good/1/snapshot_1000.pt").exists()
    fine = run_script("finetune.py", [*common, "task=walker_stand", "snapshot_ts=1000"], package)
    assert fine.returncode == 0, fine.stderr[-2000:]
    assert (tmp_path / "runs/quick/finetune/states/walker_stand/good/snapshot_1000/seed_1/eval.csv").exists()


@pytest.mark.pipeline
def test_pretrain_refuses_a_broken_method_before_training(package, tmp_path):
    args = [
        *TINY,
        "agent=my_pkg.curiosity:FlatReward",
        "domain=walker",
        "num_train_frames=1000",
        "num_seed_frames=500",
        "snapshots=[1000]",
        f"run_root={tmp_path / 'runs'}",
        f"snapshot_dir={tmp_path / 'models'}",
    ]
    run = run_script("pretrain.py", args, package)
    assert run.returncode == 2
    assert "breaks the plugin contract (update (states): reward shape (32,)" in run.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run directory was made
