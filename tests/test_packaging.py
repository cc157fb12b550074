"""A plain `pip install .` (a wheel) finds its configs from any folder, not only from the checkout."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_configs_and_runs_from_another_folder(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wheel = next((tmp_path / "dist").glob("lossbench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.removeprefix("lossbench/conf/") for n in names if n.startswith("lossbench/conf/")}
    in_checkout = {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    assert shipped == in_checkout

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    probe = subprocess.run(
        [sys.executable, "-c", "import lossbench.config as c; print(c.config_dir())"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == str(site / "lossbench" / "conf")
    proc = subprocess.run(
        [sys.executable, "-m", "lossbench", "data=wine", "model=logreg"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (work / "mlflow.db").exists()
    assert "test: balanced accuracy" in proc.stdout + proc.stderr

    # the Hydra plugins ship as hydra_plugins/lossbench/, where Hydra's own scan finds them
    assert {"hydra_plugins/lossbench/sweeper.py", "hydra_plugins/lossbench/launcher.py"} <= set(names)
    assert not [n for n in names if n.startswith("lossbench/plugins/")]
    scan = subprocess.run(
        [
            sys.executable,
            "-c",
            "from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import Sweeper; "
            "print(sorted(c.__module__ for c in Plugins.instance().discover(Sweeper)))",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "hydra_plugins.lossbench.sweeper" in scan.stdout
    sweep = subprocess.run(
        [sys.executable, "-m", "lossbench", "-m", "data=wine", "seed=0,1", "report.enabled=false"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sweep.returncode == 0, sweep.stderr
    # seed=0 is the single run above: resumed, not run again
    assert "lossbench: 1 finished, 1 resumed, 0 skipped (N/A), 0 failed" in sweep.stderr
