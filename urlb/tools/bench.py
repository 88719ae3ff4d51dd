"""Speed and memory benchmark: ``python -m urlb.tools.bench`` (also the ``urlb-bench`` script).

For each agent it runs the real training loop on walker (states) after a warm-up and prints
frames/s, where the time goes (environment, acting, replay sampling, the update and its parts),
peak resident memory, and the update's floating-point rate against this machine's matrix-multiply
rate measured in the same run (only for the precisions asked for). It reports whether this CPU
has native bf16 (see urlb.hardware) and measures replay sampling and replay bytes per transition.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from urlb.agents import agent_names
from urlb.ddpg import COMPILE_BACKENDS
from urlb.hardware import bf16_support
from urlb.runs.config import resolve_device
from urlb.tools.bench_core import DTYPES, SIZES, bench_agent, matmul_gflops
from urlb.tools.bench_replay import bench_replay


def format_table(rows: list[dict], machine: dict) -> str:
    rates = ", ".join(
        f"{p} {machine[f'matmul_gflops_{p}']:.0f} GFLOP/s" for p in DTYPES if f"matmul_gflops_{p}" in machine
    )
    n = machine["matmul_size"]
    lines = [
        f"matmul rate here: {rates} ({n}^3, {machine['threads']} threads)",
        f"bf16 here: {'native' if machine['bf16_native'] else 'NOT native (emulated, much slower than fp32)'} "
        f"({machine['bf16_found']})",
        "",
    ]
    header = (
        "agent",
        "size",
        "prec",
        "frames/s",
        "env ms",
        "act ms",
        "sample ms",
        "update ms",
        "parts ms (plugin, critic, actor)",
        "GFLOP/upd",
        "GFLOP/s",
        "% matmul",
        "peak MB",
    )
    lines.append(" | ".join(header))
    for r in rows:
        u = r["ms_per_update"]
        rate = machine[f"matmul_gflops_{r['precision']}"]
        parts = "/".join(f"{u.get(p, 0):.0f}" for p in ("plugin", "critic", "actor"))
        lines.append(
            " | ".join(
                [
                    r["agent"],
                    r["size"] + (f"/pixels/b{r['batch_size']}" if r.get("obs_type") == "pixels" else ""),
                    r["precision"] + (f"+{r['compile']}" if r.get("compile") else ""),
                    f"{r['frames_per_s']:.1f}",
                    f"{r['ms_per_step']['env']:.2f}",
                    f"{r['ms_per_step']['act']:.2f}",
                    f"{u['sample']:.2f}",
                    f"{u['update']:.1f}",
                    parts,
                    f"{r['update_gflop']:.1f}",
                    f"{r['update_gflops_per_s']:.0f}",
                    f"{100 * r['update_gflops_per_s'] / rate:.0f}",
                    f"{r['peak_rss_mb']:.0f}",
                ]
            )
        )
    shares = [r for r in rows if r.get("update_op_shares")]
    if shares:
        lines += ["", "pixels: share of the update's operator time (torch.profiler, CPU self-time)"]
        for r in shares:
            s = r["update_op_shares"]
            lines.append(
                f"{r['agent']} {r['size']}: encoder convolutions {100 * s['encoder']:.0f}%, "
                f"random shift {100 * s['shift']:.0f}%, the rest {100 * (1 - s['encoder'] - s['shift']):.0f}%"
            )
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, measure, print the table; returns the results (what --json writes)."""
    parser = argparse.ArgumentParser(prog="python -m urlb.tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="ddpg,rnd,apt,diayn,cic,metra", help="comma-separated agents")
    parser.add_argument("--sizes", default="paper,quick", help=f"comma-separated, of: {', '.join(SIZES)}")
    parser.add_argument("--precision", default="fp32", help="comma-separated, of: fp32, bf16")
    parser.add_argument(
        "--compile",
        default="none",
        help=f"comma-separated, of: none, {', '.join(COMPILE_BACKENDS)} (torch.compile the networks)",
    )
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per configuration")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n^3 reference matrix product")
    parser.add_argument(
        "--fill-steps",
        type=int,
        default=4_000,
        help="environment steps put in each agent's replay before timing (the replay benchmark uses 5x)",
    )
    parser.add_argument(
        "--obs-type",
        default="states",
        choices=["states", "pixels"],
        help="pixels: 3 stacked 84x84 frames, action repeat 2; adds the encoder's and the shift's share of the update",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="override the size's batch size")
    parser.add_argument("--replay-seconds", type=float, default=2.0, help="measured window of replay sampling")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="N > 1: also compare N seeds in one process with N single-seed processes (urlb.tools.bench_seeds)",
    )
    args = parser.parse_args(argv)
    agents = [a for a in args.agents.split(",") if a]
    sizes = [s for s in args.sizes.split(",") if s]
    precisions = [p for p in args.precision.split(",") if p]
    compiles = [c for c in args.compile.split(",") if c]
    for name, values, valid in (
        ("agent", agents, agent_names()),
        ("size", sizes, list(SIZES)),
        ("precision", precisions, ["fp32", "bf16"]),
        ("compile", compiles, ["none", *COMPILE_BACKENDS]),
    ):
        bad = [v for v in values if v not in valid]
        if bad:
            parser.error(f"unknown {name} {', '.join(bad)}; valid: {', '.join(valid)}")
    device = resolve_device(args.device)
    support = bf16_support(device)
    print(
        f"bf16 here: {'native' if support.native else 'NOT native'} ({support.description})",
        file=sys.stderr,
        flush=True,
    )
    # Only the precisions asked for: an emulated bf16 2048^3 product takes minutes on an AVX2-only CPU.
    machine = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "matmul_size": args.matmul_size,
        "bf16_native": support.native,
        "bf16_found": support.description,
        **{f"matmul_gflops_{p}": matmul_gflops(DTYPES[p], device, args.matmul_size) for p in precisions},
    }
    rows = []
    for size in sizes:
        for precision in precisions:
            for backend in compiles:
                for agent in agents:
                    print(
                        f"benchmarking {agent} size={size} precision={precision} compile={backend} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    rows.append(
                        bench_agent(
                            agent,
                            size,
                            device,
                            precision,
                            args.seconds,
                            compile_backend=None if backend == "none" else backend,
                            fill_steps=args.fill_steps,
                            obs_type=args.obs_type,
                            batch_size=args.batch_size,
                        )
                    )
    replay = bench_replay(device, seconds=args.replay_seconds, fill_steps=5 * args.fill_steps)
    result = {"machine": machine, "agents": rows, "replay": replay}
    print(format_table(rows, machine))
    print(
        f"\nreplay: {replay['sample_transitions_per_s']:.0f} n-step transitions/s sampled (batch 1024); "
        f"states {replay['states_bytes_per_transition']:.0f} B stored per transition "
        f"({replay['states_bytes_per_transition'] / replay['states_raw_transition_bytes']:.2f}x raw); "
        f"pixels {replay['pixels_bytes_per_transition']:.0f} B "
        f"({replay['pixels_bytes_per_transition'] / replay['pixels_raw_transition_bytes']:.2f}x raw stacked)"
    )
    if args.seeds > 1:
        from urlb.tools import bench_seeds

        result["seeds"] = bench_seeds.run(agents, sizes, args.seeds, args.seconds, device, args.fill_steps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``urlb-bench``): exit code 0 on success, 2 on bad arguments."""
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
