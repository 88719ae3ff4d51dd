"""Snapshots: path layout, bit-exact round trip into a fresh agent, clear errors for missing,
truncated and mismatched files, and atomic writes that survive a failure mid-save."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import urlb.snapshot
from urlb.agents.rnd import RND
from urlb.ddpg import DDPGAgent
from urlb.replay import Batch
from urlb.snapshot import SnapshotError, atomic_torch_save, load_snapshot, save_snapshot, snapshot_path

OBS_DIM, ACT_DIM = 24, 6
META = {
    "agent": "rnd",
    "domain": "walker",
    "obs_type": "states",
    "obs_shape": [OBS_DIM],
    "action_dim": ACT_DIM,
    "skill_dim": 0,
    "hidden_dim": 32,
    "plugin": "RND",
    "frames": 600,
}
WHERE = ("states", "walker", "rnd", 1, 600)


def make_agent() -> DDPGAgent:
    plugin = RND(OBS_DIM, ACT_DIM, hidden_dim=32, rep_dim=16)
    return DDPGAgent(
        "states", (OBS_DIM,), ACT_DIM, "cpu", hidden_dim=32, feature_dim=16, plugin=plugin, reward_free=True
    )


def trained_agent() -> DDPGAgent:
    torch.manual_seed(0)
    agent = make_agent()
    gen = torch.Generator().manual_seed(1)
    for step in range(3):  # moves weights, target critic and RND's running statistics off their init
        obs, nxt = torch.randn(16, OBS_DIM, generator=gen), torch.randn(16, OBS_DIM, generator=gen)
        batch = Batch(
            obs,
            torch.rand(16, ACT_DIM, generator=gen) * 2 - 1,
            torch.rand(16, 1, generator=gen),
            torch.full((16, 1), 0.97),
            nxt,
            nxt,
            None,
        )
        agent.update(batch, step)
    return agent


def payload_of(agent: DDPGAgent) -> dict:
    return {k: v for k, v in agent.networks_state().items() if not k.endswith("_opt")}


def write_valid(root: Path) -> tuple[Path, dict]:
    payload = payload_of(trained_agent())
    path = save_snapshot(snapshot_path(root, *WHERE), payload, META)
    return path, payload


def assert_state_equal(a: dict, b: dict, where: str = "") -> None:
    assert a.keys() == b.keys(), where
    for k in a:
        if isinstance(a[k], dict):
            assert_state_equal(a[k], b[k], f"{where}.{k}")
        else:
            assert isinstance(b[k], torch.Tensor), f"{where}.{k}"
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), f"{where}.{k} differs"


def test_snapshot_path_layout(tmp_path):
    path = snapshot_path(tmp_path / "models", "pixels", "quadruped", "rnd", 3, 2_000_000)
    assert path == tmp_path / "models" / "pixels" / "quadruped" / "rnd" / "3" / "snapshot_2000000.pt"
    assert snapshot_path("m", "states", "walker", "ddpg", 1, 100000.0) == Path(
        "m/states/walker/ddpg/1/snapshot_100000.pt"
    )


def test_round_trip_is_bit_exact_and_loads_into_fresh_agent(tmp_path):
    path, payload = write_valid(tmp_path)
    assert path == tmp_path / "states" / "walker" / "rnd" / "1" / "snapshot_600.pt"
    assert path.is_file()
    data = load_snapshot(tmp_path, *WHERE, expected={"agent": "rnd", "domain": "walker", "hidden_dim": 32})
    assert {k: data["metadata"][k] for k in META} == META
    assert data["metadata"]["format_version"] == urlb.snapshot.FORMAT_VERSION
    assert set(data["state"]) == {"actor", "critic", "critic_target", "encoder", "plugin"}
    assert_state_equal(payload, data["state"])

    torch.manual_seed(123)  # a fresh agent with different initial weights
    fresh = make_agent()
    assert not torch.equal(fresh.actor.trunk[0].weight, payload["actor"]["trunk.0.weight"])
    fresh.load_networks(data["state"], ("actor", "critic", "critic_target", "encoder", "plugin"))
    assert_state_equal(payload, payload_of(fresh))
    # RND's running statistics (buffers) travel with the plugin.
    assert torch.equal(fresh.plugin.obs_rms.mean, payload["plugin"]["obs_rms.mean"])


def test_load_networks_without_target_copies_the_critic(tmp_path):
    path, payload = write_valid(tmp_path)
    data = load_snapshot(tmp_path, *WHERE, expected={})
    torch.manual_seed(5)
    fresh = make_agent()
    fresh.load_networks(data["state"], ("actor", "critic"))
    assert_state_equal(fresh.critic_target.state_dict(), payload["critic"])
    assert_state_equal(fresh.actor.state_dict(), payload["actor"])


def test_missing_snapshot_error_lists_path_existing_and_command(tmp_path):
    write_valid(tmp_path)  # snapshot_600 exists; ask for 999
    with pytest.raises(SnapshotError) as info:
        load_snapshot(tmp_path, "states", "walker", "rnd", 1, 999, expected={})
    message = str(info.value)
    assert str(snapshot_path(tmp_path, "states", "walker", "rnd", 1, 999)) in message
    assert os.path.join("states", "walker", "rnd", "1", "snapshot_600.pt") in message
    assert "python pretrain.py" in message


def test_missing_snapshot_with_nothing_pretrained(tmp_path):
    with pytest.raises(SnapshotError) as info:
        load_snapshot(tmp_path / "nowhere", "states", "jaco", "rnd", 2, 100, expected={})
    message = str(info.value)
    assert str(snapshot_path(tmp_path / "nowhere", "states", "jaco", "rnd", 2, 100)) in message
    assert "(none)" in message and "python pretrain.py" in message


def test_truncated_snapshot_is_unreadable(tmp_path):
    path, _ = write_valid(tmp_path)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(SnapshotError, match="unreadable") as info:
        load_snapshot(tmp_path, *WHERE, expected={})
    assert str(path) in str(info.value)


def test_not_a_snapshot(tmp_path):
    path = snapshot_path(tmp_path, *WHERE)
    path.parent.mkdir(parents=True)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(SnapshotError, match="metadata"):
        load_snapshot(tmp_path, *WHERE, expected={})


def test_metadata_mismatch_names_the_key(tmp_path):
    path, _ = write_valid(tmp_path)
    # A quadruped run pointed at a walker snapshot (same path: the file was moved or copied).
    with pytest.raises(SnapshotError) as info:
        load_snapshot(tmp_path, *WHERE, expected={"agent": "rnd", "domain": "quadruped"})
    message = str(info.value)
    assert "domain" in message and "'walker'" in message and "'quadruped'" in message
    assert "agent" not in message.split("does not fit this run")[-1]  # only the mismatched key is named
    with pytest.raises(SnapshotError, match="hidden_dim"):
        load_snapshot(tmp_path, *WHERE, expected={"hidden_dim": 1024})


@pytest.mark.parametrize("exc_type", [OSError, KeyboardInterrupt])
def test_atomic_save_failure_keeps_previous_file(tmp_path, monkeypatch, exc_type):
    target = tmp_path / "ckpt" / "checkpoint.pt"
    atomic_torch_save({"metadata": {"v": 1}, "state": {"w": torch.arange(5)}}, target)
    before = target.read_bytes()
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")  # some bytes reach the temp file, then the write fails
        raise exc_type("disk full (simulated)")

    monkeypatch.setattr(urlb.snapshot.torch, "save", failing_save)
    with pytest.raises(exc_type):
        atomic_torch_save({"metadata": {"v": 2}, "state": {"w": torch.zeros(1000)}}, target)
    monkeypatch.setattr(urlb.snapshot.torch, "save", real_save)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["checkpoint.pt"], "a temp file was left behind"
    loaded = torch.load(target, weights_only=True)
    assert loaded["metadata"] == {"v": 1} and torch.equal(loaded["state"]["w"], torch.arange(5))


def test_atomic_save_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "b" / "snap.pt"  # parents are created
    atomic_torch_save({"x": torch.ones(3)}, target)
    atomic_torch_save({"x": torch.full((3,), 2.0)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.full((3,), 2.0))
    assert [p.name for p in target.parent.iterdir()] == ["snap.pt"]
