"""Reward-free pre-training: ``python pretrain.py agent=cic domain=walker``.

Trains with the agent's intrinsic reward only and writes snapshots under ``snapshot_dir``.
"""

import hydra
from omegaconf import DictConfig

import urlb.config  # noqa: F401  (registers the config resolvers)
from urlb.run import precheck, run_phase


@hydra.main(config_path="configs", config_name="pretrain", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_phase(cfg)


if __name__ == "__main__":
    precheck(__file__)  # refused commands and finished runs stop here, before Hydra writes anything
    main()
