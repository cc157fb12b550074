"""torch's CPU thread count for lossbench's nets: what ``train.threads=auto`` picks against the best count.

    python benchmarks/torch_threads.py [--quick]                      # torch_mlp on digits
    python benchmarks/torch_threads.py --model torch_cnn --data fashion_mnist --busy 0

Each fit runs in a fresh process, the way a job does (``train.threads`` set, lossbench's defaults otherwise,
patience off so every fit runs the same epochs), at every thread count from 1 to the cores this process may
use. It runs quiet and next to busy neighbours: other processes running torch matrix products at torch's
default thread count (one per core), as other people's jobs do on a shared machine. Prints the fit seconds
(``train/fit_seconds``: the training loop, not the imports) and their ratio to 1 thread under the same load,
interleaved so a change in the machine's load hits every count alike. At the end of each load, with the
neighbours still running (the 1-minute load average has had the fits' time to follow them), a fresh process
says what ``train.threads=auto`` picks for one job then; the verdict compares that count's fit seconds with
the fastest count's, at the worst of the loads.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import sys
import time

from _common import REPO, clean_env, machine_line, table, verdict

TARGET = 1.10  # auto's fit seconds / the fastest count's, at most


def _fit(model: str, data: str, threads: int, epochs: int, seed: int) -> float:
    """One fit in a fresh process; its training seconds."""
    code = f"""
import json
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from lossbench.config import config_dir
from lossbench.pipeline import run
overrides = ["model={model}", "data={data}", "loss=ce", "imbalance.ratio=10", "seed={seed}",
             "train.threads={threads}", "train.epochs={epochs}", "train.min_steps=0", "train.patience=null"]
with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
    cfg = OmegaConf.to_container(compose(config_name="config", overrides=overrides), resolve=True)
import torch
result = run(cfg)
print(json.dumps({{"seconds": result.info["fit_seconds"], "threads": torch.get_num_threads()}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=clean_env(), check=False
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if got["threads"] != threads:
        raise SystemExit(f"asked for train.threads={threads}, the fit ran with {got['threads']}")
    return float(got["seconds"])


def _auto_now() -> int:
    """What ``train.threads=auto`` picks for a single run started now (a fresh process reads the load)."""
    code = "from lossbench.runtime import torch_threads; print(torch_threads('auto'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return int(out.stdout.strip())


def _neighbour(stop) -> None:
    import torch

    a = torch.randn(256, 256)
    while not stop.is_set():
        a = torch.tanh(a @ a)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--quick", action="store_true", help="5 epochs, 1 repeat, quiet only")
    parser.add_argument("--model", default="torch_mlp")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="fits per setting (the median is shown)")
    parser.add_argument("--busy", type=int, nargs="+", default=None, help="busy neighbours (0 and cores)")
    args = parser.parse_args()

    from lossbench.runtime import cores

    n_cores = cores()
    if args.quick:
        args.epochs, args.repeats, args.busy = 5, 1, args.busy or [0]
    busy_levels = args.busy if args.busy is not None else [0, n_cores]
    counts = sorted({1, *(n for n in (2, 4, 8, 16) if n <= n_cores), n_cores})
    print(machine_line())
    print(f"{args.model} on {args.data}, {args.epochs} epochs, {n_cores} cores")
    rows, worst = [], 0.0
    ctx = mp.get_context("spawn")
    for busy in busy_levels:
        stop = ctx.Event()
        neighbours = [ctx.Process(target=_neighbour, args=(stop,), daemon=True) for _ in range(busy)]
        for p in neighbours:
            p.start()
        time.sleep(2 if busy else 0)
        seconds: dict[int, list[float]] = {n: [] for n in counts}
        try:
            for repeat in range(args.repeats):
                for n in counts:
                    seconds[n].append(_fit(args.model, args.data, n, args.epochs, repeat))
            auto = _auto_now()
        finally:
            stop.set()
            for p in neighbours:
                p.join(5)
        median = {n: _median(s) for n, s in seconds.items()}
        best = min(median, key=median.get)
        for n in counts:
            mark = " auto" if n == auto else ""
            mark += " fastest" if n == best else ""
            rows.append([str(busy), f"{n}{mark}", f"{median[n]:.2f}", f"{median[n] / median[1]:.2f}x"])
        worst = max(worst, median[auto] / median[best])
    header = ["busy neighbours", "threads", "seconds", "vs 1 thread"]
    print(table("fit seconds by thread count", header, rows))
    print(verdict("torch_threads auto/fastest", worst, TARGET, "x", higher_is_better=False))


if __name__ == "__main__":
    main()
