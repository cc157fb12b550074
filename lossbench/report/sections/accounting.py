"""Run bookkeeping: what was swept and what ran, and which loss can run on which model (the N/A matrix)."""

from __future__ import annotations

import json
import time

from lossbench.report.document import B, Bullets, Code, Heading, Para, Table
from lossbench.report.sections.context import ReportContext

FIXED_PARAMS = (
    ("params.data.name", "data"),
    ("params.imbalance.test", "test split"),
    ("params.imbalance.profile", "imbalance profile"),
    ("params.regularization.name", "regularization"),
    ("params.rebalance.name", "rebalancing"),
)
SWEEP_STATUSES = ("finished", "resumed", "skipped", "failed")
# MLflow's run statuses as the report says them (a KILLED run was interrupted: Ctrl-C, or its process died)
STATUS_WORDS = {"KILLED": "interrupted (KILLED)", "RUNNING": "still RUNNING"}


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
    by_status = exp.runs["status"].value_counts().to_dict() if not exp.runs.empty else {}
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


def na_matrix(ctx: ReportContext) -> None:
    ctx.doc.add(Heading("N/A matrix: which loss runs on which model"))
    statuses = [st for s in ctx.exp.sweeps for st in s.statuses if isinstance(st.get("job"), dict)]
    cells: dict[tuple[str, str], dict[str, int]] = {}
    reasons: dict[tuple[str, str], str] = {}
    for st in statuses:
        key = (st["job"]["loss"], st["job"]["model"])
        cells.setdefault(key, {}).setdefault(st["status"], 0)
        cells[key][st["status"]] += 1
        if st["status"] == "skipped":
            reasons.setdefault(key, st.get("reason", ""))
    if not cells:  # no sweep bookkeeping (single runs): what MLflow holds
        for (loss, model), group in ctx.exp.runs.groupby(["loss", "model"]):
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
                extra = f", {c['failed']} failed" if c.get("failed") else ""
                row.append(f"{ran} runs{extra}")
        rows.append(row)
    ctx.doc.add(Table(["loss", *models], rows, align_right_from=1))
    if reasons:
        ctx.doc.add(
            Bullets(
                [[B(f"{loss} × {model}:"), " " + reason] for (loss, model), reason in sorted(reasons.items())]
            )
        )
