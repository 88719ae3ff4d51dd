"""Fine-tuning: ``python finetune.py agent=cic task=walker_run snapshot_ts=2000000``.

Loads a pre-training snapshot (or starts from scratch with ``snapshot_ts=0``) and trains
with the task reward.
"""

import sys

import hydra
from omegaconf import DictConfig

import urlb.config  # noqa: F401  (registers the config resolvers)
from urlb.agents.external import register_external_agents
from urlb.run import precheck, run_phase
from urlb.snapshot_search import choose_agent


@hydra.main(config_path="configs", config_name="finetune", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_phase(cfg)


if __name__ == "__main__":
    register_external_agents(sys.argv[1:])  # agent=my_package.my_method:MyAgent: a method of your own
    sys.argv = choose_agent(sys.argv)  # snapshot_ts=N without agent=: the agent whose snapshot that is
    precheck(__file__)  # refused commands and finished runs stop here, before Hydra writes anything
    main()
