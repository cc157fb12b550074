"""Reports as users get them: a real smoke sweep into a real SQLite store, the report it writes, the
``python -m lossbench.report`` command, numbers recomputed independently from MLflow, the HTML in Chromium."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image as PILImage
from scipy import stats as sps

from lossbench.report import document as d
from lossbench.report import load, stats
from tests.conftest import run_cli

SMOKE_RUNS = 20  # 2 models x 3 losses x 2 ratios x 2 seeds, minus focal on logreg (4 N/A)
SMOKE_ROWS = 10  # (model, ratio, loss) settings: logreg 2 losses x 2 ratios + torch_mlp 3 x 2
# plus the post-hoc baseline ce_posthoc_la of the CE runs (lossbench.baselines): 2 models x 2 ratios
SMOKE_BASELINE_ROWS = 4


def run_report(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(args, cwd=cwd, module="lossbench.report")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """A folder where a new user ran ``python -m lossbench +experiment=smoke`` (which writes the report)."""
    folder = tmp_path_factory.mktemp("smoke")
    proc = run_cli(["+experiment=smoke"], cwd=folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lossbench: report written to reports/smoke/index.html" in proc.stderr
    return folder


def _children(folder: Path) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    return [r for r in runs if r.data.tags.get("lossbench.role") != "sweep"]


def _is_real_png(path: Path) -> bool:
    with PILImage.open(path) as img:
        pixels = np.asarray(img.convert("L"), dtype=float)
    return img.format == "PNG" and min(pixels.shape) >= 150 and pixels.std() > 5


def test_the_sweep_writes_the_report_with_figures_and_attaches_it_to_the_parent(smoke):
    out = smoke / "reports" / "smoke"
    assert (out / "index.html").is_file() and (out / "README.md").is_file()
    figures = sorted((out / "figures").glob("*.png"))
    names = {f.name for f in figures}
    assert {"metric_vs_ratio.png", "heatmap_loss_ratio.png", "ece_vs_ratio.png", "reliability.png"} <= names
    assert len(figures) >= 3 and all(_is_real_png(f) for f in figures)
    with PILImage.open(out / "figures" / "metric_vs_ratio.png") as img:  # 3 losses: overlaid, a panel a model
        assert json.loads(img.info["Panels"]) == ["logreg", "torch_mlp"]
    # every figure the Markdown and the HTML show exists, and every figure written is shown
    readme, html = (out / "README.md").read_text(), (out / "index.html").read_text()
    for name in names:
        assert f"](figures/{name})" in readme and f'src="figures/{name}"' in html
    client = MlflowClient(tracking_uri=f"sqlite:///{smoke / 'mlflow.db'}")
    exp = client.get_experiment_by_name("smoke")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`lossbench.role` = 'sweep'")
    attached = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/index.html", "report/README.md", "report/summary.csv", "report/figures"} <= attached


def test_summary_csv_matches_means_and_intervals_recomputed_from_mlflow(smoke):
    """Independent of lossbench.report: group the MLflow runs by hand, t-interval by hand."""
    groups = defaultdict(list)
    for r in _children(smoke):
        assert r.info.status == "FINISHED"
        p = r.data.params
        key = (p["model.name"], float(p["imbalance.ratio"]), p["loss.name"])
        groups[key].append(r.data.metrics["test/balanced_accuracy"])
    assert len(groups) == SMOKE_ROWS and sum(len(v) for v in groups.values()) == SMOKE_RUNS
    for r in _children(smoke):  # CE runs carry their post-hoc logit-adjusted baseline as metrics
        p = r.data.params
        if p["loss.name"] == "ce":
            key = (p["model.name"], float(p["imbalance.ratio"]), "ce_posthoc_la")
            groups[key].append(r.data.metrics["baseline/ce_posthoc_la/test/balanced_accuracy"])

    csv = pd.read_csv(smoke / "reports" / "smoke" / "summary.csv")
    assert len(csv) == SMOKE_ROWS + SMOKE_BASELINE_ROWS == len(groups)
    for row in csv.itertuples():
        values = np.array(groups[(row.model, float(row.ratio), row.loss)])
        half = sps.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
        assert row.n_seeds == len(values) == 2
        assert row.mean == pytest.approx(values.mean(), abs=1e-12)
        assert row.ci_half_width == pytest.approx(half, abs=1e-12)
        same = csv[(csv.model == row.model) & (csv.ratio == row.ratio)]
        assert row.rank == 1 + (same["mean"] > row.mean + 1e-15).sum()  # rank 1 = highest mean, ties share
        assert row.best == (row.rank == 1)


def test_markdown_states_accounting_na_matrix_and_the_rebuild_command(smoke):
    readme = (smoke / "reports" / "smoke" / "README.md").read_text()
    assert "| 24 | 20 | 0 | 4 | 0 | 0 |" in readme  # expected, finished, resumed, N/A, failed, did not report
    assert "| focal | **N/A** | 4 runs |" in readme
    assert "`python -m lossbench.report --experiment smoke`" in readme
    assert "## Findings" in readme and "**Caution:** each setting has only 2 seeds" in readme
    for heading in ("Results per model and imbalance ratio", "Significance across settings", "Calibration"):
        assert f"## {heading}" in readme


def test_report_command_rebuilds_the_same_numbers_and_a_resumed_sweep_reports_its_runs(smoke, tmp_path):
    before = pd.read_csv(smoke / "reports" / "smoke" / "summary.csv")
    proc = run_report(["--experiment", "smoke", "--out", str(tmp_path / "rebuilt")], cwd=smoke)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report: {tmp_path / 'rebuilt' / 'index.html'}" in proc.stdout
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "rebuilt" / "summary.csv"), before)
    assert len(list((tmp_path / "rebuilt" / "figures").glob("*.png"))) >= 3

    # a second sweep resumes all 20 runs; its report (latest sweep) still holds them, counted as resumed
    again = run_cli(["+experiment=smoke", "report.out=reports/again"], cwd=smoke)
    assert again.returncode == 0, again.stderr[-3000:]
    readme = (smoke / "reports" / "again" / "README.md").read_text()
    assert "| 24 | 0 | 20 | 4 | 0 | 0 |" in readme
    pd.testing.assert_frame_equal(pd.read_csv(smoke / "reports" / "again" / "summary.csv"), before)


def test_load_runs_reads_sqlite_directly_and_through_paged_search_runs_alike(smoke, monkeypatch):
    uri = f"sqlite:///{smoke / 'mlflow.db'}"
    direct = load.load_runs("smoke", uri, scope="all")
    # the path every other store takes: MLflow's search_runs, page by page
    monkeypatch.setattr(load, "_read_sqlite", lambda uri, experiment_id: None)
    monkeypatch.setattr(load, "PAGE_SIZE", 3)  # 20 runs + 1 parent (+ 20 runs of the resumed sweep): pages
    paged = load.load_runs("smoke", uri, scope="all")
    # MLflow's runs, plus one row per post-hoc baseline of each CE run (2 baselines x 8 CE runs)
    assert len(load.mlflow_runs(paged)) == SMOKE_RUNS and paged["run_id"].is_unique
    assert len(paged) == SMOKE_RUNS + 2 * 8 and set(paged["baseline_of"].dropna()) <= set(paged["run_id"])
    assert set(paged["model"]) == {"logreg", "torch_mlp"} and set(paged["ratio"]) == {1.0, 5.0}
    assert paged["test/balanced_accuracy"].dropna().between(0, 1).all()
    assert load.mlflow_runs(paged)["seed"].tolist().count(0) == 10
    key = ["run_id"]
    a = direct.sort_values(key).reset_index(drop=True)
    b = paged.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[sorted(a.columns)], b[sorted(b.columns)])  # params, tags, metrics, NaNs
    assert any(c.startswith("params.") for c in a.columns) and "test/ece" in a.columns


@pytest.mark.parametrize(
    "args, key, value",
    [
        (["--experiment", "nope"], "--experiment", "nope"),
        (["--experiment", "smoke", "--metric", "accuracyy"], "--metric", "accuracyy"),
        (["--experiment", "smoke", "--sweep", "abc123"], "--sweep", "abc123"),
    ],
)
def test_report_command_bad_input_names_key_value_and_options(smoke, tmp_path, args, key, value):
    proc = run_report([*args, "--out", str(tmp_path / "r")], cwd=smoke)
    assert proc.returncode == 2
    assert key in proc.stderr and value in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()
    if key == "--experiment":
        assert "smoke" in proc.stderr  # the experiments that do exist
    if key == "--metric":
        assert "balanced_accuracy" in proc.stderr


def test_user_class_names_are_escaped_in_html_and_markdown(tmp_path):
    rng = np.random.default_rng(0)
    names = ["<script>alert(1)</script>", "a&b", "x|y"]
    n = 60
    table = pd.DataFrame(
        {
            "f1": np.r_[rng.normal(0, 1, n), rng.normal(3, 1, n), rng.normal(6, 1, n)],
            "f2": rng.normal(0, 1, 3 * n),
            "label": np.repeat(names, n),
        }
    )
    table.to_csv(tmp_path / "evil.csv", index=False)
    proc = run_cli(
        [
            "-m",
            "data=csv",
            "data.path=evil.csv",
            "data.target=label",
            "loss=ce,logit_adjusted",
            "imbalance.ratio=4",
            "seed=0,1",
            "tracking.experiment='evil<b>'",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    from lossbench.paths import dirname

    out = tmp_path / "reports" / dirname("evil<b>")  # a name that is no safe folder name gets a safe one
    assert out.name.startswith("evil_b-") and len(list((tmp_path / "reports").iterdir())) == 1
    html, readme = (out / "index.html").read_text(), (out / "README.md").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "a&amp;b" in html and "evil&lt;b&gt;" in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in readme and "<script>" not in readme
    assert "x\\|y" in readme  # a pipe in a class name cannot break the Markdown table


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _headless(url: str, screenshot: Path) -> str:
    proc = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--window-size=1280,2400",
            f"--screenshot={screenshot}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert screenshot.is_file(), proc.stderr[-2000:]
    return proc.stderr


@pytest.mark.skipif(_chromium() is None, reason="Debian chromium not installed (.ci/run installs it)")
def test_html_renders_in_headless_chromium_without_console_errors_and_with_every_figure(smoke, tmp_path):
    out = smoke / "reports" / "smoke"
    log = _headless((out / "index.html").as_uri(), tmp_path / "page.png")
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == []
    assert _is_real_png(tmp_path / "page.png")
    # a copy of the page with a probe script: every <img> decoded to a real bitmap in the browser
    probe = out / "probe.html"
    probe.write_text(
        (out / "index.html")
        .read_text()
        .replace(
            "</body>",
            "<script>window.addEventListener('load',()=>{for(const i of document.images)"
            "console.log('IMG '+i.getAttribute('src')+' '+i.naturalWidth)})</script></body>",
        )
    )
    try:
        log = _headless(probe.as_uri(), tmp_path / "probe.png")
    finally:
        probe.unlink()
    widths = dict(
        line.split('"IMG ', 1)[1].split('"', 1)[0].rsplit(" ", 1)
        for line in log.splitlines()
        if '"IMG ' in line
    )
    shown = {f"figures/{p.name}" for p in (out / "figures").glob("*.png")}
    assert set(widths) == shown and all(int(w) > 300 for w in widths.values())


# ---------------------------------------------------------------------------------------------- units


def test_t_interval_reference_values():
    mean, half = stats.t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.30265273 / math.sqrt(3), rel=1e-9)  # t(0.975, 2 dof)
    assert math.isnan(stats.t_interval([0.5])[1]) and stats.t_interval([0.5])[0] == 0.5


def test_against_baseline_holm_and_wilcoxon_reference():
    base = np.linspace(0.5, 0.7, 8)
    wide = pd.DataFrame(
        {
            "ce": base,
            "good": base + np.array([0.05, 0.06, 0.04, 0.07, 0.055, 0.08, 0.03, 0.065]),
            "same": base + np.array([0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.005]),
        }
    )
    comps = {c.loss: c for c in stats.against_baseline(wide, "ce")}
    # exact two-sided signed-rank p for 8 positive differences: 2 / 2^8
    assert comps["good"].p_raw == pytest.approx(2 / 256) and comps["good"].n == 8
    assert comps["good"].mean_diff == pytest.approx(0.05625)
    # Holm over two tests: the smaller p doubled
    assert (
        comps["good"].p_holm == pytest.approx(min(1.0, 2 * comps["good"].p_raw)) and comps["good"].significant
    )
    assert not comps["same"].significant
    # tied magnitudes: the normal approximation with tie and continuity corrections (R's wilcox.test default)
    tied = np.array([0.01, 0.01, 0.02, 0.02, 0.03, -0.01, 0.04, 0.02])
    assert stats.signed_rank_p(tied) == pytest.approx(
        sps.wilcoxon(tied, method="asymptotic", correction=True).pvalue
    )
    assert stats.signed_rank_p(np.zeros(5)) == 1.0 and math.isnan(stats.signed_rank_p([0.1]))


def test_pooled_reliability_sums_bins_across_runs():
    a = {"edges": [0, 0.5, 1], "count": [2, 2], "confidence_sum": [0.8, 1.8], "correct": [1, 2]}
    b = {"edges": [0, 0.5, 1], "count": [0, 2], "confidence_sum": [0.0, 1.6], "correct": [0, 1]}
    pooled = stats.pooled_reliability([a, b])
    assert pooled["count"].tolist() == [2, 4]
    assert pooled["confidence"].tolist() == pytest.approx([0.4, 0.85]) and pooled["accuracy"].tolist() == [
        0.5,
        0.75,
    ]


def test_document_renders_escaped_html_and_markdown():
    doc = d.Document(
        "t<i>",
        [
            d.Heading("A & B"),
            d.Para(["x<y ", d.B("**b**"), d.Code("a|b")]),
            d.Table(["h|1", "n"], [["<td>", "1"]]),
        ],
    )
    html = d.to_html(doc)
    assert "<title>t&lt;i&gt;</title>" in html and "x&lt;y <strong>**b**</strong><code>a|b</code>" in html
    assert "<td>&lt;td&gt;</td>" in html and 'id="a-b"' in html
    md = d.to_markdown(doc)
    assert md.startswith("# t&lt;i&gt;\n") and "x&lt;y **\\*\\*b\\*\\***" in md and "| h\\|1 | n |" in md
    assert "| &lt;td&gt; | 1 |" in md
    assert json.dumps(d.md_escape("_a_")) == '"\\\\_a\\\\_"'


def test_a_bad_report_metric_stops_the_sweep_before_any_job(tmp_path):
    proc = run_cli(["+experiment=smoke", "report.metric=f1"], cwd=tmp_path)
    assert proc.returncode == 2
    assert "report.metric='f1' is invalid" in proc.stderr and "balanced_accuracy" in proc.stderr
    assert not list(tmp_path.glob("experiments/smoke/*/*/lossbench_status.json"))
