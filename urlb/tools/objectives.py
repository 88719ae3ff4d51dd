"""Does pre-training do what its objective claims? ``python -m urlb.tools.objectives RUNS...``

For each pre-training run directory found below RUNS it prints the method's own objective at
the start and at the end of training (from train.csv, averaged over the first and last few
episodes with updates), and the state coverage of the pre-trained policy against a random
policy: the mean distance of a visited state to its 12 nearest visited neighbours (raw states),
the quantity APT's reward maximises. For METRA it also rolls out each snapshot with random
skills and reports phi's displacement along the skill (the sum of METRA's rewards).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from urlb.agents.rewards import ParticleEntropy
from urlb.replay import Batch

# Run discovery and snapshot loading are shared with the skill gallery (urlb.tools.skills).
from urlb.tools.pretrained import find_pretrain_runs, load_pretrained_agent, primal_env, written_snapshots

__all__ = [
    "find_pretrain_runs",
    "load_pretrained_agent",
    "main",
    "metra_skill_displacement",
    "primal_env",
    "report",
    "rollout",
    "rollout_intrinsic_reward",
    "visited_states",
    "written_snapshots",
]

# Per method: the train.csv columns that show its objective working.
OBJECTIVE_COLUMNS: dict[str, tuple[str, ...]] = {
    "rnd": ("rnd_loss", "intrinsic_reward"),
    "apt": ("icm_forward_error", "icm_inverse_error", "intrinsic_reward"),
    "diayn": ("diayn_accuracy", "diayn_loss"),
    "cic": ("cic_contrastive_loss", "cic_logits_accuracy", "intrinsic_reward"),
    "metra": ("metra_along_z", "metra_step_norm", "metra_lambda", "metra_constraint"),
    "icm": ("icm_forward_error", "icm_inverse_error", "intrinsic_reward"),
    "disagreement": ("disagreement_loss", "intrinsic_reward"),
    "proto": ("proto_loss", "intrinsic_reward"),
    "smm": ("smm_vae_loss", "smm_pred_loss", "smm_pred_accuracy", "intrinsic_reward"),
    "aps": ("aps_loss", "aps_entropy_reward", "aps_sf_reward"),
    "becl": ("becl_contrastive_loss", "becl_contrastive_reward"),
    "cesd": ("cesd_cic_loss", "cesd_proto_loss", "cesd_rewarded_clusters", "intrinsic_reward"),
}

# Methods whose final reward model scores the pre-trained policy's transitions against a random policy's.
REWARD_CHECK = ("icm", "disagreement", "proto", "smm", "aps", "becl", "cesd")


def metric_series(run_dir: Path, column: str) -> list[float]:
    """A training metric per episode, from train.csv, else from the TensorBoard events."""
    with (run_dir / "train.csv").open(newline="") as f:
        values = [float(r[column]) for r in csv.DictReader(f) if r.get(column) not in (None, "")]
    if values or not (run_dir / "tb").is_dir():
        return values
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0}).Reload()
    tag = f"train/{column}"
    return [e.value for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def start_and_end(values: list[float], window: int = 2) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    window = max(1, min(window, len(values) // 2))
    return float(np.mean(values[:window])), float(np.mean(values[-window:]))


def mean_knn_distance(states: np.ndarray, k: int = 12) -> float:
    dist = ParticleEntropy(knn_k=k + 1).knn_distances(torch.as_tensor(states, dtype=torch.float32))
    return float(dist[:, 1:].mean())  # column 0 is the point itself


def rollout(run_dir: Path, steps: int, policy: str, seed: int = 0) -> dict[str, np.ndarray]:
    """``steps`` transitions on the domain's primal task by the pre-trained policy acting as in
    pre-training (exploration noise, skills resampled), or by uniform random actions: obs, action,
    skill (the prior's, drawn for both policies, None-free only for skill methods), next_obs and
    the episode index of each step."""
    env = primal_env(OmegaConf.load(run_dir / "config.yaml"), seed)
    action_dim = env.action_spec().shape[0]
    rng, skill_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    torch.manual_seed(seed)  # exploration noise: the same figures on every call
    agent = load_pretrained_agent(run_dir, env) if policy == "pretrained" else None
    plugin = (
        agent.plugin
        if agent is not None
        else (load_pretrained_agent(run_dir, env).plugin if policy == "random_with_skills" else None)
    )
    out: dict[str, list] = {"obs": [], "action": [], "skill": [], "next_obs": [], "episode": []}
    time_step, skill, t, episode = env.reset(), None, 0, 0
    while len(out["obs"]) < steps:
        every = plugin.update_skill_every_step if plugin is not None else 0
        if plugin is not None and (t == 0 or (every > 0 and t % every == 0)):  # 0: per episode (SMM)
            skill = plugin.sample_skill(rng if agent is not None else skill_rng)
        if agent is None:
            action = rng.uniform(-1, 1, action_dim).astype(np.float32)
        else:
            action = agent.act(time_step.observation, skill, step=10**6, eval_mode=False)
        obs = time_step.observation
        time_step = env.step(action)
        for key, value in (
            ("obs", obs),
            ("action", action),
            ("skill", skill),
            ("next_obs", time_step.observation),
            ("episode", episode),
        ):
            out[key].append(value)
        t += 1
        if time_step.last():
            time_step, t, episode = env.reset(), 0, episode + 1
    return {k: (np.stack(v) if k != "skill" or v[0] is not None else None) for k, v in out.items()}


def visited_states(run_dir: Path, steps: int, policy: str, seed: int = 0) -> np.ndarray:
    """States visited by the pre-trained or a uniform random policy (see ``rollout``)."""
    return rollout(run_dir, steps, policy, seed)["next_obs"]


@torch.no_grad()
def rollout_intrinsic_reward(run_dir: Path, steps: int, seed: int = 0) -> dict[str, float]:
    """Mean intrinsic reward, under the last snapshot's reward model (``intrinsic_reward``: no
    training, no change to running statistics), of the n-step transitions of the pre-trained
    policy and of a uniform random policy (skills drawn from the prior for both). Pre-training maximises this
    reward's return, so a working method's policy scores above the random one."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    plugin = load_pretrained_agent(run_dir, primal_env(cfg)).plugin
    means = {}
    for policy in ("pretrained", "random_with_skills"):
        data = rollout(run_dir, steps, policy, seed)
        n, last = int(cfg.nstep), len(data["obs"]) - 1
        idx = np.arange(len(data["obs"]))
        ahead = np.minimum(idx + n - 1, last)
        ok = data["episode"][ahead] == data["episode"]  # n-step successor within the episode
        idx, ahead = idx[ok], ahead[ok]

        def t(a):
            return torch.as_tensor(a, dtype=torch.float32)

        rewards = []
        for chunk in np.array_split(np.arange(len(idx)), max(1, len(idx) // int(cfg.batch_size))):
            i, j = idx[chunk], ahead[chunk]
            batch = Batch(
                obs=t(data["obs"][i]),
                action=t(data["action"][i]),
                reward=torch.zeros(len(i), 1),
                discount=torch.ones(len(i), 1),
                next_obs=t(data["next_obs"][j]),
                next_obs_1step=t(data["next_obs"][i]),
                skill=None if data["skill"] is None else t(data["skill"][i]),
            )
            rewards.append(plugin.intrinsic_reward(batch).mean().item() * len(i))
        means[policy.split("_")[0]] = sum(rewards) / len(idx)
    return means


@torch.no_grad()
def metra_skill_displacement(run_dir: Path, frames: int, num_skills: int = 64, seed: int = 0) -> dict[str, float]:
    """METRA's objective on rollouts: for each of ``num_skills`` random skills z_i, the
    deterministic policy acts from a reset for one skill period, and d_i = phi(s_T) - phi(s_0).
    The sum of METRA's rewards over that period is d_i . z_i ("aligned"); d_i . z_j for other
    skills j is what the same movement would score if it ignored its skill ("mismatched")."""
    env = primal_env(OmegaConf.load(run_dir / "config.yaml"), seed)
    agent = load_pretrained_agent(run_dir, env, frames)
    phi, rng = agent.plugin.phi, np.random.default_rng(seed)
    skills = np.stack([agent.plugin.sample_skill(rng) for _ in range(num_skills)])
    displacements = []
    for skill in skills:
        time_step = env.reset()
        first = time_step.observation
        for _ in range(agent.plugin.update_skill_every_step):
            time_step = env.step(agent.act(time_step.observation, skill, step=10**6, eval_mode=True))
            if time_step.last():
                break
        ends = torch.as_tensor(np.stack([first, time_step.observation]), dtype=torch.float32)
        start_phi, end_phi = phi(ends)
        displacements.append((end_phi - start_phi).numpy())
    # [i, j] = d_i . z_j, with z_j as METRA's reward uses it (discrete one-hots centred, D/(D-1))
    scores = np.stack(displacements) @ agent.plugin.reward_direction(torch.as_tensor(skills)).numpy().T
    off_diagonal = ~np.eye(num_skills, dtype=bool)
    aligned = np.diag(scores)
    return {
        "aligned": float(aligned.mean()),
        "aligned_se": float(aligned.std(ddof=1) / np.sqrt(num_skills)),
        "mismatched": float(scores[off_diagonal].mean()),
        "aligned_positive": float((aligned > 0).mean()),
        "norm": float(np.linalg.norm(displacements, axis=1).mean()),
    }


def report(run_dir: Path, coverage_steps: int, metra_skills: int = 64) -> list[str]:
    cfg = OmegaConf.load(run_dir / "config.yaml")
    agent = cfg.agent.name
    lines = [f"{agent} on {cfg.domain} (seed {cfg.seed}, {cfg.num_train_frames} frames) - {run_dir}"]
    for column in OBJECTIVE_COLUMNS.get(agent, ()):
        span = start_and_end(metric_series(run_dir, column))
        if span is not None:
            lines.append(f"  {column:<22} start {span[0]:9.4f}  end {span[1]:9.4f}")
    if agent == "metra":
        lines.append(
            f"  phi displacement over {cfg.agent.update_skill_every_step}-step rollouts of {metra_skills} "
            "random skills, "
            f"per snapshot: aligned d_i.z_i (+- s.e.) | mismatched d_i.z_j | share aligned > 0 | mean |d_i|"
        )
        for frames in written_snapshots(cfg):
            d = metra_skill_displacement(run_dir, frames, metra_skills)
            lines.append(
                f"    {frames:>8} frames: {d['aligned']:8.4f} +- {d['aligned_se']:.4f} | {d['mismatched']:8.4f} | "
                f"{d['aligned_positive']:.2f} | {d['norm']:.4f}"
            )
    if agent in REWARD_CHECK and written_snapshots(cfg) and coverage_steps > 0:
        r = rollout_intrinsic_reward(run_dir, coverage_steps)
        lines.append(
            f"  intrinsic reward (final reward model) of {coverage_steps} steps: "
            f"pre-trained policy {r['pretrained']:.4f}, random policy {r['random']:.4f}"
        )
    missing = sorted(set(cfg.snapshots) - set(written_snapshots(cfg)))
    if missing:
        lines.append(f"  snapshots not written (the run stopped before them): {missing}")
    if coverage_steps > 0 and len(missing) < len(cfg.snapshots):
        pretrained_states = visited_states(run_dir, coverage_steps, "pretrained")
        random_states = visited_states(run_dir, coverage_steps, "random")
        lines.append(
            f"  state coverage (mean 12-NN distance of {coverage_steps} visited states): "
            f"pre-trained policy {mean_knn_distance(pretrained_states):.3f}, "
            f"random policy {mean_knn_distance(random_states):.3f}"
        )
        if agent == "apt" and cfg.agent.get("rep") == "icm":
            # APT maximises the entropy of the ICM representation, not of raw states.
            represent = load_pretrained_agent(run_dir, primal_env(cfg)).plugin.represent
            with torch.no_grad():
                rep_pre, rep_rand = (
                    represent(torch.as_tensor(s, dtype=torch.float32)).numpy()
                    for s in (pretrained_states, random_states)
                )
            lines.append(
                f"  coverage in APT's learned representation (same states, final ICM encoder): "
                f"pre-trained policy {mean_knn_distance(rep_pre):.3f}, random policy {mean_knn_distance(rep_rand):.3f}"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m urlb.tools.objectives", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="pre-training run directories or folders above them")
    parser.add_argument(
        "--coverage-steps", type=int, default=2000, help="states visited per policy for the coverage figure (0: skip)"
    )
    args = parser.parse_args(argv)
    runs = find_pretrain_runs(args.runs)
    if not runs:
        raise SystemExit(
            f"no pre-training run (config.yaml with phase: pretrain and train.csv) under "
            f"{', '.join(map(str, args.runs))}"
        )
    for run_dir in runs:
        print("\n".join(report(run_dir, args.coverage_steps)))


if __name__ == "__main__":
    main()
