"""Training-step time of a config's model with 1 and with 2 torch threads, timed in alternation in one process.

On cores shared with other jobs two threads wait on each other at every parallel op, so one thread can be the
faster setting; this prints the figures (and the load average) behind the ``torch_threads`` advice in the README.

    python benchmarks/bench_threads.py --config configs/reacher_cpu.yaml --rounds 2
"""

from __future__ import annotations

import argparse
import time

import torch

from rvperceiver.model.policy import build_policy
from rvperceiver.train.config import load_config


def step_ms(policy: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
            steps: int) -> float:
    """Mean wall time of ``steps`` optimisation steps (after 2 warm-up steps), in milliseconds."""
    for i in range(steps + 2):
        if i == 2:
            started = time.perf_counter()
        loss = torch.nn.functional.mse_loss(policy(x), policy.target_norm.normalize(y))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/reacher_cpu.yaml", help="training config whose model is timed")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of 1 and 2 threads")
    args = parser.parse_args()
    config = load_config(args.config)
    frame = (config.data.t_obs, 64, 64, 3)
    target = (config.data.t_pred, 3)
    torch.manual_seed(0)
    policy = build_policy(config.policy, frame, target)
    x = torch.randint(0, 256, (config.batch_size, *frame), dtype=torch.uint8)
    y = torch.randn(config.batch_size, *target)
    policy.fit_statistics([x], y)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-4)
    for _ in range(args.rounds):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            ms = step_ms(policy, optimizer, x, y, args.steps)
            load = open("/proc/loadavg", encoding="ascii").read().split()[0]
            print(f"{args.config}: {threads} thread(s): {ms:.0f} ms/step (batch {config.batch_size}), load {load}")


if __name__ == "__main__":
    main()
