"""Issue 20, the report part: bounded intervals, "no clear winner", readable calibration and metric-vs-ρ
figures, per-class recall of the top-ranked losses, scarce-class warnings, training curves and fit cost.

One real sweep of the ``imbalance`` kind, narrowed (digits, logreg + torch_mlp, 6 losses, ρ 1 and 100,
2 seeds), into a real SQLite store; every number the report states is recomputed here from MLflow's own
client, independently of lossbench.report."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image as PILImage
from scipy import stats as sps

from lossbench.report import figures, load
from lossbench.report.sections.formatting import Units
from tests.conftest import run_cli

EXPERIMENT = "issue20"
LOSSES = ["ce", "weighted_ce", "class_balanced", "focal", "logit_adjusted", "ldam"]
NA_ON_LOGREG = {"focal", "ldam"}
CURVES = ("train_loss", "val_loss", "val_balanced_accuracy")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("issue20")
    proc = run_cli(
        [
            "+experiment=imbalance",
            "model=logreg,torch_mlp",
            f"loss={','.join(LOSSES)}",
            "imbalance.ratio=1,100",
            "seed=0,1",
            f"tracking.experiment={EXPERIMENT}",
        ],
        cwd=folder,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def out(sweep) -> Path:
    return sweep / "reports" / EXPERIMENT


@pytest.fixture(scope="module")
def mlflow_runs(sweep) -> pd.DataFrame:
    """The child runs straight from MlflowClient: one row per run."""
    client = MlflowClient(tracking_uri=f"sqlite:///{sweep / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    rows = []
    for r in client.search_runs([exp.experiment_id], max_results=5000):
        if r.data.tags.get("lossbench.role") == "sweep":
            continue
        p, m = r.data.params, r.data.metrics
        rows.append(
            {
                "run_id": r.info.run_id,
                "status": r.info.status,
                "model": p["model.name"],
                "loss": p["loss.name"],
                "ratio": float(p["imbalance.ratio"]),
                "seed": int(p["seed"]),
                "counts": json.loads(p["class_counts.train"]),
                "bacc": m["test/balanced_accuracy"],
                "ece": m.get("test/ece", math.nan),
                "fit_seconds": m["train/fit_seconds"],
                "curve_keys": sorted(k for k in m if k.startswith("curve/")),
                # the post-hoc baselines a CE run logs (lossbench.baselines); NaN on other runs
                "la_bacc": m.get("baseline/ce_posthoc_la/test/balanced_accuracy", math.nan),
                "la_ece": m.get("baseline/ce_posthoc_la/test/ece", math.nan),
                "ts_ece": m.get("baseline/ce_temperature/test/ece", math.nan),
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report_rows(mlflow_runs) -> pd.DataFrame:
    """The rows the report compares, by hand: every run, plus per CE run its post-hoc logit adjustment
    (ranked like a loss) and its temperature scaling (calibration only: no balanced accuracy to rank)."""
    ce = mlflow_runs[mlflow_runs["loss"] == "ce"]
    la = ce.assign(loss="ce_posthoc_la", bacc=ce["la_bacc"], ece=ce["la_ece"])
    ts = ce.assign(loss="ce_temperature", bacc=math.nan, ece=ce["ts_ece"])
    assert la["bacc"].notna().all() and ts["ece"].notna().all()  # every CE run here has probabilities
    return pd.concat([mlflow_runs, la, ts], ignore_index=True)


@pytest.fixture(scope="module")
def ranked_rows(report_rows) -> pd.DataFrame:
    return report_rows.dropna(subset=["bacc"])


def _panels(path: Path) -> list[str]:
    with PILImage.open(path) as img:
        return json.loads(img.info["Panels"])


def _notes(path: Path) -> list[str]:
    with PILImage.open(path) as img:
        return json.loads(img.info["Notes"])


def _t_interval(values) -> tuple[float, float, float]:
    """Mean and 95% Student-t bounds, by hand."""
    x = np.asarray(values, dtype=float)
    half = sps.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def _half(values) -> float:
    x = np.asarray(values, dtype=float)
    return float(sps.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def test_the_sweep_ran_every_runnable_job(mlflow_runs):
    assert (mlflow_runs["status"] == "FINISHED").all()
    # 2 models x 6 losses x 2 ratios x 2 seeds, minus focal and ldam on logreg
    assert len(mlflow_runs) == 2 * 6 * 2 * 2 - 2 * 2 * 2
    assert not set(mlflow_runs.loc[mlflow_runs["model"] == "logreg", "loss"]) & NA_ON_LOGREG


# ------------------------------------------------------------------------------------ 1. bounded intervals


def test_bounded_metric_intervals_are_cut_to_the_range_and_written_as_low_high(out, mlflow_runs):
    summary = pd.read_csv(out / "summary.csv")
    assert summary["ci_low"].ge(0).all() and summary["ci_high"].le(1).all()
    readme = (out / "README.md").read_text()
    clipped = 0
    for (model, ratio, loss), group in mlflow_runs.groupby(["model", "ratio", "loss"]):
        mean, low, high = _t_interval(group["bacc"])
        row = summary[(summary.model == model) & (summary.ratio == ratio) & (summary.loss == loss)].iloc[0]
        assert row.ci_low == pytest.approx(max(low, 0.0)) and row.ci_high == pytest.approx(min(high, 1.0))
        assert bool(row.ci_clipped) == (low < 0 or high > 1)
        if high > 1 or low < 0:
            clipped += 1
            assert f"{mean:.3f} ({max(low, 0):.3f}–{min(high, 1):.3f})" in readme
            assert f"{mean:.3f} ± {_half(group['bacc']):.3f}" not in readme
        else:
            assert f"{mean:.3f} ± {_half(group['bacc']):.3f}" in readme
    assert clipped >= 1  # 2 seeds near 1.0: some t-interval reaches past 1


@pytest.mark.parametrize(
    "metric, mean, half, text",
    [
        ("balanced_accuracy", 0.958, 0.176, "0.958 (0.782–1.000)"),
        ("balanced_accuracy", 0.5, 0.1, "0.500 ± 0.100"),
        ("ece", 0.03, 0.05, "0.030 (0.000–0.080)"),
        ("mcc", -0.9, 0.2, "-0.900 (-1.000–-0.700)"),
        ("brier", 1.9, 0.3, "1.900 (1.600–2.000)"),
        ("log_loss", 0.1, 0.5, "0.100 ± 0.500"),  # unbounded above, and no lower bound is claimed
        ("recall_class_3", 0.99, 0.02, "0.990 (0.970–1.000)"),
    ],
)
def test_estimates_of_bounded_metrics_are_cut_to_their_range(metric, mean, half, text):
    assert Units(metric, True).estimate(mean, half) == text


def test_differences_of_bounded_metrics_are_cut_to_plus_minus_the_span():
    assert Units("balanced_accuracy", True).interval(-1.3, 0.2) == "95% CI -100.0 to +20.0"
    assert Units("mcc", True).interval(-2.5, 0.1) == "95% CI -200.0 to +10.0"
    assert Units("log_loss", False).interval(-3.0, 1.0) == "95% CI -3.0000 to +1.0000"


# ------------------------------------------------------------------------------------ 2. no clear winner


def test_a_best_loss_that_is_not_separable_is_no_clear_winner_and_its_ties_are_named(out, ranked_rows):
    readme = (out / "README.md").read_text()
    seen = set()
    for model, group in ranked_rows[ranked_rows["ratio"] == 100].groupby("model"):
        wide = group.pivot_table(index="seed", columns="loss", values="bacc")
        means = wide.mean().sort_index()
        best = means.idxmax()  # ties: the alphabetically first, as the report orders equal ranks
        tied = []
        for other in means.sort_values(ascending=False, kind="stable").index:
            if other == best:
                continue
            _, low, high = _t_interval(wide[best] - wide[other])
            if not (low > 0 or high < 0):
                tied.append(other)
        start = f"- At the largest imbalance (ρ = 100) on {model}"
        (line,) = [x for x in readme.replace("\\_", "_").splitlines() if x.startswith(start)]
        if tied:
            assert "**no clear winner**" in line and " use " not in line
            named = re.search(r"Tied with the best \((\d+) losses\): \*\*([^*]+)\*\*", line)
            assert int(named.group(1)) == len(tied) + 1
            assert named.group(2).split(", ")[0] == best
            assert set(named.group(2).split(", ")) == {best, *tied}
            seen.add("tied")
        else:
            assert f"use **{best}**" in line and "no clear winner" not in line
            seen.add("clear")
    assert "tied" in seen  # 2 seeds: at least one model has no separable winner


# --------------------------------------------------------------------------------- 3. calibration figures


def test_ece_axis_follows_the_bulk_and_names_every_mean_off_it(out, report_rows):
    path = out / "figures" / "ece_vs_ratio.png"
    assert _panels(path) == ["logreg", "torch_mlp"]
    expected = []
    for model, group in report_rows.dropna(subset=["ece"]).groupby("model"):
        means = group.groupby(["loss", "ratio"])["ece"].mean()
        v = np.sort(means.to_numpy())
        gaps = np.diff(v)
        i = int(np.argmax(gaps))
        low, high = 0.0, 1.0
        if gaps[i] > 0.5 * (v[-1] - v[0]) and i + 1 != v.size - i - 1:  # a wide gap, a bulk on one side
            if i + 1 > v.size - i - 1:
                high = v[i] + gaps[i] / 2
            else:
                low = v[i] + gaps[i] / 2
        for loss, rows in means.groupby(level="loss", sort=False):
            off = rows[(rows > high) | (rows < low)]
            if not off.empty:
                values = ", ".join(f"{v:.2f}" for v in off.sort_index(level="ratio"))
                expected.append(f"{model}: {loss} {values}")
    assert sorted(_notes(path)) == sorted(expected)  # (in this sweep, torch_mlp's LDAM was far off)


def test_a_far_off_loss_is_named_at_the_axis_edge_and_the_rest_keep_their_scale(tmp_path):
    losses = ["ce", "focal", "ldam"]
    table = pd.DataFrame(
        [
            {"model": "torch_mlp", "loss": x, "ratio": r, "mean": m, "ci_low": m - 0.01, "ci_high": m + 0.01}
            for x, means in {"ce": (0.03, 0.05), "focal": (0.04, 0.06), "ldam": (0.61, 0.70)}.items()
            for r, m in zip((1.0, 100.0), means, strict=True)
        ]
    )
    colours = figures.palette(losses)
    args = (table, "ratio", ["model"], colours)
    labels = {"ylabel": "ECE", "xlabel": "ρ", "clip": (0.0, 1.0)}
    path = figures.lines_with_bands(*args, tmp_path / "robust.png", **labels, robust=True)
    assert _notes(path) == ["torch_mlp: ldam 0.61, 0.70"]
    plain = figures.lines_with_bands(*args, tmp_path / "plain.png", **labels)
    assert _notes(plain) == []
    # without a far-off value there is nothing to cut
    near = table[table["loss"] != "ldam"]
    assert (
        _notes(figures.lines_with_bands(near, *args[1:], tmp_path / "near.png", **labels, robust=True)) == []
    )


def test_bulk_limits_reference_values():
    # sorted gaps: the widest, 0.07 -> 0.65, is 0.58 of the span 0.68 (> half); 6 values under it, 2 over
    bulk = [0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.65, 0.7]
    assert figures.bulk_limits(bulk, (0.0, 1.0)) == pytest.approx((0.0, 0.36))
    assert figures.bulk_limits([0.2, 0.9, 0.91, 0.93], (0.0, 1.0)) == pytest.approx((0.55, 1.0))  # far below
    assert figures.bulk_limits([0.02, 0.03, 0.04, 0.05, 0.06], (0.0, 1.0)) is None  # evenly spread: no cut
    assert figures.bulk_limits([0.07, 0.1, 0.15, 0.18, 0.18], (0.0, 1.0)) is None  # ordinary spread
    assert figures.bulk_limits([0.05, 0.06, 0.6, 0.7], (0.0, 1.0)) is None  # two equal groups: no bulk


def test_reliability_figure_draws_only_panels_with_data(out, mlflow_runs):
    readme = (out / "README.md").read_text().replace("\\_", "_")
    shown = re.search(r"Losses shown: ([a-z_, ]+);", readme).group(1).split(", ")
    at_max = mlflow_runs[(mlflow_runs["ratio"] == 100) & mlflow_runs["ece"].notna()]
    pairs = {(m, x) for m, x in zip(at_max["model"], at_max["loss"], strict=True) if x in shown}
    panels = _panels(out / "figures" / "reliability.png")
    drawn = {tuple(p.split(" · ")) for p in panels}
    assert drawn == pairs and len(panels) == len(pairs)
    assert ("logreg", "focal") not in drawn and ("logreg", "ldam") not in drawn
    assert "focal" in shown or "ldam" in shown  # a loss N/A on logreg is shown for torch_mlp only


# ----------------------------------------------------------------------------------- 4. per-class recall


def test_per_class_recall_shows_ce_and_the_top_three_of_each_model_at_the_largest_ratio(out, ranked_rows):
    readme = (out / "README.md").read_text().replace("\\_", "_")
    listed = []
    for model, group in ranked_rows[ranked_rows["ratio"] == 100].groupby("model"):
        means = group.groupby("loss")["bacc"].mean()
        ranks = means.rank(ascending=False, method="min").sort_index().sort_values(kind="stable")
        top = [x for x in ranks.index if x != "ce"][:3]
        header = "| class | training count | " + " | ".join(["ce", *top]) + " |"
        table_at = readme.index(f"**{model}: mean test recall per class**")
        assert readme[table_at:].split("\n\n", 2)[1].startswith(header)
        listed.append(f"{model}: {', '.join(top)}")
    assert (
        "Shown for each model: ce (the baseline) and the 3 best-ranked other losses at ρ = 100 by mean test "
        f"balanced accuracy — {'; '.join(listed)}." in readme
    )


# ---------------------------------------------------------------------------------- 5. metric against ρ


def test_metric_vs_ratio_has_one_small_panel_per_model_and_loss(out, ranked_rows):
    pairs = {f"{m} · {x}" for m, x in zip(ranked_rows["model"], ranked_rows["loss"], strict=True)}
    panels = _panels(out / "figures" / "metric_vs_ratio.png")
    # logreg 4 losses, torch_mlp 6, each + ce_posthoc_la (ce_temperature is not ranked by accuracy)
    assert len(panels) == len(pairs) == (4 + 1) + (6 + 1) and set(panels) == pairs
    readme = (out / "README.md").read_text()
    assert "the dashed grey line in each panel is ce, the baseline" in readme


def test_few_losses_share_one_panel_per_model(tmp_path):
    """2-3 losses stay overlaid (one panel per model): small multiples are for many losses."""
    table = pd.DataFrame(
        [
            {"model": m, "loss": x, "ratio": r, "mean": 0.9 - 0.001 * r, "ci_low": 0.8, "ci_high": 1.0}
            for m in ("logreg", "torch_mlp")
            for x in ("ce", "focal")
            for r in (1.0, 10.0)
        ]
    )
    colours = figures.palette(["ce", "focal"])
    labels = {"ylabel": "y", "xlabel": "x"}
    path = figures.lines_with_bands(
        table, "ratio", ["model"], colours, tmp_path / "a.png", **labels, clip=(0, 1)
    )
    assert _panels(path) == ["logreg", "torch_mlp"]
    path = figures.small_multiples(
        table,
        "ratio",
        ["model"],
        ["focal", "ce"],
        colours,
        tmp_path / "b.png",
        reference="ce",
        ylabel="y",
        xlabel="x",
    )
    assert _panels(path) == ["logreg · focal", "logreg · ce", "torch_mlp · focal", "torch_mlp · ce"]


def test_many_facets_keep_one_panel_each_with_the_top_ranked_losses_in_colour(tmp_path):
    """Past small multiples' panel budget (a swept regularization: model x strength facets), each facet
    keeps one panel: the best-ranked few at the largest ρ and the baseline in colour, the rest grey."""
    rows = []
    for strength in (0.1, 1.0):
        for i, loss in enumerate(["ce", "a", "b", "c", "d"]):
            gain = (i if strength == 0.1 else -i) * 0.01  # the order of the losses flips between the facets
            for r in (1.0, 100.0):
                m = 0.8 + gain * (r > 1)
                rows.append(
                    {"strength": strength, "loss": loss, "ratio": r, "mean": m, "ci_low": m, "ci_high": m}
                )
    table = pd.DataFrame(rows)
    table["rank"] = table.groupby(["strength", "ratio"])["mean"].rank(ascending=False, method="min")
    colours = figures.palette(["ce", "a", "b", "c", "d"])
    path = figures.lines_with_bands(
        table,
        "ratio",
        ["strength"],
        colours,
        tmp_path / "h.png",
        ylabel="y",
        xlabel="x",
        highlight=2,
        reference="ce",
    )
    assert _panels(path) == ["strength=0.1", "strength=1"]
    assert _notes(path) == ["strength=0.1: d, c, ce", "strength=1: ce, a, b"]


# ------------------------------------------------------------------------------------- 6. scarce classes


def test_findings_name_the_settings_with_classes_under_five_training_samples(out, mlflow_runs):
    readme = (out / "README.md").read_text().replace("\\_", "_")
    (line,) = [x for x in readme.splitlines() if x.startswith("- **Few training samples:**")]
    for ratio, group in mlflow_runs.groupby("ratio"):
        scarce = [sum(c < 5 for c in counts) for counts in group["counts"]]
        fewest = min(min(c) for c in group["counts"])
        n_classes = len(group["counts"].iloc[0])
        models = ", ".join(sorted(group["model"].unique()))
        if max(scarce) == 0:
            assert f"ρ = {ratio:g} " not in line
            continue
        many = f"{max(scarce)}" if max(scarce) == min(scarce) else f"up to {max(scarce)}"
        assert (
            f"at ρ = {ratio:g} ({models}): {many} of {n_classes} classes have fewer than 5 training samples "
            f"(fewest: {fewest} sample{'s' if fewest != 1 else ''})" in line
        )
    assert "ρ = 100" in line and "ρ = 1 " not in line


# --------------------------------------------------------------------------- 7. training curves and cost


def test_curves_read_in_one_query_and_through_mlflow_alike(sweep, mlflow_runs, monkeypatch):
    uri = f"sqlite:///{sweep / 'mlflow.db'}"
    exp = load.load_experiment(EXPERIMENT, uri)
    fast = load.load_curves(exp, exp.runs["run_id"])
    client = MlflowClient(tracking_uri=uri)
    expected = sorted(
        (run_id, key.removeprefix("curve/"), m.step, m.value)
        for run_id, keys in zip(mlflow_runs["run_id"], mlflow_runs["curve_keys"], strict=True)
        for key in keys
        for m in client.get_metric_history(run_id, key)
    )
    assert sorted(fast.itertuples(index=False, name=None)) == expected
    torch_ids = set(mlflow_runs.loc[mlflow_runs["model"] == "torch_mlp", "run_id"])
    assert set(fast["run_id"]) == torch_ids  # logreg has no epochs
    assert set(fast["curve"]) == {"train_loss", "val_loss", "val_balanced_accuracy"}
    monkeypatch.setattr(load, "_read_sqlite_curves", lambda uri, run_ids: None)
    pd.testing.assert_frame_equal(load.load_curves(exp, exp.runs["run_id"]), fast)


def test_training_curves_section_draws_mean_curves_per_torch_model_and_ratio(out, mlflow_runs):
    readme = (out / "README.md").read_text()
    assert "## Training curves" in readme and "](figures/training_curves.png)" in readme
    panels = _panels(out / "figures" / "training_curves.png")
    assert panels == [
        f"torch_mlp · ρ={r} · {c}"
        for r in (1, 100)
        for c in ("train_loss", "val_loss", "val_balanced_accuracy")
    ]


def test_results_tables_give_the_median_fit_seconds_per_model_and_loss(out, ranked_rows):
    readme = (out / "README.md").read_text().replace("\\_", "_")
    for model, group in ranked_rows.groupby("model"):  # a baseline row costs its CE run's fit
        block = readme.split(f"**model = {model}**", 1)[1].split("\n\n", 2)[1]
        assert block.splitlines()[0].endswith("| median fit (s) |")
        for loss, runs in group.groupby("loss"):
            median = runs["fit_seconds"].median()
            text = f"{median:.2f}" if median < 10 else f"{median:.0f}"
            (row,) = [x for x in block.splitlines() if x.startswith(f"| {loss} |")]
            assert row.endswith(f"| {text} |")
    summary = pd.read_csv(out / "summary.csv")
    by_setting = defaultdict(list)
    for r in ranked_rows.itertuples():
        by_setting[(r.model, r.ratio, r.loss)].append(r.fit_seconds)
    for r in summary.itertuples():
        assert r.median_fit_seconds == pytest.approx(np.median(by_setting[(r.model, r.ratio, r.loss)]))
