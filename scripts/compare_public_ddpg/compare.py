"""Compare two traces (trace_public.py, trace_ours.py) of the same seed and print what each loop did.

    python scripts/compare_public_ddpg/compare.py PUBLIC_TRACE OURS_TRACE

Both paths without suffix. Prints, side by side: seed-frame actions and replay contents,
initial weights, the update and target-update schedule, noise draws, evaluations, and for the
replay when each finished episode first appears in a batch and which episodes one batch mixes.
Each side's batches are also checked against urlb.replay_loader's model of URLB's loader with
that side's worker count: every sampled transition must come from an episode the model says
the drawing worker holds at that sample.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from urlb.replay_loader import URLBLoader  # noqa: E402


def load(path: str) -> tuple[dict, dict]:
    return json.loads(Path(path + ".json").read_text()), dict(np.load(path + ".npz"))


def first_appearance(arrays: dict) -> list[int | None]:
    """Per finished episode: steps from its finish to the first update whose batch holds it."""
    lags = []
    for episode, finished in enumerate(arrays["finished_at"]):
        hit = np.flatnonzero((arrays["batches"][:, :, 0] == episode).any(1))
        lags.append(int(arrays["batch_steps"][hit[0]] - finished) if len(hit) else None)
    return lags


def model_check(arrays: dict, workers: int | None) -> dict:
    """Samples outside the episodes the loader model allows, and the model's own fallbacks."""
    if workers is None:
        finished = arrays["finished_at"]
        outside = sum(
            int((b[:, 0] >= (finished < s).sum()).sum()) for s, b in zip(arrays["batch_steps"], arrays["batches"])
        )
        return {"model": "every finished episode at once", "samples_outside": outside}
    loader = URLBLoader(int(workers))
    outside = fallbacks = 0
    for step, batch in zip(arrays["batch_steps"], arrays["batches"]):
        on_disk = int((arrays["finished_at"] < step).sum())
        worker, segments = loader.plan(len(batch), on_disk)
        position = 0
        for count, visible in segments:
            allowed = set(range(worker, visible, loader.partitions))
            fallbacks += count if not allowed else 0
            outside += sum(int(e) not in allowed for e in batch[position : position + count, 0]) if allowed else 0
            position += count
    return {"model": f"URLB loader, {workers} workers", "samples_outside": outside, "samples_in_fallback": fallbacks}


def describe(meta: dict, arrays: dict, partitions: int) -> dict:
    """One side's behaviour; ``partitions``: the public side's worker count, whose episode
    partitions (index modulo the count) a batch is checked against."""
    batches, steps = arrays["batches"], arrays["batch_steps"]
    workers = meta["workers"]
    residues = [len({int(e) % partitions for e in b[:, 0]}) for b in batches]
    return {
        "updates": len(steps),
        "first and last update step": [int(steps[0]), int(steps[-1])] if len(steps) else None,
        "updates on odd steps": int((steps % 2).sum()),
        "target updates": meta["target_updates"],
        "first policy action step": meta["first_policy_action_step"],
        "uniform seed actions": meta["uniform_draws"],
        "seed action range": meta["seed_action_range"],
        "normal draws": meta["noise_draws"],
        "initial actor / critic weight sums": [meta["initial_actor_sum"], meta["initial_critic_sum"]],
        "batch decode errors": meta["batch_errors"],
        "distinct episodes per batch (min, mean, max)": [
            int(min(len(set(b[:, 0])) for b in batches)),
            float(np.mean([len(set(b[:, 0])) for b in batches])),
            int(max(len(set(b[:, 0])) for b in batches)),
        ],
        "batches mixing episodes of several of the public loader's partitions": int(sum(r > 1 for r in residues)),
        "steps from an episode's end to its first batch": first_appearance(arrays),
        "evaluations (step, episodes, train episode with the same start)": [
            (e["step"], e["episodes"], e["same_start_as_train_episode"]) for e in meta["evals"]
        ],
        "loader model check": model_check(arrays, workers),
    }


def main(public: str, ours: str) -> None:
    (pm, pa), (om, oa) = load(public), load(ours)
    seed_steps = pm["seed_steps"]
    n = min(len(pa["seed_actions"]), len(oa["seed_actions"]))
    same_actions = bool(np.array_equal(pa["seed_actions"][:n], oa["seed_actions"][:n]))
    po, oo = pa["observations"], oa["observations"]
    m = min(len(po), len(oo))
    same = (po[:m] == oo[:m]).reshape(m, -1).all(1)  # per stored observation (pixels: a whole frame stack)
    first_diff = int(np.argmin(same)) if not same.all() else None
    print(f"public: {public} (workers {pm['workers']}); ours: {ours} (replay_loader_workers {om['workers']})")
    print(f"seed frames: {seed_steps} steps; seed-frame actions identical: {same_actions}")
    print(f"stored observations identical up to index {first_diff} of {m} (episode resets included)")
    k = min(len(pa["batches"]), len(oa["batches"]))
    same_batches = int((pa["batches"][:k] == oa["batches"][:k]).reshape(k, -1).all(1).sum())
    print(f"batches drawing the same (episode, position) samples: {same_batches} of {k}")
    partitions = max(1, int(pm["workers"]))
    rows = describe(pm, pa, partitions), describe(om, oa, partitions)
    for key in rows[0]:
        print(f"- {key}:\n    public: {rows[0][key]}\n    ours:   {rows[1][key]}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: compare.py PUBLIC_TRACE OURS_TRACE (paths without .json/.npz)")
    main(sys.argv[1], sys.argv[2])
