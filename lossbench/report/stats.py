"""The numbers behind a report: means with t-intervals over seeds, paired differences against a baseline,
Friedman and Wilcoxon signed-rank tests from scipy, Holm correction from statsmodels, critical-difference
diagrams from scikit-posthocs: no test is re-implemented here.

Pairing: runs with the same setting and the same seed share their data split and test set, so a loss and
the baseline are compared seed by seed. A *block* is one (setting, seed) pair; the across-settings tests use
blocks as their repeated measures.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

ALPHA = 0.05
# Bayesian signed-rank test (Benavoli et al. 2017, baycomp): region of practical equivalence in metric units
# (0.01 = 1 point of a [0, 1] metric), and the seed of its Monte Carlo draws, so a report is reproducible
ROPE = 0.01
BAYES_SEED = 0
# the axes that tell settings apart, in the order tables list them (loss and seed are never setting axes)
SETTING_ORDER = ("data", "model", "profile", "rebalance", "regularization", "strength", "ratio")


def setting_axes(runs: pd.DataFrame) -> list[str]:
    """The axes that vary among the runs, plus model and ratio always (the main table is per both)."""
    return [
        a
        for a in SETTING_ORDER
        if a in ("model", "ratio") or (a in runs and runs[a].nunique(dropna=True) > 1)
    ]


@cache
def _t_quantile(dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(1 - ALPHA / 2, dof))


def t_interval(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval; half-width NaN for fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    if x.size < 2:
        return float(x.mean()), math.nan
    sem = x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), _t_quantile(x.size - 1) * float(sem)


def signed_rank_p(diff) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (scipy).

    Exact null distribution when the differences have no zeros and no tied magnitudes (n <= 50); otherwise the
    normal approximation with tie and continuity corrections, as R's ``wilcox.test`` does. (scipy's default
    would run a permutation test for ties, seconds per call: a report makes hundreds of calls.)
    """
    from scipy import stats

    d = np.asarray(diff, dtype=float)
    if d.size < 2:
        return math.nan
    if not np.any(d != 0):
        return 1.0
    magnitudes = np.abs(d)
    exact = d.size <= 50 and np.all(d != 0) and np.unique(magnitudes).size == d.size
    method = "exact" if exact else "asymptotic"
    return float(stats.wilcoxon(d, zero_method="wilcox", method=method, correction=not exact).pvalue)


def smallest_attainable_p(diff) -> float:
    """The smallest p-value :func:`signed_rank_p` can give for differences of these magnitudes: every sign
    the same (the signed-rank statistic at its extreme). With n non-zero pairs of distinct magnitudes this
    is the exact test's 2 / 2^n (6 pairs: 0.03125); with ties or zeros, the approximation's own floor."""
    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return math.nan
    return signed_rank_p(np.abs(d))


def bayes_samples(n: int) -> int:
    """Monte Carlo draws for baycomp's signed-rank test over n pairs. Each draw costs O(n^2): 4,000 draws
    (standard error at most 0.008 on a probability) up to 30 pairs, fewer above, at least 100 (a report of
    10k runs pools hundreds of pairs, where the posterior is concentrated and the draws agree)."""
    return int(min(4_000, max(100, 4e6 // (n + 1) ** 2)))


def bayes_signed_rank(
    baseline, other, rope: float = ROPE, seed: int = BAYES_SEED
) -> tuple[float, float, float, int]:
    """Bayesian signed-rank test (baycomp's ``SignedRankTest``, Benavoli et al. 2017) of paired values:
    posterior probabilities that ``other - baseline`` is below ``-rope``, within the rope, above ``rope``
    (with ``rope = 0``: within is NaN), and the number of Monte Carlo draws (seeded: reproducible)."""
    from baycomp import SignedRankTest

    x = np.asarray(baseline, dtype=float)
    y = np.asarray(other, dtype=float)
    if x.size < 2:
        return math.nan, math.nan, math.nan, 0
    n = bayes_samples(x.size)
    probs = SignedRankTest.probs(x, y, rope=rope, nsamples=n, random_state=seed)
    if rope > 0:
        below, within, above = probs
    else:
        (below, above), within = probs, math.nan
    return float(below), float(within), float(above), n


def clip_interval(low: float, high: float, bounds: tuple[float, float] | None) -> tuple[float, float, bool]:
    """``(low, high)`` cut to ``bounds`` (the metric's range), and whether a side was cut: a t-interval over
    2-3 seeds of a value near 1 reaches past 1, where no value can lie."""
    if bounds is None or not (np.isfinite(low) and np.isfinite(high)):
        return low, high, False
    lo, hi = max(low, bounds[0]), min(high, bounds[1])
    return lo, hi, bool(lo != low or hi != high)


def summarize(
    runs: pd.DataFrame,
    column: str,
    higher_is_better: bool,
    axes: list[str],
    bounds: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """One row per (setting, loss): seeds, mean, std, 95% CI, rank in the setting (1 = best), best flag.

    ``bounds``: the metric's range; ``ci_low``/``ci_high`` are cut to it (``ci_clipped`` says where),
    ``ci_half_width`` stays the t-interval's own. A ``train/fit_seconds`` column gives
    ``median_fit_seconds``."""
    rows = []
    for key, group in runs.groupby([*axes, "loss"], sort=True, dropna=False):
        mean, half = t_interval(group[column])
        low, high, clipped = clip_interval(mean - half, mean + half, bounds)
        fit = group["train/fit_seconds"] if "train/fit_seconds" in group else pd.Series(dtype=float)
        rows.append(
            {
                **dict(zip([*axes, "loss"], key, strict=True)),
                "n_seeds": int(group[column].notna().sum()),
                "mean": mean,
                "std": float(group[column].std(ddof=1)) if len(group) > 1 else math.nan,
                "ci_low": low,
                "ci_high": high,
                "ci_half_width": half,
                "ci_clipped": clipped,
                "median_fit_seconds": float(fit.median()) if fit.notna().any() else math.nan,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    # means equal up to float rounding tie (the same recalls averaged in another order differ in the last bit)
    table["rank"] = (
        table.assign(rounded=table["mean"].round(12))
        .groupby(axes, dropna=False)["rounded"]
        .rank(ascending=not higher_is_better, method="min")
        .astype(int)
    )
    table["best"] = table["rank"] == 1
    return table.sort_values([*axes, "rank", "loss"]).reset_index(drop=True)


def blocks(runs: pd.DataFrame, column: str, axes: list[str], losses: list[str] | None = None) -> pd.DataFrame:
    """Wide table: one row per block (setting + seed), one column per loss; only complete blocks and only
    losses present in every block (a paired test needs both values of every pair)."""
    wide = runs.pivot_table(index=[*axes, "seed"], columns="loss", values=column, aggfunc="mean")
    if losses is not None:
        wide = wide[[c for c in losses if c in wide.columns]]
    # a loss missing from many blocks (N/A on one model) leaves; a block missing a loss (a failed run) leaves
    wide = wide.loc[:, wide.notna().mean() >= 0.9]
    return wide.dropna(axis=0)


@dataclass
class Comparison:
    """A loss against the baseline over a set of blocks: paired differences in metric units."""

    loss: str
    baseline: str
    n: int
    mean_diff: float
    ci_half_width: float
    p_raw: float
    p_holm: float
    # the smallest Holm-adjusted p this comparison could reach, whatever the signs of its differences
    min_p: float = math.nan
    # Bayesian signed-rank: P(loss - baseline < -rope), P(within rope), P(> rope); draws; the rope
    p_below: float = math.nan
    p_rope: float = math.nan
    p_above: float = math.nan
    bayes_draws: int = 0
    rope: float = math.nan
    n_nonzero: int = 0  # pairs whose difference is not 0 (the signed-rank test drops the others)

    @property
    def attainable(self) -> bool:
        """Whether the test could reach p < ALPHA at all with these pairs and this family (Holm)."""
        return bool(np.isfinite(self.min_p) and self.min_p < ALPHA)

    @property
    def ci(self) -> tuple[float, float]:
        return self.mean_diff - self.ci_half_width, self.mean_diff + self.ci_half_width

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.p_holm) and self.p_holm < ALPHA)

    @property
    def interval_excludes_zero(self) -> bool:
        low, high = self.ci
        return bool(np.isfinite(low) and (low > 0 or high < 0))


def against_baseline(
    wide: pd.DataFrame, baseline: str, rope: float = ROPE, seed: int = BAYES_SEED
) -> list[Comparison]:
    """Every other loss minus the baseline, block by block: mean difference with its t-interval, a
    two-sided Wilcoxon signed-rank test, Holm-corrected over the family of comparisons with the baseline,
    the smallest Holm-adjusted p the test could reach (``min_p``), and baycomp's Bayesian signed-rank test
    with a region of practical equivalence ``rope``."""
    from statsmodels.stats.multitest import multipletests

    if baseline not in wide.columns:
        return []
    out, floors = [], {}
    base = wide[baseline].to_numpy(dtype=float)
    for loss in wide.columns:
        if loss == baseline:
            continue
        other = wide[loss].to_numpy(dtype=float)
        diff = other - base
        mean, half = t_interval(diff)
        p = signed_rank_p(diff)
        c = Comparison(loss, baseline, int(diff.size), mean, half, p, math.nan, rope=rope)
        c.n_nonzero = int(np.count_nonzero(diff[np.isfinite(diff)]))
        c.p_below, c.p_rope, c.p_above, c.bayes_draws = bayes_signed_rank(base, other, rope, seed)
        floors[loss] = smallest_attainable_p(diff)
        out.append(c)
    testable = [c for c in out if np.isfinite(c.p_raw)]
    if testable:
        adjusted = multipletests([c.p_raw for c in testable], method="holm")[1]
        for c, p in zip(testable, adjusted, strict=True):
            c.p_holm = float(p)
        # Holm multiplies the smallest raw p of the family by m, and never lowers a later one below it
        m, lowest = len(testable), min(floors[c.loss] for c in testable)
        for c in testable:
            c.min_p = float(min(1.0, max(floors[c.loss], m * lowest)))
    return out


def paired_difference(runs: pd.DataFrame, column: str, axes: list[str], loss: str, other: str) -> Comparison:
    """``loss`` minus ``other`` over their common blocks (mean, t-interval; no test)."""
    wide = blocks(runs[runs["loss"].isin([loss, other])], column, axes)
    if loss not in wide or other not in wide:
        return Comparison(loss, other, 0, math.nan, math.nan, math.nan, math.nan)
    mean, half = t_interval(wide[loss] - wide[other])
    return Comparison(loss, other, len(wide), mean, half, math.nan, math.nan)


@dataclass
class Friedman:
    n_blocks: int
    losses: list[str]
    statistic: float
    p_value: float
    mean_ranks: pd.Series  # 1 = best
    pairwise_p: pd.DataFrame  # Wilcoxon signed-rank, Holm over all pairs (for the CD diagram)


def friedman(wide: pd.DataFrame, higher_is_better: bool) -> Friedman | None:
    """Friedman test over blocks (needs >= 3 losses and >= 2 blocks), mean ranks, pairwise Wilcoxon-Holm."""
    from scipy import stats

    if wide.shape[1] < 3 or wide.shape[0] < 2:
        return None
    result = stats.friedmanchisquare(*[wide[c].to_numpy(dtype=float) for c in wide.columns])
    ranks = wide.rank(axis=1, ascending=not higher_is_better).mean().sort_values()
    return Friedman(
        n_blocks=int(wide.shape[0]),
        losses=list(wide.columns),
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        mean_ranks=ranks,
        pairwise_p=pairwise_signed_rank(wide),
    )


def pairwise_signed_rank(wide: pd.DataFrame) -> pd.DataFrame:
    """Symmetric matrix of Holm-corrected signed-rank p-values over all pairs of losses (diagonal 1), the
    layout scikit-posthocs' ``posthoc_wilcoxon`` returns and ``critical_difference_diagram`` reads."""
    from statsmodels.stats.multitest import multipletests

    losses = list(wide.columns)
    pairs = list(itertools.combinations(range(len(losses)), 2))
    raw = [signed_rank_p(wide.iloc[:, i] - wide.iloc[:, j]) for i, j in pairs]
    raw = [1.0 if not np.isfinite(p) else p for p in raw]
    adjusted = multipletests(raw, method="holm")[1] if pairs else []
    matrix = np.ones((len(losses), len(losses)))
    for (i, j), p in zip(pairs, adjusted, strict=True):
        matrix[i, j] = matrix[j, i] = p
    return pd.DataFrame(matrix, index=losses, columns=losses)


def pooled_reliability(bins: list[dict]) -> pd.DataFrame:
    """Sum the per-run reliability bins (counts, confidence sums, correct counts) into one diagram."""
    count = np.sum([b["count"] for b in bins], axis=0)
    conf = np.sum([b["confidence_sum"] for b in bins], axis=0)
    correct = np.sum([b["correct"] for b in bins], axis=0)
    edges = np.asarray(bins[0]["edges"])
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "low": edges[:-1],
                "high": edges[1:],
                "count": count,
                "confidence": np.where(count > 0, conf / count, np.nan),
                "accuracy": np.where(count > 0, correct / count, np.nan),
            }
        )
