"""Two guards for hydra-ray-launcher (``hydra/launcher=ray``), as a Hydra callback that connects
to Ray before the plugin does (the plugin then finds Ray running); scheduling is the plugin's:

- ``address: null`` starts a Ray instance for the sweep on the loopback address only (Ray
  otherwise binds its servers to every interface), with no dashboard;
- any other address (``auto``: ``RAY_ADDRESS`` or the head ``ray start`` recorded on this
  machine) must answer within seconds; ``ray.init`` itself retries a head that is gone or
  unreachable forever, so it gets at most ``CONNECT_SECONDS``. A failure is one line naming the
  address and how to start a head, exit code 2.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

CONNECT_SECONDS = 45.0  # ray.init's whole budget: a sweep with no head fails within a minute
PROBE_SECONDS = 5.0
LOOPBACK = "127.0.0.1"
START_HINT = (
    "start a head with `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head --node-ip-address=127.0.0.1` "
    "(stop it with `ray stop`), name a running one with hydra.launcher.ray.init.address=HOST:PORT, or use "
    "hydra.launcher.ray.init.address=null to start one for this sweep on 127.0.0.1"
)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def recorded_address() -> tuple[str | None, str]:
    """The address ``auto`` means: ``RAY_ADDRESS``, else the head ``ray start`` recorded on this
    machine (``ray stop`` removes the record; a head killed otherwise leaves it behind)."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    record = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray" / "ray_current_cluster"
    if record.is_file() and record.read_text().strip():
        return record.read_text().strip(), str(record)
    return None, str(record)


def probe(address: str, source: str) -> None:
    """One TCP connection to the head's GCS port, or a one-line failure."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        _fail(f"Ray address {address!r} ({source}) is not HOST:PORT; {START_HINT}")
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_SECONDS):
            pass
    except OSError as exc:
        _fail(f"no Ray head answers at {address} ({source}): {exc.strerror or exc}; {START_HINT}")


def _init_with_deadline(kwargs: dict[str, Any], where: str) -> None:
    import ray

    def give_up() -> None:
        print(
            f"error: Ray did not connect to {where} within {CONNECT_SECONDS:.0f} s (a head that is gone, or one "
            f"that advertises an address this machine cannot reach); {START_HINT}",
            file=sys.stderr,
            flush=True,
        )
        os._exit(2)  # ray.init holds the main thread in its retry loop

    timer = threading.Timer(CONNECT_SECONDS, give_up)
    timer.daemon = True
    timer.start()
    try:
        ray.init(**kwargs)
    except Exception as exc:  # Ray's own time-out (ConnectionError) or a refused setting
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        _fail(f"Ray could not connect to {where}: {first}; {START_HINT}")
    finally:
        timer.cancel()


def connect(init_cfg) -> None:
    """ray.init as the preset asks, with the guards above (before the plugin's own start_ray,
    which then finds Ray running)."""
    import ray

    if ray.is_initialized():
        return
    kwargs = OmegaConf.to_container(init_cfg, resolve=True) if init_cfg is not None else {}
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "address"}
    address = kwargs.get("address")
    if address in (None, "local"):
        # The servers bind to the node's address: keep it the loopback one (Ray would replace it
        # by the network address unless told this is a one-machine cluster).
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
        kwargs.update(address="local", _node_ip_address=LOOPBACK)
        kwargs.setdefault("include_dashboard", False)
        _init_with_deadline(kwargs, f"a new local Ray instance on {LOOPBACK}")
        return
    if address == "auto":
        found, source = recorded_address()
        if found is None:
            _fail(
                f"no Ray cluster is running on this machine (address=auto; nothing in RAY_ADDRESS or {source}); "
                + START_HINT
            )
        probe(found, f"address=auto, from {source}")
        where = found
    else:
        probe(str(address), "hydra.launcher.ray.init.address")
        where = str(address)
    _init_with_deadline(kwargs, where)


def check_fits_this_machine(remote) -> None:
    """A local Ray instance has this machine's CPUs and GPUs: a run asking for more would wait
    forever for a node that never comes."""
    import torch

    have = {"num_cpus": os.cpu_count() or 1, "num_gpus": torch.cuda.device_count()}
    for key, available in have.items():
        wanted = remote.get(key)
        if isinstance(wanted, (int, float)) and wanted > available:
            _fail(
                f"hydra.launcher.ray.remote.{key}={wanted} but this machine has {available}: no run could start on "
                f"a local Ray instance; use hydra.launcher.ray.remote.{key}={min(available, 1)} or name a cluster "
                "with hydra.launcher.ray.init.address=auto"
            )


class RayGuard(Callback):
    """Hydra callback (pretrain.yaml, finetune.yaml): under the Ray launcher, start or reach Ray
    with the guards above before any job is launched."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        launcher = config.hydra.launcher
        if "hydra_ray_launcher" not in str(launcher.get("_target_", "")):
            return
        init = launcher.ray.get("init")
        if init is None or init.get("address") in (None, "local"):
            check_fits_this_machine(launcher.ray.get("remote") or {})
        connect(init)
