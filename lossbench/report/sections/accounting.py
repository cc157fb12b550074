"""Run bookkeeping: what was swept and what ran, and which loss can run on which model (the N/A matrix)."""

from __future__ import annotations

import json
import math
import time

import pandas as pd

from lossbench.report.document import B, Bullets, Code, Heading, Para, Table
from lossbench.report.load import mlflow_runs
from lossbench.report.sections.context import ReportContext
from lossbench.report.sections.formatting import fmt_ratios

FIXED_PARAMS = (
    ("params.data.label", "data"),
    ("params.imbalance.test", "test split"),
    ("params.imbalance.profile", "imbalance profile"),
    ("params.regularization.name", "regularization"),
    ("params.rebalance.name", "rebalancing"),
)
SWEEP_STATUSES = ("finished", "resumed", "skipped", "failed")
# MLflow's run statuses as the report says them (a KILLED run was interrupted: Ctrl-C, or its process died)
STATUS_WORDS = {"KILLED": "interrupted (KILLED)", "RUNNING": "still RUNNING"}
RAN = ("finished", "resumed")


def job_statuses(ctx: ReportContext) -> list[dict]:
    """One status per job config (fingerprint) over the sweeps in scope, newest sweep first: a config that
    finished in any of them counts as finished, whatever an older sweep recorded for it (a failure that a
    re-run fixed is not a failure of the report's runs)."""
    chosen: dict[str, dict] = {}
    anonymous = []
    for sweep in ctx.exp.sweeps:  # newest first
        for st in sweep.statuses:
            if not isinstance(st.get("job"), dict):
                continue
            fp = st.get("fingerprint")
            if not fp:
                anonymous.append(st)
            elif fp not in chosen or (st["status"] in RAN and chosen[fp]["status"] not in RAN):
                chosen[fp] = st
    return [*chosen.values(), *anonymous]


def _short(reason: str, limit: int = 220) -> str:
    reason = " ".join(str(reason).split())
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def fmt_reasons(reasons: list[str]) -> str:
    """The distinct refusal or failure reasons, as a sentence part: ``reason: …`` / ``2 reasons: …; …``."""
    shown = [_short(r) for r in reasons[:2]]
    more = f"; and {len(reasons) - 2} more" if len(reasons) > 2 else ""
    return ("reason: " if len(reasons) == 1 else f"{len(reasons)} reasons: ") + "; ".join(shown) + more


def unfinished_ratios(ctx: ReportContext) -> dict[float, dict]:
    """The ratios the sweeps in scope asked for that have no finished run with the metric: per ratio, a
    ``text`` (``6 jobs failed``, ``4 jobs N/A``, ...), the distinct ``reasons`` the sweep or MLflow recorded
    (N/A refusals, failure reasons), and ``jobs`` (how many). Sorted by ratio."""
    if "unfinished" in ctx.memo:
        return ctx.memo["unfinished"]
    done = set(ctx.ratios)
    by_ratio: dict[float, dict] = {}

    def entry(ratio: float) -> dict:
        return by_ratio.setdefault(ratio, {"counts": {}, "reasons": []})

    for st in job_statuses(ctx):
        ratio = float(st["job"].get("ratio", math.nan))
        if not math.isfinite(ratio) or ratio in done:
            continue
        e = entry(ratio)
        e["counts"][st["status"]] = e["counts"].get(st["status"], 0) + 1
        if st.get("reason") and st["reason"] not in e["reasons"]:
            e["reasons"].append(st["reason"])
    runs = ctx.exp.runs
    if not runs.empty and "ratio" in runs:
        gone = runs[runs["status"].isin(["FAILED", "KILLED"]) & ~runs["ratio"].isin(done)]
        for r in gone.itertuples():
            if not math.isfinite(r.ratio):
                continue
            e = entry(float(r.ratio))
            if not e["counts"]:  # no sweep bookkeeping (single runs): MLflow's own statuses
                e.setdefault("runs", {}).setdefault(r.status, 0)
                e["runs"][r.status] += 1
            reason = r.failure_reason
            if isinstance(reason, str) and reason and reason not in e["reasons"]:
                e["reasons"].append(reason)
    words = {"skipped": "N/A", "failed": "failed", "claimed": "left to a concurrent sweep"}
    out = {}
    for ratio in sorted(by_ratio):
        e = by_ratio[ratio]
        counts = e["counts"] or {k.lower(): v for k, v in e.get("runs", {}).items()}
        parts = [
            f"{n} job{'s' if n != 1 else ''} {words.get(status, status)}"
            for status, n in sorted(counts.items())
        ]
        out[ratio] = {
            "text": ", ".join(parts) or "no run logged the metric",
            "reasons": e["reasons"],
            "jobs": sum(counts.values()),
        }
    ctx.memo["unfinished"] = out
    return out


def ratio_cap(ctx: ReportContext) -> int | None:
    """The largest rho the training splits allow (lossbench.imbalance.target_counts): at rho > 1 every class
    is subsampled from the smallest class's count in the training split before imbalance (param
    ``class_counts.train_available``), so n_min = floor(that / rho) must stay >= 1. None without counts."""
    caps = []
    runs = ctx.runs
    available = runs.get("params.class_counts.train_available", pd.Series(dtype=object))
    before_all = available.reindex(runs.index)
    for ratio, counts, before in zip(runs["ratio"], runs["train_counts"], before_all, strict=True):
        if isinstance(before, str):
            try:
                before = json.loads(before)
            except ValueError:
                before = None
        if isinstance(before, list) and before:
            caps.append(min(before))
        elif isinstance(counts, list) and counts:  # older runs: the rho = 1 split is the one before imbalance
            caps.append(min(counts) if ratio == 1.0 else max(counts))
    return int(min(caps)) if caps else None


def accounting(ctx: ReportContext) -> None:
    ctx.doc.add(Heading("What was swept"))
    exp = ctx.exp
    for sweep in exp.sweeps[:1]:
        swept = json.loads(sweep.params.get("sweep.params", "{}") or "{}")
        overrides = json.loads(sweep.params.get("sweep.overrides", "[]") or "[]")
        items = [[Code(f"{k}: {v}")] for k, v in swept.items()]
        if overrides:
            items.append(["command-line overrides: ", Code(" ".join(overrides))])
        if items:
            ctx.doc.add(Bullets(items))
    fixed = []
    if not ctx.runs.empty:
        for key, label in FIXED_PARAMS:
            if key in ctx.runs and ctx.runs[key].nunique() == 1:
                fixed.append(f"{label} = {ctx.runs[key].iloc[0]}")
    if fixed:
        ctx.doc.add(Para(["Fixed across the runs: ", ", ".join(fixed), "."]))
    _ratio_limits(ctx)
    statuses = list(SWEEP_STATUSES)
    header = ["sweep", "started", "expected", "finished", "resumed", "N/A", "failed"]
    if any(st.get("status") == "claimed" for sweep in exp.sweeps for st in sweep.statuses):
        statuses.append("claimed")
        header.append("left to a concurrent sweep")
    header.append("did not report")
    rows = []
    for sweep in exp.sweeps:
        counts = {s: sum(1 for st in sweep.statuses if st.get("status") == s) for s in statuses}
        expected = sweep.expected
        missing = (expected - len(sweep.statuses)) if expected is not None and sweep.statuses else None
        rows.append(
            [
                sweep.name,
                time.strftime("%Y-%m-%d %H:%M", time.localtime(sweep.start_time / 1000)),
                str(expected if expected is not None else "–"),
                *(str(counts[s]) for s in statuses),
                "sweep still running or interrupted" if not sweep.statuses else str(missing),
            ]
        )
    if rows:
        ctx.doc.add(Table(header, rows, caption="Run accounting", align_right_from=2))
    mlflow = mlflow_runs(exp.runs)  # MLflow's runs, not the rows of the post-hoc baselines
    by_status = mlflow["status"].value_counts().to_dict() if not mlflow.empty else {}
    ctx.doc.add(
        Para(
            [
                "MLflow runs in scope, by status: ",
                ", ".join(f"{STATUS_WORDS.get(k, k)} {v}" for k, v in sorted(by_status.items())) or "none",
                ".",
            ]
        )
    )
    failed = exp.runs[exp.runs["status"].isin(["FAILED", "KILLED"])] if not exp.runs.empty else exp.runs
    if len(failed):
        ctx.doc.add(
            Bullets([[Code(str(r.run_name)), f": {r.failure_reason}"] for r in failed.itertuples()][:20])
        )


def _ratio_limits(ctx: ReportContext) -> None:
    """Up front: what rho = 1 is on this data, the largest rho the data allows, the ratios without runs."""
    bits = []
    natural = ctx.natural_text()
    if natural:
        bits.append(
            f"ρ = 1 keeps the data's own class counts: the training splits are {natural} (n_max / n_min, "
            "metric train/imbalance_ratio), not balanced."
        )
    missing = unfinished_ratios(ctx)
    cap = ratio_cap(ctx) if not ctx.runs.empty else None
    if cap is not None:
        above = [r for r in missing if r > cap]
        refused = (
            f"; the requested ρ = {fmt_ratios(above)} {'is' if len(above) == 1 else 'are'} above it"
            if above
            else ""
        )
        bits.append(
            f"ρ is capped by the smallest class's training count: the largest ρ this data allows is {cap} "
            f"(its smallest class has {cap} training sample{'s' if cap != 1 else ''}){refused}."
        )
    if missing:
        text = "; ".join(f"ρ = {r:g}: {info['text']}" for r, info in missing.items())
        bits.append(f"Swept but without finished runs: {text} (reasons in the findings).")
    if bits:
        ctx.doc.add(Para([B("Imbalance ratios:"), " " + " ".join(bits)]))


def na_matrix(ctx: ReportContext) -> None:
    ctx.doc.add(Heading("N/A matrix: which loss runs on which model"))
    statuses = job_statuses(ctx)
    cells: dict[tuple[str, str], dict[str, int]] = {}
    reasons: dict[tuple[str, str], str] = {}
    failed_at: dict[tuple[str, str], set] = {}
    for st in statuses:
        key = (st["job"]["loss"], st["job"]["model"])
        cells.setdefault(key, {}).setdefault(st["status"], 0)
        cells[key][st["status"]] += 1
        if st["status"] == "skipped":
            reasons.setdefault(key, st.get("reason", ""))
        if st["status"] == "failed":
            failed_at.setdefault(key, set()).add(float(st["job"].get("ratio", math.nan)))
    if not cells:  # no sweep bookkeeping (single runs): what MLflow holds
        for (loss, model), group in mlflow_runs(ctx.exp.runs).groupby(["loss", "model"]):
            cells[(loss, model)] = {"finished": int((group["status"] == "FINISHED").sum())}
    models = sorted({m for _, m in cells})
    losses = [x for x in ctx.losses if any((x, m) in cells for m in models)]
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
                at = sorted(r for r in failed_at.get((loss, m), ()) if math.isfinite(r))
                where = f" (ρ = {fmt_ratios(at)})" if at else ""
                extra = f", {c['failed']} failed{where}" if c.get("failed") else ""
                row.append(f"{ran} runs{extra}")
        rows.append(row)
    ctx.doc.add(Table(["loss", *models], rows, align_right_from=1))
    if reasons:
        ctx.doc.add(
            Bullets(
                [[B(f"{loss} × {model}:"), " " + reason] for (loss, model), reason in sorted(reasons.items())]
            )
        )
