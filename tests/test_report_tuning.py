"""Issue 18, item 4: the report of a tuned sweep.

A tuned sweep's records are written by hand into a real SQLite MLflow store, as lossbench.tune and the sweep
write them: the sweep's parent run (its params, its job statuses artifact), per cell a tuning run (role
"tuning") with its trials (role "trial": val metrics and the objective only), and the final runs at the
defaults (variant "default") and at the chosen knobs (variant "tuned") over three seeds, with known test
values. Every number checked below is computed here by hand from those values."""

from __future__ import annotations

import json
import math
import re
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from PIL import Image as PILImage

from lossbench.report import build_report, load, tuning
from lossbench.report.sections import context
from lossbench.tracking import (
    SWEEP_JOBS_ARTIFACT,
    TAG_CELL,
    TAG_FINGERPRINT,
    TAG_KNOBS,
    TAG_ROLE,
    TAG_SWEEP_ID,
    TAG_TRIAL,
    TAG_TUNED_FROM,
    TAG_VARIANT,
)

MODEL, DATA, SEEDS, RATIOS = "torch_mlp", "synthetic", (0, 1, 2), (1.0, 10.0)
LOSSES = ("ce", "focal", "weighted_ce")
DEFAULT_KNOBS = {"ce": {"train.lr": 0.001}, "focal": {"loss.gamma": 2.0, "train.lr": 0.001}}
DEFAULT_KNOBS["weighted_ce"] = DEFAULT_KNOBS["ce"]
# test balanced accuracy per (loss, ratio), seeds 0, 1, 2: at the defaults and at the chosen knobs
DEFAULT = {
    ("ce", 10.0): [0.60, 0.62, 0.64],
    ("focal", 10.0): [0.55, 0.58, 0.52],
    ("weighted_ce", 10.0): [0.70, 0.71, 0.73],
    ("ce", 1.0): [0.80, 0.82, 0.84],
    ("focal", 1.0): [0.10, 0.02, 0.50],  # a gain whose t-interval reaches past +1: cut to it
    ("weighted_ce", 1.0): [0.90, 0.91, 0.93],
}
TUNED = {
    ("ce", 10.0): [0.63, 0.66, 0.65],
    ("focal", 10.0): [0.65, 0.70, 0.66],
    ("weighted_ce", 10.0): [0.69, 0.71, 0.70],
    ("ce", 1.0): [0.83, 0.86, 0.85],
    ("focal", 1.0): [0.60, 1.00, 0.52],
    ("weighted_ce", 1.0): [0.89, 0.91, 0.90],
}
# the chosen knobs per cell, and the four trials of each cell: (knobs, val balanced accuracy); trial 2 wins
CHOSEN = {
    ("ce", 10.0): {"train.lr": 0.003},
    ("focal", 10.0): {"loss.gamma": 1.5, "train.lr": 0.0005},
    ("weighted_ce", 10.0): {"train.lr": 0.02},
    ("ce", 1.0): {"train.lr": 0.0002},
    ("focal", 1.0): {"loss.gamma": 0.75, "train.lr": 0.01},
    ("weighted_ce", 1.0): {"train.lr": 0.0001},
}
VAL = [0.61, 0.64, 0.70, 0.66]
BEST = 2
# in one cell the defaults (trial 0) win on validation: its runs serve as both, variant "default tuned"
WON, VAL_WON = ("weighted_ce", 1.0), [0.72, 0.64, 0.70, 0.66]
TUNED[WON] = DEFAULT[WON]


def chosen_trial(loss: str, ratio: float) -> tuple[int, float, dict]:
    """The chosen trial's number, its objective and knobs."""
    if (loss, ratio) == WON:
        return 0, VAL_WON[0], DEFAULT_KNOBS[loss]
    return BEST, VAL[BEST], CHOSEN[(loss, ratio)]


def _trial_knobs(loss: str, ratio: float) -> list[dict]:
    other = {"train.lr": 0.03} | ({"loss.gamma": 4.0} if loss == "focal" else {})
    third = {"train.lr": 0.0003} | ({"loss.gamma": 0.2} if loss == "focal" else {})
    return [DEFAULT_KNOBS[loss], other, CHOSEN[(loss, ratio)], third]


class Store:
    """Writes a sweep's records the way lossbench writes them (MlflowClient, one log_batch per run)."""

    def __init__(self, folder: Path, experiment: str) -> None:
        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri)
        self.exp_id = self.client.create_experiment(experiment, artifact_location=(folder / "art").as_uri())
        self.sweep_id = uuid.uuid4().hex[:12]
        self.statuses: list[dict] = []
        self.parent = self._run(
            f"sweep-{experiment}",
            tags={TAG_SWEEP_ID: self.sweep_id, TAG_ROLE: "sweep", "lossbench.sweep_dir": str(folder)},
            params={
                "sweep.jobs": 2 * len(LOSSES) * len(RATIOS) * len(SEEDS),  # defaults and tuned
                "sweep.params": json.dumps(
                    {"loss": ",".join(LOSSES), "imbalance.ratio": "1,10", "seed": "0,1,2"}
                ),
                "sweep.overrides": json.dumps(["model=torch_mlp", "data=synthetic"]),
            },
            end=False,
        )

    def _run(self, name, *, tags, params=None, metrics=None, parent=None, end=True) -> str:
        tags = {"mlflow.source.name": "lossbench", **tags}
        if parent:
            tags["mlflow.parentRunId"] = parent
        run_id = self.client.create_run(self.exp_id, run_name=name, tags=tags).info.run_id
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), 0, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)) for k, v in (params or {}).items()],
        )
        if end:
            self.client.set_terminated(run_id, "FINISHED")
        return run_id

    @staticmethod
    def config(loss: str, ratio: float, seed: int, knobs: dict) -> dict:
        """The flattened config of a run, as Tracker.start logs it (the knobs' values set)."""
        cfg = {
            "data.name": DATA,
            "data.label": DATA,
            "model.name": MODEL,
            "loss.name": loss,
            "imbalance.ratio": ratio,
            "imbalance.profile": "step",
            "regularization.name": "none",
            "regularization.strength": 0.0,
            "rebalance.name": "none",
            "seed": seed,
            "train.lr": 0.001,
            "tune.trials": 4,
            "tune.metric": "balanced_accuracy",
            "data.class_names": json.dumps(["a", "b"]),
        }
        if loss == "focal":
            cfg["loss.gamma"] = 2.0
        return cfg | knobs

    def final(self, loss: str, ratio: float, seed: int, value: float, tags: dict, knobs: dict) -> str:
        cfg = self.config(loss, ratio, seed, knobs)
        fp = f"{loss}-{ratio}-{seed}-{json.dumps(knobs, sort_keys=True)}"
        run_id = self._run(
            f"{MODEL}-{loss}-rho{ratio:g}-seed{seed}",
            tags={TAG_FINGERPRINT: fp, TAG_SWEEP_ID: self.sweep_id, **tags},
            params=cfg,
            metrics={
                "test/balanced_accuracy": value,
                "test/accuracy": value,
                "val/balanced_accuracy": value - 0.01,
                "train/fit_seconds": 1.0,
            },
            parent=self.parent,
        )
        job = {
            "data": DATA,
            "model": MODEL,
            "loss": loss,
            "ratio": ratio,
            "profile": "step",
            "regularization": "none",
            "strength": 0.0,
            "rebalance": "none",
            "seed": seed,
        }
        self.statuses.append({"status": "finished", "run_id": run_id, "fingerprint": fp, "job": job})
        return run_id

    def close(self) -> None:
        self.client.log_text(self.parent, json.dumps(self.statuses), SWEEP_JOBS_ARTIFACT)
        self.client.log_batch(self.parent, metrics=[Metric("sweep/finished", len(self.statuses), 0, 0)])
        self.client.set_terminated(self.parent, "FINISHED")


def tuned_store(folder: Path, experiment: str = "tuned") -> Store:
    store = Store(folder, experiment)
    for ratio in RATIOS:
        for loss in LOSSES:
            cell = f"cell-{loss}-{ratio:g}"
            tuning = store._run(
                f"tune-{MODEL}-{loss}-rho{ratio:g}",
                tags={TAG_ROLE: "tuning", TAG_CELL: cell, TAG_SWEEP_ID: store.sweep_id},
                params={
                    "model.name": MODEL,
                    "loss.name": loss,
                    "imbalance.ratio": ratio,
                    "data.label": DATA,
                    "tune.trials": 4,
                    "tune.metric": "balanced_accuracy",
                },
                metrics={"tune/best_value": chosen_trial(loss, ratio)[1]},
                parent=store.parent,
            )
            trial_runs = []
            vals = VAL_WON if (loss, ratio) == WON else VAL
            for number, (knobs, val) in enumerate(zip(_trial_knobs(loss, ratio), vals, strict=True)):
                trial_runs.append(
                    store._run(
                        f"trial-{number}",
                        tags={
                            TAG_ROLE: "trial",
                            TAG_CELL: cell,
                            TAG_TRIAL: str(number),
                            TAG_KNOBS: json.dumps(knobs),
                            TAG_SWEEP_ID: store.sweep_id,
                            TAG_FINGERPRINT: f"trial-{cell}-{number}",
                        },
                        params=store.config(loss, ratio, SEEDS[0], knobs),
                        metrics={"val/balanced_accuracy": val, "val/accuracy": val, "tune/value": val},
                        parent=tuning,
                    )
                )
            number, _, chosen = chosen_trial(loss, ratio)
            tuned_tags = {TAG_CELL: cell, TAG_TUNED_FROM: trial_runs[number], TAG_KNOBS: json.dumps(chosen)}
            for seed in SEEDS:
                if (loss, ratio) == WON:  # one run per seed is both (lossbench.sweep.run)
                    tags = {**tuned_tags, TAG_VARIANT: "default tuned"}
                    store.final(loss, ratio, seed, DEFAULT[WON][seed], tags, chosen)
                    continue
                tags = {TAG_VARIANT: "default", TAG_CELL: cell}
                store.final(loss, ratio, seed, DEFAULT[(loss, ratio)][seed], tags, DEFAULT_KNOBS[loss])
                tags = {**tuned_tags, TAG_VARIANT: "tuned"}
                store.final(loss, ratio, seed, TUNED[(loss, ratio)][seed], tags, chosen)
    store.close()
    return store


def untuned_store(folder: Path, experiment: str = "plain") -> Store:
    store = Store(folder, experiment)
    for ratio in RATIOS:
        for loss in LOSSES:
            for seed in SEEDS:
                store.final(loss, ratio, seed, DEFAULT[(loss, ratio)][seed], {}, DEFAULT_KNOBS[loss])
    store.close()
    return store


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("tuned")
    store = tuned_store(folder)
    out = folder / "report"
    build_report("tuned", store.uri, out)
    return {
        "store": store,
        "out": out,
        "readme": (out / "README.md").read_text(),
        "html": (out / "index.html").read_text(),
    }


def _t_bounds(diff) -> tuple[float, float, float]:
    d = np.asarray(diff, dtype=float)
    half = sps.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def _section(readme: str, heading: str) -> str:
    start = readme.index(f"## {heading}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end >= 0 else None]


def _panels(path: Path) -> list[str]:
    with PILImage.open(path) as img:
        return json.loads(img.info["Panels"])


def test_runs_exclude_tuning_and_trials_and_carry_variant_cell_and_knobs(tuned):
    exp = load.load_experiment("tuned", tuned["store"].uri)
    runs = exp.runs
    assert len(runs) == (2 * len(LOSSES) * len(RATIOS) - 1) * len(SEEDS)  # 33 final runs: no study, trial
    assert set(runs["variant"]) == {"default", "tuned", "default tuned"}
    assert (runs["variant"] == "tuned").sum() == 15
    assert not runs["run_name"].str.startswith(("trial-", "tune-", "sweep-")).any()
    row = runs[(runs["variant"] == "tuned") & (runs["loss"] == "focal") & (runs["ratio"] == 10.0)].iloc[0]
    assert row["knobs"] == {"loss.gamma": 1.5, "train.lr": 0.0005} and row["cell"] == "cell-focal-10"
    trials = exp.trials
    assert len(trials) == len(LOSSES) * len(RATIOS) * len(VAL)
    focal = trials[trials["cell"] == "cell-focal-10"].sort_values("trial")
    assert focal["trial"].tolist() == [0, 1, 2, 3] and focal["tune/value"].tolist() == VAL
    assert focal["knobs"].tolist() == _trial_knobs("focal", 10.0)
    assert (
        set(focal["loss"]) == {"focal"} and set(focal["model"]) == {MODEL} and set(focal["ratio"]) == {10.0}
    )
    assert (
        set(focal["data"]) == {DATA}
        and "val/balanced_accuracy" in focal
        and "test/balanced_accuracy" not in focal
    )


def test_sqlite_and_search_runs_read_the_same_runs_and_trials(tuned, monkeypatch):
    uri = tuned["store"].uri
    direct = load.load_experiment("tuned", uri)
    monkeypatch.setattr(load, "_read_sqlite", lambda uri, experiment_id: None)
    monkeypatch.setattr(load, "PAGE_SIZE", 7)
    paged = load.load_experiment("tuned", uri)
    for a, b in ((direct.runs, paged.runs), (direct.trials, paged.trials)):
        a = a.sort_values("run_id").reset_index(drop=True)
        b = b.sort_values("run_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(a[sorted(a.columns)], b[sorted(b.columns)])


def test_tuning_csv_gain_and_interval_are_the_hand_computed_paired_ones(tuned):
    table = pd.read_csv(tuned["out"] / "tuning.csv")
    assert len(table) == len(LOSSES) * len(RATIOS)
    for (loss, ratio), values in TUNED.items():
        row = table[(table["loss"] == loss) & (table["ratio"] == ratio)].iloc[0]
        mean, low, high = _t_bounds(np.subtract(values, DEFAULT[(loss, ratio)]))
        assert row["default_mean"] == pytest.approx(np.mean(DEFAULT[(loss, ratio)]))
        assert row["tuned_mean"] == pytest.approx(np.mean(values))
        assert row["gain"] == pytest.approx(mean) and row["n_pairs"] == 3
        assert row["ci_low"] == pytest.approx(max(low, -1.0)) and row["ci_high"] == pytest.approx(
            min(high, 1.0)
        )
        number, value, knobs = chosen_trial(loss, ratio)
        assert row["trial"] == number and row["trial_value"] == pytest.approx(value) and row["n_trials"] == 4
        assert json.loads(row["knobs"]) == knobs and bool(row["same_runs"]) == ((loss, ratio) == WON)
    focal = table[(table["loss"] == "focal") & (table["ratio"] == 10.0)].iloc[0]
    # by hand: differences 0.10, 0.12, 0.14 -> mean 0.12, sd 0.02, t(0.975, 2) = 4.3027
    assert focal["gain"] == pytest.approx(0.12)
    assert focal["ci_low"] == pytest.approx(0.12 - 4.302653 * 0.02 / math.sqrt(3), abs=1e-6)
    # focal at rho = 1: differences 0.5, 0.98, 0.02, t-interval -0.69 to +1.69, cut to the +1 a gain can reach
    wide = table[(table["loss"] == "focal") & (table["ratio"] == 1.0)].iloc[0]
    assert wide["ci_high"] == 1.0 and bool(wide["ci_clipped"]) and wide["ci_half_width"] > 1.0


def test_the_tuning_section_follows_the_findings_with_gains_knobs_and_figures(tuned):
    readme = tuned["readme"]
    headings = re.findall(r"^## (.+)$", readme, flags=re.M)
    assert headings[:2] == ["Findings", "Tuning"]
    section = _section(readme, "Tuning")
    # (a) default vs tuned: focal at rho = 10 gains +12.0 points, 95% CI +7.0 to +17.0
    assert (
        "| torch\\_mlp | 10 | focal | 0.550 ± 0.075 | 0.670 ± 0.066 | +12.0 points (95% CI +7.0 to +17.0) "
        "| 3 |" in section
    )
    assert "Largest gains of tuning over the defaults" in section
    assert "Gains whose 95% interval excludes 0: focal on torch\\_mlp · ρ=10." in section
    first = re.search(r"Largest gains[^:]*: ([^;]+);", section).group(1)
    assert first.startswith("focal on torch\\_mlp · ρ=1 +50.0 points")  # the largest gain named first
    # (b) the chosen knobs: knob columns in first-seen order, the trial and its objective
    header = "| model | ratio | loss | train.lr | loss.gamma | trial | val/balanced\\_accuracy | trials |"
    assert header in section
    assert "| torch\\_mlp | 10 | focal | 0.0005 | 1.5 | 2 | 0.7000 | 4 |" in section
    assert "| torch\\_mlp | 1 | weighted\\_ce | 0.001 | – | 0 | 0.7200 | 4 |" in section  # defaults won
    assert "| 0.913 ± 0.038 | 0.913 ± 0.038 | 0 (the defaults were chosen) | 3 |" in section
    assert "Tuning raised the mean in 4 of 5 cells; 1 kept their defaults" in section
    assert "in scope: 15 runs at the defaults and 24 tuning trials" in section
    # (c) sensitivity: one panel per loss and knob it tried; (d) the gain per loss, one panel per setting
    figures = tuned["out"] / "figures"
    assert sorted(_panels(figures / "tuning_sensitivity.png")) == sorted(
        ["ce · train.lr", "focal · loss.gamma", "focal · train.lr", "weighted_ce · train.lr"]
    )
    assert _panels(figures / "tuning_gain.png") == ["torch_mlp · ρ=1", "torch_mlp · ρ=10"]
    assert "figures/tuning_sensitivity.png" in section and "figures/tuning_gain.png" in section
    assert '<h2 id="tuning">Tuning</h2>' in tuned["html"]
    assert "- `tuning.csv`: per tuned cell and loss" in readme  # in the Files section
    assert "Compared at their defaults everywhere" not in section  # every cell here has tuned runs


def test_every_other_section_compares_the_tuned_runs_and_counts_only_them(tuned):
    readme, html = tuned["readme"], tuned["html"]
    summary = pd.read_csv(tuned["out"] / "summary.csv")
    for (loss, ratio), values in TUNED.items():
        row = summary[(summary["loss"] == loss) & (summary["ratio"] == ratio)].iloc[0]
        assert row["mean"] == pytest.approx(np.mean(values)) and row["n_seeds"] == 3
    comparisons = pd.read_csv(tuned["out"] / "comparisons.csv")
    pooled = comparisons[
        (comparisons["scope"] == "model=torch_mlp, all ratios") & (comparisons["loss"] == "focal")
    ]
    tuned_diff = [np.subtract(TUNED[("focal", r)], TUNED[("ce", r)]) for r in RATIOS]
    assert pooled["n_pairs"].item() == 6  # the tuned runs' (ratio, seed) blocks, not the defaults' as well
    assert pooled["mean_diff"].item() == pytest.approx(np.mean(tuned_diff))
    assert "18 finished runs with the metric" in html  # the tuned runs; not the defaults, studies or trials
    assert "MLflow runs in scope, by status: FINISHED 18." in readme
    assert "each loss tuned with 4 trials per cell on the validation split (Optuna TPE" in html
    assert "compared on test over 3 seeds" in html
    results = _section(readme, "Results per model and imbalance ratio")
    assert "0.670 ± 0.066" in results and "0.550 ± 0.075" not in results  # focal at rho = 10: tuned only


def test_an_untuned_experiment_has_no_tuning_section_and_the_same_report(tmp_path, monkeypatch):
    store = untuned_store(tmp_path)
    exp = load.load_experiment("plain", store.uri)
    assert exp.trials.empty and set(exp.runs["variant"]) == {"default"} and exp.runs["cell"].isna().all()
    build_report("plain", store.uri, tmp_path / "a")
    monkeypatch.setattr(context, "split", lambda exp: None)  # the report as it was before tuning existed
    build_report("plain", store.uri, tmp_path / "b")
    a, b = tmp_path / "a", tmp_path / "b"
    assert "## Tuning" not in (a / "README.md").read_text() and not (a / "tuning.csv").exists()
    assert "tuning.csv" not in (a / "README.md").read_text()
    assert "Optuna" not in (a / "index.html").read_text()

    def text(path: Path) -> str:
        return re.sub(r"Built \d{4}-\d\d-\d\d \d\d:\d\d", "Built", path.read_text())

    assert text(a / "README.md") == text(b / "README.md")
    for name in ("summary.csv", "comparisons.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(a / name), pd.read_csv(b / name))
    summary = pd.read_csv(a / "summary.csv")
    row = summary[(summary["loss"] == "focal") & (summary["ratio"] == 10.0)].iloc[0]
    assert row["mean"] == pytest.approx(np.mean(DEFAULT[("focal", 10.0)]))


def test_a_tuned_knob_that_is_an_axis_stays_the_defaults_setting_and_untagged_defaults_find_their_cell():
    """regularization.strength tuned per cell: the tuned runs' strengths differ, yet they are one setting
    with the default runs (their value is the Tuning section's); a default run without a cell tag gets
    the cell of the tuned runs of its setting."""
    rows = []
    for loss, strength in (("ce", 0.01), ("focal", 0.3)):
        for seed in SEEDS:
            common = {"data": DATA, "model": MODEL, "loss": loss, "ratio": 10.0, "seed": seed}
            rows.append({**common, "variant": "default", "cell": None, "knobs": None, "strength": 1e-4})
            knobs = {"regularization.strength": strength}
            rows.append(
                {**common, "variant": "tuned", "cell": f"c-{loss}", "knobs": knobs, "strength": strength}
            )
    rows.append(
        {"data": DATA, "model": MODEL, "loss": "hinge", "ratio": 10.0, "seed": 0, "variant": "default"}
    )
    frame = pd.DataFrame(rows).assign(
        status="FINISHED", profile="step", regularization="l2", rebalance="none"
    )
    frame.loc[frame["loss"] == "hinge", ["cell", "strength"]] = ["c-hinge", 1e-4]  # nothing to tune
    exp = load.Experiment("x", "sqlite://", frame, [], "latest")
    t = tuning.split(exp)
    assert t.knob_axes == ["strength"]
    assert set(t.compared["strength"]) == {1e-4}  # the setting the cells were tuned from
    assert set(t.default.loc[t.default["loss"] == "focal", "cell"]) == {"c-focal"}
    assert t.untuned_cells == ["c-hinge"] and set(t.stand_ins["loss"]) == {"hinge"}
    assert "hinge" in set(t.compared["loss"])
    assert len(t.compared) == 2 * len(SEEDS) + 1 and (t.compared["variant"] == "tuned").sum() == 6
    assert (
        tuning.split(load.Experiment("x", "sqlite://", frame[frame["variant"] == "default"], [], "latest"))
        is None
    )
