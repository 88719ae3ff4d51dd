"""Reward-free pre-training: ``python pretrain.py agent=cic domain=walker``.

Trains with the agent's intrinsic reward only and writes snapshots under ``snapshot_dir``.
"""

import sys

import hydra
from omegaconf import DictConfig

import urlb.config  # noqa: F401  (registers the config resolvers)
from urlb.agents.external import register_external_agents
from urlb.run import precheck, run_phase


@hydra.main(config_path="configs", config_name="pretrain", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_phase(cfg)


if __name__ == "__main__":
    register_external_agents(sys.argv[1:])  # agent=my_package.my_method:MyAgent: a method of your own
    precheck(__file__)  # refused commands and finished runs stop here, before Hydra writes anything
    main()
