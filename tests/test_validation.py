"""Every bad value gets one message naming the key, the value and what is allowed — before any work."""

import pytest

from lossbench.errors import ConfigError
from lossbench.validate import validate
from tests.conftest import compose_cfg

BAD = [
    (["imbalance.ratio=0.5"], r"imbalance\.ratio=0\.5 is invalid: must be a number >= 1"),
    (["imbalance.ratio=nan"], r"imbalance\.ratio=nan is invalid: must be a number >= 1"),
    (["imbalance.profile=zipf"], r"imbalance\.profile='zipf' is invalid: must be one of exponential"),
    (
        ["regularization=l2", "regularization.strength=-0.1"],
        r"regularization\.strength=-0\.1 is invalid: must be a number >= 0",
    ),
    (
        ["model=torch_mlp", "model.activation=swishy"],
        r"model\.activation='swishy' is invalid: must be one of relu, tanh, gelu, sigmoid",
    ),
    (
        ["model=torch_mlp", "model.hidden_sizes=[64,0]"],
        r"model\.hidden_sizes=\[64, 0\] is invalid: must be a non-empty list of positive integers",
    ),
    (["model=torch_cnn", "model.channels=[]"], r"model\.channels=\[\] is invalid: must be a non-empty list"),
    (
        ["model=sgd", "model.learning_rate=fast"],
        r"model\.learning_rate='fast' is invalid: must be one of auto, optimal",
    ),
    (
        ["model=sklearn_mlp", "model.activation=gelu"],
        r"model\.activation='gelu' is invalid: must be one of relu, tanh",
    ),
    (
        ["regularization=elasticnet", "regularization.l1_ratio=2"],
        r"regularization\.l1_ratio=2\.0 is invalid: must be a number >= 0 and <= 1",
    ),
    (
        ["model=torch_mlp", "regularization=dropout", "regularization.rate=1"],
        r"regularization\.rate=1\.0 is invalid: must be a number > 0 and < 1",
    ),
    (
        ["regularization=none", "regularization.strength=0.1"],
        r"regularization\.strength=0\.1 is invalid: must be 0 with regularization=none",
    ),
    (
        ["regularization=l1", "regularization.strength=0"],
        r"regularization\.strength=0\.0 is invalid: must be > 0 with regularization=l1",
    ),
    # the compatibility table
    (
        ["model=linear_svm", "loss=focal"],
        r"loss='focal' is invalid: model=linear_svm supports the losses: hinge, squared_hinge",
    ),
    (
        ["model=linear_svm", "loss=hinge"],
        r"loss\.variant='weston_watkins' is invalid: model=linear_svm trains loss=hinge with variant "
        r"one_vs_rest or crammer_singer",
    ),
    (
        ["model=linear_svm", "loss=hinge", "loss.variant=one_vs_rest", "regularization=none"],
        r"regularization='none' is invalid: model=linear_svm supports the regularizations: l1, l2",
    ),
    (
        ["model=linear_svm", "loss=hinge", "loss.variant=one_vs_rest", "regularization=l1"],
        r"LinearSVC takes an l1 penalty with loss=squared_hinge only",
    ),
    (
        ["model=logreg", "regularization=dropout"],
        r"regularization='dropout' is invalid: model=logreg supports the regularizations: "
        r"none, l1, l2, elasticnet",
    ),
    (["model=torch_cnn", "data=wine"], r"data='wine' is invalid: model=torch_cnn needs image data: digits"),
    (["model=ridge", "loss=ce"], r"loss='ce' is invalid: model=ridge supports the losses: mse"),
    (
        ["loss=focal", "loss.gamma=-1", "model=torch_mlp"],
        r"^loss\.gamma=-1\.0 is invalid: must be a float in the range \[0, inf\) for loss 'focal'\.$",
    ),
    (
        ["rebalance=class_weight", "loss=weighted_ce"],
        r"rebalance='class_weight' is invalid: loss=weighted_ce is already",
    ),
    (
        ["model=torch_mlp", "rebalance=class_weight", "loss=focal"],
        r"on torch models it applies to loss=ce only",
    ),
    (
        ["rebalance=smote", "rebalance.k_neighbors=0"],
        r"rebalance\.k_neighbors=0 is invalid: must be an integer >= 1",
    ),
    (
        ["rebalance=class_weight", "rebalance.weights=inverse"],
        r"rebalance\.weights='inverse' is invalid: must be one of balanced",
    ),
    (["imbalance.test=skewed"], r"imbalance\.test='skewed' is invalid: must be one of balanced, natural"),
    (
        ["imbalance=binary"],
        r"imbalance\.profile='binary' is invalid: needs data with 2 classes; data=digits has 10",
    ),
    (
        ["imbalance=binary", "data=breast_cancer", "imbalance.minority_fraction=0.7"],
        r"imbalance\.minority_fraction=0\.7 is invalid: must be a number > 0 and <= 0\.5",
    ),
    (["imbalance=step", "imbalance.minority_fraction=0"], r"imbalance\.minority_fraction=0\.0 is invalid"),
    (["train.epochs=0"], r"train\.epochs=0 is invalid: must be an integer >= 1"),
    (["train.epochs=2.5"], r"train\.epochs=2\.5 is invalid: must be an integer >= 1"),
    (["train.lr=0"], r"train\.lr=0\.0 is invalid: must be a number > 0"),
    (["train.batch_size=0"], r"train\.batch_size=0 is invalid: must be an integer >= 1"),
    (["train.patience=-1"], r"train\.patience=-1 is invalid: must be an integer >= 0 \(or null\)"),
    (["train.optimizer=rmsprop"], r"train\.optimizer='rmsprop' is invalid: must be one of adam, adamw, sgd"),
    (
        ["train.monitor=loss"],
        r"train\.monitor='loss' is invalid: must be one of val_loss, val_balanced_accuracy",
    ),
    (["train.threads=0"], r"train\.threads=0 is invalid: must be auto or an integer >= 1"),
    (["train.threads=many"], r"train\.threads='many' is invalid: must be auto or an integer >= 1"),
    (["train.threads=1.5"], r"train\.threads=1\.5 is invalid: must be auto or an integer >= 1"),
    (["train.device=tpu"], r"train\.device='tpu' is invalid: must be auto, cpu, cuda or cuda:N"),
    (["seed=-1"], r"seed=-1 is invalid: must be an integer >= 0"),
    (["split.test=1.5"], r"split\.test=1\.5 is invalid: must be a number > 0 and < 1"),
    (["split.test=0.5", "split.val=0.6"], r"split\.val=0\.6 is invalid: must be a number > 0 and < 0\.5"),
    (["data=synthetic", "data.n_classes=1"], r"data\.n_classes=1 is invalid: must be an integer >= 2"),
    (["data=synthetic", "data.n_samples=5"], r"data\.n_samples=5 is invalid: must be an integer >= 50"),
    (
        ["data=synthetic", "data.n_informative=2", "data.n_classes=5"],
        r"data\.n_informative=2 is invalid: must satisfy 2\*\*n_informative >= n_classes \(5\)",
    ),
    (["model.max_iter=0"], r"model\.max_iter=0 is invalid: must be an integer >= 1"),
]


@pytest.mark.parametrize(("overrides", "match"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_value_message(overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose_cfg(overrides))


@pytest.mark.slow  # ~23 s: every model x loss x regularization (.ci/run's slow step)
def test_defaults_and_every_valid_combination_validate():
    """Every (model, loss, regularization) the compatibility table allows composes and validates."""
    from lossbench.compat import REGULARIZATION, supported_losses
    from lossbench.models import MODELS

    validate(compose_cfg())
    checked = 0
    for model in MODELS:
        for loss in supported_losses(model):
            for reg in REGULARIZATION[model]:
                overrides = [f"model={model}", f"loss={loss}", f"regularization={reg}", "data=digits"]
                if model in ("linear_svm", "sgd") and loss in ("hinge", "squared_hinge"):
                    overrides.append("loss.variant=one_vs_rest")
                if model == "linear_svm" and reg == "l1" and loss == "hinge":
                    continue
                validate(compose_cfg(overrides))
                checked += 1
    assert checked > 100


def test_cuda_device_without_a_gpu_is_a_clear_error():
    import torch

    from lossbench.train import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=r"train\.device='cuda' is invalid: CUDA is not available"):
        resolve_device("cuda")
    assert str(resolve_device("auto")) == "cpu"
