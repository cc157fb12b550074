"""The front and back matter: what the report measures, from which runs, and the files that come with it."""

from __future__ import annotations

import time

from lossbench import __version__
from lossbench.report.document import B, Bullets, Code, Heading, Para
from lossbench.report.load import BASELINES, mlflow_runs
from lossbench.report.sections.context import BASELINE, ReportContext
from lossbench.report.sections.formatting import display_uri


def intro(ctx: ReportContext) -> None:
    exp = ctx.exp
    several = {"all": "every run of each experiment", "latest": "the latest sweep of each experiment"}
    scope = (several if getattr(exp, "names", None) else {"all": "every run of the experiment"}).get(
        exp.scope, f"the latest sweep ({exp.sweeps[0].name})" if exp.sweeps else "the latest sweep"
    )
    ctx.doc.add(
        Para(
            [
                "Which loss wins where, by how much, and how sure we are. Metric: ",
                B(f"test {ctx.units.label}"),
                f" ({'higher' if ctx.units.higher else 'lower'} is better), ",
                "mean over seeds with a 95% Student-t interval (cut to the metric's range where it would "
                "reach past it); losses are compared seed by seed "
                "(same split and test set). Runs: ",
                scope,
                f", {len(mlflow_runs(ctx.runs))} finished runs with the metric",
                _baseline_rows(ctx),
                ", from ",
                Code(display_uri(exp.uri)),
                f". Built {time.strftime('%Y-%m-%d %H:%M')} by lossbench {__version__}. Rebuild: ",
                Code(
                    "python -m lossbench.report "
                    + " ".join(f"--experiment {n}" for n in getattr(exp, "names", None) or [exp.name])
                ),
                ".",
            ]
        )
    )
    baselines(ctx)


def _baseline_rows(ctx: ReportContext) -> str:
    rows = len(ctx.runs) - len(mlflow_runs(ctx.runs))
    return f" (plus {rows} rows of post-hoc baselines computed from CE runs)" if rows else ""


def baselines(ctx: ReportContext) -> None:
    """One paragraph on the post-hoc baseline rows (lossbench.baselines), when the runs have any."""
    present = set(ctx.exp.runs["loss"]) if "loss" in ctx.exp.runs else set()
    shown = [name for name in BASELINES if name in present]
    if not shown:
        return
    parts: list = [
        B("Baselines:"),
        " besides the trained losses, the report has rows that are cheap fixes of each CE run's own fitted "
        "model, computed after the fit on the same split, without retraining (config ",
        Code("report.baselines"),
        "): ",
    ]
    for i, name in enumerate(shown):
        parts += ["; " if i else "", B(name), f" — {BASELINES[name]}"]
    parts.append(
        ". A special loss earns its extra cost only where it beats these, not only plain CE. They are "
        "not MLflow runs of their own (their numbers are metrics baseline/<name>/test/* of the CE runs), "
        "and they have no training curves or reliability diagrams."
    )
    ctx.doc.add(Para(parts))


def files(ctx: ReportContext) -> None:
    ctx.doc.add(Heading("Files"))
    ctx.doc.add(
        Bullets(
            [
                [
                    Code("summary.csv"),
                    ": one row per setting and loss (seeds, mean, std, 95% CI cut to the metric's range, "
                    "rank, median fit seconds).",
                ],
                [
                    Code("comparisons.csv"),
                    f": every loss against {BASELINE} (paired differences, Wilcoxon p, Holm p, the "
                    "smallest attainable Holm p and the verdict, the Bayesian signed-rank probabilities "
                    "better / equivalent / worse with their ROPE and Monte Carlo draws, the test split's "
                    "size).",
                ],
                *(
                    [
                        [
                            Code("tuning.csv"),
                            ": per tuned cell and loss, the mean at the defaults and tuned, the gain with "
                            "its 95% CI, the chosen trial and its knobs.",
                        ]
                    ]
                    if ctx.tuning is not None
                    else []
                ),
                [Code("figures/"), ": the PNG figures above."],
                [
                    "Browse the runs: ",
                    Code(f"mlflow ui --backend-store-uri {display_uri(ctx.exp.uri)}"),
                ],
            ]
        )
    )
