"""The sweeper's grid and composition, and the launcher's job set-up, against what stock Hydra does."""

import os

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from lossbench.config import config_dir
from lossbench.sweep.compose import JobComposer
from lossbench.sweep.grid import expand, seed_groups, sweep_arguments
from tests.conftest import run_cli


def _plain(cfg):
    return OmegaConf.to_container(cfg, resolve=False)


def _master(overrides):
    """(master config as a multirun has it, its config loader, the sweep's job overrides)."""
    master = compose("config", overrides=overrides, return_hydra_config=True)
    loader = GlobalHydra.instance().config_loader()
    grid = expand(sweep_arguments(master.hydra.sweeper.params, overrides), loader, "config")
    return master, loader, grid


@pytest.mark.parametrize(
    "overrides, jobs, bases, every, helper",
    [
        # 2 models x 9 losses share a base; ratio x seed are values; with the sweep's helper process
        # composing bases from the last one (the sweeper's way), and without
        (["+experiment=imbalance"], 216, 18, 5, True),
        (["+experiment=imbalance"], 216, 18, 5, False),
        (["+experiment=smoke", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], 24, 6, 1, False),
        # a user's own experiment folder on the search path (as benchmarks/ run theirs)
        (["+experiment=mine", "hydra.searchpath=[file://{tmp}]"], 12, 2, 1, True),
    ],
)
def test_job_configs_equal_hydras_own_composition(overrides, jobs, bases, every, helper, tmp_path):
    """Each job composed from its base equals Hydra's full composition, hydra node included (every
    ``every``-th job: Hydra's own path costs ~0.15 s a job); no base fell back to Hydra's path. With the
    helper process, the bases it composed (for 18 bases: some) are Hydra's as well."""
    from lossbench.writer import Writer

    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n"
        "      model: logreg,torch_mlp\n      imbalance.ratio: 1,10,100\n      seed: 0,1\n"
    )
    overrides = [o.format(tmp=tmp_path) for o in overrides]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        master, loader, grid = _master(overrides)
        assert len(grid) == jobs
        composer = JobComposer(loader, master)
        writer = Writer() if helper else None
        try:
            if writer is not None:
                writer.submit(int).result()  # it is up: it takes the last base while this process composes
                composer.compose_ahead(grid, writer)
            fast = [composer.compose(job) for job in grid]
        finally:
            composer.cancel_ahead()
            if writer is not None:
                writer.close()
        by_helper = composer.composed.pop("by the helper")
        # each base, and its first job again, here or in the helper
        assert composer.composed == {"fast": jobs, "hydra": 2 * bases - by_helper}
        assert (by_helper >= 2) if helper and bases > 2 else (by_helper % 2 == 0), by_helper
        for k in [*range(0, len(grid), every), len(grid) - 1]:
            slow = loader.load_sweep_config(master, list(grid[k]))
            assert _plain(fast[k]) == _plain(slow), grid[k]
        assert list(fast[-1].hydra.overrides.task) == [o for o in grid[-1] if not o.startswith("hydra")]
        assert fast[0] is not fast[1] and fast[0].seed != fast[1].seed  # each job its own config


def test_a_value_override_of_a_key_the_config_lacks_is_refused_naming_it():
    from lossbench.errors import ConfigError

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        master, loader, _ = _master(["+experiment=smoke"])
        composer = JobComposer(loader, master)
        with pytest.raises(ConfigError, match=r"^loss.gammma='1' is invalid: no such key in the config\. "):
            composer.compose(["loss=focal", "loss.gammma=1"])


def test_the_grid_is_the_product_of_the_swept_values_and_the_command_line_narrows_an_axis():
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        params = {"model": "logreg,torch_mlp", "imbalance.ratio": "1,10", "seed": "range(0,3)"}
        grid = expand(sweep_arguments(params, ["+experiment=smoke"]), loader)
        assert len(grid) == 12
        assert grid[0] == ["model=logreg", "imbalance.ratio=1", "seed=0", "+experiment=smoke"]
        assert grid[-1] == ["model=torch_mlp", "imbalance.ratio=10", "seed=2", "+experiment=smoke"]
        # a key given again replaces its values and keeps its place
        narrowed = expand(sweep_arguments(params, ["seed=1", "model=logreg"]), loader)
        assert narrowed == [
            ["model=logreg", "imbalance.ratio=1", "seed=1"],
            ["model=logreg", "imbalance.ratio=10", "seed=1"],
        ]
        # glob over a config group's options: every registered loss, from the config folder itself
        losses = expand(["loss=glob(*)"], loader)
        from lossbench.losses import available_losses

        assert sorted(job[0].removeprefix("loss=") for job in losses) == available_losses()
        assert expand(["loss=glob(*,exclude=[c*,f*])"], loader) == [
            [f"loss={n}"] for n in available_losses() if not n.startswith(("c", "f"))
        ]


def test_an_interval_sweep_or_a_bad_override_is_refused_with_one_line():
    from lossbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"an interval sweep has no list of values"):
        expand(["train.lr=interval(0.001,0.1)"])
    with pytest.raises(ConfigError, match=r"Hydra cannot parse it"):
        expand(["seed=[0,1"])


def test_seed_groups_pair_jobs_that_differ_only_by_seed():
    grid = [["loss=ce", "seed=0"], ["loss=ce", "seed=1"], ["loss=focal", "seed=0"], ["loss=ce", "seed=2"]]
    assert seed_groups(grid) == {"0": [[0, 0], [1, 1], [3, 2]]}


class _Calls:
    """Callbacks that record what a launcher calls (Hydra's own Callbacks object calls the same two)."""

    def __init__(self):
        self.calls = []

    def on_job_start(self, config, task_function, **kwargs):
        self.calls.append(("start", int(config.hydra.job.num), str(config.hydra.runtime.output_dir)))

    def on_job_end(self, config, job_return, **kwargs):
        self.calls.append(("end", int(config.hydra.job.num), job_return.status.name))


def _observing_task(cfg):
    """What a task sees: its config resolved against HydraConfig, HydraConfig itself, the folder, env_set."""
    from hydra.core.hydra_config import HydraConfig

    if cfg.seed == 13:
        raise ValueError("seed 13 refused")
    hc = HydraConfig.get()
    return {
        "resolved": OmegaConf.to_container(cfg, resolve=True),
        "output_dir": hc.runtime.output_dir,
        "num": hc.job.num,
        "id": hc.job.id,
        "cwd": os.getcwd(),
        "env": os.environ.get("LB_TEST_ENV"),
        "struct": OmegaConf.is_struct(cfg),
    }


def _replace_deep(value, old: str, new: str):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {_replace_deep(k, old, new): _replace_deep(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_replace_deep(v, old, new) for v in value)
    return value


def _job_outcome(ours: bool, tmp_path, name: str, overrides: list[str]):
    """One sweep job (number 3) set up and run by lossbench's launcher code or by Hydra's ``run_job`` as its
    basic launcher calls it; everything it returns and writes, with its folder's path replaced by <dir>."""
    from hydra.core.utils import run_job
    from hydra.types import HydraContext
    from omegaconf import open_dict

    from lossbench.sweep.hydra_job import run_one

    sweep_dir = tmp_path / name
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        master = compose("config", overrides=["hydra.mode=MULTIRUN"], return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
        cfg = loader.load_sweep_config(master, [*overrides, f"hydra.sweep.dir={sweep_dir}"])
    calls = _Calls()
    context = HydraContext(config_loader=loader, callbacks=calls)
    cwd = os.getcwd()
    if ours:
        ret = run_one(cfg, 3, context, _observing_task)
    else:
        with open_dict(cfg):  # what Hydra's basic launcher sets before its run_job
            cfg.hydra.job.id = f"{cfg.hydra.job.name}_3"
            cfg.hydra.job.num = 3
        ret = run_job(
            hydra_context=context,
            task_function=_observing_task,
            config=cfg,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
    files = {str(p.relative_to(sweep_dir)): p.read_text() for p in sorted(sweep_dir.rglob("*.yaml"))}
    outcome = {
        "return_value": repr(ret._return_value),  # the property re-raises a FAILED job's exception
        "status": ret.status,
        "task_name": ret.task_name,
        "overrides": ret.overrides,
        "working_dir": ret.working_dir,
        "cfg": _plain(ret.cfg),
        "cfg_flags": (OmegaConf.is_struct(ret.cfg), "hydra" in ret.cfg),
        "hydra_cfg": _plain(ret.hydra_cfg),
        "files": files,
        "cwd_restored": os.getcwd() == cwd,
        "calls": calls.calls,
    }
    os.chdir(cwd)
    return _replace_deep(outcome, str(sweep_dir), "<dir>")


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["hydra.job.chdir=true", "+hydra.job.env_set.LB_TEST_ENV=on"],
        ["hydra.output_subdir=null"],
        ["seed=13"],  # the task raises: FAILED, the exception returned
    ],
)
def test_the_launchers_job_set_up_returns_and_writes_what_hydras_run_job_does(extra, tmp_path):
    """lossbench's own job set-up (lossbench.sweep.hydra_job.run_one) must return, write and call exactly what
    Hydra's run_job does for the same job: the task resolving ${hydra:...} against the job's folder, the
    .hydra/ files, the callbacks, the working folder and environment."""
    overrides = [
        "model=logreg",
        "+extra.folder=${hydra:runtime.output_dir}",
        "+extra.job=${hydra:job.num}",
        *extra,
    ]
    hydras = _job_outcome(False, tmp_path, "hydra", overrides)
    ours = _job_outcome(True, tmp_path, "ours", overrides)
    assert ours == hydras
    if extra == ["seed=13"]:
        assert hydras["return_value"] == "ValueError('seed 13 refused')"
    else:
        seen = hydras["return_value"]
        assert "'output_dir': '<dir>/3'" in seen and "'folder': '<dir>/3'" in seen and "'job': 3" in seen
    assert bool(hydras["files"]) == ("hydra.output_subdir=null" not in extra)
    assert [c[0] for c in hydras["calls"]] == ["start", "end"]


@pytest.mark.parametrize("overrides", [[], ["model=torch_mlp", "loss=focal", "hydra.job.chdir=true"]])
def test_yaml_written_for_hydra_and_mlflow_is_omegaconfs_text(overrides):
    """Each job's .hydra/*.yaml and each run's config.yaml are written by config.to_yaml: OmegaConf.to_yaml's
    text, hydra node included (interpolations, enums)."""
    from lossbench.artifacts import config_text
    from lossbench.config import to_yaml

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    assert to_yaml(cfg) == OmegaConf.to_yaml(cfg)
    plain = OmegaConf.to_container(cfg, resolve=False)
    assert to_yaml(plain) == OmegaConf.to_yaml(OmegaConf.create(plain))
    tricky = {"a": "null", "b": "1e-3", "c": "yes", "d": "", "e": "é ü", "n": float("inf"), "o": "~"}
    tricky["nested"] = {"p": "on", "x": [1, "2", None]}
    assert config_text({**tricky, "hydra": {"dropped": 1}}) == OmegaConf.to_yaml(OmegaConf.create(tricky))


def test_the_plugins_are_hydra_plugins_found_by_hydra():
    """The sweeper and launcher live in the hydra_plugins namespace (Hydra instantiates only plugins there)
    and are selected by conf/config.yaml's defaults."""
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher
    from hydra.plugins.sweeper import Sweeper

    from lossbench.cli import register_plugins

    register_plugins()
    names = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Sweeper)}
    assert "hydra_plugins.lossbench.sweeper.LossbenchSweeper" in names
    names = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Launcher)}
    assert "hydra_plugins.lossbench.launcher.LossbenchLauncher" in names
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.lossbench.sweeper.LossbenchSweeper"
    assert cfg.hydra.launcher._target_ == "hydra_plugins.lossbench.launcher.LossbenchLauncher"
    assert cfg.hydra.launcher.n_jobs == 1


def test_the_losses_experiment_sweeps_every_model_and_every_loss_without_a_list(tmp_path):
    """A new loss (one module + one yaml) or model joins `+experiment=losses` by its yaml alone."""
    from lossbench.losses import available_losses
    from lossbench.models import MODELS

    (tmp_path / "loss").mkdir()
    (tmp_path / "loss" / "my_loss.yaml").write_text("name: ce\n")  # a user's own option on the search path
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        _, _, grid = _master(["+experiment=losses"])
        _, _, mine = _master(["+experiment=losses", f"hydra.searchpath=[file://{tmp_path}]"])
    pairs = {(job[0].removeprefix("model="), job[1].removeprefix("loss=")) for job in grid}
    assert pairs == {(m, loss) for m in MODELS for loss in available_losses()}
    assert len(grid) == len(MODELS) * len(available_losses()) * 3  # 3 seeds
    assert {job[1] for job in mine} == {f"loss={n}" for n in [*available_losses(), "my_loss"]}


def _recorded(folder):
    """Each child run of the smoke experiment in ``folder``'s store by fingerprint: its params, metrics
    (fit times left out: they are measured) and tag names, with what differs between any two sweeps (ids,
    process, folders, times) left out; and its artifact names."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name("smoke")
    runs = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    varying_tags = {"mlflow.parentRunId", "lossbench.pid", "lossbench.process_start", "lossbench.sweep_id"}
    # train.threads: the number a run used, which the MLflow helper of lossbench's launcher lowers by a core
    varying_params = {"hydra.sweep.dir", "hydra.run.dir", "train.threads"}
    out = {}
    for r in runs:
        out[r.data.tags["lossbench.fingerprint"]] = (
            {k: v for k, v in r.data.params.items() if k not in varying_params},
            {k: v for k, v in r.data.metrics.items() if k != "train/fit_seconds"},
            {k: v for k, v in r.data.tags.items() if k not in varying_tags and not k.startswith("mlflow.")},
            sorted(a.path for a in client.list_artifacts(r.info.run_id)),
        )
    return out


def test_the_plugin_launcher_records_what_hydras_basic_launcher_records(tmp_path):
    """The same jobs under lossbench's launcher and under Hydra's stock basic launcher (lossbench's sweeper
    in front of both): the same runs, params, metrics, tags and artifacts in MLflow, the same job folders and
    the same .hydra/ files in them."""
    grid = ["+experiment=smoke", "model=logreg"]
    outcomes = {}
    for name, extra in (("ours", []), ("basic", ["hydra/launcher=basic"])):
        folder = tmp_path / name
        folder.mkdir()
        proc = run_cli([*grid, *extra], cwd=folder)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "lossbench: 8 finished, 0 resumed, 4 skipped (N/A), 0 failed" in proc.stderr
        (sweep_dir,) = (folder / "experiments" / "smoke").iterdir()
        hydra_files = {
            str(p.relative_to(sweep_dir)): p.read_text().replace(str(sweep_dir), "<dir>")
            for p in sorted(sweep_dir.glob("*/.hydra/*.yaml"))
        }
        outcomes[name] = (_recorded(folder), hydra_files)
    ours, basic = outcomes["ours"], outcomes["basic"]
    assert len(ours[0]) == 8 and ours[0] == basic[0]
    assert len(ours[1]) == 8 * 3
    for path, text in ours[1].items():
        if path.endswith("hydra.yaml"):  # the launcher's own node differs, as chosen
            continue
        assert text == basic[1][path], path
    assert set(ours[1]) == set(basic[1])
