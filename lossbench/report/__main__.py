"""The report command:

python -m lossbench.report --experiment NAME|GLOB [--experiment NAME|GLOB ...] [--tracking-uri URI]
                           [--out DIR] [--metric M]
                           [--all | --sweep ID] [--rope R] [--draw-here]
"""

from __future__ import annotations

import argparse
import logging
import sys


def _figure_helper():
    """A helper process that starts (seaborn, the figures' module: ~2 s of another core) while the store is
    read, and then draws some of the figures (lossbench.report.drawing); None on one core."""
    from lossbench.runtime import cores

    if cores() < 2:
        return None
    from lossbench.writer import Writer

    helper = Writer()  # it stores no runs: no MLflow import
    helper.warm_up_figures()
    return helper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lossbench.report",
        description="Build the comparison report (HTML, Markdown, figures, CSV) of a lossbench experiment "
        "from what its MLflow store holds.",
    )
    parser.add_argument(
        "--experiment",
        required=True,
        action="append",
        help="MLflow experiment name (tracking.experiment); repeat it, or give a glob ('bench*'), to put "
        "several experiments' runs in one report",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store; default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this folder",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder; default: reports/<experiment>/ (several: reports/<first>-and-<n-1>-more/)",
    )
    parser.add_argument(
        "--metric",
        default="balanced_accuracy",
        help="test metric to rank losses by (default: balanced_accuracy)",
    )
    parser.add_argument(
        "--rope",
        type=float,
        default=0.01,
        help="region of practical equivalence of the Bayesian signed-rank test, in the metric's units "
        "(default 0.01: 1 point of a [0, 1] metric)",
    )
    parser.add_argument(
        "--draw-here",
        action="store_true",
        help="draw every figure in this process (default, with 2 cores or more: a helper process draws "
        "some of them meanwhile)",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--all", action="store_true", help="every run of the experiment, not only the latest sweep"
    )
    scope.add_argument("--sweep", default=None, help="one sweep, by its id (tag lossbench.sweep_id)")
    args = parser.parse_args(argv)
    from lossbench.runtime import skip_exit_gc

    skip_exit_gc()

    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(levelname)s] %(message)s", datefmt="%H:%M:%S"
    )
    _bound_http_waits()
    from lossbench.errors import ConfigError
    from lossbench.report.metric import check_metric
    from lossbench.tracking import check_store, tracking_uri

    try:
        check_metric(args.metric)  # before touching the store
        from lossbench.paths import check_report_dir, report_dir

        if len(args.experiment) == 1 and not any(c in args.experiment[0] for c in "*?["):
            # globs and several experiments: build_report checks the folder once the names are known
            check_report_dir(report_dir(args.out, args.experiment[0], key="--out"), key="--out")
        uri = tracking_uri(args.tracking_uri)
        check_store(
            uri, key="--tracking-uri", must_exist=True
        )  # a server that does not answer fails in seconds, not minutes
        from lossbench.report.build import build_report

        helper = None if args.draw_here else _figure_helper()
        try:
            index = build_report(
                args.experiment,
                tracking_uri=uri,
                out=args.out,
                metric=args.metric,
                sweep="all" if args.all else (args.sweep or "latest"),
                rope=args.rope,
                executor=helper,
            )
        finally:
            if helper is not None:
                helper.close()
    except ConfigError as e:
        print(f"lossbench.report: error: {e}", file=sys.stderr)
        return 2
    from lossbench.paths import shown

    print(f"report: {shown(index)}")
    print(f"        {shown(index.parent / 'README.md')}")
    return 0


def _bound_http_waits() -> None:
    """MLflow's HTTP client waits 120 s a request and retries 5 times (minutes against a server that went
    silent); the report asks for 20 s and 2 retries unless the user set MLflow's variables."""
    import os

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")


if __name__ == "__main__":
    sys.exit(main())
