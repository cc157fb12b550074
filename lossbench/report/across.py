"""The verdict across datasets (Demšar 2006): datasets are the repeated measures, not seeds.

Within one setting (a model at one ρ, and one value of every other setting axis), each dataset gives one
score per loss: the mean over seeds of the report's metric. The losses are ranked within each dataset (1 =
best, ties get average ranks), the ranks are averaged over datasets, and a Friedman test (scipy's
``friedmanchisquare``, with the Iman–Davenport F beside it) asks whether the mean ranks differ at all. The
Nemenyi critical difference (CD = q_α · sqrt(k(k + 1) / (6 N)), q_α the studentized range quantile over √2,
α = 0.05) says which mean ranks are far enough apart. Each loss is also counted against the baseline,
dataset by dataset: a win or a loss when the paired difference over seeds has a 95% interval excluding 0,
else a tie (:func:`lossbench.report.stats.paired_difference`).

With N datasets and k losses the Friedman statistic is at most N(k − 1) (every dataset ranks the losses
alike), so its p-value is at least ``chi2.sf(N(k − 1), k − 1)``: with 2 datasets and 3 losses 0.135, so no
outcome could reject equal ranks. Such a verdict is "too few datasets", never "not significant".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lossbench.report import stats

ALPHA = stats.ALPHA
MIN_DATASETS = 3  # fewer: no Friedman verdict is worth stating (and with 3 losses none could reject)


@dataclass
class AcrossDatasets:
    """One setting's losses across datasets."""

    setting: dict  # the setting axes other than data, and their values (model, ratio, ...)
    scores: pd.DataFrame  # datasets x losses: mean over seeds of the metric (complete rows only)
    ranks: pd.DataFrame  # datasets x losses: rank within the dataset, 1 = best, ties averaged
    mean_ranks: pd.Series  # loss -> mean rank over datasets, best first
    left_out: list[str] = field(default_factory=list)  # datasets or losses dropped for missing values
    statistic: float = math.nan  # Friedman chi-square (scipy, tie-corrected)
    p_value: float = math.nan
    iman_davenport: float = math.nan  # F_F = (N - 1) chi2 / (N (k - 1) - chi2)
    iman_davenport_p: float = math.nan  # F with k - 1 and (k - 1)(N - 1) degrees of freedom
    min_p: float = math.nan  # the smallest p the Friedman test could give with these N and k
    cd: float = math.nan  # Nemenyi critical difference at ALPHA
    nemenyi_p: pd.DataFrame | None = None  # losses x losses, Nemenyi p of each pair (diagonal 1)

    @property
    def n_datasets(self) -> int:
        return int(self.scores.shape[0])

    @property
    def losses(self) -> list[str]:
        return list(self.mean_ranks.index)

    @property
    def best(self) -> str:
        return str(self.mean_ranks.index[0])

    @property
    def tested(self) -> bool:
        """Whether a Friedman verdict can be stated: at least MIN_DATASETS datasets and 3 losses, and some
        outcome of these datasets could reach p < ALPHA."""
        return bool(
            self.n_datasets >= MIN_DATASETS
            and len(self.losses) >= 3
            and np.isfinite(self.p_value)
            and np.isfinite(self.min_p)
            and self.min_p < ALPHA
        )

    @property
    def rejects(self) -> bool:
        return bool(self.tested and self.p_value < ALPHA)


def dataset_scores(runs: pd.DataFrame, column: str, by: list[str]) -> pd.DataFrame:
    """One row per (setting, dataset, loss): ``score`` (mean over seeds of ``column``) and ``n_seeds``."""
    keys = [*by, "data", "loss"]
    grouped = runs.groupby(keys, sort=True, dropna=False)[column]
    out = grouped.agg(score="mean", n_seeds="count").reset_index()
    return out


def complete(wide: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Datasets x losses with no missing cell: a loss missing on more than half of the datasets leaves (N/A
    on a model), then a dataset missing a remaining loss leaves (a failed run); and what left."""
    keep = wide.loc[:, wide.notna().mean() >= 0.5]
    gone = [f"loss {c}" for c in wide.columns if c not in keep.columns]
    full = keep.dropna(axis=0)
    gone += [f"dataset {d}" for d in keep.index if d not in full.index]
    return full, gone


def rank_datasets(wide: pd.DataFrame, higher_is_better: bool, setting: dict | None = None) -> AcrossDatasets:
    """Mean ranks, Friedman and Iman–Davenport tests and the Nemenyi CD of a datasets x losses table of
    scores (rows with a missing score are left out first, see :func:`complete`)."""
    from scipy import stats as st

    scores, gone = complete(wide.astype(float))
    ranks = scores.rank(axis=1, ascending=not higher_is_better, method="average")
    mean_ranks = ranks.mean().sort_values(kind="stable")
    result = AcrossDatasets(dict(setting or {}), scores, ranks, mean_ranks, gone)
    n, k = scores.shape
    if k < 2 or n < 1:
        return result
    se = math.sqrt(k * (k + 1) / (6 * n))
    q = float(st.studentized_range.ppf(1 - ALPHA, k, np.inf)) / math.sqrt(2)
    result.cd = q * se
    names = list(mean_ranks.index)
    matrix = np.ones((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            z = abs(mean_ranks.iloc[i] - mean_ranks.iloc[j]) / se
            matrix[i, j] = matrix[j, i] = float(st.studentized_range.sf(z * math.sqrt(2), k, np.inf))
    result.nemenyi_p = pd.DataFrame(matrix, index=names, columns=names)
    if k < 3 or n < 2:
        return result
    result.min_p = float(st.chi2.sf(n * (k - 1), k - 1))
    test = st.friedmanchisquare(*[scores[c].to_numpy() for c in scores.columns])
    result.statistic, result.p_value = float(test.statistic), float(test.pvalue)
    if np.isfinite(result.statistic):
        denominator = n * (k - 1) - result.statistic
        if denominator > 0:
            f = (n - 1) * result.statistic / denominator
            result.iman_davenport = float(f)
            result.iman_davenport_p = float(st.f.sf(f, k - 1, (k - 1) * (n - 1)))
        else:  # every dataset ranks the losses alike
            result.iman_davenport, result.iman_davenport_p = math.inf, 0.0
    return result


def across_datasets(
    runs: pd.DataFrame, column: str, higher_is_better: bool, by: list[str]
) -> list[AcrossDatasets]:
    """:func:`rank_datasets` for each setting of the axes ``by`` (model, ratio, ...: never data, loss or
    seed) that has at least 2 datasets. ``runs``: one row per run with columns ``data``, ``loss``,
    ``seed``, ``column`` and ``by``."""
    by = [a for a in by if a not in ("data", "loss", "seed")]
    table = dataset_scores(runs, column, by)
    out = []
    groups = table.groupby(by, sort=True, dropna=False) if by else [((), table)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        wide = group.pivot_table(index="data", columns="loss", values="score", aggfunc="mean", dropna=False)
        if wide.shape[0] < 2:
            continue
        out.append(rank_datasets(wide, higher_is_better, dict(zip(by, key, strict=True))))
    return out


@dataclass
class Record:
    """A loss against the baseline over datasets: wins, ties, losses, and each dataset's outcome."""

    loss: str
    wins: int = 0
    ties: int = 0
    losses: int = 0
    outcomes: dict = field(default_factory=dict)  # dataset -> "win" / "tie" / "loss"

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses


def win_tie_loss(
    runs: pd.DataFrame,
    column: str,
    higher_is_better: bool,
    axes: list[str],
    baseline: str,
    datasets: list[str] | None = None,
) -> list[Record]:
    """Each loss against ``baseline`` on each dataset of ``runs`` (one setting; ``axes`` the setting axes,
    data among them or not): a win when the paired difference over seeds has a 95% t-interval above 0
    (below, when lower is better), a loss when on the other side, a tie when the interval contains 0 or
    there is none (one paired seed). Datasets without a paired run of both are skipped."""
    axes = [a for a in axes if a not in ("loss", "seed")]
    axes = axes if "data" in axes else [*axes, "data"]
    names = datasets if datasets is not None else sorted(runs["data"].dropna().unique())
    out = []
    for loss in sorted(set(runs["loss"].dropna()) - {baseline}):
        record = Record(loss)
        for data in names:
            one = runs[runs["data"] == data]
            d = stats.paired_difference(one, column, axes, loss, baseline)
            if d.n == 0:
                continue
            if d.interval_excludes_zero:
                better = d.mean_diff > 0 if higher_is_better else d.mean_diff < 0
                outcome = "win" if better else "loss"
            else:
                outcome = "tie"
            record.outcomes[data] = outcome
            if outcome == "win":
                record.wins += 1
            elif outcome == "loss":
                record.losses += 1
            else:
                record.ties += 1
        out.append(record)
    return out
