"""Honest baselines next to the losses: cheap post-hoc fixes of a fitted CE model, no retraining.

For a run with ``loss=ce`` whose model gives probabilities, :func:`posthoc_metrics` evaluates two variants
of the same fitted model on the test split, with the metric function every run uses
(:func:`lossbench.metrics.classification_metrics`):

* ``ce_posthoc_la`` — post-hoc logit adjustment (Menon et al. 2021): predict argmax(log p(x) − τ log π),
  π = the class prior of the split the model was fitted on (``class_counts["fit"]``), τ = 1; probabilities
  softmax(log p − τ log π).
* ``ce_temperature`` — temperature scaling (Guo et al. 2017): T fitted on the validation split by minimising
  the NLL of softmax(log p / T); test probabilities softmax(log p / T); predictions unchanged.

They are logged as extra metrics of the CE run, ``baseline/<name>/test/<metric>`` (and
``baseline/ce_temperature/temperature``), and :func:`expand_baselines` turns them back into report rows of
their own. ``report.baselines: false`` switches them off.
"""

from __future__ import annotations

import math

import numpy as np

PREFIX = "baseline/"
TAU = 1.0  # Menon et al. 2021: tau = 1 is the Bayes-optimal adjustment for the balanced error
LOG_T_BOUNDS = (-3.0, 3.0)  # temperature in [e^-3, e^3] ~ [0.05, 20]
# what each baseline is, one line (the report explains its rows with these)
BASELINES = {
    "ce_posthoc_la": "CE + post-hoc logit adjustment (Menon et al. 2021): the CE model's predictions "
    "argmax(log p − log π), π = the training class prior; no retraining",
    "ce_temperature": "CE + temperature scaling (Guo et al. 2017): the CE model's probabilities "
    "softmax(log p / T), T fitted on the validation split; predictions unchanged, so it is compared on "
    "calibration only",
}
# baselines whose predictions are CE's own: compared only on the metrics they change (probabilities)
CALIBRATION_ONLY = ("ce_temperature",)
CALIBRATION_METRICS = ("log_loss", "brier", "ece", "adaptive_ece")
REALISATION = "post-hoc"


def enabled(c: dict) -> bool:
    """``report.baselines``, checked: true (default) or false; else a ConfigError naming the key."""
    from lossbench.errors import ConfigError

    value = (c.get("report") or {}).get("baselines", True)
    if not isinstance(value, bool):
        raise ConfigError(
            "report.baselines", value, "must be true or false (post-hoc baselines of CE runs on or off)"
        )
    return value


def _log(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-300, None))


def log_prior(counts) -> np.ndarray:
    """log π from class counts; a class with no fitted sample counts as one (a finite adjustment: such a
    class has probability ~0 from the model anyway)."""
    n = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    return np.log(n / n.sum())


def logit_adjusted(proba: np.ndarray, counts, tau: float = TAU) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, probabilities) of post-hoc logit adjustment: argmax / softmax of log p − τ log π."""
    from scipy.special import softmax

    scores = _log(proba) - tau * log_prior(counts)
    return scores.argmax(1).astype(np.int64), softmax(scores, axis=1)


def fit_temperature(proba_val: np.ndarray, y_val: np.ndarray) -> float:
    """The T minimising the mean NLL of softmax(log p / T) on (``proba_val``, ``y_val``), searched over
    log T in :data:`LOG_T_BOUNDS` (bounded Brent)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logp, y = _log(proba_val), np.asarray(y_val, dtype=np.int64)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-log_softmax(logp / math.exp(log_t), axis=1)[rows, y].mean())

    found = minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(math.exp(found.x))


def temperature_scaled(proba: np.ndarray, temperature: float) -> np.ndarray:
    from scipy.special import softmax

    return softmax(_log(proba) / temperature, axis=1)


def applies(c: dict, proba_test) -> bool:
    """Baselines are computed for CE runs with probabilities, when ``report.baselines`` is on. Not after
    rebalance=class_weight: that CE is already a reweighted one, and adjusting it for the prior again
    would count the prior twice."""
    return (
        proba_test is not None
        and c["loss"]["name"] == "ce"
        and (c.get("rebalance") or {}).get("name") != "class_weight"
        and enabled(c)
    )


def posthoc_metrics(
    c: dict,
    fit_counts,
    y_val: np.ndarray,
    proba_val: np.ndarray | None,
    y_test: np.ndarray,
    y_pred: np.ndarray,
    proba_test: np.ndarray | None,
    num_classes: int,
    minority: list[int],
) -> dict[str, float]:
    """The baselines' test metrics as extra run metrics (``baseline/<name>/test/<metric>``); {} when they
    do not apply (:func:`applies`)."""
    if not applies(c, proba_test) or proba_val is None:
        return {}
    from lossbench.metrics import classification_metrics

    def scored(name: str, pred: np.ndarray, proba: np.ndarray) -> dict[str, float]:
        values = classification_metrics(
            y_test, pred, proba, num_classes=num_classes, minority_classes=minority
        )
        return {f"{PREFIX}{name}/test/{k}": v for k, v in values.items()}

    pred_la, proba_la = logit_adjusted(proba_test, fit_counts)
    temperature = fit_temperature(proba_val, y_val)
    return {
        **scored("ce_posthoc_la", pred_la, proba_la),
        **scored("ce_temperature", np.asarray(y_pred), temperature_scaled(proba_test, temperature)),
        f"{PREFIX}ce_temperature/temperature": temperature,
    }


# ---------------------------------------------------------------------------------------- the report's rows


def expand_baselines(runs):
    """``runs`` (the report's runs frame, one row per MLflow run) with one extra row per baseline a CE run
    logged: a copy of the CE row with ``loss`` = the baseline's name, its ``test/*`` columns replaced by the
    baseline's values (NaN where it logged none), ``realisation`` = "post-hoc", ``baseline_of`` = the CE
    run's id, ``run_id`` = ``<ce run id>:<name>`` and ``fingerprint`` = ``<ce fingerprint>:<name>``. Every
    row gets a ``baseline_of`` column (NaN for MLflow's own runs: :func:`mlflow_runs` keeps those)."""
    import pandas as pd

    if runs.empty:
        return runs.assign(baseline_of=pd.Series(dtype=object))
    runs = runs.assign(baseline_of=None) if "baseline_of" not in runs else runs
    test_columns = [k for k in runs.columns if isinstance(k, str) and k.startswith("test/")]
    extra = []
    for name in BASELINES:
        head = f"{PREFIX}{name}/test/"
        theirs = [k for k in runs.columns if isinstance(k, str) and k.startswith(head)]
        if not theirs:
            continue
        carrying = runs[runs[theirs].notna().any(axis=1) & runs["baseline_of"].isna()]
        if carrying.empty:
            continue
        rows = carrying.copy()
        rows[test_columns] = np.nan
        for key in theirs:
            rows[f"test/{key[len(head) :]}"] = carrying[key]
        rows["loss"] = name
        rows["realisation"] = REALISATION
        rows["baseline_of"] = carrying["run_id"]
        rows["run_id"] = carrying["run_id"].astype(str) + f":{name}"
        rows["fingerprint"] = carrying["fingerprint"].astype(str) + f":{name}"
        rows["run_name"] = carrying["run_name"].astype(str) + f" ({name})"
        extra.append(rows)
    if not extra:
        return runs
    return pd.concat([runs, *extra], ignore_index=True)


def mlflow_runs(runs):
    """The rows of ``runs`` that are MLflow runs (not baseline rows :func:`expand_baselines` added)."""
    if "baseline_of" not in runs:
        return runs
    return runs[runs["baseline_of"].isna()]


def comparable(runs, metric: str):
    """The rows a ranking by ``metric`` compares: every row, but the calibration-only baselines
    (:data:`CALIBRATION_ONLY`: CE's own predictions) only when ``metric`` is a calibration metric."""
    if metric in CALIBRATION_METRICS or "loss" not in runs:
        return runs
    return runs[~runs["loss"].isin(CALIBRATION_ONLY)]
