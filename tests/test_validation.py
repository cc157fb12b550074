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
        r"model\.hidden_sizes=\[64, 0\] is invalid: must be a list of positive integers",
    ),
    (
        ["model=torch_mlp", "model.dropout=1.0"],
        r"model\.dropout=1\.0 is invalid: must be a number >= 0 and < 1",
    ),
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


def test_defaults_and_every_shipped_option_validate():
    validate(compose_cfg())
    for data in ("digits", "breast_cancer", "wine", "synthetic"):
        for model in ("logreg", "torch_mlp"):
            for reg in ("none", "l2"):
                validate(compose_cfg([f"data={data}", f"model={model}", f"regularization={reg}"]))


def test_cuda_device_without_a_gpu_is_a_clear_error():
    import torch

    from lossbench.train import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=r"train\.device='cuda' is invalid: CUDA is not available"):
        resolve_device("cuda")
    assert str(resolve_device("auto")) == "cpu"
