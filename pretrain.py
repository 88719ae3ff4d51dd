"""Reward-free pre-training: ``python pretrain.py agent=cic domain=walker``.

Trains with the agent's intrinsic reward only and writes snapshots under ``snapshot_dir``.
"""

import sys

import hydra
from omegaconf import DictConfig

import urlb.runs.config  # noqa: F401  (registers the config resolvers)
from urlb.agents.external import register_external_agents
from urlb.runs.launch import precheck, run_phase
from urlb.tools.skills.tensorboard import log_snapshot_skills


@hydra.main(config_path="configs", config_name="pretrain", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # With TensorBoard on, each snapshot's skills are drawn there (the skill gallery's short rollouts).
    run_phase(cfg, snapshot_hooks=[log_snapshot_skills])


if __name__ == "__main__":
    register_external_agents(sys.argv[1:])  # agent=my_package.my_method:MyAgent: a method of your own
    precheck(__file__)  # refused commands and finished runs stop here, before Hydra writes anything
    main()
