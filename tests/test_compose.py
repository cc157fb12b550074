"""lossbench.compose: each job config of a sweep is what Hydra composes, at a fraction of the cost."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from lossbench import compose as fast_compose
from lossbench.config import config_dir
from lossbench.sweep import expand_jobs


def _sweep(overrides):
    """(master config, the sweep's job overrides, the loader, Hydra's own load_sweep_config)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    master = compose("config", overrides=overrides, return_hydra_config=True)
    loader = GlobalHydra.instance().config_loader()
    original = getattr(ConfigLoaderImpl.load_sweep_config, "__wrapped__", ConfigLoaderImpl.load_sweep_config)
    return master, expand_jobs(master), loader, original


def _plain(cfg):
    return OmegaConf.to_container(cfg, resolve=False)


@pytest.mark.parametrize(
    "overrides, jobs, bases, every",
    [
        (["+experiment=imbalance"], 216, 18, 5),  # 2 models x 9 losses share a base; ratio x seed are values
        (["+experiment=smoke", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], 24, 6, 1),
        # a user's own experiment folder on the search path (as benchmarks/ run theirs)
        (["+experiment=mine", "hydra.searchpath=[file://{tmp}]"], 12, 2, 1),
    ],
)
def test_job_configs_equal_hydras_own_composition(overrides, jobs, bases, every, tmp_path):
    """Each job composed the fast way equals Hydra's full composition (every ``every``-th job: Hydra's own
    path costs ~0.15 s a job; the first job of each base is also checked at run time)."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n"
        "      model: logreg,torch_mlp\n      imbalance.ratio: 1,10,100\n      seed: 0,1\n"
    )
    overrides = [o.format(tmp=tmp_path) for o in overrides]
    fast_compose.install()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        master, job_overrides, loader, original = _sweep(overrides)
        assert len(job_overrides) == jobs
        fast = [loader.load_sweep_config(master, list(o)) for o in job_overrides]
        for k in [*range(0, len(job_overrides), every), len(job_overrides) - 1]:
            slow = original(loader, master, list(job_overrides[k]))
            # the hydra node too: overrides, override_dirname, choices
            assert _plain(fast[k]) == _plain(slow), job_overrides[k]
        assert list(fast[-1].hydra.overrides.task) == list(job_overrides[-1])
        cache = fast_compose._bases(loader, master)
        assert all(base is not None for base in cache.values())  # none fell back to the slow path
        assert len(cache) == bases


def test_a_bad_override_still_gets_hydras_error():
    fast_compose.install()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        master, _, loader, _ = _sweep(["+experiment=smoke"])
        ok = loader.load_sweep_config(master, ["model=logreg", "seed=3"])
        assert ok.seed == 3 and ok.model.name == "logreg"
        with pytest.raises(ConfigCompositionException, match="nokey"):
            loader.load_sweep_config(master, ["model=logreg", "nokey=3"])
        with pytest.raises(Exception, match=r"(?s)nope.*Available options"):
            loader.load_sweep_config(master, ["model=nope", "seed=3"])
        # the same base after the errors still composes correctly
        again = loader.load_sweep_config(master, ["model=logreg", "seed=4", "imbalance.ratio=7.5"])
        assert again.seed == 4 and again.imbalance.ratio == 7.5
        assert list(again.hydra.overrides.task) == ["model=logreg", "seed=4", "imbalance.ratio=7.5"]


def test_the_batch_checks_config_is_handed_to_the_launcher_unless_used():
    """The basic sweeper composes every job to check the batch, then the launcher asks again: the second
    request gets the first's config (not composed twice); a config a launcher has used is never handed out."""
    from omegaconf import open_dict

    fast_compose.install()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        master, jobs, loader, original = _sweep(["+experiment=smoke"])
        checked = loader.load_sweep_config(master, list(jobs[0]))  # the batch check
        launched = loader.load_sweep_config(master, list(jobs[0]))  # the launcher
        assert launched is checked
        with open_dict(launched):  # what BasicLauncher and run_job do to the config they run
            launched.hydra.job.num = 0
            launched.hydra.runtime.output_dir = "/tmp/somewhere"
        again = loader.load_sweep_config(master, list(jobs[0]))
        assert again is not launched
        assert _plain(again) == _plain(original(loader, master, list(jobs[0])))
        # a sweeper that never checks its batch asks once per job and runs it: nothing of that is kept
        handoff = fast_compose._HANDOFF[loader]
        big, many, _, _ = _sweep(["+experiment=imbalance"])
        for job in many[:130]:
            cfg = loader.load_sweep_config(big, list(job))
            with open_dict(cfg):
                cfg.hydra.job.num = 0
        assert len([v for v in handoff.values() if v[0] is big]) < fast_compose._PURGE_EVERY
        # used by nobody yet, but asked for under another master config: composed afresh
        other, _, _, _ = _sweep(["+experiment=smoke", "seed=5"])
        assert loader.load_sweep_config(other, list(jobs[1])) is not loader.load_sweep_config(
            master, list(jobs[1])
        )


def test_unpickled_copies_of_a_run_share_its_bases():
    """joblib's launcher sends each job fresh unpickled copies of the config loader and the master config:
    they must find the bases the first copy composed (else a worker composes every job twice from scratch)."""
    import pickle

    fast_compose.install()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        master, jobs, loader, original = _sweep(["+experiment=smoke", "hydra/launcher=joblib"])
        first = loader.load_sweep_config(master, list(jobs[0]))
        bases = fast_compose._bases(loader, master)
        assert len(bases) == 1 and None not in bases.values()
        loader2, master2 = pickle.loads(pickle.dumps((loader, master)))
        assert loader2 is not loader
        assert fast_compose._bases(loader2, master2) is bases
        second = loader2.load_sweep_config(master2, list(jobs[1]))
        assert len(bases) == 1  # the same base served the copy: nothing composed from scratch
        assert _plain(second) == _plain(original(loader, master, list(jobs[1])))
        assert first.seed != second.seed or first.model.name != second.model.name
        # another run (other overrides) never shares them
        other, _, _, _ = _sweep(["+experiment=smoke", "seed=5"])
        assert fast_compose._bases(loader, other) is not bases


@pytest.mark.parametrize(
    "overrides",
    [["model=torch_mlp"], ["+experiment=imbalance"], ["loss=focal", "loss.alpha=[1,2,3,4,5,6,7,8,9,10]"]],
)
def test_yaml_written_for_hydra_and_mlflow_is_omegaconfs_text(overrides, tmp_path):
    """Each job's .hydra/*.yaml (Hydra's _save_config, replaced by install) and each run's config.yaml are
    written by config.to_yaml: OmegaConf.to_yaml's text, hydra node included (interpolations, enums)."""
    import hydra.core.utils as hydra_utils

    from lossbench.config import to_yaml
    from lossbench.tracking import _yaml

    fast_compose.install()
    assert hydra_utils._save_config is fast_compose._save_config
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    hydra_utils._save_config(cfg, "hydra.yaml", tmp_path / ".hydra")
    assert (tmp_path / ".hydra" / "hydra.yaml").read_text() == OmegaConf.to_yaml(cfg)
    plain = OmegaConf.to_container(cfg, resolve=False)
    assert to_yaml(plain) == OmegaConf.to_yaml(OmegaConf.create(plain))
    tricky = {"a": "null", "b": "1e-3", "c": "yes", "d": "", "e": "é ü", "n": float("inf"), "o": "~"}
    tricky["nested"] = {"p": "on", "x": [1, "2", None]}
    assert _yaml({**tricky, "hydra": {"dropped": 1}}) == OmegaConf.to_yaml(OmegaConf.create(tricky))


def _job_outcome(run, tmp_path, name: str, overrides: list[str], task):
    """Run one sweep job through ``run`` (Hydra's run_job or lossbench's) in ``tmp_path / name``; everything
    it returns and writes, with that folder's path replaced by ``<dir>``."""
    import os

    from hydra._internal.callbacks import Callbacks
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import HydraContext, RunMode
    from omegaconf import open_dict

    sweep_dir = tmp_path / name
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "config", overrides=[*overrides, f"hydra.sweep.dir={sweep_dir}"], return_hydra_config=True
        )
        loader = GlobalHydra.instance().config_loader()
    with open_dict(cfg):
        cfg.hydra.job.num = cfg.hydra.job.id = 3
        cfg.hydra.mode = RunMode.MULTIRUN
    cwd, before = os.getcwd(), HydraConfig.instance().cfg
    ret = run(
        task_function=task,
        config=cfg,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
        hydra_context=HydraContext(config_loader=loader, callbacks=Callbacks(cfg)),
    )
    files = {str(p.relative_to(sweep_dir)): p.read_text() for p in sorted(sweep_dir.rglob("*.yaml"))}
    outcome = {
        "return_value": repr(ret._return_value),  # the property re-raises a FAILED job's exception
        "status": ret.status,
        "task_name": ret.task_name,
        "overrides": ret.overrides,
        "working_dir": ret.working_dir,
        "cfg": _plain(ret.cfg),
        "cfg_flags": (OmegaConf.is_struct(ret.cfg), OmegaConf.is_readonly(ret.cfg), "hydra" in ret.cfg),
        "hydra_cfg": _plain(ret.hydra_cfg),
        "hydra_readonly": OmegaConf.is_readonly(ret.hydra_cfg.hydra),
        "files": files,
        "cwd_restored": os.getcwd() == cwd,
        "hydra_config_restored": HydraConfig.instance().cfg is before,
    }
    os.chdir(cwd)
    return _replace_deep(outcome, str(sweep_dir), "<dir>")


def _replace_deep(value, old: str, new: str):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {_replace_deep(k, old, new): _replace_deep(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_replace_deep(v, old, new) for v in value)
    return value


def _observing_task(cfg):
    """What a task sees: its config resolved against HydraConfig, HydraConfig itself, the folder, env_set."""
    import os

    from hydra.core.hydra_config import HydraConfig

    if cfg.seed == 13:
        raise ValueError("seed 13 refused")
    hc = HydraConfig.get()
    return {
        "resolved": OmegaConf.to_container(cfg, resolve=True),
        "output_dir": hc.runtime.output_dir,
        "num": hc.job.num,
        "cwd": os.getcwd(),
        "env": os.environ.get("LB_TEST_ENV"),
        "struct": OmegaConf.is_struct(cfg),
    }


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["hydra.job.chdir=true", "+hydra.job.env_set.LB_TEST_ENV=on"],
        ["hydra.output_subdir=null"],
        ["seed=13"],  # the task raises: FAILED, the exception returned
    ],
)
def test_run_job_with_fewer_copies_returns_and_writes_what_hydras_does(extra, tmp_path):
    """install() points the launchers at compose._run_job; on the same job it must return, write and leave
    behind exactly what Hydra's own run_job does (the task resolving ${hydra:...} against the job's
    folder)."""
    import hydra._internal.core_plugins.basic_launcher as basic
    import hydra.core.utils as hydra_utils

    fast_compose.install()
    assert hydra_utils.run_job is fast_compose._run_job is basic.run_job
    overrides = [
        "model=logreg",
        "+extra.folder=${hydra:runtime.output_dir}",
        "+extra.job=${hydra:job.num}",
        *extra,
    ]
    hydras = _job_outcome(fast_compose._hydra_run_job, tmp_path, "hydra", overrides, _observing_task)
    ours = _job_outcome(fast_compose._run_job, tmp_path, "ours", overrides, _observing_task)
    assert ours == hydras
    if extra == ["seed=13"]:
        assert hydras["return_value"] == "ValueError('seed 13 refused')"
    else:
        seen = hydras["return_value"]
        assert "'output_dir': '<dir>/3'" in seen and "'folder': '<dir>/3'" in seen and "'job': 3" in seen
    assert bool(hydras["files"]) == ("hydra.output_subdir=null" not in extra)
