"""Assemble a report: numbers (stats), figures, plain-sentence findings; written as HTML, Markdown, CSV."""

from __future__ import annotations

import gc
import json
import logging
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lossbench import __version__
from lossbench.report import check_metric, stats
from lossbench.report import figures as fig
from lossbench.report.document import B, Bullets, Code, Document, Heading, Image, Para, Table
from lossbench.report.load import Experiment, LazyClient, finished, load_experiment

log = logging.getLogger("lossbench")

BASELINE = "ce"
MIN_SEEDS_FOR_CLAIM = 5  # fewer seeds per setting: per-setting intervals get a caution
MIN_BLOCKS_FOR_TEST = 6  # the two-sided signed-rank test cannot reach p < 0.05 with fewer pairs
# metrics in [0, 1] (or [-1, 1]) read best as points (x100); the others keep their own units
POINT_METRICS = {
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "minority_recall",
    "g_mean",
    "mcc",
    "ece",
    "adaptive_ece",
    "pr_auc",
    "roc_auc",
}
REPORT_FILES = ("index.html", "README.md", "summary.csv", "comparisons.csv")


def _higher_is_better(metric: str) -> bool:
    from lossbench.metrics import METRICS

    return METRICS["recall_class_<k>" if metric.startswith("recall_class_") else metric].higher_is_better


@dataclass
class Units:
    metric: str
    higher: bool

    @property
    def points(self) -> bool:
        return self.metric in POINT_METRICS

    @property
    def label(self) -> str:
        return self.metric.replace("_", " ")

    def value(self, x: float) -> str:
        return "–" if not np.isfinite(x) else f"{x:.3f}"

    @property
    def range(self) -> tuple[float, float] | None:
        if not self.points:
            return None
        return (-1.0, 1.0) if self.metric == "mcc" else (0.0, 1.0)

    def diff(self, x: float) -> str:
        if not np.isfinite(x):
            return "–"
        return f"{100 * x:+.1f} points" if self.points else f"{x:+.4f}"

    def interval(self, low: float, high: float) -> str:
        if not (np.isfinite(low) and np.isfinite(high)):
            return "no interval (one pair)"
        if self.points:
            return f"95% CI {100 * low:+.1f} to {100 * high:+.1f}"
        return f"95% CI {low:+.4f} to {high:+.4f}"

    def better(self, diff: float) -> bool:
        return diff > 0 if self.higher else diff < 0


def _fmt_ratio(values) -> str:
    return ", ".join(f"{v:g}" for v in sorted(values))


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_is(p: float) -> str:
    """``p = 0.012`` or ``p < 0.001``, for sentences."""
    text = _p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _fmt(value) -> str:
    """An axis value as tables show it: floats compact (10.0 -> 10), anything else as its string."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _where(frame: pd.DataFrame, values: dict) -> pd.DataFrame:
    """The rows of ``frame`` whose columns equal ``values`` (one setting, or one facet of settings)."""
    for key, value in values.items():
        frame = frame[frame[key] == value]
    return frame


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def _regimes(ratios: list[float]) -> list[tuple[str, list[float]]]:
    """Balanced (rho = 1), moderate and high imbalance (the upper half of the imbalanced ratios)."""
    ratios = sorted(set(ratios))
    out = []
    if 1.0 in ratios:
        out.append(("balanced (ρ = 1)", [1.0]))
    imbalanced = [r for r in ratios if r > 1]
    if len(imbalanced) >= 2:
        cut = float(np.median(imbalanced))
        high = [r for r in imbalanced if r >= cut]
        low = [r for r in imbalanced if r < cut]
        if low:
            out.append((f"moderate imbalance (ρ = {_fmt_ratio(low)})", low))
        out.append((f"high imbalance (ρ ≥ {min(high):g})", high))
    elif imbalanced:
        out.append((f"imbalance ρ = {imbalanced[0]:g}", imbalanced))
    return out


class ReportBuilder:
    def __init__(self, exp: Experiment, metric: str, out: Path) -> None:
        self.exp, self.out = exp, out
        self.units = Units(metric, _higher_is_better(metric))
        self.column = f"test/{metric}"
        self.runs = finished(exp.runs, self.column)
        self.axes = stats.setting_axes(self.runs) if not self.runs.empty else ["model", "ratio"]
        self.facets = [a for a in self.axes if a != "ratio"]  # one table / panel per value of these
        self.summary = stats.summarize(self.runs, self.column, self.units.higher, self.axes)
        self.losses = self._loss_order()
        self.colours = fig.palette(self.losses) if self.losses else {}
        self.doc = Document(f"lossbench report — experiment “{exp.name}”")
        self.figures_dir = out / "figures"
        self.comparisons: list[dict] = []

    # ---------------------------------------------------------------- helpers

    def _loss_order(self) -> list[str]:
        """Losses ordered by mean rank over all settings (best first); the baseline wherever it falls."""
        if self.summary.empty:
            return []
        return list(self.summary.groupby("loss")["rank"].mean().sort_values(kind="stable").index)

    def _figure(self, path: Path | None, alt: str, caption: str) -> None:
        if path is not None:
            self.doc.add(Image(f"figures/{path.name}", alt, caption))

    @property
    def seeds(self) -> int:
        return int(self.summary["n_seeds"].min()) if not self.summary.empty else 0

    @property
    def ratios(self) -> list[float]:
        return sorted(self.runs["ratio"].dropna().unique()) if not self.runs.empty else []

    def _main_losses(self) -> list[str]:
        """The baseline, the winners at the largest ratio, and the calibration-minded losses when present."""
        top = self.summary[self.summary["ratio"] == max(self.ratios)]
        winners = list(top.groupby("loss")["rank"].mean().sort_values(kind="stable").index[:2])
        wanted = [BASELINE, *winners, "label_smoothing", "focal"]
        return [x for x in dict.fromkeys(wanted) if x in self.losses][:5]

    # ---------------------------------------------------------------- sections

    def intro(self) -> None:
        exp = self.exp
        scope = {"all": "every run of the experiment"}.get(
            exp.scope, f"the latest sweep ({exp.sweeps[0].name})" if exp.sweeps else "the latest sweep"
        )
        self.doc.add(
            Para(
                [
                    "Which loss wins where, by how much, and how sure we are. Metric: ",
                    B(f"test {self.units.label}"),
                    f" ({'higher' if self.units.higher else 'lower'} is better), ",
                    "mean over seeds with a 95% Student-t interval; losses are compared seed by seed "
                    "(same split and test set). Runs: ",
                    scope,
                    f", {len(self.runs)} finished runs with the metric, from ",
                    Code(_display_uri(exp.uri)),
                    f". Built {time.strftime('%Y-%m-%d %H:%M')} by lossbench {__version__}. Rebuild: ",
                    Code(f"python -m lossbench.report --experiment {exp.name}"),
                    ".",
                ]
            )
        )

    def findings(self) -> None:
        self.doc.add(Heading("Findings"))
        if self.runs.empty:
            self.doc.add(Para(["No finished run logged this metric, so there is nothing to compare yet."]))
            return
        items: list = []
        u = self.units
        largest = max(self.ratios)
        # the recommendation at the largest ratio, per model
        for facet_key, group in self.summary[self.summary["ratio"] == largest].groupby(
            self.facets, sort=True
        ):
            facet = dict(
                zip(self.facets, facet_key if isinstance(facet_key, tuple) else (facet_key,), strict=True)
            )
            ranked = group.sort_values("rank")
            best = ranked.iloc[0]
            where = " · ".join(f"{k}={v:g}" if isinstance(v, float) else str(v) for k, v in facet.items())
            runs = _where(self.runs, {**facet, "ratio": largest})
            parts = [
                f"At the largest imbalance (ρ = {largest:g}) on {where}, use ",
                B(str(best["loss"])),
                ": ",
            ]
            parts.append(f"{u.label} {u.value(best['mean'])} ± {u.value(best['ci_half_width'])}")
            if best["loss"] != BASELINE and BASELINE in set(ranked["loss"]):
                d = stats.paired_difference(runs, self.column, self.axes, best["loss"], BASELINE)
                if d.n:
                    parts.append(
                        f", {u.diff(d.mean_diff)} over {BASELINE} ({u.interval(*d.ci)}, {d.n} seeds)"
                    )
            if len(ranked) > 1:
                second = ranked.iloc[1]
                d = stats.paired_difference(runs, self.column, self.axes, best["loss"], second["loss"])
                if not d.n:
                    pass
                elif d.interval_excludes_zero:
                    parts.append(
                        f"; ahead of the runner-up {second['loss']} by {u.diff(d.mean_diff)} "
                        f"({u.interval(*d.ci)}, excluding 0)"
                    )
                else:
                    parts.append(
                        f"; not separable from the runner-up {second['loss']} "
                        f"({u.diff(d.mean_diff)}, {u.interval(*d.ci)})"
                    )
            items.append([*parts, "."])
        # regimes: pooled over models and ratios, tested
        for name, ratios in _regimes(self.ratios):
            sentence = self._regime_finding(name, ratios)
            if sentence:
                items.append(sentence)
        calib = self._calibration_finding(largest)
        if calib:
            items.append(calib)
        if self.seeds < MIN_SEEDS_FOR_CLAIM:
            items.append(
                [
                    B("Caution:"),
                    " "
                    + f"each setting has only {self.seeds} seed{'s' if self.seeds != 1 else ''}. Per-setting "
                    "intervals rest on few paired differences and are wide; treat single-setting claims as "
                    "indicative. The pooled tests above combine seeds and ratios"
                    + (
                        "; comparisons with fewer than "
                        f"{MIN_BLOCKS_FOR_TEST} pairs are called inconclusive, as the signed-rank test "
                        "cannot reach "
                        "p < 0.05 there."
                    ),
                ]
            )
        self.doc.add(Bullets(items))

    def _regime_finding(self, name: str, ratios: list[float]):
        u = self.units
        runs = self.runs[self.runs["ratio"].isin(ratios)]
        wide = stats.blocks(runs, self.column, self.axes)
        comps = self._against_baseline(wide, name)
        if not comps:
            return None
        best = max(comps, key=lambda c: c.mean_diff if u.higher else -c.mean_diff)
        models = ", ".join(sorted(runs["model"].unique()))
        parts = [
            f"{name[0].upper()}{name[1:]}, pooled over {models} and seeds ({best.n} paired runs, "
            f"{len(comps) + 1} losses available on every model): "
        ]
        if not u.better(best.mean_diff):
            parts += [
                B(BASELINE),
                " is not beaten on average; the closest is ",
                B(best.loss),
                f" at {u.diff(best.mean_diff)}",
            ]
        else:
            parts += [
                B(best.loss),
                f" gains the most over {BASELINE}: {u.diff(best.mean_diff)} ({u.interval(*best.ci)})",
            ]
        if best.n < MIN_BLOCKS_FOR_TEST:
            parts.append(f"; only {best.n} pairs: inconclusive")
        else:
            verdict = "significant" if best.significant else "not significant"
            parts.append(
                f"; Wilcoxon signed-rank {_p_is(best.p_holm)} after Holm correction over "
                f"{len(comps)} comparisons: {verdict}"
            )
        beat = [c.loss for c in comps if c.significant and u.better(c.mean_diff)]
        worse = [c.loss for c in comps if c.significant and not u.better(c.mean_diff)]
        if beat:
            parts.append(f". Significantly better than {BASELINE}: {', '.join(beat)}")
        if worse:
            parts.append(f". Significantly worse: {', '.join(worse)}")
        return [*parts, "."]

    def _calibration_finding(self, largest: float):
        if "test/ece" not in self.exp.runs:
            return None
        ece = finished(self.exp.runs, "test/ece")
        ece = ece[ece["ratio"] == largest]
        if ece.empty:
            return None
        parts = [f"Calibration at ρ = {largest:g} (test ECE, lower is better): "]
        bits = []
        for model, group in ece.groupby("model"):
            means = group.groupby("loss")["test/ece"].mean().sort_values()
            text = f"on {model} {means.index[0]} is best calibrated (ECE {means.iloc[0]:.3f})"
            if BASELINE in means and means.index[0] != BASELINE:
                text += f", {BASELINE} {means[BASELINE]:.3f}"
            bits.append(text)
        return [*parts, "; ".join(bits), "."]

    def glance(self) -> None:
        """Best loss per (facet, ratio) with its gain over the baseline: the one-minute answer."""
        self.doc.add(Heading("Best loss per setting"))
        if self.summary.empty:
            return
        u = self.units
        rows = []
        for _, best in self.summary[self.summary["best"]].iterrows():
            setting = {a: best[a] for a in self.axes}
            if best["loss"] == BASELINE:
                gain = "(baseline)"
            elif BASELINE in set(_where(self.summary, setting)["loss"]):
                d = stats.paired_difference(
                    _where(self.runs, setting), self.column, self.axes, best["loss"], BASELINE
                )
                gain = f"{u.diff(d.mean_diff)} ({u.interval(*d.ci)})" if d.n else f"no paired {BASELINE} run"
            else:
                gain = f"no {BASELINE} run"
            rows.append(
                [
                    *(_fmt(v) for v in setting.values()),
                    B(str(best["loss"])),
                    f"{u.value(best['mean'])} ± {u.value(best['ci_half_width'])}",
                    gain,
                    str(int(best["n_seeds"])),
                ]
            )
        self.doc.add(
            Table(
                [*self.axes, "best loss", f"{u.label} (95% CI)", f"vs {BASELINE}", "seeds"],
                rows,
                align_right_from=len(self.axes) + 1,
            )
        )

    def _against_baseline(self, wide: pd.DataFrame, scope: str) -> list[stats.Comparison]:
        """Every loss against the baseline over these blocks, recorded for comparisons.csv."""
        comps = stats.against_baseline(wide, BASELINE)
        for c in comps:
            low, high = c.ci
            self.comparisons.append(
                dict(
                    scope=scope,
                    loss=c.loss,
                    baseline=c.baseline,
                    n_pairs=c.n,
                    mean_diff=c.mean_diff,
                    ci_low=low,
                    ci_high=high,
                    p_wilcoxon=c.p_raw,
                    p_holm=c.p_holm,
                )
            )
        return comps

    def accounting(self) -> None:
        self.doc.add(Heading("What was swept"))
        exp = self.exp
        for sweep in exp.sweeps[:1]:
            swept = json.loads(sweep.params.get("sweep.params", "{}") or "{}")
            overrides = json.loads(sweep.params.get("sweep.overrides", "[]") or "[]")
            items = [[Code(f"{k}: {v}")] for k, v in swept.items()]
            if overrides:
                items.append(["command-line overrides: ", Code(" ".join(overrides))])
            if items:
                self.doc.add(Bullets(items))
        fixed = []
        if not self.runs.empty:
            for key, label in (
                ("params.data.name", "data"),
                ("params.imbalance.test", "test split"),
                ("params.imbalance.profile", "imbalance profile"),
                ("params.regularization.name", "regularization"),
                ("params.rebalance.name", "rebalancing"),
            ):
                if key in self.runs and self.runs[key].nunique() == 1:
                    fixed.append(f"{label} = {self.runs[key].iloc[0]}")
        if fixed:
            self.doc.add(Para(["Fixed across the runs: ", ", ".join(fixed), "."]))
        header = ["sweep", "started", "expected", "finished", "resumed", "N/A", "failed", "did not report"]
        rows = []
        for sweep in exp.sweeps:
            counts = {
                s: sum(1 for st in sweep.statuses if st.get("status") == s)
                for s in ("finished", "resumed", "skipped", "failed")
            }
            expected = sweep.expected
            missing = (expected - len(sweep.statuses)) if expected is not None and sweep.statuses else None
            rows.append(
                [
                    sweep.name,
                    time.strftime("%Y-%m-%d %H:%M", time.localtime(sweep.start_time / 1000)),
                    str(expected if expected is not None else "–"),
                    *(str(counts[s]) for s in ("finished", "resumed", "skipped", "failed")),
                    "sweep still running or interrupted" if not sweep.statuses else str(missing),
                ]
            )
        if rows:
            self.doc.add(Table(header, rows, caption="Run accounting", align_right_from=2))
        by_status = exp.runs["status"].value_counts().to_dict() if not exp.runs.empty else {}
        self.doc.add(
            Para(
                [
                    "MLflow runs in scope, by status: ",
                    ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none",
                    ".",
                ]
            )
        )
        failed = exp.runs[exp.runs["status"] == "FAILED"] if not exp.runs.empty else exp.runs
        if len(failed):
            self.doc.add(
                Bullets([[Code(str(r.run_name)), f": {r.failure_reason}"] for r in failed.itertuples()][:20])
            )

    def main_tables(self) -> None:
        self.doc.add(Heading("Results per model and imbalance ratio"))
        u = self.units
        self.doc.add(
            Para(
                [
                    f"Cells: mean test {u.label} ± 95% CI half-width over seeds, (rank within the column); "
                    "the best loss of each column in bold. Rows ordered by the rank at the largest ρ."
                ]
            )
        )
        for facet_key, group in self.summary.groupby(self.facets, sort=True):
            key = facet_key if isinstance(facet_key, tuple) else (facet_key,)
            caption = " · ".join(f"{a} = {_fmt(v)}" for a, v in zip(self.facets, key, strict=True))
            ratios = sorted(group["ratio"].unique())
            order = group[group["ratio"] == ratios[-1]].sort_values("rank")["loss"].tolist()
            order += [x for x in self.losses if x in set(group["loss"]) and x not in order]
            rows = []
            for loss in order:
                row = [loss]
                for r in ratios:
                    cell = group[(group["loss"] == loss) & (group["ratio"] == r)]
                    if cell.empty:
                        row.append("–")
                        continue
                    c = cell.iloc[0]
                    text = f"{u.value(c['mean'])} ± {u.value(c['ci_half_width'])} ({int(c['rank'])})"
                    row.append(B(text) if c["best"] else text)
                rows.append(row)
            self.doc.add(Table(["loss", *(f"ρ = {r:g}" for r in ratios)], rows, caption=caption))
        self._figure(
            fig.lines_with_bands(
                self.summary,
                "ratio",
                self.facets,
                self.colours,
                self.figures_dir / "metric_vs_ratio.png",
                ylabel=f"test {u.label}",
                xlabel="imbalance ratio ρ (log scale)",
                clip=u.range,
            ),
            f"{u.label} against the imbalance ratio",
            f"Test {u.label} against ρ, one line per loss, band = 95% CI over seeds.",
        )
        self._figure(
            fig.heatmaps(
                self.summary,
                self.facets,
                self.losses,
                self.figures_dir / "heatmap_loss_ratio.png",
                label=f"mean test {u.label}",
                higher=u.higher,
            ),
            "heatmap of loss by imbalance ratio",
            f"Mean test {u.label}, loss × ρ; the best loss per column is boxed in red.",
        )

    def regularization(self) -> None:
        if not any(a in self.axes for a in ("regularization", "strength")):
            return
        self.doc.add(Heading("Regularization"))
        axes = [a for a in self.axes if a not in ("strength",)]
        table = stats.summarize(self.runs, self.column, self.units.higher, [*axes, "strength"])
        facets = [a for a in axes if a not in ("ratio",)] + (
            ["ratio"] if self.runs["ratio"].nunique() > 1 else []
        )
        self._figure(
            fig.lines_with_bands(
                table,
                "strength",
                facets,
                self.colours,
                self.figures_dir / "regularization.png",
                ylabel=f"test {self.units.label}",
                xlabel="regularization strength λ (symlog)",
                clip=self.units.range,
            ),
            "metric against regularization strength",
            "Test metric against the regularization strength, one panel per model and regularizer; 0 = none.",
        )
        best = table.loc[
            table.groupby([*axes])["mean"].idxmax()
            if self.units.higher
            else table.groupby(axes)["mean"].idxmin()
        ]
        rows = [
            [
                *(_fmt(r[a]) for a in axes),
                f"{r['strength']:g}",
                f"{self.units.value(r['mean'])} ± {self.units.value(r['ci_half_width'])}",
            ]
            for _, r in best.iterrows()
        ]
        self.doc.add(
            Table(
                [*axes, "best λ", self.units.label],
                rows,
                caption="Best strength per setting",
                align_right_from=len(axes),
            )
        )

    def significance(self) -> None:
        self.doc.add(Heading("Significance across settings"))
        self.doc.add(
            Para(
                [
                    "Blocks are (setting, seed) pairs, where runs share the data split and test set. "
                    "Friedman tests whether the losses differ at all; pairwise two-sided Wilcoxon "
                    "signed-rank tests with Holm correction say which pairs differ (Benavoli et al. 2016 "
                    "prefer them to mean-rank post-hoc tests). In the critical-difference diagrams, losses "
                    "joined by a bar are not significantly different."
                ]
            )
        )
        u = self.units
        for model in sorted(self.runs["model"].unique()):
            runs = self.runs[self.runs["model"] == model]
            wide = stats.blocks(runs, self.column, self.axes)
            self.doc.add(Heading(f"{model}", level=3))
            result = stats.friedman(wide, u.higher)
            if result is None:
                self.doc.add(Para(["Too few complete blocks or losses for a Friedman test."]))
                continue
            verdict = (
                "the losses differ" if result.p_value < stats.ALPHA else "no evidence that the losses differ"
            )
            self.doc.add(
                Para(
                    [
                        f"Friedman χ² = {result.statistic:.2f} over {result.n_blocks} blocks and "
                        f"{len(result.losses)} losses, {_p_is(result.p_value)}: {verdict}."
                    ]
                )
            )
            comps = self._against_baseline(wide, f"model={model}, all ratios")
            rows = [
                [
                    c.loss,
                    str(c.n),
                    u.diff(c.mean_diff),
                    u.interval(*c.ci).removeprefix("95% CI "),
                    _p(c.p_raw),
                    B(_p(c.p_holm)) if c.significant else _p(c.p_holm),
                    ("better" if u.better(c.mean_diff) else "worse") if c.significant else "not significant",
                ]
                for c in sorted(comps, key=lambda c: -c.mean_diff if u.higher else c.mean_diff)
            ]
            if rows:
                self.doc.add(
                    Table(
                        ["loss", "pairs", f"mean vs {BASELINE}", "95% CI", "p", "p (Holm)", "verdict"],
                        rows,
                        caption=f"{model}: each loss against {BASELINE}, all settings pooled",
                    )
                )
            path = fig.critical_difference(
                result.mean_ranks,
                result.pairwise_p,
                self.colours,
                self.figures_dir / f"critical_difference_{_safe(model)}.png",
                f"{model}: mean rank of test {u.label} over {result.n_blocks} blocks (1 = best)",
            )
            self._figure(
                path,
                f"critical difference diagram for {model}",
                "Mean ranks; bars join losses that pairwise Wilcoxon-Holm tests (α = 0.05) cannot separate.",
            )

    def calibration(self, client) -> None:
        self.doc.add(Heading("Calibration"))
        ece_runs = finished(self.exp.runs, "test/ece")
        if ece_runs.empty:
            self.doc.add(Para(["No run logged probabilities, so there is no calibration to show."]))
            return
        table = stats.summarize(ece_runs, "test/ece", False, self.axes)
        self._figure(
            fig.lines_with_bands(
                table,
                "ratio",
                self.facets,
                self.colours,
                self.figures_dir / "ece_vs_ratio.png",
                ylabel="test ECE (lower is better)",
                xlabel="imbalance ratio ρ (log scale)",
                clip=(0.0, 1.0),
            ),
            "ECE against the imbalance ratio",
            "Expected calibration error (15 bins) against ρ; band = 95% CI over seeds.",
        )
        largest = max(self.ratios)
        main = self._main_losses()
        chosen = ece_runs[(ece_runs["ratio"] == largest) & ece_runs["loss"].isin(main)]
        diagrams = {}
        for (model, loss), group in chosen.groupby(["model", "loss"]):
            bins = [
                b
                for b in (
                    _reliability(client, r, uri)
                    for r, uri in zip(group["run_id"], group["artifact_uri"], strict=True)
                )
                if b
            ]
            if bins:
                diagrams[(model, loss)] = stats.pooled_reliability(bins)
        ordered = {k: diagrams[k] for loss in main for k in sorted(diagrams) if k[1] == loss}
        self._figure(
            fig.reliability(
                ordered,
                self.colours,
                self.figures_dir / "reliability.png",
                f"Reliability at ρ = {largest:g}, pooled over seeds",
            ),
            "reliability diagrams",
            "Accuracy per confidence bin against the diagonal of perfect calibration; "
            "bars under the diagonal are over-confident.",
        )

    def per_class(self) -> None:
        largest = max(self.ratios)
        self.doc.add(Heading(f"Per-class recall at ρ = {largest:g}"))
        runs = self.runs[(self.runs["ratio"] == largest) & self.runs["loss"].isin(self._main_losses())]
        rows = []
        for _, r in runs.iterrows():
            names, counts = r["class_names"], r["train_counts"]
            if not isinstance(names, list) or not isinstance(counts, list):
                continue
            for k, (name, count) in enumerate(zip(names, counts, strict=False)):
                value = r.get(f"test/recall_class_{k}")
                if value is not None and np.isfinite(value):
                    rows.append(
                        {
                            "model": r["model"],
                            "loss": r["loss"],
                            "class": str(name),
                            "train_count": count,
                            "recall": float(value),
                        }
                    )
        table = pd.DataFrame(rows)
        if table.empty:
            self.doc.add(Para(["No per-class recall was logged."]))
            return
        table = table.groupby(["model", "loss", "class"], as_index=False).agg(
            recall=("recall", "mean"), train_count=("train_count", "mean")
        )
        table["train_count"] = table["train_count"].round().astype(int)
        self._figure(
            fig.per_class_recall(
                table,
                self.colours,
                self.figures_dir / "per_class_recall.png",
                f"Test recall per class at ρ = {largest:g} (mean over seeds)",
            ),
            "per-class recall",
            "Classes ordered from the most to the least frequent in training.",
        )
        for model, group in table.groupby("model"):
            wide = group.pivot_table(
                index=["class", "train_count"], columns="loss", values="recall"
            ).reset_index()
            wide = wide.sort_values("train_count", ascending=False)
            losses = [x for x in self._main_losses() if x in wide.columns]
            self.doc.add(
                Table(
                    ["class", "training count", *losses],
                    [
                        [str(r["class"]), str(r["train_count"]), *(f"{r[x]:.3f}" for x in losses)]
                        for _, r in wide.iterrows()
                    ],
                    caption=f"{model}: mean test recall per class",
                )
            )

    def na_matrix(self) -> None:
        self.doc.add(Heading("N/A matrix: which loss runs on which model"))
        statuses = [st for s in self.exp.sweeps for st in s.statuses if isinstance(st.get("job"), dict)]
        cells: dict[tuple[str, str], dict[str, int]] = {}
        reasons: dict[tuple[str, str], str] = {}
        for st in statuses:
            key = (st["job"]["loss"], st["job"]["model"])
            cells.setdefault(key, {}).setdefault(st["status"], 0)
            cells[key][st["status"]] += 1
            if st["status"] == "skipped":
                reasons.setdefault(key, st.get("reason", ""))
        if not cells:  # no sweep bookkeeping (single runs): what MLflow holds
            for (loss, model), group in self.exp.runs.groupby(["loss", "model"]):
                cells[(loss, model)] = {"finished": int((group["status"] == "FINISHED").sum())}
        models = sorted({m for _, m in cells})
        losses = [x for x in self.losses if any((x, m) in cells for m in models)]
        losses += sorted({x for x, _ in cells} - set(losses))
        rows = []
        for loss in losses:
            row = [loss]
            for m in models:
                c = cells.get((loss, m), {})
                ran = c.get("finished", 0) + c.get("resumed", 0)
                if not c:
                    row.append("not swept")
                elif ran == 0 and c.get("skipped"):
                    row.append(B("N/A"))
                else:
                    extra = f", {c['failed']} failed" if c.get("failed") else ""
                    row.append(f"{ran} runs{extra}")
            rows.append(row)
        self.doc.add(Table(["loss", *models], rows, align_right_from=1))
        if reasons:
            self.doc.add(
                Bullets(
                    [
                        [B(f"{loss} × {model}:"), " " + reason]
                        for (loss, model), reason in sorted(reasons.items())
                    ]
                )
            )

    def files(self) -> None:
        self.doc.add(Heading("Files"))
        self.doc.add(
            Bullets(
                [
                    [Code("summary.csv"), ": one row per setting and loss (seeds, mean, std, 95% CI, rank)."],
                    [
                        Code("comparisons.csv"),
                        f": every loss against {BASELINE} (paired differences, Wilcoxon p, Holm p).",
                    ],
                    [Code("figures/"), ": the PNG figures above."],
                    [
                        "Browse the runs: ",
                        Code(f"mlflow ui --backend-store-uri {_display_uri(self.exp.uri)}"),
                    ],
                ]
            )
        )

    # ---------------------------------------------------------------- assembly

    def build(self) -> Document:
        self.intro()
        if self.runs.empty:
            self.findings()
            self.accounting()
            self.na_matrix()
            return self.doc
        findings_at = len(self.doc.blocks)
        self.glance()
        self.accounting()
        self.main_tables()
        self.regularization()
        self.significance()
        self.calibration(LazyClient(self.exp.uri))
        self.per_class()
        self.na_matrix()
        self.files()
        rest, self.doc.blocks = self.doc.blocks[findings_at:], self.doc.blocks[:findings_at]
        self.findings()  # first in the document, written once the numbers behind it exist
        self.doc.blocks.extend(rest)
        return self.doc


def _display_uri(uri: str) -> str:
    """A SQLite store inside the working folder is shown relative to it (``sqlite:///mlflow.db``): the report
    travels (committed, attached to MLflow); the absolute path of the machine that built it means nothing."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        try:
            return f"sqlite:///{path.resolve().relative_to(Path.cwd().resolve())}"
        except ValueError:
            return uri
    return uri


def _reliability(client, run_id: str, artifact_uri: str | None) -> dict | None:
    from lossbench.report.load import read_json_artifact
    from lossbench.tracking import RELIABILITY_ARTIFACT

    return read_json_artifact(client, run_id, artifact_uri, RELIABILITY_ARTIFACT)


def build_report(
    experiment: str,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    metric: str = "balanced_accuracy",
    sweep: str = "latest",
) -> Path:
    """Build the comparison report of an MLflow experiment; returns the path of its ``index.html``.

    ``sweep``: ``"latest"`` (default), ``"all"`` (every run), or a sweep id. ``out`` defaults to
    ``reports/<experiment>/``. The folder gets ``index.html``, ``README.md``, ``summary.csv``,
    ``comparisons.csv`` and ``figures/``; other files in it are left alone.
    """
    metric = check_metric(metric)
    out = Path(out) if out is not None else Path("reports") / experiment
    started = time.perf_counter()
    exp = load_experiment(experiment, tracking_uri, scope=sweep)
    log.info(
        "report: %d runs of experiment '%s' read in %.1f s",
        len(exp.runs),
        experiment,
        time.perf_counter() - started,
    )
    # what is loaded lives through the build: keep the garbage collector from walking it again and again
    # (statsmodels' Holm correction calls gc.collect(), ~1 s a call with 10k runs in memory)
    gc.freeze()
    try:
        _write(exp, metric, out)
    finally:
        gc.unfreeze()
    log.info("report: built in %.1f s -> %s", time.perf_counter() - started, out / "index.html")
    return out / "index.html"


def _write(exp: Experiment, metric: str, out: Path) -> None:
    from lossbench.report.document import to_html, to_markdown

    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "report"
        builder = ReportBuilder(exp, metric, staging)
        doc = builder.build()
        staging.mkdir(parents=True, exist_ok=True)
        (staging / "index.html").write_text(to_html(doc), encoding="utf-8")
        (staging / "README.md").write_text(to_markdown(doc), encoding="utf-8")
        builder.summary.to_csv(staging / "summary.csv", index=False)
        pd.DataFrame(builder.comparisons).to_csv(staging / "comparisons.csv", index=False)
        # replace what a previous build wrote (figures of a wider sweep must not linger), keep anything else
        out.mkdir(parents=True, exist_ok=True)
        if (out / "figures").is_dir():
            shutil.rmtree(out / "figures")
        for name in REPORT_FILES:
            shutil.copy2(staging / name, out / name)
        if (staging / "figures").is_dir():
            shutil.copytree(staging / "figures", out / "figures")


__all__ = ["build_report"]
