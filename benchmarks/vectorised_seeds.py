"""K seeds of one config trained as one vectorised ensemble (``lossbench.ensemble.execute_seeds``) vs K
sequential runs (``lossbench.pipeline.execute``).

Target: the ensemble >= 3x faster than the K sequential runs at K = 5 on a GPU (on a CPU the ratio is
reported, not judged).

Both sides run in this process on the same prepared configs: ``lossbench.pipeline.prepare`` of one config at
seeds 0..K-1 (torch_mlp, loss=ce, imbalance.ratio=10, the default training settings: Adam, batch 64, L2,
early stopping with patience 15 on the val balanced accuracy), on digits and on a stratified Fashion-MNIST
subsample (``data=fashion_mnist data.subsample=N``; skipped with a note when its files are missing).

- sequential: ``[lossbench.pipeline.execute(p) for p in prepared]``, what a sweep does today;
- vectorised: ``lossbench.ensemble.execute_seeds(prepared)``: one ``torch.func`` ensemble of the K nets.

Each side is timed end to end (build, fit, evaluation of val and test, metrics), after one untimed warm-up of
both on the first dataset (imports, allocator, CUDA context). Also shown: the fit time alone (sum of the runs'
``fit_seconds``; an ensemble member's is its share of the ensemble), and how closely the ensemble reproduces
each sequential run: the largest difference of test balanced accuracy and test log loss over the seeds,
the seeds with identical test predictions, and the seeds with the same epochs run and best epoch. The two
agree up to floating-point rounding, which ReLU and max-pool kinks can amplify over long trainings.

    python benchmarks/vectorised_seeds.py                     # K = 5, full training; digits + 10,000 FMNIST
    python benchmarks/vectorised_seeds.py --quick             # few epochs, 2,000 FMNIST images (a minute)
    python benchmarks/vectorised_seeds.py --device cuda --k 5 # the target's setting
    python benchmarks/vectorised_seeds.py --threads 1         # on a busy CPU: two torch threads contend badly
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import machine_line, table, verdict

TARGET = 3.0
TARGET_K = 5


def prepare_seeds(overrides: list[str], k: int) -> list:
    from hydra import compose, initialize_config_dir

    from lossbench.config import config_dir
    from lossbench.pipeline import prepare

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return [prepare(compose(config_name="config", overrides=[*overrides, f"seed={s}"])) for s in range(k)]


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, *args):
    _sync()
    start = time.perf_counter()
    out = fn(*args)
    _sync()
    return out, time.perf_counter() - start


def sequential(prepared: list) -> list:
    from lossbench.pipeline import execute

    return [execute(p) for p in prepared]


def vectorised(prepared: list) -> list:
    from lossbench.ensemble import execute_seeds

    return execute_seeds(prepared)


def agreement(seq: list, ens: list) -> dict[str, str]:
    """How closely each ensemble member reproduces its sequential run."""
    import numpy as np

    def gap(key: str) -> float:
        values = [
            abs(a.metrics[key] - b.metrics[key]) for a, b in zip(seq, ens, strict=True) if key in a.metrics
        ]
        return max(values) if values else float("nan")

    same_pred = sum(np.array_equal(a.y_pred, b.y_pred) for a, b in zip(seq, ens, strict=True))
    same_stop = sum(
        (a.info["epochs_run"], a.info["best_epoch"]) == (b.info["epochs_run"], b.info["best_epoch"])
        for a, b in zip(seq, ens, strict=True)
    )
    k = len(seq)
    return {
        "max |d bacc|": f"{gap('test/balanced_accuracy'):.1e}",
        "max |d logloss|": f"{gap('test/log_loss'):.1e}",
        "same preds": f"{same_pred}/{k}",
        "same stop": f"{same_stop}/{k}",
        "vectorised": f"{sum(bool(r.info.get('vectorised')) for r in ens)}/{k}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few epochs, a 2,000-image FMNIST subsample")
    parser.add_argument("--device", default="auto", help="train.device: auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--k", type=int, default=TARGET_K, help=f"seeds per config (default {TARGET_K})")
    parser.add_argument("--model", default="torch_mlp", help="torch_mlp (default), torch_linear, torch_cnn")
    parser.add_argument("--loss", default="ce", help="loss= (default ce)")
    parser.add_argument("--epochs", type=int, help="train.epochs (default: lossbench's 100; quick 10)")
    parser.add_argument(
        "--subsample", type=int, help="Fashion-MNIST data.subsample (default 10000; quick 2000)"
    )
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for both sides (default: torch's)")
    args = parser.parse_args()
    if args.k < 2:
        parser.error("--k must be at least 2")
    epochs = args.epochs or (10 if args.quick else 100)
    subsample = args.subsample or (2000 if args.quick else 10000)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    common = [
        f"model={args.model}",
        f"loss={args.loss}",
        "imbalance.ratio=10",
        f"train.epochs={epochs}",
        "train.min_steps=0",
        f"train.device={args.device}",
    ]
    datasets = {"digits": ["data=digits"]}
    fmnist_root = Path("/usr/share/datasets/fashion-mnist")
    if (fmnist_root / "train-images-idx3-ubyte.gz").is_file():
        datasets[f"fashion_mnist ({subsample:,})"] = ["data=fashion_mnist", f"data.subsample={subsample}"]
    else:
        print(
            f"note: Fashion-MNIST skipped: no files in {fmnist_root} "
            "(sudo apt-get install dataset-fashion-mnist)"
        )

    print(f"vectorised_seeds: {args.k} seeds as one torch.func ensemble vs {args.k} sequential runs")
    print(machine_line())
    print(f"settings: {' '.join(common)}, torch threads {torch.get_num_threads()}")

    warm = prepare_seeds([*datasets["digits"], *common, "train.epochs=1", "train.min_steps=0"], 2)
    sequential(warm)
    vectorised(warm)

    rows, check_rows = [], []
    total_seq = total_ens = 0.0
    device = "?"
    for name, data in datasets.items():
        prepared = prepare_seeds([*data, *common], args.k)
        print(f"  {name}: {len(prepared[0].y_fit)} training rows per seed, sequential ...", flush=True)
        seq, t_seq = timed(sequential, prepared)
        print(f"  {name}: vectorised ...", flush=True)
        ens, t_ens = timed(vectorised, prepared)
        device = str(seq[0].info["device"])
        total_seq, total_ens = total_seq + t_seq, total_ens + t_ens
        fit_seq = sum(r.info["fit_seconds"] for r in seq)
        fit_ens = sum(r.info["fit_seconds"] for r in ens)
        epochs_run = sum(r.info["epochs_run"] for r in seq)
        rows.append(
            [
                name,
                str(epochs_run),
                f"{t_seq:.2f}",
                f"{t_ens:.2f}",
                f"{t_seq / t_ens:.2f}",
                f"{fit_seq:.2f}",
                f"{fit_ens:.2f}",
                f"{fit_seq / fit_ens:.2f}",
            ]
        )
        check_rows.append([name, *agreement(seq, ens).values()])

    print()
    header = ["data", "epochs (sum)", "seq s", "ens s", "speed-up", "seq fit s", "ens fit s", "fit speed-up"]
    title = (
        f"K = {args.k} seeds on {device}: wall time of all K runs (build, fit, evaluate); "
        "speed-up = seq / ens"
    )
    print(table(title, header, rows))
    print()
    check_header = ["data", "max |d bacc|", "max |d logloss|", "same preds", "same stop", "vectorised"]
    print(table("Ensemble vs sequential, per seed (test split)", check_header, check_rows))
    if not device.startswith("cuda"):
        print("note: the target is set for a GPU; on a CPU this ratio is reported, not judged")
    if args.k != TARGET_K:
        print(f"note: the target is set for K = {TARGET_K}; this run used K = {args.k}")
    print()
    print(
        verdict(
            f"vectorised_seeds ({device}, K={args.k}, sequential/ensemble wall)",
            total_seq / total_ens,
            TARGET,
            "x",
            higher_is_better=True,
        )
    )


if __name__ == "__main__":
    main()
