"""Run a method through the plugin contract: ``urlb-check-agent my_package.my_method:MyAgent``
(or ``python -m urlb.tools.check_agent``; a built-in name such as ``rnd`` works too).

The method is built from its config (the YAML file beside its module: see
:mod:`urlb.agents.external`) at tiny sizes and checked rule by rule (urlb.agents.contract): one
line per rule, ``ok`` or the rule, what is wrong and the fix. Exit code 0 when every rule holds,
1 when one breaks, 2 when the method cannot be found.
"""

from __future__ import annotations

import argparse
import sys
import time

from urlb.agents.contract import Checker
from urlb.agents.external import load_agent_config
from urlb.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="urlb-check-agent", description=__doc__.splitlines()[0])
    parser.add_argument("agent", help="module.path:ClassName of your method, or a built-in agent name")
    parser.add_argument(
        "--obs-types", default=None, help="comma-separated: states,pixels (default: what the method declares)"
    )
    args = parser.parse_args(argv)
    try:
        cfg = load_agent_config(args.agent)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    obs_types = tuple(args.obs_types.split(",")) if args.obs_types else None
    start = time.perf_counter()
    checker = Checker(cfg)
    results = checker.run(obs_types)
    for rule, problem in results:
        print(f"ok    {rule}" if problem is None else f"FAIL  {problem}")
    for rule, why in checker.skipped:
        print(f"skip  {rule} ({why})")
    broken = [p for _, p in results if p is not None]
    seconds = time.perf_counter() - start
    if broken:
        print(f"{args.agent}: {len(broken)} rule(s) broken ({seconds:.1f} s)")
        return 1
    print(f"{args.agent}: all {len(results)} rules hold ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
