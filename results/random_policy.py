"""Return of the uniform random policy on a task (the baseline the learning checks compare with).

    python results/random_policy.py walker_stand --episodes 10
"""

import argparse

import numpy as np

from urlb import envs

parser = argparse.ArgumentParser()
parser.add_argument("task")
parser.add_argument("--episodes", type=int, default=10)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
env, rng = envs.make(args.task, seed=args.seed), np.random.default_rng(args.seed)
returns = []
for _ in range(args.episodes):
    time_step, total = env.reset(), 0.0
    while not time_step.last():
        time_step = env.step(rng.uniform(-1, 1, env.action_spec().shape).astype(np.float32))
        total += time_step.reward
    returns.append(total)
print(f"{args.task}: random policy return {np.mean(returns):.1f} +- {np.std(returns) / np.sqrt(len(returns)):.1f} "
      f"(mean +- s.e. over {len(returns)} episodes)")
