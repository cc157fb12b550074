"""The verdict across datasets (issue 19, Demšar 2006): mean ranks, Friedman, Nemenyi CD and win/tie/loss
against CE on hand-made tables; a real sweep over three built-in datasets whose report ranks the losses as
the MLflow runs say; two experiments combined into one report."""

from __future__ import annotations

import math
import re
from collections import defaultdict

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats as sps

from lossbench.report.across import across_datasets, rank_datasets, win_tie_loss
from tests.conftest import run_cli

COLUMN = "test/balanced_accuracy"
# dataset -> loss -> mean over seeds; binary fractions, so means and ties are exact. Ranks (1 = best):
# d1: a 1, b 2, ce 3; d2: a 1.5, b 1.5 (tie), ce 3; d3: b 1, a 2, ce 3; d4: ce 1, a 2, b 3
MEANS = {
    "d1": {"ce": 0.5, "a": 0.75, "b": 0.625},
    "d2": {"ce": 0.5, "a": 0.625, "b": 0.625},
    "d3": {"ce": 0.25, "a": 0.375, "b": 0.5},
    "d4": {"ce": 0.875, "a": 0.75, "b": 0.625},
}
MEAN_RANKS = {"a": (1 + 1.5 + 2 + 2) / 4, "b": (2 + 1.5 + 1 + 3) / 4, "ce": (3 + 3 + 3 + 1) / 4}


def _runs(means: dict, offsets=(-0.0625, 0.0625)) -> pd.DataFrame:
    """One row per run: seeds scattered symmetrically around the mean (exact in binary)."""
    rows = [
        {"model": "m", "ratio": 10.0, "data": data, "loss": loss, "seed": seed, COLUMN: mean + off}
        for data, by_loss in means.items()
        for loss, mean in by_loss.items()
        for seed, off in enumerate(offsets)
    ]
    return pd.DataFrame(rows)


def test_mean_ranks_friedman_and_cd_equal_a_hand_computation():
    (result,) = across_datasets(_runs(MEANS), COLUMN, True, ["model", "ratio"])
    assert result.setting == {"model": "m", "ratio": 10.0}
    assert result.n_datasets == 4 and result.best == "a"
    assert result.mean_ranks.to_dict() == pytest.approx(MEAN_RANKS, abs=1e-12)
    assert result.ranks.loc["d2", "a"] == result.ranks.loc["d2", "b"] == 1.5
    # Friedman by hand: rank sums R = (a 6.5, b 7.5, ce 10), N = 4, k = 3, one tie of 2 (in d2)
    n, k = 4, 3
    sums = [6.5, 7.5, 10.0]
    chi2 = 12 / (n * k * (k + 1)) * sum(r * r for r in sums) - 3 * n * (k + 1)
    chi2 /= 1 - (2**3 - 2) / (n * k * (k * k - 1))
    assert chi2 == pytest.approx(1.625 / 0.9375)
    assert result.statistic == pytest.approx(chi2, rel=1e-12)
    assert result.p_value == pytest.approx(math.exp(-chi2 / 2), rel=1e-9)  # chi-square, 2 dof
    scipy_p = sps.friedmanchisquare(*[[MEANS[d][x] for d in MEANS] for x in ("a", "b", "ce")]).pvalue
    assert result.p_value == pytest.approx(scipy_p, rel=1e-12)
    f = (n - 1) * chi2 / (n * (k - 1) - chi2)
    assert result.iman_davenport == pytest.approx(f)
    assert result.iman_davenport_p == pytest.approx(sps.f.sf(f, k - 1, (k - 1) * (n - 1)))
    # the smallest attainable p: every dataset ranks alike, chi2 = N(k - 1) = 8
    assert result.min_p == pytest.approx(math.exp(-4))
    assert result.tested and not result.rejects
    # Nemenyi CD with Demšar's q_0.05 for k = 3 (2.343)
    assert result.cd == pytest.approx(2.343 * math.sqrt(k * (k + 1) / (6 * n)), abs=1e-3)
    # pairs joined exactly when their mean ranks are closer than the CD
    for x in MEAN_RANKS:
        for y in MEAN_RANKS:
            if x != y:
                close = abs(MEAN_RANKS[x] - MEAN_RANKS[y]) < result.cd
                assert (result.nemenyi_p.loc[x, y] >= 0.05) == close


def test_lower_is_better_reverses_ranks_and_two_datasets_are_too_few():
    (low,) = across_datasets(_runs(MEANS), COLUMN, False, ["model", "ratio"])
    assert low.mean_ranks.to_dict() == pytest.approx({x: 4 - r for x, r in MEAN_RANKS.items()})
    wide = pd.DataFrame(MEANS).T.loc[["d1", "d2"]]
    two = rank_datasets(wide, True)
    assert two.n_datasets == 2
    assert two.min_p == pytest.approx(math.exp(-2))  # 0.135: no outcome could reject
    assert not two.tested and not two.rejects
    # a dataset missing a loss leaves (and says so); one dataset alone is no comparison
    gappy = _runs(MEANS)
    gappy = gappy[~((gappy["data"] == "d4") & (gappy["loss"] == "b"))]
    (r,) = across_datasets(gappy, COLUMN, True, ["model"])
    assert r.n_datasets == 3 and r.left_out == ["dataset d4"]
    assert across_datasets(_runs({"d1": MEANS["d1"]}), COLUMN, True, ["model"]) == []


def test_win_tie_loss_against_ce_on_a_fixed_table():
    # paired differences (loss - ce) per seed 0, 1, 2
    diffs = {
        "d1": {"a": [0.1, 0.12, 0.11], "b": [-0.1, -0.12, -0.11]},  # a wins, b loses
        "d2": {"a": [0.1, -0.1, 0.0], "b": [0.0, 0.0, 0.0]},  # interval contains 0: ties
        "d3": {"a": [0.05, 0.06, 0.07], "b": [0.2]},  # a wins; b has one seed: no pair, skipped
    }
    rows = []
    for data, by_loss in diffs.items():
        for seed in range(3):
            rows.append({"model": "m", "ratio": 1.0, "data": data, "loss": "ce", "seed": seed, COLUMN: 0.5})
        for loss, ds in by_loss.items():
            for seed, dv in enumerate(ds):
                rows.append(
                    {"model": "m", "ratio": 1.0, "data": data, "loss": loss, "seed": seed, COLUMN: 0.5 + dv}
                )
    runs = pd.DataFrame(rows)
    # d3's b has one seed of three: the paired table drops it (a loss missing from most blocks)
    records = {r.loss: r for r in win_tie_loss(runs, COLUMN, True, ["model", "ratio"], "ce")}
    a, b = records["a"], records["b"]
    assert (a.wins, a.ties, a.losses) == (2, 1, 0)
    assert a.outcomes == {"d1": "win", "d2": "tie", "d3": "win"}
    assert (b.wins, b.ties, b.losses, b.n) == (0, 1, 1, 2)
    assert b.outcomes == {"d1": "loss", "d2": "tie"}
    flipped = {r.loss: r for r in win_tie_loss(runs, COLUMN, False, ["model", "ratio"], "ce")}
    assert (flipped["a"].wins, flipped["a"].losses) == (0, 2)
    # one paired seed: no interval, a tie
    one = runs[runs["seed"] == 0]
    (single,) = [r for r in win_tie_loss(one, COLUMN, True, ["model"], "ce") if r.loss == "a"]
    assert single.outcomes == {"d1": "tie", "d2": "tie", "d3": "tie"}


# ---------------------------------------------------------------------------------------------- end to end


def _section(readme: str) -> str:
    start = readme.index("## Across datasets")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def _mean_rank_tables(section: str) -> dict[str, dict[str, float]]:
    """Heading of each setting -> loss -> mean rank, read from the Markdown tables."""
    out, heading, header = {}, None, None
    for line in section.splitlines():
        if line.startswith("### "):
            heading = line[4:]
        elif line.startswith("| dataset |"):
            header = [c.strip().replace("\\_", "_") for c in line.strip("|").split("|")][1:]
        elif line.startswith("| **mean rank** |"):
            cells = [float(c.strip().strip("*")) for c in line.strip("|").split("|")[1:]]
            out[heading] = dict(zip(header, cells, strict=True))
    return out


def test_a_sweep_over_three_datasets_reports_mean_ranks_recomputed_from_mlflow(tmp_path):
    proc = run_cli(
        [
            "-m",
            "data=wine,breast_cancer,digits",
            "model=logreg",
            "loss=ce,weighted_ce,logit_adjusted",
            "seed=0,1,2",
            "imbalance.ratio=1,5",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    readme = (tmp_path / "reports" / "lossbench" / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", readme, flags=re.M)
    assert headings[headings.index("Findings") + 1] == "Across datasets"
    section = _section(readme)
    assert "over 3 datasets (breast\\_cancer, digits, wine)" in section
    # k = 4: the 3 losses and the CE runs' post-hoc logit adjustment, ce_posthoc_la (lossbench.baselines)
    assert "Friedman test over N = 3 datasets and k = 4 losses" in section
    assert "Wins/ties/losses against ce over datasets" in section
    assert (tmp_path / "reports" / "lossbench" / "figures" / "cd_datasets_logreg_5.png").is_file()

    # independent of lossbench.report: the runs from MLflow, means over seeds, scipy's average ranks
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lossbench")
    runs = [
        r
        for r in client.search_runs([exp.experiment_id], max_results=5000)
        if r.data.tags.get("lossbench.role") != "sweep"
    ]
    assert len(runs) == 54 and all(r.info.status == "FINISHED" for r in runs)
    values = defaultdict(list)
    for r in runs:
        p = r.data.params
        values[(float(p["imbalance.ratio"]), p["data.label"], p["loss.name"])].append(r.data.metrics[COLUMN])
        if p["loss.name"] == "ce":
            la = r.data.metrics[f"baseline/ce_posthoc_la/{COLUMN}"]
            values[(float(p["imbalance.ratio"]), p["data.label"], "ce_posthoc_la")].append(la)
    tables = _mean_rank_tables(section)
    assert len(tables) == 2
    for ratio in (1.0, 5.0):
        (heading,) = [h for h in tables if h.startswith(f"model = logreg · ρ = {ratio:g}")]
        losses = sorted(tables[heading])
        assert losses == ["ce", "ce_posthoc_la", "logit_adjusted", "weighted_ce"]
        ranks = defaultdict(list)
        for data in ("wine", "breast_cancer", "digits"):
            means = [sum(values[(ratio, data, x)]) / 3 for x in losses]
            assert all(len(values[(ratio, data, x)]) == 3 for x in losses)
            for x, rank in zip(losses, sps.rankdata([-m for m in means], method="average"), strict=True):
                ranks[x].append(rank)
        for x in losses:
            assert tables[heading][x] == pytest.approx(sum(ranks[x]) / 3, abs=0.005)


@pytest.mark.slow  # ~24 s: two sweeps and a combined report (.ci/run's slow step)
def test_two_experiments_combine_into_one_report_with_both_datasets(tmp_path):
    for name, data in (("a", "wine"), ("b", "breast_cancer")):
        proc = run_cli(
            [
                "-m",
                f"data={data}",
                "model=logreg",
                "loss=ce,weighted_ce,logit_adjusted",
                "seed=0,1",
                "imbalance.ratio=5",
                f"tracking.experiment={name}",
            ],
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Across datasets" not in (tmp_path / "reports" / name / "README.md").read_text()
    proc = run_cli(["--experiment", "a", "--experiment", "b"], cwd=tmp_path, module="lossbench.report")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "report: reports/a-and-1-more/index.html" in proc.stdout
    readme = (tmp_path / "reports" / "a-and-1-more" / "README.md").read_text()
    assert readme.startswith("# lossbench report — experiment “a + b”")
    assert "`python -m lossbench.report --experiment a --experiment b`" in readme
    section = _section(readme)
    assert "over 2 datasets (breast\\_cancer, wine)" in section
    assert "too few datasets for the Friedman test to be meaningful (N = 2" in section
    (bullet,) = [line for line in section.splitlines() if line.startswith("- On model = logreg")]
    assert "does not reject" not in bullet and "not significant" not in bullet
    assert "| breast\\_cancer |" in section and "| wine |" in section
    # a glob names the same two experiments; one that matches none names the ones there
    glob = run_cli(["--experiment", "?", "--out", "reports/glob"], cwd=tmp_path, module="lossbench.report")
    assert glob.returncode == 0, glob.stderr[-3000:]
    again = (tmp_path / "reports" / "glob" / "README.md").read_text()
    assert _mean_rank_tables(_section(again)) == _mean_rank_tables(section)
    none = run_cli(["--experiment", "zz*"], cwd=tmp_path, module="lossbench.report")
    assert none.returncode == 2 and "matches no experiment" in none.stderr and "a, b" in none.stderr
