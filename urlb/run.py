"""What pretrain.py and finetune.py run: validate, build the trainer, train; user errors
print one clear message (exit code 2) instead of a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, open_dict

from urlb.config import ConfigError, validate
from urlb.ddpg import NonFiniteError
from urlb.snapshot import SnapshotError
from urlb.trainer import RunInterrupted, Trainer

EXIT_USER_ERROR = 2
EXIT_NON_FINITE = 3


def run_phase(cfg: DictConfig) -> None:
    try:
        validate(cfg)
        with open_dict(cfg):
            cfg.snapshot_dir = to_absolute_path(cfg.snapshot_dir)

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        Trainer(cfg, run_dir).train()
    except (ConfigError, SnapshotError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except RunInterrupted as exc:
        sys.exit(128 + exc.signum)
    except NonFiniteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_NON_FINITE)
    except OSError as exc:
        # Full disk, unwritable directory: say which file, keep what is already written.
        print(f"error: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
