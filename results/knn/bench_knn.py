"""Time the kNN distances of the particle-entropy rewards and ProtoRL at paper sizes: the exact
difference-based distances (urlb.agents.rewards.nearest_distances) against the matrix-product
form alone (torch.cdist + topk) and against the public code's B x N x D difference tensor.

    python results/knn/bench_knn.py
"""

import time

import torch

from urlb.agents.rewards import nearest_distances

# (what, rows, candidates, dim, k): batch 1024 as in the paper preset.
CASES = [
    ("APT: ICM features", 1024, 1024, 512, 12),
    ("CIC: state embedding", 1024, 1024, 64, 16),
    ("APS: successor features", 1024, 1024, 10, 12),
    ("ProtoRL: queue", 1024, 2048, 128, 3),
]


def timed(fn, repeats: int = 5) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000.0


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| case | fast form only (ms) | exact, this code (ms) | public code's difference tensor (ms) |")
    print("|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    for what, rows, n, dim, k in CASES:
        x = torch.randn(rows, dim, generator=g)
        y = x if n == rows else torch.randn(n, dim, generator=g)
        fast = timed(lambda: torch.cdist(x, y).topk(k, dim=1, largest=False).values)
        exact = timed(lambda: nearest_distances(x, y, k))
        public = timed(lambda: torch.norm(x[:, None, :] - y[None, :, :], dim=2).topk(k, dim=1, largest=False).values, 2)
        print(f"| {what} ({rows} x {n} x {dim}, k={k}) | {fast:.1f} | {exact:.1f} | {public:.1f} |")


if __name__ == "__main__":
    main()
